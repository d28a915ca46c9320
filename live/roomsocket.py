"""A room socket after the handshake: RFC 6455 spoken directly on the asyncio transport.

``live.roomupgrade`` answers the upgrade and then hands the transport to a
``RoomSocket`` (``transport.set_protocol``), so aiohttp's per-request objects (request
handler, ``WebSocketResponse`` with its reader and writer, the handler's coroutine
frames and heartbeat timers) are freed while the socket stays open. What remains per socket is
the transport, this object, its ``FrameReader`` and the hub's ``Connection``: that is
what brings an idle socket from ~16.5 KB to a few KB (bench/RESULTS.md).

Server-to-client frames are written by the hub (``live.roomhub``), which also pings.
This class reads the client: text messages go to ``RoomChannel.receive`` one at a
time in order (a task exists only while messages are waiting; those received before
the client's close frame are handled even if it closes meanwhile), binary messages get an
``error`` event, pings get pongs, a close gets the closing handshake, and a protocol
violation fails the socket with the RFC's close code.

Life cycle: *opening* (the handler runs ``RoomChannel.open``; nothing is read, so no
message can overtake the ``hello``) -> ``serve`` -> *open* -> *closing* (either side
sent a close frame) -> *closed* (``connection_lost``; the channel is told once).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import sys
from dataclasses import dataclass
from typing import Any, Protocol

from live.errors import InvalidInput, LiveshelfError
from live.outages import dependency_of
from live.protocol import MAX_FRAME_BYTES, CloseCode
from live.roomhub import Connection, RoomHub
from live.wsframe import (
    CLOSE_INVALID_TEXT,
    CLOSE_NORMAL,
    FrameReader,
    Opcode,
    ProtocolError,
    close_frame,
    control_frame,
    parse_close,
)

log = logging.getLogger(__name__)

#: Client messages waiting for ``RoomChannel.receive`` before the socket stops reading
#: (the kernel's receive buffer and TCP flow control then hold the client back).
MAX_QUEUED_MESSAGES = 32


class Inbound(Protocol):
    """Where a room socket hands what its client sends (``RoomChannel`` fits)."""

    async def receive(self, conn: Connection, text: str) -> None: ...

    def refuse(self, conn: Connection, exc: LiveshelfError, ref: Any = None) -> None: ...

    async def close(self, conn: Connection) -> None: ...


@dataclass(frozen=True, slots=True)
class SocketDeps:
    """What every room socket of the process shares; one pointer per socket."""

    hub: RoomHub
    channel: Inbound
    max_message_bytes: int = MAX_FRAME_BYTES


class _State(enum.IntEnum):
    OPENING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class RoomSocket(asyncio.Protocol):
    """One room socket's transport protocol after the upgrade (see the module doc)."""

    __slots__ = (
        "_close_waiter",
        "_deps",
        "_draining",
        "_early",
        "_inbox",
        "_paused",
        "_reader",
        "_served",
        "_state",
        "conn",
        "transport",
    )

    def __init__(self, transport: asyncio.Transport, deps: SocketDeps, early: bytes) -> None:
        """``early``: bytes the client sent after its handshake and before this took over."""
        self.transport = transport
        self.conn: Connection | None = None  # set by the handler right after (``bind``)
        self._deps = deps
        self._reader = FrameReader(deps.max_message_bytes)
        self._state = _State.OPENING
        self._early = early
        self._inbox: list[str | bytes] | None = None  # allocated only while messages wait
        self._draining = False
        self._paused = True
        self._served = False
        self._close_waiter: asyncio.Future[None] | None = None
        # Nothing is read while the room channel opens the socket: the client's first
        # messages must not overtake its hello.
        transport.pause_reading()

    def bind(self, conn: Connection) -> None:
        self.conn = conn

    def _connection(self) -> Connection:
        assert self.conn is not None, "RoomSocket used before bind()"
        return self.conn

    # -- the handler's hand-over ---------------------------------------------------

    def serve(self) -> None:
        """The handler is done (``RoomChannel.open`` returned): read the client from now
        on, and tell the channel when the connection ends. Idempotent."""
        if self._served:
            return
        self._served = True
        if self._state is _State.CLOSED:
            self._deps.hub.spawn(self._closed(self._connection()))
            return
        if self._state is _State.OPENING:
            self._state = _State.OPEN
        self._read_early()

    def _read_early(self) -> None:
        early, self._early = self._early, b""
        if early:
            self._handle(early)
        self._resume()

    # -- Socket (what the hub needs) -------------------------------------------------

    async def close(self, *, code: int = CLOSE_NORMAL, message: bytes = b"") -> bool:
        """Send a close frame, wait for the client's, then close the transport.

        False when a close was already under way. The close frame follows what is
        already buffered. The wait is bounded by the caller: the hub (``RoomHub._close``)
        gives up after its close grace and aborts the transport.
        """
        if self._state >= _State.CLOSING:
            return False
        self._state = _State.CLOSING
        transport = self.transport
        transport.write(close_frame(code, message))
        # The client's close frame may already be waiting (in ``early`` or the kernel).
        waiter = self._close_waiter = asyncio.get_running_loop().create_future()
        self._read_early()
        await waiter
        transport.close()
        return True

    def internal_error(self) -> None:
        """Handling this socket failed after the upgrade (call it in the ``except``
        block): close it as a WebSocket instead of leaving the client waiting for an
        answer. A dependency that is down (``live.outages``) is 1013 "try again later"
        and one line without a traceback; anything else 1011 and its traceback."""
        conn = self._connection()
        failure = sys.exc_info()[1]
        dependency = None if failure is None else dependency_of(failure)
        if dependency is not None:
            log.warning(
                "room socket %s in session %s: %s unavailable (%r)",
                conn.id,
                conn.room,
                dependency,
                failure,
            )
            self._deps.hub.close(conn, CloseCode.TRY_AGAIN_LATER, f"{dependency} unavailable")
            return
        log.exception("room socket %s in session %s failed", conn.id, conn.room)
        self._deps.hub.close(conn, CloseCode.INTERNAL_ERROR, "internal error")

    # -- asyncio.Protocol --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._handle(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = _State.CLOSED
        self._wake_closer()
        if self._draining:
            return  # ``_drain`` handles what waits, then tells the channel
        self._inbox = None
        if self._served:
            self._deps.hub.spawn(self._closed(self._connection()))

    async def _closed(self, conn: Connection) -> None:
        """Tell the channel the connection ended, then let go of it. The socket and its
        ``Connection`` point at each other: with that link cut, reference counting frees
        both (and the transport and buffers they hold) now, instead of the cyclic
        collector after they reached its oldest generation, which a long show with
        sockets coming and going did not get for many minutes (issue 27)."""
        try:
            await self._deps.channel.close(conn)
        finally:
            self.conn = None

    # -- reading ------------------------------------------------------------------------

    def _handle(self, data: bytes) -> None:
        if self._state >= _State.CLOSED:
            return
        try:
            frames = self._reader.feed(data)
        except ProtocolError as exc:
            self._fail(exc.code, exc.reason)
            return
        if frames and self.conn is not None:
            # A whole frame (a pong included) shows the client is alive; bytes that
            # never complete one (a slow trickle) do not keep a socket open.
            self.conn.heard = True
        for opcode, payload in frames:
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if self._state is not _State.OPEN:
                    continue  # after a close frame, data is ignored (RFC 6455 5.5.1)
                if opcode is Opcode.BINARY:
                    self._queue(payload)
                    continue
                try:
                    text = payload.decode()
                except UnicodeDecodeError:
                    self._fail(CLOSE_INVALID_TEXT, "text messages are UTF-8")
                    return
                self._queue(text)
            elif opcode is Opcode.PING:
                if self._state is _State.OPEN:
                    self.transport.write(control_frame(Opcode.PONG, payload))
            elif opcode is Opcode.CLOSE:
                self._close_received(payload)
                return
            # PONG: answers the hub's ping; ``heard`` is all it is for.

    def _close_received(self, payload: bytes) -> None:
        try:
            code = parse_close(payload)
        except ProtocolError as exc:
            self._fail(exc.code, exc.reason)
            return
        if self._state is not _State.CLOSING:
            # The client closes: echo its code (RFC 6455 5.5.1), then end the connection.
            self._state = _State.CLOSING
            self.transport.write(
                close_frame(code) if code is not None else control_frame(Opcode.CLOSE)
            )
            self.transport.close()
        self._wake_closer()

    def _fail(self, code: int, reason: str) -> None:
        """The client broke the protocol: close with ``code`` at once, no handshake."""
        log.info("room socket %s: %s (closing with %s)", self._conn_id(), reason, code)
        if self._state < _State.CLOSING:
            self._state = _State.CLOSING
            self.transport.write(close_frame(code, reason.encode()))
        self.transport.close()
        self._wake_closer()

    def _wake_closer(self) -> None:
        waiter = self._close_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _conn_id(self) -> str:
        return self.conn.id if self.conn is not None else "?"

    # -- client messages, in order, one at a time -----------------------------------------

    def _queue(self, message: str | bytes) -> None:
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = []
        inbox.append(message)
        if len(inbox) >= MAX_QUEUED_MESSAGES:
            self._pause()
        if not self._draining:
            self._draining = True
            self._deps.hub.spawn(self._drain())

    async def _drain(self) -> None:
        """Hand the waiting messages to the channel, in order. Those that came before
        the client's close frame are handled even when it closes meanwhile (it sent
        them: likes and messages tapped just before leaving count). Only the server
        closing the socket (``conn.closing``: kicked, too slow) drops what is left."""
        conn = self._connection()
        channel = self._deps.channel
        try:
            while self._inbox and not conn.closing:
                message = self._inbox.pop(0)
                if isinstance(message, str):
                    await channel.receive(conn, message)
                else:
                    channel.refuse(
                        conn, InvalidInput("binary_not_supported", "send JSON text messages")
                    )
        except Exception:
            self.internal_error()
        finally:
            self._draining = False
            self._inbox = None
            if self._state is _State.CLOSED:
                if self._served:  # the connection ended while messages waited
                    self._deps.hub.spawn(self._closed(conn))
            elif self._state is _State.OPEN and not conn.closing:
                self._resume()

    def _pause(self) -> None:
        if not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self._paused and self._state < _State.CLOSED:
            self._paused = False
            self.transport.resume_reading()
