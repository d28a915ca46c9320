"""Live sessions (rooms) and their state machine: scheduled -> live -> ended.

A session may be scheduled for a time (stored as UTC milliseconds) in the future, and
its title and time edited until it starts (``edit``; then ``409 session_started``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from live.auth import Principal
from live.clock import Clock, iso
from live.coalesce import SingleFlight
from live.db import Database
from live.errors import Conflict, Forbidden, InvalidInput, NotFound, Unprocessable
from live.models import LiveSession, Role, SessionStatus, User
from live.outbox import Outbox, OutboxRelay
from live.paging import Listing, Page
from live.roomlog import RoomLog

#: Called after a session changed status: (session id, new status).
StatusListener = Callable[[int, SessionStatus], Awaitable[None]]

_TRANSITIONS: dict[SessionStatus, SessionStatus] = {
    SessionStatus.LIVE: SessionStatus.SCHEDULED,
    SessionStatus.ENDED: SessionStatus.LIVE,
}
_TIME_COLUMN = {SessionStatus.LIVE: "started_ms", SessionStatus.ENDED: "ended_ms"}
_EVENT = {SessionStatus.LIVE: "session.started", SessionStatus.ENDED: "session.ended"}
#: ``edit``'s "leave the date as it is"
KEEP: Any = object()


def session_dict(row: LiveSession, host: User | None = None) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "status": row.status,
        "host": {"id": row.host_id, "display_name": host.display_name if host else None},
        "scheduled_at": iso(row.scheduled_ms),
        "started_at": iso(row.started_ms),
        "ended_at": iso(row.ended_ms),
        "created_at": iso(row.created_ms),
    }


class SessionService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        outbox: Outbox,
        relay: OutboxRelay,
        room_log: RoomLog,
        listeners: Sequence[StatusListener] = (),
    ) -> None:
        self._db = db
        self._clock = clock
        self._outbox = outbox
        self._relay = relay
        self._room_log = room_log
        #: session -> its host: at most 100,000 sessions, then emptied
        self._hosts: dict[int, int] = {}
        self._host_flight: SingleFlight[int] = SingleFlight()
        self._listeners = list(listeners)

    def add_listener(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    async def create(
        self, host: Principal, title: str, scheduled_ms: int | None = None
    ) -> dict[str, Any]:
        host.require(Role.HOST)
        now = self._clock.now_ms()
        self._check_future(scheduled_ms, now)
        row = LiveSession(
            host_id=host.user_id,
            title=title,
            status=SessionStatus.SCHEDULED.value,
            scheduled_ms=scheduled_ms,
            created_ms=now,
        )
        async with self._db.transaction() as tx:
            tx.add(row)
            await tx.flush()
            host_row = await tx.get(User, host.user_id)
        return session_dict(row, host_row)

    async def edit(
        self,
        principal: Principal,
        session_id: int,
        *,
        title: str | None = None,
        scheduled_ms: int | None = KEEP,
    ) -> dict[str, Any]:
        """The host changes a scheduled session's title and/or time (``None`` clears
        the time; ``KEEP`` leaves it). ``422 scheduled_in_past`` for a time not in the
        future; ``409 session_started`` once it went live (or ended): nothing changes."""
        await self.owned(principal, session_id)
        values: dict[str, Any] = {}
        if title is not None:
            values["title"] = title
        if scheduled_ms is not KEEP:
            self._check_future(scheduled_ms, self._clock.now_ms())
            values["scheduled_ms"] = scheduled_ms
        if not values:
            raise InvalidInput("nothing_to_change", "give a title or a scheduled_at")
        async with self._db.transaction() as tx:
            # Compare-and-set: an edit racing the start loses cleanly.
            result = await tx.execute(
                update(LiveSession)
                .where(
                    LiveSession.id == session_id,
                    LiveSession.status == SessionStatus.SCHEDULED.value,
                )
                .values(values)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                current = await _status_of(tx, session_id)
                raise Conflict(
                    "session_started",
                    f"a {current} session can no longer be edited",
                    status=current,
                )
        return await self.get(session_id)

    @staticmethod
    def _check_future(scheduled_ms: int | None, now_ms: int) -> None:
        if scheduled_ms is not None and scheduled_ms <= now_ms:
            raise Unprocessable(
                "scheduled_in_past",
                "scheduled_at must be in the future",
                scheduled_at=iso(scheduled_ms),
                now=iso(now_ms),
            )

    async def host_of(self, session_id: int) -> int:
        """The session's host id (cached: it never changes); 404 for an unknown session."""
        host_id = self._hosts.get(session_id)
        if host_id is not None:
            return host_id

        async def load() -> int:
            row = await self.get_row(session_id)
            if len(self._hosts) > 100_000:
                self._hosts.clear()
            self._hosts[session_id] = row.host_id
            return row.host_id

        return await self._host_flight.do(session_id, load)

    async def get_row(self, session_id: int) -> LiveSession:
        async with self._db.read() as s:
            row = await s.get(LiveSession, session_id)
        if row is None:
            raise NotFound("session_not_found", f"no live session {session_id}")
        return row

    async def get(self, session_id: int) -> dict[str, Any]:
        async with self._db.read() as s:
            result = (
                await s.execute(
                    select(LiveSession, User)
                    .join(User, User.id == LiveSession.host_id)
                    .where(LiveSession.id == session_id)
                )
            ).first()
        if result is None:
            raise NotFound("session_not_found", f"no live session {session_id}")
        return session_dict(result[0], result[1])

    async def list(
        self,
        page: Page,
        *,
        status: SessionStatus | None = None,
        host_id: int | None = None,
    ) -> Listing[dict[str, Any]]:
        """A page of the sessions (in ``status``, of ``host_id``), newest first."""
        query = select(LiveSession, User).join(User, User.id == LiveSession.host_id)
        if status is not None:
            query = query.where(LiveSession.status == status.value)
        if host_id is not None:
            query = query.where(LiveSession.host_id == host_id)
        async with self._db.read() as s:
            rows = (await s.execute(page.select(query, LiveSession.id))).all()
        return page.cut(rows, lambda row: row[0].id, lambda row: session_dict(row[0], row[1]))

    async def announce(self, principal: Principal, session_id: int, text: str) -> dict[str, Any]:
        """The host pins a banner message on every viewer's screen (``announcement``)."""
        row = await self.owned(principal, session_id)
        if row.status == SessionStatus.ENDED.value:
            raise Conflict("session_ended", "the session has ended")
        event = await self._room_log.append(session_id, "announcement", {"text": text})
        return {"seq": event.seq, "text": text}

    async def owned(self, principal: Principal, session_id: int) -> LiveSession:
        """The session, if ``principal`` is its host (or an admin); else 403/404."""
        principal.require(Role.HOST)
        row = await self.get_row(session_id)
        if row.host_id != principal.user_id and principal.role is not Role.ADMIN:
            raise Forbidden("not_your_session", "only the session's host may do this")
        return row

    async def start(self, principal: Principal, session_id: int) -> dict[str, Any]:
        return await self._move(principal, session_id, SessionStatus.LIVE)

    async def end(self, principal: Principal, session_id: int) -> dict[str, Any]:
        return await self._move(principal, session_id, SessionStatus.ENDED)

    async def _move(
        self, principal: Principal, session_id: int, target: SessionStatus
    ) -> dict[str, Any]:
        await self.owned(principal, session_id)
        source = _TRANSITIONS[target]
        now = self._clock.now_ms()
        async with self._db.transaction() as tx:
            # Compare-and-set: of two concurrent calls exactly one moves the session.
            result = await tx.execute(
                update(LiveSession)
                .where(LiveSession.id == session_id, LiveSession.status == source.value)
                .values({"status": target.value, _TIME_COLUMN[target]: now})
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                current = await _status_of(tx, session_id)
                raise Conflict(
                    "illegal_transition",
                    f"a {current} session cannot become {target.value}",
                    status=current,
                )
            row = self._outbox.add(
                tx, session_id, _EVENT[target], {"status": target.value, "at": now}
            )
        await self._relay.publish([row])
        for listener in self._listeners:
            await listener(session_id, target)
        return await self.get(session_id)


async def _status_of(tx: AsyncSession, session_id: int) -> str | None:
    """The session's status now (after a compare-and-set on it found another one)."""
    status: str | None = await tx.scalar(
        select(LiveSession.status).where(LiveSession.id == session_id)
    )
    return status
