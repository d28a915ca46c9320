"""At most ``per_address`` open connections from one client address in this process.

One address opening thousands of connections (slow or idle ones, or WebSockets) would
use up the process's file descriptors and memory for everyone; the header and idle
timeouts (``live.reaper``) only bound how long each one lasts. A connection over the
cap is answered at once with ``503 too_many_connections`` and ``Retry-After`` (written
before its request is read, which HTTP allows) and closed.

Addresses of trusted proxies (``LIVESHELF_TRUSTED_PROXIES``) are not capped: their
connections carry many clients. The count is per process: with N workers an address
may hold up to N times the cap, still bounded.

Hooks ``aiohttp.web.Server.connection_made``/``connection_lost`` (the server's
connection registry, called by every ``RequestHandler``) on the one server instance.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import Counter
from collections.abc import Sequence

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: how long a refused client should wait
RETRY_AFTER_S = 5
#: the refusals are summed up in one log line at most this often
LOG_EVERY_S = 10.0


def _refusal() -> bytes:
    body = orjson.dumps(
        {
            "error": {
                "code": "too_many_connections",
                "message": "too many open connections from your address; close some",
            }
        }
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Retry-After: {RETRY_AFTER_S}\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


_REFUSAL = _refusal()


class ConnectionCap:
    def __init__(
        self, server: web.Server, per_address: int, *, exempt: Sequence[Network] = ()
    ) -> None:
        self._server = server
        self._per_address = per_address
        self._exempt = tuple(exempt)
        #: address -> its open connections; an address goes with its last one
        self._open: Counter[str] = Counter()
        #: the connections counted, and their address: one per open connection
        self._counted: dict[RequestHandler, str] = {}
        self._made = server.connection_made
        self._lost = server.connection_lost
        self._unlogged = 0
        self._logged_at = -LOG_EVERY_S

    def install(self) -> None:
        """Count and cap every connection the server gets from now on."""
        self._server.connection_made = self._connection_made  # type: ignore[method-assign]
        self._server.connection_lost = self._connection_lost  # type: ignore[method-assign]

    def _connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        self._made(handler, transport)
        address = _address(transport)
        if address is None or self._is_exempt(address):
            return
        if self._open[address] >= self._per_address:
            transport.write(_REFUSAL)
            transport.close()
            self._refused(address)
            return
        self._open[address] += 1
        self._counted[handler] = address

    def _connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        address = self._counted.pop(handler, None)
        if address is not None:
            left = self._open[address] - 1
            if left > 0:
                self._open[address] = left
            else:
                del self._open[address]
        self._lost(handler, exc)

    def _is_exempt(self, address: str) -> bool:
        if not self._exempt:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._exempt)

    def _refused(self, address: str) -> None:
        self._unlogged += 1
        now = asyncio.get_running_loop().time()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning(
                "refused %d connections over the cap of %d per address (last from %s)",
                self._unlogged,
                self._per_address,
                address,
            )
            self._unlogged = 0
            self._logged_at = now


def _address(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None  # a Unix socket
