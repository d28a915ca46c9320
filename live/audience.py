"""Who watched, second by second: the audience as the server measured it.

``AudienceRecorder`` keeps three records per session:

* ``watch_intervals``: one row per WHEP viewer (connection), from its transport
  connecting to its leaving, with the reason it left and the person watching
  (``live.guests``); exact to the millisecond, so retention and watch time are computed,
  not sampled;
* ``audience_seconds``: every second, per process, in *people* (``live.guests``: a
  signed-in user, a guest's signed id, or a cookie-less guest's address; 20 viewers
  or sockets of one person count 1): the people *receiving media* (a viewer of theirs
  has its transport connected and was sent a frame within the last 1.5 s), the people
  with a room-channel socket (the host is none), and since the previous sample the
  people who started watching (their first WHEP viewer in this process joined) and
  stopped (their last left), and who joined and left the room channel likewise.
  Processes add up: one person served by two processes counts in each;
* ``session_marks``: the publisher going live and pausing, to annotate drop-offs.

Writes are queued in memory and committed together once a second (one transaction),
in the order they happened. A crash loses at most that last second; intervals it
leaves open are closed when the session ends (reason ``lost``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from live.clock import Clock
from live.db import Database, once_per_dialect, upsert
from live.errors import NotFound, Unauthenticated
from live.guests import user_person
from live.models import AudienceSecond, SessionMark, WatchInterval
from live.roomchannel import RoomChannel
from live.roomhub import Connection
from live.tasks import reraise_if_cancelling, stop_task

logger = logging.getLogger(__name__)

#: writes kept for the next try while commits fail (the database is down); past this,
#: the oldest are dropped. What is left stays consistent: an interval's insert is
#: older than its update, so an update may lose its insert (and changes nothing),
#: never the other way round.
MAX_PENDING_WRITES = 50_000


#: (session id, WHEP resource id, user id) -> whether the guest viewer was claimed
IdentifyViewer = Callable[[int, str, int], Awaitable[bool]]


class WatchIdentify(BaseModel):
    """``{"type": "watch.identify", "resource_id": "...", "ref"?}`` (the WHEP Location's
    last segment)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["watch.identify"]
    resource_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    ref: Annotated[str, StringConstraints(max_length=64)] | Annotated[int, Field(ge=0)] | None = (
        None
    )


@dataclass(frozen=True, slots=True)
class AudienceSources:
    """Where the per-second counts come from (wired in ``media.feature``)."""

    #: sessions this process has media peers for
    media_sessions: Callable[[], Iterable[int]]
    #: people actually receiving media of a session now (``MediaService.receiving_people``)
    media_viewers: Callable[[int], int]
    #: rooms with sockets in this process
    socket_rooms: Callable[[], Iterable[int]]
    #: people with a room-channel socket of a session in this process, the host not
    #: counted (``RoomHub.local_viewers``)
    sockets: Callable[[int], int]


def _build_second_upsert(tx: AsyncSession | AsyncConnection) -> Any:
    """A second's counts per (session, second, process); two samples in one second (a
    session ending between ticks) add up."""
    stmt = upsert(tx, AudienceSecond)
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["session_id", "second", "process"],
        set_={
            "media_viewers": excluded.media_viewers,
            "sockets": excluded.sockets,
            "joins": AudienceSecond.joins + excluded.joins,
            "leaves": AudienceSecond.leaves + excluded.leaves,
            "socket_joins": AudienceSecond.socket_joins + excluded.socket_joins,
            "socket_leaves": AudienceSecond.socket_leaves + excluded.socket_leaves,
        },
    )


#: built once per dialect: building it made ~230 objects of cyclic garbage a second
_second_upsert = once_per_dialect(_build_second_upsert)


class AudienceRecorder:
    """Implements media's ``AudienceListener``; samples every second while started."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        sources: AudienceSources,
        *,
        process: str,
        interval_s: float = 1.0,
    ) -> None:
        self._db = db
        self._clock = clock
        self._sources = sources
        self._process = process
        self._interval = interval_s
        #: writes since the last commit (one second's), or kept from failed commits:
        #: at most ``MAX_PENDING_WRITES`` carried over
        self._pending: list[Callable[[AsyncSession], Any]] = []
        # this second's counts per session, emptied by every sample
        self._joins: Counter[int] = Counter()
        self._leaves: Counter[int] = Counter()
        #: per session, the people watching here: person -> their viewers (joined); a
        #: person goes with their last viewer, a session with its last person
        self._watching: dict[int, Counter[str]] = {}
        #: viewer resource -> (session, person), while it is watching: one per joined
        #: WHEP viewer here, removed when it leaves (media tells every leave, a
        #: session's end included)
        self._viewers: dict[str, tuple[int, str]] = {}
        self._socket_joins: Counter[int] = Counter()
        self._socket_leaves: Counter[int] = Counter()
        self._task: asyncio.Task[None] | None = None
        # One commit at a time, in queue order: a ``sample`` called while the loop's
        # is committing waits, so a leave never commits before its viewer's insert.
        self._commit_lock = asyncio.Lock()

    # -- media's AudienceListener ---------------------------------------------------

    def viewer_joined(
        self, session_id: int, resource_id: str, user_id: int | None, person: str = ""
    ) -> None:
        """A WHEP viewer started watching; a join in the curve if it is its person's
        first viewer here (``person`` "": the viewer is a person of its own)."""
        row = {
            "session_id": session_id,
            "resource_id": resource_id,
            "user_id": user_id,
            "viewer": (person or None) if user_id is None else None,
            "joined_ms": self._clock.now_ms(),
        }
        key = person or f"r:{resource_id}"
        self._viewers[resource_id] = (session_id, key)
        watching = self._watching.setdefault(session_id, Counter())
        watching[key] += 1
        if watching[key] == 1:
            self._joins[session_id] += 1
        self._pending.append(lambda tx: tx.execute(insert(WatchInterval), [row]))

    def viewer_left(self, session_id: int, resource_id: str, reason: str) -> None:
        """A WHEP viewer stopped watching; a leave in the curve if it was its person's
        last viewer here."""
        left = self._clock.now_ms()
        if self._forget(resource_id):
            self._leaves[session_id] += 1
        stmt = (
            update(WatchInterval)
            .where(WatchInterval.resource_id == resource_id, WatchInterval.left_ms.is_(None))
            .values(left_ms=left, reason=reason[:32])
        )
        self._pending.append(lambda tx: tx.execute(stmt))

    def viewer_identified(self, session_id: int, resource_id: str, user_id: int) -> None:
        """The guest viewer signed in: the whole interval is the user's (the person
        changes without a leave or a join in the curve)."""
        if resource_id in self._viewers:
            self._forget(resource_id)
            key = user_person(user_id)
            self._viewers[resource_id] = (session_id, key)
            self._watching.setdefault(session_id, Counter())[key] += 1
        stmt = (
            update(WatchInterval)
            .where(WatchInterval.resource_id == resource_id, WatchInterval.user_id.is_(None))
            .values(user_id=user_id)
        )
        self._pending.append(lambda tx: tx.execute(stmt))

    def attach(self, channel: RoomChannel, identify: IdentifyViewer) -> None:
        """Register ``watch.identify``: a signed-in room socket claims its guest WHEP
        resource (``identify(session_id, resource_id, user_id)``, media's
        ``identify_viewer``) so the watch interval counts for the user."""

        async def command(conn: Connection, message: dict[str, Any]) -> None:
            if conn.user_id is None:
                raise Unauthenticated("sign_in_required", "sign in first")
            if not await identify(conn.room, str(message["resource_id"]), conn.user_id):
                raise NotFound("not_found", "no guest viewer with that resource here")

        channel.register("watch.identify", WatchIdentify, command)

    def _forget(self, resource_id: str) -> bool:
        """Stop counting a viewer; True if it was its person's last one here."""
        known = self._viewers.pop(resource_id, None)
        if known is None:
            return True  # not seen joining (cannot happen): one viewer, one person
        session_id, key = known
        watching = self._watching[session_id]
        watching[key] -= 1
        if watching[key] > 0:
            return False
        del watching[key]
        if not watching:
            del self._watching[session_id]
        return True

    # -- the room hub's viewer listener --------------------------------------------------

    def socket_changed(self, session_id: int, joined: bool) -> None:
        """A person joined the room channel here with their first socket (True) or
        left it with their last (``RoomHub.add_viewer_listener``)."""
        (self._socket_joins if joined else self._socket_leaves)[session_id] += 1

    # -- marks -------------------------------------------------------------------------

    def mark(self, session_id: int, kind: str, detail: str | None = None) -> None:
        row = {
            "session_id": session_id,
            "at_ms": self._clock.now_ms(),
            "kind": kind,
            "detail": detail,
        }
        self._pending.append(lambda tx: tx.execute(insert(SessionMark), [row]))

    # -- sampling ------------------------------------------------------------------------

    async def sample(self) -> None:
        """Record this second's counts and commit everything queued since the last one."""
        async with self._commit_lock:
            await self._sample()

    async def _sample(self) -> None:
        second = self._clock.now_ms() // 1000
        sources = self._sources
        sessions = (
            set(sources.media_sessions())
            | set(sources.socket_rooms())
            | set(self._joins)
            | set(self._leaves)
            | set(self._socket_joins)
            | set(self._socket_leaves)
        )
        rows = [
            {
                "session_id": sid,
                "second": second,
                "process": self._process,
                "media_viewers": sources.media_viewers(sid),
                "sockets": sources.sockets(sid),
                "joins": self._joins[sid],
                "leaves": self._leaves[sid],
                "socket_joins": self._socket_joins[sid],
                "socket_leaves": self._socket_leaves[sid],
            }
            for sid in sorted(sessions)
        ]
        for counter in (self._joins, self._leaves, self._socket_joins, self._socket_leaves):
            counter.clear()
        pending, self._pending = self._pending, []
        if not rows and not pending:
            return
        try:
            await self._commit(pending, rows)
        except BaseException:
            # Keep the intervals for the next try (their order matters: an insert
            # before its update); this second's counts are lost.
            self._pending[:0] = pending
            self._drop_oldest_pending()
            raise

    def _drop_oldest_pending(self) -> None:
        excess = len(self._pending) - MAX_PENDING_WRITES
        if excess > 0:
            del self._pending[:excess]
            logger.warning(
                "AudienceRecorder(%s): %d audience writes dropped (the database is away)",
                self._process,
                excess,
            )

    async def _commit(
        self, pending: list[Callable[[AsyncSession], Any]], rows: list[dict[str, Any]]
    ) -> None:
        async with self._db.transaction() as tx:
            for write in pending:
                await write(tx)
            if rows:
                await tx.execute(_second_upsert(tx), rows)

    async def close_session(self, session_id: int, ended_ms: int) -> None:
        """The session ended: close what a crashed process left open (reason ``lost``).

        Queued behind this process's own joins and leaves, and committed with them in
        one transaction (after any commit in progress)."""
        stmt = (
            update(WatchInterval)
            .where(WatchInterval.session_id == session_id, WatchInterval.left_ms.is_(None))
            .values(left_ms=ended_ms, reason="lost")
        )
        self._pending.append(lambda tx: tx.execute(stmt))
        await self.sample()

    # -- lifetime --------------------------------------------------------------------------

    def start(self) -> None:
        """Sample every ``interval_s`` (0: only when ``sample`` is called, as tests do)."""
        if self._interval <= 0:
            return
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="AudienceRecorder")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None
        await self.sample()  # what the shutdown itself queued (viewers leaving)

    async def _loop(self) -> None:
        while True:
            # On the second boundary, so each row covers one wall-clock second.
            now = self._clock.now_ms()
            await asyncio.sleep(self._interval - (now % 1000) / 1000 % self._interval + 0.005)
            try:
                await self.sample()
            except Exception:
                reraise_if_cancelling()
                logger.exception("AudienceRecorder(%s) sample failed", self._process)


class _Lifecycle(Protocol):
    async def on_publisher_started(self, session_id: int) -> None: ...

    async def on_publisher_stopped(self, session_id: int, reason: str) -> None: ...


class MarkingLifecycle:
    """Media's lifecycle that also marks ``live.started`` / ``live.paused`` for analytics."""

    def __init__(self, inner: _Lifecycle, recorder: AudienceRecorder) -> None:
        self._inner = inner
        self._recorder = recorder

    async def on_publisher_started(self, session_id: int) -> None:
        self._recorder.mark(session_id, "live.started")
        await self._inner.on_publisher_started(session_id)

    async def on_publisher_stopped(self, session_id: int, reason: str) -> None:
        self._recorder.mark(session_id, "live.paused", reason)
        await self._inner.on_publisher_stopped(session_id, reason)
