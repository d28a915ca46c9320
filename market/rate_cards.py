"""``RateCards``: hosts publish what they offer brands, in versions.

* Publishing writes a whole new version (every service of it) and makes it the current
  one; no version is ever changed or deleted, so an order placed on a version (a deal,
  later) keeps its terms. Versions count 1, 2, ... per host.
* Who publishes: the host itself, or the agency the host has named (asked through
  ``AgencyOf`` on every request: clearing the agency takes effect at once), or an
  admin (as everywhere). Others:
  403 ``role_not_allowed`` (not a host or an agency), ``not_your_card`` (another
  host), ``not_your_host`` (an agency the host has not named).
* A refused card writes nothing: ``notes_unavailable`` (a ``note`` service while
  notes do not exist), ``minutes_required`` / ``minutes_not_allowed`` (a live segment
  without minutes, another kind with them), ``stale_version`` (``base_version`` is not
  the current version), ``rate_card_busy`` (another version was published at the same
  moment).
* After a host's first card, its verified figures are computed at once
  (``on_first_card``), so it enters the directory with them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from live.auth import Principal
from live.clock import Clock, iso
from live.db import Database, upsert
from live.errors import Conflict, Forbidden, NotFound, Unprocessable
from live.models import Role, User
from live.paging import Listing, Page
from live.tasks import reraise_if_cancelling
from market.models import RateCard, RateCardHead, RateCardService, ServiceKind
from market.protocol import AgencyOf
from market.schemas import RateCardBody, ServiceBody
from market.views import card_dict

log = logging.getLogger(__name__)

#: what to do once a host has published its first card (refresh its figures)
FirstCard = Callable[[int], Awaitable[None]]


async def _nothing(_host_id: int) -> None:
    return None


class RateCards:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        agencies: AgencyOf,
        *,
        on_first_card: FirstCard = _nothing,
        notes_available: bool = False,
    ) -> None:
        """``notes_available``: whether ``note`` services may be published (the notes
        feature, once it exists, turns it on)."""
        self._db = db
        self._clock = clock
        self._agencies = agencies
        self._on_first_card = on_first_card
        self._notes = notes_available

    async def publish(self, caller: Principal, host_id: int, body: RateCardBody) -> dict[str, Any]:
        """A new current version of ``host_id``'s card made of ``body.services``."""
        await self._check_publisher(caller, host_id)
        for index, service in enumerate(body.services):
            self._check_service(index, service)
        now = self._clock.now_ms()
        try:
            async with self._db.transaction() as tx:
                head = await tx.scalar(
                    select(RateCardHead).where(RateCardHead.host_id == host_id).with_for_update()
                )
                current = head.version if head is not None else 0
                if body.base_version is not None and body.base_version != current:
                    raise Conflict(
                        "stale_version",
                        f"the card is at version {current}, not {body.base_version}",
                        current_version=current,
                    )
                card = RateCard(
                    host_id=host_id,
                    version=current + 1,
                    published_by=caller.user_id,
                    published_ms=now,
                )
                tx.add(card)
                rows = [
                    _service_row(host_id, card.version, i, s) for i, s in enumerate(body.services)
                ]
                tx.add_all(rows)
                await tx.flush()
                stmt = upsert(tx, RateCardHead).values(
                    host_id=host_id, version=card.version, published_ms=now
                )
                await tx.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["host_id"],
                        set_={"version": card.version, "published_ms": now},
                    )
                )
        except IntegrityError as exc:  # another version was published at the same moment
            raise Conflict(
                "rate_card_busy", "another version was published at the same moment; try again"
            ) from exc
        if card.version == 1:
            try:
                await self._on_first_card(host_id)
            except Exception as exc:  # the periodic refresh catches up
                reraise_if_cancelling()
                log.warning("RateCards(%s): figures of host %d: %r", id(self), host_id, exc)
        return card_dict(card, rows, current=True)

    async def has_card(self, host_id: int) -> bool:
        """Whether ``host_id`` has published a card."""
        async with self._db.read() as s:
            return await s.get(RateCardHead, host_id) is not None

    async def current(self, host_id: int) -> dict[str, Any]:
        """The host's current card; 404 ``rate_card_not_found`` before its first."""
        async with self._db.read() as s:
            await _host(s, host_id)
            head = await s.get(RateCardHead, host_id)
            if head is None:
                raise NotFound("rate_card_not_found", f"host {host_id} has published no rate card")
            return await self._card(s, host_id, head.version, head.version)

    async def version(self, host_id: int, version: int) -> dict[str, Any]:
        """One version, current or not; 404 ``rate_card_not_found`` if there is none."""
        async with self._db.read() as s:
            await _host(s, host_id)
            head = await s.get(RateCardHead, host_id)
            return await self._card(s, host_id, version, head.version if head else 0)

    async def versions(self, host_id: int, page: Page) -> Listing[dict[str, Any]]:
        """A page of the host's versions, newest first (the page's cursor: a version)."""
        counts = (
            select(RateCardService.version, func.count().label("services"))
            .where(RateCardService.host_id == host_id)
            .group_by(RateCardService.version)
            .subquery()
        )
        query = (
            select(RateCard, counts.c.services)
            .join(counts, counts.c.version == RateCard.version)
            .where(RateCard.host_id == host_id)
        )
        async with self._db.read() as s:
            await _host(s, host_id)
            rows = (await s.execute(page.select(query, RateCard.version))).all()
        return page.cut(
            rows,
            lambda row: int(row[0].version),
            lambda row: {
                "version": row[0].version,
                "published_at": iso(row[0].published_ms),
                "published_by": row[0].published_by,
                "services": int(row[1]),
            },
        )

    async def _card(
        self, s: AsyncSession, host_id: int, version: int, current: int
    ) -> dict[str, Any]:
        card = await s.get(RateCard, (host_id, version))
        if card is None:
            raise NotFound("rate_card_not_found", f"host {host_id} has no rate card {version}")
        services = await s.scalars(
            select(RateCardService)
            .where(RateCardService.host_id == host_id, RateCardService.version == version)
            .order_by(RateCardService.position)
        )
        return card_dict(card, services, current=version == current)

    async def _check_publisher(self, caller: Principal, host_id: int) -> None:
        if caller.role not in (Role.HOST, Role.AGENCY, Role.ADMIN):
            raise Forbidden("role_not_allowed", "a host (or its agency) publishes its rate card")
        async with self._db.read() as s:
            await _host(s, host_id)
        if caller.role is Role.ADMIN:
            return
        if caller.role is Role.HOST:
            if caller.user_id != host_id:
                raise Forbidden("not_your_card", "a host publishes only its own rate card")
            return
        if await self._agencies.agency_id_of(host_id) != caller.user_id:
            raise Forbidden("not_your_host", "an agency may act only for hosts that named it")

    def _check_service(self, index: int, service: ServiceBody) -> None:
        where = f"services.{index}"
        if service.kind == ServiceKind.NOTE.value and not self._notes:
            raise Unprocessable(
                "notes_unavailable",
                f"{where}: notes do not exist yet; offer live_segment or shelf_slot",
                service=index,
            )
        if service.kind == ServiceKind.LIVE_SEGMENT.value and service.minutes is None:
            raise Unprocessable(
                "minutes_required", f"{where}: a live segment needs its minutes", service=index
            )
        if service.kind != ServiceKind.LIVE_SEGMENT.value and service.minutes is not None:
            raise Unprocessable(
                "minutes_not_allowed", f"{where}: only a live segment has minutes", service=index
            )


def _service_row(host_id: int, version: int, position: int, s: ServiceBody) -> RateCardService:
    return RateCardService(
        host_id=host_id,
        version=version,
        position=position,
        kind=s.kind,
        minutes=s.minutes,
        price_minor=s.price_minor,
        currency=s.currency,
        turnaround_days=s.turnaround_days,
        description=s.description or None,
    )


async def _host(s: AsyncSession, host_id: int) -> User:
    user = await s.get(User, host_id)
    if user is None or user.role != Role.HOST.value:
        raise NotFound("host_not_found", f"no host {host_id}")
    return user
