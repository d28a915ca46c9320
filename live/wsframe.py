"""RFC 6455 framing for room sockets: server frames built once, client frames read here.

Server-to-client frames are unmasked and (with permessage-deflate off) identical for
every receiver, so fan-out builds the frame bytes once per event and writes the same
``bytes`` to each transport. That skips aiohttp's per-send coroutine and framing,
the largest per-receiver cost left after serialising once (see bench/RESULTS.md).

Client-to-server frames are read by ``FrameReader``, a parser without I/O that
``live.roomsocket`` feeds with what the transport receives. Room sockets speak the
raw protocol after the handshake (no aiohttp ``WebSocketResponse``) to keep the
memory per open socket small; what a client may send is narrow: masked text (binary
is answered with an ``error`` event), ping, pong and close, fragmented or not, each
message bounded.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import struct

from aiohttp.http import WS_KEY

_TEXT = 0x81  # FIN + opcode 1 (text)
#: Largest payload of a control frame (ping, pong, close).
MAX_CONTROL_PAYLOAD = 125


class Opcode(enum.IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class ProtocolError(Exception):
    """The client broke RFC 6455; the socket is failed with close ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# Close codes of the WebSocket layer itself (the room channel's are in live.protocol).
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_TEXT = 1007
CLOSE_TOO_BIG = 1009


def text_frame(payload: bytes) -> bytes:
    """An RFC 6455 unmasked, unfragmented text frame carrying ``payload`` (UTF-8)."""
    length = len(payload)
    if length < 126:
        return struct.pack("!BB", _TEXT, length) + payload
    if length < 65536:
        return struct.pack("!BBH", _TEXT, 126, length) + payload
    return struct.pack("!BBQ", _TEXT, 127, length) + payload


def control_frame(opcode: Opcode, payload: bytes = b"") -> bytes:
    """An unmasked ping, pong or close frame (payload at most 125 bytes)."""
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise ValueError("control frame payloads are at most 125 bytes")
    return bytes((0x80 | opcode, len(payload))) + payload


def close_frame(code: int, reason: bytes = b"") -> bytes:
    """A close frame with ``code`` and ``reason`` cut to fit (on a UTF-8 boundary)."""
    reason = reason[: MAX_CONTROL_PAYLOAD - 2].decode("utf-8", "ignore").encode()
    return control_frame(Opcode.CLOSE, struct.pack("!H", code) + reason)


#: Sent to every socket by the hub's heartbeat; the same bytes every time.
PING_FRAME = control_frame(Opcode.PING)


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for the client's ``Sec-WebSocket-Key``.

    ``WS_KEY`` is the GUID RFC 6455 1.3 appends to the key (aiohttp's constant).
    """
    return base64.b64encode(hashlib.sha1(key.encode() + WS_KEY).digest()).decode()


def parse_close(payload: bytes) -> int | None:
    """The status code of a client close frame (None when it carries none).

    Raises ``ProtocolError`` for a payload RFC 6455 7.4 does not allow on the wire.
    """
    if not payload:
        return None
    if len(payload) == 1:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "close payload of one byte")
    code = int.from_bytes(payload[:2], "big")
    # RFC 6455's and IANA's registered codes (1012-1014 came later: the hub itself sends
    # 1013, which clients echo), 3000-4999 for libraries and applications
    allowed = 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999
    if not allowed:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"close code {code} is not allowed")
    try:
        payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolError(CLOSE_INVALID_TEXT, "close reason is not UTF-8") from None
    return code


def _unmask(mask: bytes, data: bytes) -> bytes:
    # XOR as one big integer: C speed without a byte loop in Python (payloads are small).
    n = len(data)
    if not n:
        return b""
    keystream = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(keystream, "big")).to_bytes(n, "big")


class FrameReader:
    """Client frames of one socket -> complete messages and control frames.

    ``feed`` returns ``(opcode, payload)`` pairs in arrival order: TEXT and BINARY for
    whole messages (fragments reassembled, continuation never surfaces), and every
    CLOSE, PING and PONG frame as it comes, even between the fragments of a message.
    A message (all its fragments together) larger than ``max_message_bytes`` is refused
    as soon as its header says so, so the buffer stays bounded by that size plus one
    frame header. A CLOSE frame is the last one returned: what follows it is not read
    (a client sends nothing after it, RFC 6455 5.5.1), so a violation behind it in the
    same read cannot hide it. Any violation raises ``ProtocolError``; the reader is then
    unusable.
    """

    __slots__ = ("_buffer", "_closed", "_fragment_opcode", "_fragments", "_max")

    def __init__(self, max_message_bytes: int) -> None:
        self._buffer = b""
        # The message being reassembled; its length is what its fragments add up to.
        self._fragments: bytearray | None = None
        self._fragment_opcode = Opcode.CONTINUATION
        self._max = max_message_bytes
        self._closed = False

    def feed(self, data: bytes) -> list[tuple[Opcode, bytes]]:
        if self._closed:
            return []
        buf = self._buffer + data if self._buffer else data
        out: list[tuple[Opcode, bytes]] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            fin = first & 0x80
            if first & 0x70:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension)")
            try:
                opcode = Opcode(first & 0x0F)
            except ValueError:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unknown opcode") from None
            if not second & 0x80:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            length = second & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
                if length < 126:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "length not in its fewest bytes")
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
                if length < 65536:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "length not in its fewest bytes")
                if length >> 63:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "64-bit length with its top bit set")
            self._check(opcode, bool(fin), length)
            start = pos + head + 4
            if end < start + length:
                break
            payload = _unmask(buf[start - 4 : start], buf[start : start + length])
            pos = start + length
            message = self._assemble(opcode, bool(fin), payload)
            if message is not None:
                out.append(message)
                if opcode is Opcode.CLOSE:
                    self._closed = True
                    self._buffer = b""
                    return out
        self._buffer = buf[pos:] if pos < end else b""
        return out

    def _check(self, opcode: Opcode, fin: bool, length: int) -> None:
        """Refuse a frame by its header alone, before its payload is buffered."""
        if opcode >= Opcode.CLOSE:
            if not fin or length > MAX_CONTROL_PAYLOAD:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "control frames are short and whole")
            return
        if opcode is Opcode.CONTINUATION:
            if self._fragments is None:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation without a message")
            length += len(self._fragments)
        elif self._fragments is not None:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "new message before the last one ended")
        if length > self._max:
            raise ProtocolError(CLOSE_TOO_BIG, f"messages are at most {self._max} bytes")

    def _assemble(self, opcode: Opcode, fin: bool, payload: bytes) -> tuple[Opcode, bytes] | None:
        if opcode >= Opcode.CLOSE:
            return opcode, payload
        if opcode is not Opcode.CONTINUATION:
            if fin:
                return opcode, payload
            self._fragments = bytearray(payload)
            self._fragment_opcode = opcode
            return None
        assert self._fragments is not None  # checked in _check
        self._fragments.extend(payload)
        if not fin:
            return None
        whole, self._fragments = bytes(self._fragments), None
        return self._fragment_opcode, whole
