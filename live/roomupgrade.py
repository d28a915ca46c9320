"""Opening a room socket: ``GET /api/sessions/{id}/ws`` up to the hand-over.

``RoomUpgrade.open`` checks the request (``since``, ``epoch``, the session, the
limits: ``Guard.socket`` and the hub's per-address and per-user caps, counted over
every process when the holdings are Redis's), answers the RFC 6455 handshake with
``101`` (no extensions: permessage-deflate stays off, so each frame is built once for
every socket), takes the connection over from aiohttp (``live.aiohttp_hooks``) as a
``RoomSocket``, builds the hub's ``Connection`` (who it is, whether it counts as a
viewer, the caps it holds) and runs ``RoomChannel.open`` (the ``hello``) before the
socket reads anything.

Refusals before the upgrade are ordinary HTTP errors (400 ``invalid_query`` or
``invalid_handshake``, 404 for no such session, 429 ``too_many_sockets`` or a rate
limit); the caps a refused socket took are given back. After the upgrade nothing is
raised: a failure of ``RoomChannel.open`` closes the socket (1013 when a dependency
is down, else 1011). aiohttp's request handler, request and response are released as
soon as ``open`` returns; the socket lives on as the transport, a ``RoomSocket`` and
its ``Connection`` (the memory that saves per socket: bench/RESULTS.md, "Room-channel
fan-out").

``ROOM_SOCKET``, ``ROOM_SOCKET_ANSWER`` and ``ROOM_SOCKET_PARAMS`` are what the API
document says of the route (OpenAPI cannot describe a WebSocket past its handshake).
"""

from __future__ import annotations

import secrets

from aiohttp import hdrs, web

from live import aiohttp_hooks
from live.auth import GUEST_ROLE
from live.errors import InvalidInput, RateLimited
from live.guard import Caps, Guard
from live.guests import GUEST_COOKIE, GuestIds
from live.holdings import caps_for
from live.http import path_id, principal, query_int
from live.models import Role
from live.openapi import Answer, integer, query
from live.roomchannel import RoomChannel
from live.roomhub import Connection, RoomHub
from live.roomsocket import RoomSocket, SocketDeps
from live.sessions import SessionService
from live.wsframe import accept_key

#: roles whose sockets are not the show's audience (viewer counts, presence, analytics)
_NOT_AUDIENCE = frozenset({Role.BRAND, Role.AGENCY})

#: what the document says of ``GET /api/sessions/{id}/ws`` (a WebSocket, which OpenAPI
#: cannot describe past the handshake)
ROOM_SOCKET = """\
A WebSocket upgrade (`Upgrade: websocket`, `Connection: Upgrade`, `Sec-WebSocket-Key`,
`Sec-WebSocket-Version: 13`): the room's live events, chat and likes. Anyone may
connect; guests read only. Sign in with `Authorization: Bearer <token>` or, from a
page, `?ticket=` (a bearer token in the URL, `?token=`, is refused: 401
`token_in_url`). Refusals before the upgrade are ordinary HTTP errors (400
`invalid_handshake` when it is not a WebSocket handshake, 429 `too_many_sockets`).

After the upgrade the frames are JSON text. The server sends `hello` first
(`{type, seq, epoch, recovered, server_time, connection, snapshot}`), then every room
event `{seq, epoch, type, ts, data}` after `hello.seq`, in order, exactly once; `pong`
answers `ping`, and `error {code, message, ref}` a refused client message. Reconnect
with `since=<last seq>&epoch=<epoch>` to receive the missed events instead of a
snapshot. Client messages are `{type, ref?, ...}` of at most 4 KiB (`ping`,
`chat.send`, `like`, ...). Close codes: 1001 going away, 1011 internal error, 1013 try
again later, 4003 forbidden (do not reconnect), 4008 slow consumer, 4009 resync,
4029 too many errors.

The protocol: `live/protocol.py` and `live/events.py`; chat and likes: `chat/API.md`;
the shelf's events: `shelf/API.md`; README.md, "API".
"""


#: its answer: the handshake's
ROOM_SOCKET_ANSWER = Answer(
    101,
    description="switching to the WebSocket protocol (RFC 6455; no extensions)",
    headers={
        "Upgrade": "websocket",
        "Connection": "upgrade",
        "Sec-WebSocket-Accept": "the handshake's answer to Sec-WebSocket-Key",
    },
)

#: its query: ``since`` and ``epoch`` (``open`` reads them), ``ticket`` (the auth
#: middleware, ``live.http``)
ROOM_SOCKET_PARAMS = [
    query(
        "since",
        integer(0, 2**53),
        "the last event seq the client holds: resume after it (with epoch)",
    ),
    query(
        "epoch",
        {"type": "string", "maxLength": 32, "pattern": "^[A-Za-z0-9]+$"},
        "the room history's epoch the server sent (hello.epoch, events' epoch)",
    ),
    query(
        "ticket",
        {"type": "string"},
        "a one-minute room ticket (POST /api/auth/ticket): how a page signs its "
        "socket in, since a browser cannot send Authorization on it",
    ),
]


class RoomUpgrade:
    """Opens the room sockets of this process (module docstring)."""

    def __init__(
        self,
        sessions: SessionService,
        channel: RoomChannel,
        hub: RoomHub,
        *,
        guard: Guard,
        guests: GuestIds,
        caps: Caps,
        send_limit_bytes: int,
    ) -> None:
        aiohttp_hooks.check_compatible()  # room sockets leave aiohttp by its internals
        self._sessions = sessions
        self._channel = channel
        self._guard = guard
        self._guests = guests
        self._caps = caps
        self._send_limit = send_limit_bytes
        self._socket_deps = SocketDeps(hub, channel)

    async def open(self, request: web.Request) -> web.StreamResponse:
        """Answer ``request``'s upgrade and open its room socket (module docstring);
        returns the 101 response, already sent. Refusals are raised before the upgrade
        only."""
        session_id = path_id(request)
        since = query_int(request, "since")
        epoch = request.query.get("epoch") or None
        if epoch is not None and (len(epoch) > 32 or not epoch.isalnum()):
            raise InvalidInput("invalid_query", "epoch is the value the server sent")
        host_id = await self._sessions.host_of(session_id)
        caller = principal(request)
        address = self._guard.client_address(request)
        user_id = caller.user_id if caller else None
        await self._guard.socket(session_id, address, user_id)
        hub, conn_id = self._socket_deps.hub, secrets.token_hex(6)
        per_address, per_user = self._caps.sockets_per_address, self._caps.sockets_per_user
        caps = caps_for("ws", address, user_id, per_address, per_user)
        if not await hub.hold(session_id, conn_id, caps):
            raise RateLimited(
                "too_many_sockets", "you hold as many connections to this show as you may"
            )
        try:
            response, socket = await self._upgrade(request)
        except BaseException:
            hub.release(session_id, caps, conn_id)  # no socket: nothing else will
            raise
        conn = Connection(
            id=conn_id,
            room=session_id,
            socket=socket,
            transport=socket.transport,
            user_id=user_id,
            role=caller.role.value if caller else GUEST_ROLE,
            display_name=caller.display_name if caller else "guest",
            # the host, and brands and agencies following their products' stock (the
            # brand console), are not the show's audience
            counts_as_viewer=caller is None
            or (caller.user_id != host_id and caller.role not in _NOT_AUDIENCE),
            address=address,
            held=tuple(caps),  # ``leave`` lets it go
            person=self._guests.person(user_id, request.cookies.get(GUEST_COOKIE), address),
        )
        socket.bind(conn)
        try:
            await self._channel.open(conn, since, epoch)
        except Exception:
            # After the upgrade an HTTP error response would corrupt the stream.
            socket.internal_error()
        finally:
            socket.serve()
            aiohttp_hooks.release(request)
        return response

    async def _upgrade(self, request: web.Request) -> tuple[web.StreamResponse, RoomSocket]:
        """Answer the upgrade and take the connection over from aiohttp
        (``live.aiohttp_hooks``)."""
        # aiohttp's own handshake checks on a throwaway response; and its HTTP parser
        # must have switched the connection to pass-through (it has not while a body
        # the request announced is still coming).
        ready = web.WebSocketResponse().can_prepare(request).ok
        if not ready or not aiohttp_hooks.passed_through(request):
            raise InvalidInput("invalid_handshake", "this is a WebSocket endpoint")
        response = web.StreamResponse(
            status=101,
            headers={
                hdrs.UPGRADE: "websocket",
                hdrs.CONNECTION: "upgrade",
                # No Sec-WebSocket-Extensions: permessage-deflate stays off (it costs
                # 2x CPU and ~110 KB per socket) and frames are built once for all.
                hdrs.SEC_WEBSOCKET_ACCEPT: accept_key(request.headers[hdrs.SEC_WEBSOCKET_KEY]),
            },
        )
        response.force_close()
        await response.prepare(request)
        deps = self._socket_deps
        socket = aiohttp_hooks.take_over(
            request, lambda transport, early: RoomSocket(transport, deps, early)
        )
        # The hub bounds the buffer itself; never let asyncio call pause_writing first.
        socket.transport.set_write_buffer_limits(high=self._send_limit * 2)
        return response, socket
