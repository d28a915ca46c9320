"""Pins: the one product the host is "now explaining", shown as a card to every viewer.

* ``pin`` needs a live session and a product on its shelf. It closes the open pin
  window (``card.hidden``) and opens a new one (``card.shown`` with the card), in one
  transaction; pinning the product that is already pinned changes nothing.
* ``unpin`` closes the open window (``card.hidden``); with nothing pinned it is a
  no-op.
* Every window is stored (start, end, product) with the recording's media time at
  both ends when ``media_time(session_id)`` knows one, so a replay has shoppable
  chapters and stats can attribute sales to pins (``pin_at``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from live.auth import Principal
from live.clock import Clock
from live.db import Database
from live.errors import Conflict
from live.models import SessionStatus
from live.paging import Listing, Page
from live.roomlog import RoomLog
from live.sessions import SessionService
from shelf.models import Pin, ShelfItem
from shelf.state import SessionLocks, card_for, open_pin
from shelf.views import pin_dict

#: The media time (seconds into the recording) of a session now, or None if unknown.
MediaTime = Callable[[int], Awaitable[float | None]]


async def no_media_time(_session_id: int) -> float | None:
    return None


@dataclass(frozen=True, slots=True)
class PinWindow:
    pin_id: int
    session_id: int
    product_id: int
    start_ms: int
    end_ms: int | None
    media_start_s: float | None
    media_end_s: float | None


def _window(pin: Pin) -> PinWindow:
    return PinWindow(
        pin.id,
        pin.session_id,
        pin.product_id,
        pin.start_ms,
        pin.end_ms,
        pin.media_start_s,
        pin.media_end_s,
    )


class PinService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        sessions: SessionService,
        room_log: RoomLog,
        locks: SessionLocks,
        media_time: MediaTime = no_media_time,
    ) -> None:
        self._db = db
        self._clock = clock
        self._sessions = sessions
        self._log = room_log
        self._locks = locks
        self._media_time = media_time

    async def pin(self, host: Principal, session_id: int, product_id: int) -> dict[str, Any]:
        """Pin ``product_id``; returns the card."""
        session = await self._sessions.owned(host, session_id)
        if session.status != SessionStatus.LIVE.value:
            raise Conflict("session_not_live", "pin products while the session is live")
        async with self._locks(session_id):
            media_s = await self._media_time(session_id)
            now = self._clock.now_ms()
            async with self._db.transaction() as tx:
                on_shelf = await tx.get(ShelfItem, (session_id, product_id))
                if on_shelf is None:
                    raise Conflict("not_on_shelf", "put the product on the shelf first")
                current = await open_pin(tx, session_id)
                if current is not None and current.product_id == product_id:
                    return await card_for(tx, current, now)
                closed = await self.close_in(tx, session_id, now, media_s)
                pin = Pin(
                    session_id=session_id,
                    product_id=product_id,
                    start_ms=now,
                    media_start_s=media_s,
                )
                tx.add(pin)
                await tx.flush()
                card = await card_for(tx, pin, now)
            if closed is not None:
                await self._log.append(session_id, "card.hidden", hidden_data(closed))
            await self._log.append(session_id, "card.shown", card)
        return card

    async def unpin(self, host: Principal, session_id: int) -> dict[str, Any]:
        await self._sessions.owned(host, session_id)
        async with self._locks(session_id):
            media_s = await self._media_time(session_id)
            async with self._db.transaction() as tx:
                closed = await self.close_in(tx, session_id, self._clock.now_ms(), media_s)
            if closed is not None:
                await self._log.append(session_id, "card.hidden", hidden_data(closed))
        return {"pinned": None, "unpinned": None if closed is None else closed.product_id}

    async def session_ended(self, session_id: int) -> None:
        """Close the open pin window of a session that just ended (``card.hidden``)."""
        async with self._locks(session_id):
            media_s = await self._media_time(session_id)
            async with self._db.transaction() as tx:
                closed = await self.close_in(tx, session_id, self._clock.now_ms(), media_s)
            if closed is not None:
                await self._log.append(session_id, "card.hidden", hidden_data(closed))

    async def media_time(self, session_id: int) -> float | None:
        """The session's media time now (for ``close_in``), asked before a transaction:
        with several workers it is a request to the media home."""
        return await self._media_time(session_id)

    async def close_in(
        self,
        tx: AsyncSession,
        session_id: int,
        now_ms: int,
        media_s: float | None,
        *,
        product_id: int | None = None,
    ) -> Pin | None:
        """Close the open pin window (only if it shows ``product_id``, when given) at
        ``now_ms``, ``media_s`` into the recording.

        Runs in the caller's transaction; the caller appends ``card.hidden`` after
        commit (``hidden_data``) while holding the session's lock.
        """
        pin = await open_pin(tx, session_id)
        if pin is None or (product_id is not None and pin.product_id != product_id):
            return None
        pin.end_ms = now_ms
        pin.media_end_s = media_s
        await tx.flush()
        return pin

    async def windows(self, session_id: int) -> list[PinWindow]:
        """Every pin window of the session, oldest first (the open one has no end)."""
        async with self._db.read() as s:
            pins = await s.scalars(
                select(Pin).where(Pin.session_id == session_id).order_by(Pin.start_ms, Pin.id)
            )
            return [_window(p) for p in pins]

    async def pin_at(self, session_id: int, at_ms: int) -> PinWindow | None:
        """The window that was open at ``at_ms`` (for "GMV per pin")."""
        async with self._db.read() as s:
            pin = await s.scalar(
                select(Pin)
                .where(
                    Pin.session_id == session_id,
                    Pin.start_ms <= at_ms,
                    (Pin.end_ms.is_(None)) | (Pin.end_ms > at_ms),
                )
                .order_by(Pin.start_ms.desc(), Pin.id.desc())
            )
        return None if pin is None else _window(pin)

    async def list_dicts(self, session_id: int, page: Page) -> Listing[dict[str, Any]]:
        """A page of the windows as API JSON, oldest first (``page`` is oldest first:
        pins are numbered as they open); 404 for an unknown session."""
        await self._sessions.get_row(session_id)
        query = select(Pin).where(Pin.session_id == session_id)
        async with self._db.read() as s:
            pins = list(await s.scalars(page.select(query, Pin.id)))
        return page.cut(pins, lambda p: p.id, pin_dict)


def hidden_data(pin: Pin) -> dict[str, Any]:
    """``card.hidden`` data."""
    return {"pin_id": pin.id, "product_id": pin.product_id}
