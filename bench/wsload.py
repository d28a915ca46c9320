"""A cheap WebSocket viewer for benchmarks: raw asyncio protocol, no per-frame objects.

It speaks just enough RFC 6455 for a room socket: the upgrade, unmasked server text
frames, and masked pongs to the server's pings (so heartbeats keep it open). It
records when each ``announcement`` with a numeric ``text`` arrives.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import struct
import time

_IDX = re.compile(rb'"type":"announcement","ts":\d+,"data":\{"text":"(\d+)"')


class Viewer(asyncio.Protocol):
    def __init__(self, path: str, host: str, received: dict[int, float]) -> None:
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}"
            "\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.received = received
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self._buffer = bytearray()
        self._handshake_done = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._handshake_done:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self._buffer[:12])
            del self._buffer[: end + 4]
            self._handshake_done = True
            if self.upgraded.done():
                return
            if b" 101" not in status:
                self.upgraded.set_exception(ConnectionError(status.decode(errors="replace")))
                if self._transport is not None:
                    self._transport.close()
                return
            self.upgraded.set_result(None)
        self._frames()

    def _frames(self) -> None:
        buf = self._buffer
        now = time.time()
        pos = 0
        while len(buf) - pos >= 2:
            opcode = buf[pos] & 0x0F
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if len(buf) - pos < 4:
                    break
                length = struct.unpack_from("!H", buf, pos + 2)[0]
                head = 4
            elif length == 127:
                if len(buf) - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            if len(buf) - pos < head + length:
                break
            start = pos + head
            pos = start + length
            if opcode == 0x1:
                self.on_text(buf, start, length, now)
            elif opcode == 0x9:  # ping -> pong
                self._send(0xA, bytes(buf[start:pos]))
            elif opcode == 0x8:
                payload = bytes(buf[start:pos])
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                if self._transport is not None:
                    self._transport.close()
        del buf[:pos]

    def on_text(self, buf: bytearray, start: int, length: int, now: float) -> None:
        """A text frame's payload is ``buf[start:start + length]``, received at ``now``."""
        match = _IDX.search(bytes(buf[start : start + length]))
        if match:
            self.received[int(match.group(1))] = now

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        if self._transport is not None:
            self._transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(exc or ConnectionError("closed before upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
