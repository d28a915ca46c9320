"""The room hub: this process's sockets per room and the fan-out of room events.

One ``RoomHub`` per process. It listens to the room log for every room that has a
local socket and writes each event to those sockets:

* the event's frame is built once and the same bytes are written to every socket's
  transport in a plain loop: no task, coroutine or serialisation per receiver;
* each socket's transport buffer is its send queue, bounded by ``send_limit_bytes``;
  a socket over the bound is closed with ``CloseCode.SLOW_CONSUMER`` (it resumes with
  ``since``) and everyone else keeps receiving;
* events reach a room's sockets in seq order without gaps: a gap (lost pub/sub
  message) is filled from the log's history before anything later is delivered;
* a joining socket buffers live events until its ``hello`` (snapshot or replay) is
  out, then continues from exactly the next seq.

The hub also keeps the room's presence and publishes ``viewers.updated`` at most once
per ``presence_interval_s`` (a viewer is a person, ``Connection.member``: the sockets
one person holds in a room count once, see ``live.guests``), and pings every socket of
the process from one loop (``heartbeat_s``): one prebuilt ping frame written to each
transport, and a socket that completed no frame (a pong included) for a whole interval
after a ping is dropped.
A timer per socket (what aiohttp's ``heartbeat=`` does) costs memory on each of 10,000
sockets.

Longer than ~400 lines because ``RoomHub`` is one object whose parts (join and attach,
the fan-out at the end of each loop iteration, gap filling, presence, the heartbeat)
all read and write the same per-room record (``_Room``: its sockets, last seq, epoch,
backlog, outgoing frames) on the event loop without locks; split, each part would
reach into the others' state, and the ordering guarantees above would no longer be
kept in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from live.events import seq_of, ts_of
from live.holdings import Holdings, MemoryHoldings
from live.metrics import Histogram
from live.outages import report_failure
from live.presence import Presence
from live.protocol import CloseCode
from live.roomlog import RoomLog
from live.tasks import reraise_if_cancelling, stop_task
from live.wsframe import PING_FRAME, text_frame

log = logging.getLogger(__name__)


class Socket(Protocol):
    """What the hub needs of a WebSocket (``live.roomsocket.RoomSocket``; aiohttp's
    ``WebSocketResponse`` fits too)."""

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...

    def is_closing(self) -> bool: ...

    def get_write_buffer_size(self) -> int: ...

    def abort(self) -> None: ...


@dataclass(eq=False, slots=True)
class Connection:
    """One room socket."""

    id: str
    room: int
    socket: Socket
    transport: Transport
    user_id: int | None
    role: str  # "guest" for anonymous watchers
    display_name: str
    counts_as_viewer: bool
    #: live events held from ``join`` until ``attach`` sent the hello and the missed
    #: ones (None after): one history read's worth
    pending: list[bytes] | None = field(default_factory=list)
    skip_until: int = 0
    joined: bool = False
    closing: bool = False
    errors: int = 0
    #: The client completed a frame since the last heartbeat ping (set by the socket).
    heard: bool = True
    #: the client's address (``Guard.client_address``), for the caps per address
    address: str = ""
    #: the caps' keys it is counted under by ``RoomHub.hold`` (until ``leave``)
    held: tuple[str, ...] = ()
    #: who this is, for counting (``live.guests``: ``u:``/``g:``/``a:``); set by the
    #: handler. Sockets with the same person count as one viewer.
    person: str = ""

    @property
    def member(self) -> str:
        """The presence member: ``person``; without one (a ``Connection`` made by hand),
        the signed-in user or else this one socket."""
        if self.person:
            return self.person
        return f"u:{self.user_id}" if self.user_id is not None else f"s:{self.id}"


@dataclass(eq=False)
class _Room:
    id: int
    #: one entry per open socket of the room here, removed when it closes or leaves
    conns: dict[Connection, None] = field(default_factory=dict)
    #: member -> their open sockets here; a member goes with their last socket
    viewers: Counter[str] = field(default_factory=Counter)
    last_seq: int = 0
    epoch: bytes = b""
    #: events held while a gap is filled (one history read long), then delivered
    backlog: list[bytes] | None = None
    #: in order, ending at last_seq: this event-loop tick's events, written at its end
    outgoing: list[bytes] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: why watching the room failed (its joins fail; the next join starts over)
    failed: BaseException | None = None


#: how long stopping waits for sockets to finish closing before cutting them off
STOP_GRACE_S = 2.0


#: fan-out lag buckets, ms: from an event's append (its ``ts``) to its write here
LAG_BUCKETS_MS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


@dataclass
class HubStats:
    """What this process's hub did since it started (``live.metrics`` reads them)."""

    #: events written to a room's sockets (once per event and room, however many sockets)
    events: int = 0
    #: events times the sockets they were written to
    deliveries: int = 0
    slow_consumer_closes: int = 0
    #: per write round: the newest event's age when written (ms; the wall clocks of
    #: the appending and the writing process, which differ by their skew)
    lag_ms: Histogram = field(default_factory=lambda: Histogram(LAG_BUCKETS_MS))


class RoomUnavailable(Exception):
    """The room log could not be reached to follow a room (``RoomHub.join``)."""


def _epoch_of(raw: bytes) -> bytes:
    start = raw.index(b'"epoch":"') + 9
    return raw[start : raw.index(b'"', start)]


class RoomHub:
    def __init__(
        self,
        room_log: RoomLog,
        presence: Presence,
        *,
        send_limit_bytes: int = 256 * 1024,
        presence_interval_s: float = 1.0,
        presence_refresh_s: float = 10.0,
        close_grace_s: float = 5.0,
        heartbeat_s: float = 25.0,
        holdings: Holdings | None = None,
    ) -> None:
        self._log = room_log
        self._holdings: Holdings = holdings or MemoryHoldings()
        self._presence = presence
        self._send_limit = send_limit_bytes
        self._presence_interval = presence_interval_s
        self._presence_refresh = presence_refresh_s
        self._close_grace = close_grace_s
        self._heartbeat = heartbeat_s
        #: one per room with a socket in this process; the room goes with its last one
        self._rooms: dict[int, _Room] = {}
        #: closes and leaves under way (each removes itself when done)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._viewer_listeners: list[Callable[[int, bool], None]] = []
        self._presence_task: asyncio.Task[None] | None = None
        self._heartbeat_task: asyncio.Task[None] | None = None
        self.stats = HubStats()
        room_log.set_listener(self._deliver)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self._presence_task = asyncio.create_task(self._presence_loop(), name="RoomHub.presence")
        if self._heartbeat > 0:
            self._heartbeat_task = asyncio.create_task(
                self._heartbeat_loop(), name="RoomHub.heartbeat"
            )

    async def stop(self) -> None:
        await stop_task(self._presence_task)
        await stop_task(self._heartbeat_task)
        for room in list(self._rooms.values()):
            for conn in list(room.conns):
                self.close(conn, CloseCode.GOING_AWAY, "server shutting down")
        # Closing a socket spawns its leave when the connection is lost: wait for those
        # too, but a shutdown is bounded: what is still closing then is cut off.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(self._close_grace, STOP_GRACE_S)
        while self._tasks and loop.time() < deadline:
            await asyncio.wait(list(self._tasks), timeout=deadline - loop.time())
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=1.0)

    # -- joining and leaving ---------------------------------------------------

    def add_viewer_listener(self, listener: Callable[[int, bool], None]) -> None:
        """``listener(room_id, joined)`` when a viewer (a person, ``Connection.member``;
        the host is none) joins a room in this process with their first socket (True)
        or leaves it with their last (False): analytics. A plain call: it must not block."""
        self._viewer_listeners.append(listener)

    async def join(self, conn: Connection) -> None:
        """Register ``conn``; live events for its room are buffered until ``attach``.

        The first join of a room in this process watches it in the room log; joins
        arriving meanwhile wait for that. If watching fails (Redis down), that join
        and those waiting fail with it, and the room is forgotten: the next join
        tries again from the start (never a room that stays half-registered)."""
        room = self._rooms.get(conn.room)
        if room is None:
            room = self._rooms[conn.room] = _Room(conn.room)
            try:
                await self._log.watch(conn.room)
            except BaseException as exc:
                room.failed = exc
                if self._rooms.get(conn.room) is room:
                    del self._rooms[conn.room]
                raise
            finally:
                room.ready.set()
        else:
            await room.ready.wait()
            if room.failed is not None:
                raise RoomUnavailable(f"room {conn.room} could not be watched") from room.failed
        room.conns[conn] = None
        conn.joined = True
        if conn.counts_as_viewer:
            member = conn.member
            room.viewers[member] += 1
            if room.viewers[member] == 1:
                for listener in self._viewer_listeners:
                    listener(conn.room, True)
                await self._presence.join(conn.room, member)

    async def attach(self, conn: Connection, after: int) -> bool:
        """Send the events after ``after`` that ``conn`` has not seen, then go live.

        Returns False when the history needed is gone (the socket is then closed).
        """
        room = self._rooms[conn.room]
        while conn.pending is not None:
            pending = conn.pending
            first = seq_of(pending[0]) if pending else room.last_seq + 1
            if first > after + 1 and after < room.last_seq:
                position = await self._log.position(conn.room)
                missing = await self._log.read_since(conn.room, after, position.epoch)
                if missing is None:
                    self.close(conn, CloseCode.RESYNC, "history lost")
                    return False
                for raw in missing:
                    seq = seq_of(raw)
                    if after < seq < first:
                        self.send_raw(conn, raw)
                        after = seq
                continue
            # No await from here on: nothing can be appended to ``pending`` meanwhile.
            for raw in pending:
                seq = seq_of(raw)
                if seq > after:
                    self.send_raw(conn, raw)
                    after = seq
            conn.pending = None
        conn.skip_until = after
        return True

    async def leave(self, conn: Connection) -> None:
        if conn.held:
            self.release(conn.room, conn.held, conn.id)
            conn.held = ()
        if not conn.joined:
            return
        conn.joined = False
        room = self._rooms.get(conn.room)
        if room is None:
            return
        room.conns.pop(conn, None)
        if conn.counts_as_viewer:
            member = conn.member
            room.viewers[member] -= 1
            if room.viewers[member] <= 0:
                del room.viewers[member]
                for listener in self._viewer_listeners:
                    listener(conn.room, False)
                await self._presence.leave(conn.room, member)
        if not room.conns and self._rooms.get(conn.room) is room:
            del self._rooms[conn.room]
            await self._log.unwatch(conn.room)
            await self._presence.forget(conn.room)

    # -- sending ---------------------------------------------------------------

    def send(self, conn: Connection, message: dict[str, Any]) -> bool:
        """Send one message to one socket (hello, pong, error), bounded like fan-out."""
        return self.send_raw(conn, orjson.dumps(message))

    def send_raw(self, conn: Connection, raw: bytes) -> bool:
        transport = conn.transport
        if conn.closing or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > self._send_limit:
            self.close(conn, CloseCode.SLOW_CONSUMER, "too slow: resume with since")
            return False
        transport.write(text_frame(raw))
        return True

    def close(self, conn: Connection, code: CloseCode, reason: str) -> None:
        """Stop sending to ``conn`` now and close it in the background."""
        if conn.closing:
            return
        conn.closing = True
        if code == CloseCode.SLOW_CONSUMER:
            self.stats.slow_consumer_closes += 1
        room = self._rooms.get(conn.room)
        if room is not None:
            room.conns.pop(conn, None)
        self.spawn(self._close(conn, code, reason))

    async def _close(self, conn: Connection, code: CloseCode, reason: str) -> None:
        try:
            await asyncio.wait_for(
                conn.socket.close(code=code, message=reason.encode()), self._close_grace
            )
        except (TimeoutError, ConnectionError, RuntimeError):
            conn.transport.abort()
        except asyncio.CancelledError:  # the hub is stopping: no more waiting
            conn.transport.abort()
            raise

    # -- delivery ----------------------------------------------------------------

    def _deliver(self, room_id: int, raw: bytes) -> None:
        room = self._rooms.get(room_id)
        if room is None:
            return
        if room.backlog is not None:
            room.backlog.append(raw)
            return
        seq = seq_of(raw)
        epoch = _epoch_of(raw)
        if epoch != room.epoch:
            if room.epoch:
                self._resync(room, "history lost")
                room.outgoing.clear()
            room.epoch = epoch
            room.last_seq = seq - 1
        elif seq <= room.last_seq:
            return  # already delivered
        elif seq != room.last_seq + 1 and room.last_seq:
            room.backlog = [raw]
            self.spawn(self._fill_gap(room))
            return
        self._fanout(room, seq, raw)

    def _fanout(self, room: _Room, seq: int, raw: bytes) -> None:
        """Queue one in-order event for the room's sockets; written at the end of this tick.

        Events appended in the same event-loop iteration (a burst of orders, chat) leave
        as one write per socket instead of one per event: the system call, not Python,
        is what a send costs at 10,000 sockets.
        """
        room.last_seq = seq
        room.outgoing.append(raw)
        if len(room.outgoing) == 1:
            asyncio.get_running_loop().call_soon(self._flush, room)

    def _flush(self, room: _Room) -> None:
        raws, room.outgoing = room.outgoing, []
        if not raws:
            return
        last = room.last_seq
        first = last - len(raws) + 1
        data = b"".join([text_frame(raw) for raw in raws])
        limit = self._send_limit
        slow: list[Connection] | None = None
        for conn in room.conns:
            pending = conn.pending
            if pending is not None:
                pending.extend(raws)
                continue
            skip = conn.skip_until
            if skip >= first:
                if skip >= last:
                    continue
                chunk = b"".join([text_frame(raw) for raw in raws[skip - first + 1 :]])
            else:
                chunk = data
            transport = conn.transport
            if transport.get_write_buffer_size() > limit:
                if slow is None:
                    slow = []
                slow.append(conn)
            elif not transport.is_closing():
                transport.write(chunk)
        if slow:
            for conn in slow:
                self.close(conn, CloseCode.SLOW_CONSUMER, "too slow: resume with since")
        stats = self.stats
        stats.events += len(raws)
        stats.deliveries += len(raws) * len(room.conns)
        stats.lag_ms.observe(time.time() * 1000 - ts_of(raws[-1]))

    async def _fill_gap(self, room: _Room) -> None:
        """Deliver the events between ``room.last_seq`` and the held backlog, in order."""
        try:
            missing = await self._log.read_since(room.id, room.last_seq, room.epoch.decode())
        except Exception as exc:
            report_failure(log, f"RoomHub({id(self)}) reading history", exc)
            missing = None
        backlog, room.backlog = room.backlog or [], None
        if missing is None:
            self._resync(room, "history lost")
            room.epoch = b""
            room.last_seq = 0
            return
        for raw in [*missing, *backlog]:
            seq = seq_of(raw)
            if seq == room.last_seq + 1:
                self._fanout(room, seq, raw)

    def _resync(self, room: _Room, reason: str) -> None:
        for conn in list(room.conns):
            self.close(conn, CloseCode.RESYNC, reason)

    # -- presence ----------------------------------------------------------------

    def connections(self, room_id: int) -> list[Connection]:
        """This process's open sockets in ``room_id`` (e.g. to close a banned viewer's)."""
        room = self._rooms.get(room_id)
        return list(room.conns) if room else []

    async def hold(self, room_id: int, token: str, caps: Mapping[str, int]) -> bool:
        """Count a socket about to open (``token``: its connection id) under each key of
        ``caps`` (``"ws:a:<address>"``, ``"ws:u:<user id>"``), unless one already counts
        its cap; False then, and nothing is counted. Counted in every process when the
        holdings are Redis's (``live.holdings``). ``leave`` (or ``release``) lets it go."""
        return await self._holdings.take(room_id, caps, "ws:" + token)

    def release(self, room_id: int, keys: Iterable[str], token: str) -> None:
        self._holdings.give_back(room_id, keys, "ws:" + token)

    def room_ids(self) -> list[int]:
        """Rooms with at least one socket in this process."""
        return [room_id for room_id, room in self._rooms.items() if room.conns]

    def socket_count(self) -> int:
        """Every open socket of this process, in every room."""
        return sum(len(room.conns) for room in self._rooms.values())

    def local_sockets(self, room_id: int) -> int:
        """This process's open sockets in ``room_id`` (the host's included)."""
        room = self._rooms.get(room_id)
        return len(room.conns) if room else 0

    def local_viewers(self, room_id: int) -> int:
        """The viewers (people, not sockets; the host is none) holding a socket of
        ``room_id`` in this process."""
        room = self._rooms.get(room_id)
        return len(room.viewers) if room else 0

    async def _presence_loop(self) -> None:
        ticks_per_refresh = max(1, round(self._presence_refresh / self._presence_interval))
        tick = 0
        while True:
            await asyncio.sleep(self._presence_interval)
            tick += 1
            for room_id, room in list(self._rooms.items()):
                try:
                    if tick % ticks_per_refresh == 0:
                        await self._presence.refresh(room_id, list(room.viewers))
                    count = await self._presence.tick(room_id)
                    if count is not None:
                        await self._log.append(room_id, "viewers.updated", {"count": count})
                except Exception as exc:
                    reraise_if_cancelling()
                    report_failure(log, f"RoomHub({id(self)}) presence", exc)

    # -- heartbeat ---------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            self._ping_all()

    def _ping_all(self) -> None:
        """Ping every socket; drop the ones silent since the previous ping.

        A client answers a ping with a pong (browsers do so by themselves), so a socket
        that sent nothing for a whole interval is dead or stuck; ``abort`` ends it now
        and its leave follows from the lost connection.
        """
        for room in list(self._rooms.values()):
            for conn in list(room.conns):
                transport = conn.transport
                if not conn.heard:
                    transport.abort()
                elif not transport.is_closing():
                    conn.heard = False
                    transport.write(PING_FRAME)

    def spawn(self, coro: Awaitable[None]) -> None:
        """Run ``coro`` in the background; ``stop`` waits for it (bounded)."""
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


#: A room-channel command: (connection, validated message) -> None; may raise LiveshelfError.
Command = Callable[[Connection, dict[str, Any]], Awaitable[None]]
