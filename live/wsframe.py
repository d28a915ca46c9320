"""WebSocket text frames built once and written to many sockets.

Server-to-client frames are unmasked and (with permessage-deflate off) identical for
every receiver, so fan-out builds the frame bytes once per event and writes the same
``bytes`` to each transport. That skips aiohttp's per-send coroutine and framing,
the largest per-receiver cost left after serialising once (see bench/RESULTS.md).
"""

from __future__ import annotations

import struct

_TEXT = 0x81  # FIN + opcode 1 (text)


def text_frame(payload: bytes) -> bytes:
    """An RFC 6455 unmasked, unfragmented text frame carrying ``payload`` (UTF-8)."""
    length = len(payload)
    if length < 126:
        return struct.pack("!BB", _TEXT, length) + payload
    if length < 65536:
        return struct.pack("!BBH", _TEXT, 126, length) + payload
    return struct.pack("!BBQ", _TEXT, 127, length) + payload
