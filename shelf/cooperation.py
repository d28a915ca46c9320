"""Cooperation agreements between brands and hosts: ``CooperationService``.

State machine of a cooperation::

    proposed --accept--> accepted --end--> ended
      |  ^ |--decline--> declined
      |  | '--withdraw--> withdrawn
      '--' counter (new terms; the other party's turn; round + 1)

* A brand proposes some of its own, non-archived products to a host at a commission
  rate (basis points) and an optional flat fee.
* The host, or the agency the host has named (``shelf.host_links``), accepts, declines
  or counters; a counter-offer passes the turn to the other side, back and forth
  (``shelf.cooperation_rounds``: ``turn``, ``round``, ``rounds``).
* The brand may withdraw a proposal while it is pending, whoever's turn it is.
* The brand, the host or the host's agency may end an accepted agreement: it stops
  the products from being shelved from then on; shelves that already carry them keep
  the agreement they were shelved under (orders take the rate from there).
* At most one accepted agreement covers a (host, product) pair, so the agreed rate is
  unambiguous: ``rate_for(host_id, product_id)``.

Transitions are compare-and-set updates: of two concurrent decisions one wins, the
other gets 409 ``illegal_transition`` (or ``stale_round`` / ``not_your_turn`` when the
other was a counter-offer). A refusal changes nothing. Each step is kept and told to
the parties after it commits (``shelf.cooperation_rounds``).

The service is three layers, one object: ``CooperationService`` (here: proposals,
decisions, reading) extends ``CooperationRounds`` (``shelf.cooperation_rounds``: turns,
history, news), which extends ``HostLinks`` (``shelf.host_links``: the host -> agency
link, finding a host). ``CooperationNews`` and ``round_dict`` are importable from here
too, as before the split (``__all__``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from live.auth import Principal
from live.errors import Conflict, Forbidden, NotFound
from live.models import Role, User
from live.paging import Listing, Page
from shelf.cooperation_rounds import CooperationNews, CooperationRounds, round_dict
from shelf.models import (
    Cooperation,
    CooperationParty,
    CooperationProduct,
    CooperationStatus,
    HostAgency,
    Product,
)
from shelf.schemas import CounterBody, ProposeBody
from shelf.views import cooperation_dict

__all__ = ["AgreedRate", "CooperationNews", "CooperationService", "agreed_rate", "round_dict"]

_PROPOSED = CooperationStatus.PROPOSED.value
_ACCEPTED = CooperationStatus.ACCEPTED.value
_BRAND = CooperationParty.BRAND
_HOST = CooperationParty.HOST


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


class CooperationService(CooperationRounds):
    """Proposals, decisions and reading (the module docstring); made with ``(db, clock,
    news=None)`` (``CooperationRounds``): without ``news`` the parties hear nothing."""

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
                turn=_HOST.value,
                round=1,
            )
            tx.add(coop)
            await tx.flush()
            tx.add_all(
                CooperationProduct(cooperation_id=coop.id, product_id=pid)
                for pid in body.product_ids
            )
            step = self._record(tx, coop, 1, "proposed", _BRAND, brand, body.note)
            tell = await self._parties(tx, coop)
        result = cooperation_dict(coop, list(body.product_ids))
        await self._tell(tell, result, step)
        return result

    async def accept(
        self, caller: Principal, coop_id: int, round_: int | None = None
    ) -> dict[str, Any]:
        """The party whose turn it is takes the current terms."""
        return await self._decide(caller, coop_id, CooperationStatus.ACCEPTED, round_)

    async def decline(
        self, caller: Principal, coop_id: int, round_: int | None = None
    ) -> dict[str, Any]:
        """The party whose turn it is says no: the negotiation is over."""
        return await self._decide(caller, coop_id, CooperationStatus.DECLINED, round_)

    async def counter(self, caller: Principal, coop_id: int, body: CounterBody) -> dict[str, Any]:
        """The party whose turn it is answers with other terms: they replace the
        current ones, ``round`` grows by one and it is the other party's turn."""
        caller.require(Role.BRAND, Role.HOST, Role.AGENCY)
        async with self._db.transaction() as tx:
            coop = await self._get(tx, coop_id)
            party = await self._party(tx, caller, coop)
            self._check_turn(coop, party, body.round)
            terms = self._countered_terms(coop, body)
            other = _HOST if party is _BRAND else _BRAND
            result = await tx.execute(
                update(Cooperation)
                .where(*self._unchanged(coop))
                .values(**terms, turn=other.value, round=coop.round + 1)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                await self._raced(tx, coop, CooperationStatus.PROPOSED)
            await tx.refresh(coop)
            number = await self._next_step(tx, coop.id)
            step = self._record(tx, coop, number, "countered", party, caller, body.message)
            tell = await self._parties(tx, coop)
            answer = await self._dict(tx, coop)
        await self._tell(tell, answer, step)
        return answer

    async def withdraw(
        self, brand: Principal, coop_id: int, round_: int | None = None
    ) -> dict[str, Any]:
        brand.require(Role.BRAND)
        async with self._db.transaction() as tx:
            coop = await self._get(tx, coop_id)
            if coop.brand_id != brand.user_id and brand.role is not Role.ADMIN:
                raise Forbidden("not_your_cooperation", "only the proposing brand may withdraw")
            if coop.status == _PROPOSED and round_ is not None and round_ != coop.round:
                raise self._stale(coop)
            await self._move(tx, coop, _PROPOSED, CooperationStatus.WITHDRAWN, brand)
            step = self._record(
                tx, coop, await self._next_step(tx, coop.id), "withdrawn", _BRAND, brand, None
            )
            tell = await self._parties(tx, coop)
            answer = await self._dict(tx, coop)
        await self._tell(tell, answer, step)
        return answer

    async def end(self, caller: Principal, coop_id: int) -> dict[str, Any]:
        """End an accepted agreement: its products can no longer be newly shelved."""
        caller.require(Role.BRAND, Role.HOST, Role.AGENCY)
        async with self._db.transaction() as tx:
            coop = await self._get(tx, coop_id)
            if caller.role is Role.BRAND:
                if coop.brand_id != caller.user_id:
                    raise Forbidden("not_your_cooperation", "this agreement is not yours")
                party = _BRAND
            else:
                await self._check_host_side(tx, caller, coop)
                party = _HOST
            await self._move(tx, coop, _ACCEPTED, CooperationStatus.ENDED, caller)
            step = self._record(
                tx, coop, await self._next_step(tx, coop.id), "ended", party, caller, None
            )
            tell = await self._parties(tx, coop)
            answer = await self._dict(tx, coop)
        await self._tell(tell, answer, step)
        return answer

    async def _decide(
        self,
        caller: Principal,
        coop_id: int,
        target: CooperationStatus,
        round_: int | None,
    ) -> dict[str, Any]:
        caller.require(Role.BRAND, Role.HOST, Role.AGENCY)
        async with self._db.transaction() as tx:
            coop = await self._get(tx, coop_id)
            party = await self._party(tx, caller, coop)
            self._check_turn(coop, party, round_)
            if target is CooperationStatus.ACCEPTED:
                ids = await self._product_ids(tx, coop.id)
                await self._lock_products(tx, ids)
                await self._refuse_covered(tx, coop.host_id, ids)
            await self._move(tx, coop, _PROPOSED, target, caller, exactly=True)
            step = self._record(
                tx, coop, await self._next_step(tx, coop.id), target.value, party, caller, None
            )
            tell = await self._parties(tx, coop)
            answer = await self._dict(tx, coop)
        await self._tell(tell, answer, step)
        return answer

    # -- reading -------------------------------------------------------------------

    async def get(self, caller: Principal, coop_id: int) -> dict[str, Any]:
        async with self._db.read() as tx:
            coop = await self._get(tx, coop_id)
            await self._check_reader(tx, caller, coop)
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

    async def _move(
        self,
        tx: AsyncSession,
        coop: Cooperation,
        source: str,
        target: CooperationStatus,
        caller: Principal,
        *,
        exactly: bool = False,
    ) -> None:
        """Move ``coop`` from ``source`` to ``target`` (compare-and-set); ``exactly``:
        only if its turn and round are still what ``coop`` holds too (a decision on
        the terms the caller saw)."""
        now = self._clock.now_ms()
        values: dict[str, Any] = {"status": target.value}
        if target is CooperationStatus.ENDED:
            values["ended_ms"] = now
        else:
            values.update(decided_ms=now, decided_by=caller.user_id)
        where = (
            self._unchanged(coop)
            if exactly
            else (Cooperation.id == coop.id, Cooperation.status == source)
        )
        result = await tx.execute(update(Cooperation).where(*where).values(values))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            if exactly:
                await self._raced(tx, coop, CooperationStatus(source))
            await tx.refresh(coop)
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
