"""The live shelf of a session: add, remove, reorder; the room state it shows.

Rules: only the session's host (or an admin) edits its shelf, while the session is
scheduled or live; a product goes on a shelf only under an accepted cooperation
between its brand and that host, and never when archived; at most ``MAX_SHELF``
products. Every change is one ``shelf.updated`` event ``{"version", "shelf": [...]}``
carrying the whole new shelf in order (removing the pinned product also sends
``card.hidden`` first). The ``hello`` snapshot and ``GET .../shelf`` come from
``shelf.state.read_state``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, exists, func, select, update

from live.auth import Principal
from live.clock import Clock
from live.db import Database
from live.errors import Conflict, Forbidden, NotFound
from live.models import LiveSession, Role, SessionStatus, User
from live.paging import Listing, Page
from live.roomlog import RoomLog
from live.sessions import SessionService, session_dict
from shelf.cooperation import AgreedRate, CooperationService, agreed_rate
from shelf.models import Cooperation, Product, ShelfItem
from shelf.pins import PinService, hidden_data
from shelf.schemas import MAX_SHELF
from shelf.state import SessionLocks, read_state, sessions_showing, shelf_event


@dataclass(frozen=True, slots=True)
class ShelfTerms:
    """How a product on a session's shelf is sold there (what orders freeze)."""

    session_id: int
    host_id: int
    product_id: int
    rate: AgreedRate


class ShelfService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        sessions: SessionService,
        cooperations: CooperationService,
        pins: PinService,
        room_log: RoomLog,
        locks: SessionLocks,
    ) -> None:
        self._db = db
        self._clock = clock
        self._sessions = sessions
        self._cooperations = cooperations
        self._pins = pins
        self._log = room_log
        self._locks = locks

    async def add(self, host: Principal, session_id: int, product_id: int) -> dict[str, Any]:
        session = await self._editable(host, session_id)
        async with self._locks(session_id):
            async with self._db.transaction() as tx:
                product = await tx.get(Product, product_id)
                if product is None:
                    raise NotFound("product_not_found", f"no product {product_id}")
                if product.archived_ms is not None:
                    raise Conflict("product_archived", "an archived product cannot be shelved")
                coop = await self._cooperations.accepted_for(tx, session.host_id, product_id)
                if coop is None:
                    raise Conflict(
                        "no_cooperation",
                        "the product needs an accepted cooperation with this host",
                    )
                if await tx.get(ShelfItem, (session_id, product_id)) is not None:
                    raise Conflict("already_on_shelf", "the product is already on the shelf")
                count, last = (
                    await tx.execute(
                        select(func.count(), func.max(ShelfItem.position)).where(
                            ShelfItem.session_id == session_id
                        )
                    )
                ).one()
                if count >= MAX_SHELF:
                    raise Conflict("shelf_full", f"a shelf holds at most {MAX_SHELF} products")
                tx.add(
                    ShelfItem(
                        session_id=session_id,
                        product_id=product_id,
                        cooperation_id=coop.id,
                        position=(last or 0) + 1,
                        added_ms=self._clock.now_ms(),
                    )
                )
                await tx.flush()
                data = await shelf_event(tx, session_id, self._clock.now_ms())
            await self._log.append(session_id, "shelf.updated", data)
        return data

    async def remove(self, host: Principal, session_id: int, product_id: int) -> dict[str, Any]:
        await self._editable(host, session_id)
        async with self._locks(session_id):
            media_s = await self._pins.media_time(session_id)
            async with self._db.transaction() as tx:
                gone = await tx.execute(
                    delete(ShelfItem).where(
                        ShelfItem.session_id == session_id, ShelfItem.product_id == product_id
                    )
                )
                if gone.rowcount != 1:  # type: ignore[attr-defined]
                    raise NotFound("not_on_shelf", "the product is not on this shelf")
                closed = await self._pins.close_in(
                    tx, session_id, self._clock.now_ms(), media_s, product_id=product_id
                )
                data = await shelf_event(tx, session_id, self._clock.now_ms())
            if closed is not None:
                await self._log.append(session_id, "card.hidden", hidden_data(closed))
            await self._log.append(session_id, "shelf.updated", data)
        return data

    async def reorder(
        self, host: Principal, session_id: int, product_ids: list[int]
    ) -> dict[str, Any]:
        """Put the shelf in the order of ``product_ids``: exactly the products on it."""
        await self._editable(host, session_id)
        async with self._locks(session_id):
            async with self._db.transaction() as tx:
                current = set(
                    await tx.scalars(
                        select(ShelfItem.product_id).where(ShelfItem.session_id == session_id)
                    )
                )
                if len(product_ids) != len(current) or set(product_ids) != current:
                    raise Conflict(
                        "not_a_permutation",
                        "list every product on the shelf exactly once",
                        on_shelf=sorted(current),
                    )
                for position, pid in enumerate(product_ids, start=1):
                    await tx.execute(
                        update(ShelfItem)
                        .where(ShelfItem.session_id == session_id, ShelfItem.product_id == pid)
                        .values(position=position)
                    )
                data = await shelf_event(tx, session_id, self._clock.now_ms())
            await self._log.append(session_id, "shelf.updated", data)
        return data

    async def state(self, session_id: int) -> dict[str, Any]:
        """The room's shelf state (the snapshot part); 404 for an unknown session."""
        await self._sessions.get_row(session_id)
        return await self.snapshot(session_id)

    async def snapshot(self, session_id: int) -> dict[str, Any]:
        async with self._db.read() as s:
            return await read_state(s, session_id, self._clock.now_ms())

    async def details(self, session_id: int) -> dict[str, Any]:
        """What ``GET /api/sessions/{id}`` adds: the ordered shelf."""
        return {"shelf": (await self.snapshot(session_id))["shelf"]}

    async def terms(self, session_id: int, product_id: int) -> ShelfTerms:
        """The agreement a shelved product sells under in this session (404
        ``not_on_shelf``). This is the rate orders freeze."""
        async with self._db.read() as s:
            row = (
                await s.execute(
                    select(ShelfItem, Cooperation)
                    .join(Cooperation, Cooperation.id == ShelfItem.cooperation_id)
                    .where(ShelfItem.session_id == session_id, ShelfItem.product_id == product_id)
                )
            ).first()
        if row is None:
            raise NotFound("not_on_shelf", "the product is not on this session's shelf")
        coop = row[1]
        return ShelfTerms(session_id, coop.host_id, product_id, agreed_rate(coop))

    async def sessions_for_brand(
        self,
        caller: Principal,
        brand_id: int,
        statuses: Collection[SessionStatus],
        page: Page,
    ) -> Listing[dict[str, Any]]:
        """A page of the sessions in ``statuses`` whose shelf carries at least one of
        the brand's products, newest first (``page`` is newest first): each session as
        ``GET /api/sessions`` lists it plus ``product_ids``, the brand's products on its
        shelf in shelf order. Only that brand (or an admin) may ask."""
        caller.require(Role.BRAND)
        if caller.role is not Role.ADMIN and caller.user_id != brand_id:
            raise Forbidden("not_your_brand", "a brand sees only where its own products are")
        shows_brand = (
            exists()
            .where(ShelfItem.session_id == LiveSession.id)
            .where(Product.id == ShelfItem.product_id, Product.brand_id == brand_id)
        )
        query = (
            select(LiveSession, User)
            .join(User, User.id == LiveSession.host_id)
            .where(LiveSession.status.in_(sorted(status.value for status in statuses)), shows_brand)
        )
        async with self._db.read() as s:
            rows = (await s.execute(page.select(query, LiveSession.id))).all()
            listing = page.cut(rows, lambda row: row[0].id, lambda row: (row[0], row[1]))
            ids = [session.id for session, _ in listing.items]
            shelved = (
                await s.execute(
                    select(ShelfItem.session_id, ShelfItem.product_id)
                    .join(Product, Product.id == ShelfItem.product_id)
                    .where(ShelfItem.session_id.in_(ids), Product.brand_id == brand_id)
                    .order_by(ShelfItem.session_id, ShelfItem.position)
                )
            ).all()
        products: dict[int, list[int]] = {}
        for session_id, product_id in shelved:
            products.setdefault(session_id, []).append(product_id)
        items = [
            {**session_dict(row, host), "product_ids": products.get(row.id, [])}
            for row, host in listing.items
        ]
        return Listing(items, listing.next_cursor)

    async def product_changed(self, product_id: int) -> None:
        """Re-announce every open shelf that shows ``product_id`` (its title, image or
        price changed)."""
        async with self._db.read() as s:
            sessions = await sessions_showing(s, product_id)
        for session_id in sessions:
            async with self._locks(session_id):
                async with self._db.transaction() as tx:
                    data = await shelf_event(tx, session_id, self._clock.now_ms())
                await self._log.append(session_id, "shelf.updated", data)

    async def _editable(self, host: Principal, session_id: int) -> LiveSession:
        session = await self._sessions.owned(host, session_id)
        if session.status == SessionStatus.ENDED.value:
            raise Conflict("session_ended", "the session has ended")
        return session
