"""Every place liveshelf reaches into aiohttp internals (checked against aiohttp 3.14.2
to 3.14.5; ``pyproject.toml`` pins that range).

A room socket leaves aiohttp right after its upgrade (``live.roomsocket``). aiohttp has
no public API to hand a connection over; ``passed_through``, ``take_over`` and
``release`` rely on this, all of it in ``web_protocol.RequestHandler`` (aiohttp's
``asyncio.Protocol`` for one server connection), its base ``BaseProtocol`` and the
response writer:

1. Pass-through after an upgrade. When the HTTP parser has read a whole request with
   ``Connection: upgrade`` and ``Upgrade: websocket`` it stops parsing, the handler
   sets ``BaseProtocol._upgraded``, and ``RequestHandler.data_received`` parks what
   follows the request, and every byte that arrives later, in
   ``RequestHandler._message_tail`` (bytes) until a WebSocket parser is installed
   (``set_parser``; we install none). ``passed_through`` reads ``_upgraded``
   (``WebSocketResponse.can_prepare`` checks the headers only: a request with a body
   not yet read is not passed through), ``take_over`` takes ``_message_tail`` and
   empties it. (Before 3.14 the flag was ``RequestHandler._upgrade``.)
2. The 101 leaves at once: ``StreamResponse.prepare`` writes the status line and
   headers to the transport before it returns (``StreamResponse.
   _send_headers_immediately``; ``web.Response`` holds them back for its body), so
   they go out before anything the new protocol writes.
3. A handler without a transport. ``take_over`` sets the handler's ``transport`` to
   None (aiohttp itself does only in ``connection_lost``); aiohttp then leaves the
   transport alone: ``force_close``, the end of ``RequestHandler.start`` and the
   keep-alive timer close ``self.transport`` only when it is not None, and the
   response's ``StreamWriter`` looks up ``protocol.transport`` at each write (it keeps
   no transport of its own), so what aiohttp still writes for the 101 (its
   ``write_eof``) fails as a client disconnect and is dropped.
4. Letting go. ``RequestHandler.connection_lost(None)``, called while the transport
   lives on, takes the handler off ``Server.connections`` (once its task ends; so
   ``live.reaper`` and shutdown no longer see it), cancels its keep-alive timer
   (``_keepalive_handle``) and closes nothing (3.). With ``handler_cancellation`` on
   it also cancels the request's task: call it last.

``check_compatible`` (called when ``LiveHandlers`` is built, at start-up) checks each
of these on the installed aiohttp, the behaviour of 1., 3. and 4. by running a
``RequestHandler`` through an upgrade on a stand-in transport, and raises naming what
changed instead of letting room sockets hang or lose their first frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_writer import StreamWriter
from aiohttp.web_protocol import RequestHandler

_P = TypeVar("_P", bound=asyncio.Protocol)

#: An upgrade request as a browser sends it (the key is RFC 6455's example).
_UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: probe\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def passed_through(request: web.BaseRequest) -> bool:
    """Whether aiohttp stopped parsing HTTP on ``request``'s connection after it (1.):
    only then is everything the client sends next in reach of ``take_over``."""
    return bool(request.protocol._upgraded)


def take_over(request: web.BaseRequest, protocol: Callable[[asyncio.Transport, bytes], _P]) -> _P:
    """Move the connection of an answered upgrade from aiohttp to
    ``protocol(transport, early)`` and return that; ``early`` is what the client sent
    after its request and before this call. From here on aiohttp neither reads,
    writes nor closes the transport; call ``release`` when the request is done with.
    Raises ``ConnectionResetError`` if the client already left."""
    handler = request.protocol
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client left during the upgrade")
    early = bytes(handler._message_tail)
    handler._message_tail = b""
    taker = protocol(transport, early)
    transport.set_protocol(taker)
    handler.transport = None
    return taker


def release(request: web.BaseRequest) -> None:
    """Tell aiohttp the connection of a request handed over by ``take_over`` is gone
    (for it, it is): see 4. Call it last, when nothing needs the request any more."""
    request.protocol.connection_lost(None)


def check_compatible() -> None:
    """Raise ``RuntimeError`` if the installed aiohttp no longer has or does what the
    takeover relies on (the module docstring), naming each thing that changed."""
    changed = [
        f"{cls.__name__}.{name} (a slot)"
        for cls, name in (
            (RequestHandler, "_message_tail"),
            (BaseProtocol, "_upgraded"),
            (BaseProtocol, "transport"),
        )
        if name not in getattr(cls, "__slots__", ())
    ]
    if getattr(web.StreamResponse, "_send_headers_immediately", None) is not True:
        changed.append("StreamResponse._send_headers_immediately is no longer True")
    if not changed:
        try:
            changed += _probe()
        except Exception as exc:
            changed.append(f"the upgrade probe failed: {exc!r}")
    if changed:
        raise RuntimeError(
            f"aiohttp {aiohttp.__version__} is not what live/aiohttp_hooks.py was "
            f"checked against (room sockets would break): {'; '.join(changed)}"
        )


class _ProbeTransport(asyncio.Transport):
    """Stands in for a client connection; records whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def _unused(request: web.BaseRequest) -> web.StreamResponse:
    raise AssertionError("the probe never runs a request")  # pragma: no cover


def _probe() -> list[str]:
    """Run a handler through an upgrade and a takeover, without network or a running
    loop (its task is never started); return what behaved otherwise than 1., 3., 4."""
    changed = []
    loop = asyncio.new_event_loop()
    try:
        server = web.Server(_unused, loop=loop)
        handler = server()
        transport = _ProbeTransport()
        # what ``connection_made`` does, less starting the handler's task
        handler.transport = transport
        server.connection_made(handler, transport)
        handler.data_received(_UPGRADE + b"early")
        handler.data_received(b" later")
        if not handler._upgraded:
            changed.append("an upgrade request does not set BaseProtocol._upgraded")
        if handler._message_tail != b"early later":
            changed.append(
                "bytes after an upgrade request are not kept in RequestHandler._message_tail"
            )
        writer = StreamWriter(handler, loop)
        handler._message_tail = b""
        handler.transport = None
        if writer.transport is not None or transport in vars(writer).values():
            changed.append("StreamWriter keeps a transport of its own")
        keepalive = loop.call_later(3600, _nothing)
        handler._keepalive_handle = keepalive
        handler.connection_lost(None)
        if transport.closed:
            changed.append("RequestHandler.connection_lost closed the transport it let go")
        if handler in server.connections:
            changed.append("RequestHandler.connection_lost left it in Server.connections")
        if not keepalive.cancelled():
            changed.append("RequestHandler.connection_lost kept its keep-alive timer")
    finally:
        loop.close()
    return changed


def _nothing() -> None:
    pass  # pragma: no cover
