"""Cooperation agreements between brands and hosts, and the host -> agency link.

State machine of a cooperation::

    proposed --accept--> accepted --end--> ended
        |--decline--> declined
        '--withdraw--> withdrawn

* A brand proposes some of its own, non-archived products to a host at a commission
  rate (basis points) and an optional flat fee.
* The host, or the agency the host has named (``set_agency``), accepts or declines.
  An agency can act only for hosts that named it.
* The brand may withdraw a proposal while it is pending.
* The brand, the host or the host's agency may end an accepted agreement: it stops
  the products from being shelved from then on; shelves that already carry them keep
  the agreement they were shelved under (orders take the rate from there).
* At most one accepted agreement covers a (host, product) pair, so the agreed rate is
  unambiguous: ``rate_for(host_id, product_id)``.

Transitions are compare-and-set updates: of two concurrent decisions one wins, the
other gets 409 ``illegal_transition``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from live.auth import Principal
from live.clock import Clock
from live.db import Database, upsert
from live.errors import Conflict, Forbidden, NotFound
from live.models import Role, User
from live.paging import Listing, Page
from shelf.models import Cooperation, CooperationProduct, CooperationStatus, HostAgency, Product
from shelf.schemas import ProposeBody
from shelf.views import cooperation_dict

_PROPOSED = CooperationStatus.PROPOSED.value
_ACCEPTED = CooperationStatus.ACCEPTED.value


@dataclass(frozen=True, slots=True)
class AgreedRate:
    """The terms under which a host sells a product."""

    cooperation_id: int
    brand_id: int
    host_id: int
    commission_bps: int
    flat_fee_minor: int | None
    flat_fee_currency: str | None


def agreed_rate(c: Cooperation) -> AgreedRate:
    return AgreedRate(
        c.id, c.brand_id, c.host_id, c.commission_bps, c.flat_fee_minor, c.flat_fee_currency
    )


class CooperationService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # -- host -> agency --------------------------------------------------------------

    async def set_agency(self, host: Principal, agency_id: int) -> dict[str, Any]:
        """The host names the agency that may accept, decline and end agreements for them."""
        host.require(Role.HOST)
        async with self._db.transaction() as tx:
            agency = await tx.get(User, agency_id)
            if agency is None or agency.role != Role.AGENCY.value or agency.disabled:
                raise NotFound("agency_not_found", f"no agency account {agency_id}")
            stmt = upsert(tx, HostAgency).values(
                host_id=host.user_id, agency_id=agency_id, created_ms=self._clock.now_ms()
            )
            await tx.execute(
                stmt.on_conflict_do_update(
                    index_elements=["host_id"],
                    set_={"agency_id": agency_id, "created_ms": stmt.excluded.created_ms},
                )
            )
        return {"host_id": host.user_id, "agency_id": agency_id}

    async def clear_agency(self, host: Principal) -> dict[str, Any]:
        host.require(Role.HOST)
        async with self._db.transaction() as tx:
            await tx.execute(delete(HostAgency).where(HostAgency.host_id == host.user_id))
        return {"host_id": host.user_id, "agency_id": None}

    async def agency_of(self, host: Principal) -> dict[str, Any]:
        host.require(Role.HOST)
        async with self._db.read() as s:
            link = await s.get(HostAgency, host.user_id)
        return {"host_id": host.user_id, "agency_id": link.agency_id if link else None}

    async def hosts_of(self, agency: Principal, page: Page) -> Listing[int]:
        """A page of the ids of the hosts that named ``agency``, by id (``page`` is
        oldest first)."""
        agency.require(Role.AGENCY)
        query = select(HostAgency.host_id).where(HostAgency.agency_id == agency.user_id)
        async with self._db.read() as s:
            ids = list(await s.scalars(page.select(query, HostAgency.host_id)))
        return page.cut(ids, lambda host_id: host_id, lambda host_id: host_id)

    # -- finding a host to propose to ------------------------------------------------

    async def find_hosts(self, caller: Principal, text: str, limit: int) -> list[dict[str, Any]]:
        """Host accounts whose username or display name contains ``text`` (any case),
        for a brand choosing whom to propose to: ``[{id, display_name}]`` by name.
        Disabled accounts are left out; an empty ``text`` lists the first ``limit``."""
        caller.require(Role.BRAND)
        query = (
            select(User.id, User.display_name)
            .where(User.role == Role.HOST.value, User.disabled.is_(False))
            .order_by(func.lower(User.display_name), User.id)
            .limit(limit)
        )
        if text:
            query = query.where(
                or_(
                    User.username.icontains(text, autoescape=True),
                    User.display_name.icontains(text, autoescape=True),
                )
            )
        return await self._host_list(query)

    async def hosts_by_id(self, caller: Principal, ids: list[int]) -> list[dict[str, Any]]:
        """The host accounts among ``ids`` (disabled ones too: they name existing
        agreements), ``[{id, display_name}]`` by id; other ids are left out."""
        caller.require(Role.BRAND)
        query = (
            select(User.id, User.display_name)
            .where(User.id.in_(set(ids)), User.role == Role.HOST.value)
            .order_by(User.id)
        )
        return await self._host_list(query)

    async def _host_list(self, query: Select[int, str]) -> list[dict[str, Any]]:
        async with self._db.read() as s:
            rows = (await s.execute(query)).all()
        return [{"id": row.id, "display_name": row.display_name} for row in rows]

    # -- proposals and decisions -----------------------------------------------------

    async def propose(self, brand: Principal, body: ProposeBody) -> dict[str, Any]:
        brand.require(Role.BRAND)
        async with self._db.transaction() as tx:
            host = await tx.get(User, body.host_id)
            if host is None or host.role != Role.HOST.value:
                raise NotFound("host_not_found", f"no host {body.host_id}")
            products = await self._lock_products(tx, body.product_ids)
            for p in products:
                if p.brand_id != brand.user_id and brand.role is not Role.ADMIN:
                    raise Forbidden("not_your_product", f"product {p.id} is not yours")
                if p.archived_ms is not None:
                    raise Conflict("product_archived", f"product {p.id} is archived")
            await self._refuse_covered(tx, body.host_id, body.product_ids)
            coop = Cooperation(
                brand_id=products[0].brand_id,
                host_id=body.host_id,
                commission_bps=body.commission_bps,
                flat_fee_minor=body.flat_fee_minor,
                flat_fee_currency=body.flat_fee_currency,
                note=body.note,
                flash_min_price_bps=body.flash_min_price_bps,
                flash_max_units=body.flash_max_units,
                flash_ask_brand=body.flash_ask_brand,
                status=_PROPOSED,
                created_ms=self._clock.now_ms(),
            )
            tx.add(coop)
            await tx.flush()
            tx.add_all(
                CooperationProduct(cooperation_id=coop.id, product_id=pid)
                for pid in body.product_ids
            )
        return cooperation_dict(coop, list(body.product_ids))

    async def accept(self, caller: Principal, coop_id: int) -> dict[str, Any]:
        return await self._decide(caller, coop_id, CooperationStatus.ACCEPTED)

    async def decline(self, caller: Principal, coop_id: int) -> dict[str, Any]:
        return await self._decide(caller, coop_id, CooperationStatus.DECLINED)

    async def withdraw(self, brand: Principal, coop_id: int) -> dict[str, Any]:
        brand.require(Role.BRAND)
        async with self._db.transaction() as tx:
            coop = await self._get(tx, coop_id)
            if coop.brand_id != brand.user_id and brand.role is not Role.ADMIN:
                raise Forbidden("not_your_cooperation", "only the proposing brand may withdraw")
            await self._move(tx, coop, _PROPOSED, CooperationStatus.WITHDRAWN, brand)
            return await self._dict(tx, coop)

    async def end(self, caller: Principal, coop_id: int) -> dict[str, Any]:
        """End an accepted agreement: its products can no longer be newly shelved."""
        caller.require(Role.BRAND, Role.HOST, Role.AGENCY)
        async with self._db.transaction() as tx:
            coop = await self._get(tx, coop_id)
            if caller.role is Role.BRAND:
                if coop.brand_id != caller.user_id:
                    raise Forbidden("not_your_cooperation", "this agreement is not yours")
            else:
                await self._check_host_side(tx, caller, coop)
            await self._move(tx, coop, _ACCEPTED, CooperationStatus.ENDED, caller)
            return await self._dict(tx, coop)

    async def _decide(
        self, caller: Principal, coop_id: int, target: CooperationStatus
    ) -> dict[str, Any]:
        caller.require(Role.HOST, Role.AGENCY)
        async with self._db.transaction() as tx:
            coop = await self._get(tx, coop_id)
            await self._check_host_side(tx, caller, coop)
            if target is CooperationStatus.ACCEPTED:
                ids = await self._product_ids(tx, coop.id)
                await self._lock_products(tx, ids)
                await self._refuse_covered(tx, coop.host_id, ids)
            await self._move(tx, coop, _PROPOSED, target, caller)
            return await self._dict(tx, coop)

    # -- reading -------------------------------------------------------------------

    async def get(self, caller: Principal, coop_id: int) -> dict[str, Any]:
        async with self._db.read() as tx:
            coop = await self._get(tx, coop_id)
            if caller.role is Role.BRAND and coop.brand_id == caller.user_id:
                return await self._dict(tx, coop)
            if caller.role is Role.BRAND:
                raise Forbidden("not_your_cooperation", "this agreement is not yours")
            await self._check_host_side(tx, caller, coop)
            return await self._dict(tx, coop)

    async def list_for(
        self, caller: Principal, status: CooperationStatus | None, page: Page
    ) -> Listing[dict[str, Any]]:
        """A page of the caller's side: a brand's proposals and agreements, a host's, or
        those of every host that named the calling agency. Newest first (``page`` is
        newest first)."""
        caller.require(Role.BRAND, Role.HOST, Role.AGENCY)
        query = select(Cooperation)
        if caller.role is Role.BRAND:
            query = query.where(Cooperation.brand_id == caller.user_id)
        elif caller.role is Role.HOST:
            query = query.where(Cooperation.host_id == caller.user_id)
        elif caller.role is Role.AGENCY:
            hosts = select(HostAgency.host_id).where(HostAgency.agency_id == caller.user_id)
            query = query.where(Cooperation.host_id.in_(hosts))
        if status is not None:
            query = query.where(Cooperation.status == status.value)
        async with self._db.read() as s:
            rows = list(await s.scalars(page.select(query, Cooperation.id)))
            listing = page.cut(rows, lambda c: c.id, lambda c: c)
            # the products of the whole page in one query
            products: dict[int, list[int]] = {c.id: [] for c in listing.items}
            pairs = await s.execute(
                select(CooperationProduct.cooperation_id, CooperationProduct.product_id).where(
                    CooperationProduct.cooperation_id.in_(list(products))
                )
            )
            for coop_id, product_id in pairs:
                products[coop_id].append(product_id)
        items = [cooperation_dict(c, products[c.id]) for c in listing.items]
        return Listing(items, listing.next_cursor)

    async def rate_for(self, host_id: int, product_id: int) -> AgreedRate | None:
        """The accepted agreement under which ``host_id`` may sell ``product_id`` now."""
        async with self._db.read() as s:
            coop = await self.accepted_for(s, host_id, product_id)
        return None if coop is None else agreed_rate(coop)

    async def accepted_for(
        self, tx: AsyncSession, host_id: int, product_id: int
    ) -> Cooperation | None:
        return await tx.scalar(
            select(Cooperation)
            .join(CooperationProduct, CooperationProduct.cooperation_id == Cooperation.id)
            .where(
                Cooperation.host_id == host_id,
                Cooperation.status == _ACCEPTED,
                CooperationProduct.product_id == product_id,
            )
        )

    # -- helpers ---------------------------------------------------------------------

    async def _get(self, tx: AsyncSession, coop_id: int) -> Cooperation:
        coop = await tx.get(Cooperation, coop_id)
        if coop is None:
            raise NotFound("cooperation_not_found", f"no cooperation {coop_id}")
        return coop

    async def _check_host_side(
        self, tx: AsyncSession, caller: Principal, coop: Cooperation
    ) -> None:
        """The caller is the agreement's host, an agency that host named, or an admin."""
        if caller.role is Role.ADMIN:
            return
        if caller.role is Role.HOST and coop.host_id == caller.user_id:
            return
        if caller.role is Role.AGENCY:
            link = await tx.get(HostAgency, coop.host_id)
            if link is not None and link.agency_id == caller.user_id:
                return
            raise Forbidden("not_your_host", "an agency may act only for hosts that named it")
        raise Forbidden("not_your_cooperation", "this agreement is not yours")

    async def _move(
        self,
        tx: AsyncSession,
        coop: Cooperation,
        source: str,
        target: CooperationStatus,
        caller: Principal,
    ) -> None:
        now = self._clock.now_ms()
        values: dict[str, Any] = {"status": target.value}
        if target is CooperationStatus.ENDED:
            values["ended_ms"] = now
        else:
            values.update(decided_ms=now, decided_by=caller.user_id)
        result = await tx.execute(
            update(Cooperation)
            .where(Cooperation.id == coop.id, Cooperation.status == source)
            .values(values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(
                "illegal_transition",
                f"a {coop.status} cooperation cannot become {target.value}",
                status=coop.status,
            )
        await tx.refresh(coop)

    async def _lock_products(self, tx: AsyncSession, ids: Iterable[int]) -> list[Product]:
        wanted = sorted(set(ids))
        rows = list(
            await tx.scalars(
                select(Product).where(Product.id.in_(wanted)).order_by(Product.id).with_for_update()
            )
        )
        missing = set(wanted) - {p.id for p in rows}
        if missing:
            raise NotFound("product_not_found", f"no product {min(missing)}")
        return rows

    async def _refuse_covered(self, tx: AsyncSession, host_id: int, ids: list[int]) -> None:
        covered = list(
            await tx.scalars(
                select(CooperationProduct.product_id)
                .join(Cooperation, Cooperation.id == CooperationProduct.cooperation_id)
                .where(
                    Cooperation.host_id == host_id,
                    Cooperation.status == _ACCEPTED,
                    CooperationProduct.product_id.in_(ids),
                )
            )
        )
        if covered:
            raise Conflict(
                "already_cooperating",
                "an accepted agreement already covers some of these products for this host",
                product_ids=sorted(covered),
            )

    async def _product_ids(self, tx: AsyncSession, coop_id: int) -> list[int]:
        return list(
            await tx.scalars(
                select(CooperationProduct.product_id).where(
                    CooperationProduct.cooperation_id == coop_id
                )
            )
        )

    async def _dict(self, tx: AsyncSession, coop: Cooperation) -> dict[str, Any]:
        return cooperation_dict(coop, await self._product_ids(tx, coop.id))
