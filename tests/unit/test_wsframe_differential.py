"""Our frame reader against wsproto: the same client bytes give the same messages, the
same close and the same failure.

Hypothesis draws client -> server streams: masked text (valid and invalid UTF-8) and
binary messages, whole or in fragments with pings, pongs and closes between them;
closes without a payload, with one byte, with every kind of code (allowed, reserved,
out of range) and UTF-8 or broken reasons; and, now and then in any frame, what a
client must not send: no mask, reserved bits, an unknown opcode, a fragmented
control frame or a FIN missing from a message, a length in more bytes than it needs,
a control payload over 125 bytes, a continuation with nothing to continue. The bytes
are cut at random places. ``live.wsframe.FrameReader``, read as ``live.roomsocket``
reads it (text decoded as UTF-8 when whole, the first close ends it), and wsproto's
server connection after a real handshake must agree on every message, ping and pong,
the close code, or the close code of the failure.

Where we differ from wsproto on purpose, the comparison maps it:

* A text message's UTF-8 is checked when the message is whole (the room socket decodes
  it then); wsproto checks each fragment as it comes, and so fails sooner when a ping
  follows a broken fragment. Both are allowed (RFC 6455 8.1); wsproto is given a
  decoder that checks at the end of the message.
* A message longer than the reader's bound is refused by its header (1009); wsproto
  has no bound. Drawn messages stay under it; the last frame of a stream may announce
  a longer payload, and then wsproto, having read part of it, must agree on everything
  before it and still be open.
* 1014 (Bad Gateway, IANA registry) is a close code a client may send; wsproto's list
  of codes stops at 1013 and refuses it.
* A read in which the reader finds a violation hands the room socket nothing but the
  violation: frames that completed in that same read are not handled (the socket fails
  at once; a close frame is the reader's last, so it is never lost this way). The
  comparison above feeds our reader one byte at a time; it is also fed wsproto's cuts,
  and what the room socket then gets is checked against that.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from unittest import mock

from hypothesis import event, given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection, frame_protocol
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from live.wsframe import (
    CLOSE_INVALID_TEXT,
    CLOSE_TOO_BIG,
    FrameReader,
    Opcode,
    ProtocolError,
    parse_close,
)

#: The reader's bound on a message here; drawn messages stay far below it.
LIMIT = 4096
NO_STATUS = 1005  # what a close frame without a code means (RFC 6455 7.1.5)

Event = tuple[str, Any]  # ("text", str), ("binary" | "ping" | "pong", bytes)
End = tuple[str, int]  # ("open", 0), ("close", code), ("failed", code)
OPEN: End = ("open", 0)


@dataclass(frozen=True)
class Outcome:
    events: list[Event]
    end: End
    why: str = field(default="", compare=False)  # wsproto's reason for a failure


# -- drawing client streams -----------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    opcode: int
    payload: bytes = b""
    fin: bool = True
    rsv: int = 0
    masked: bool = True
    #: 2 or 8: the length in that many extended bytes even when fewer would do
    length_bytes: int = 0
    #: a payload length other than ``len(payload)`` (a frame cut short)
    declared: int | None = None
    mask: bytes = b"\x00\x00\x00\x00"

    def encode(self) -> bytes:
        length = len(self.payload) if self.declared is None else self.declared
        first = (0x80 if self.fin else 0) | self.rsv << 4 | self.opcode
        mask_bit = 0x80 if self.masked else 0
        form = self.length_bytes or (0 if length < 126 else 2 if length < 65536 else 8)
        if form == 0:
            head = bytes((first, mask_bit | length))
        elif form == 2:
            head = struct.pack("!BBH", first, mask_bit | 126, length)
        else:
            head = struct.pack("!BBQ", first, mask_bit | 127, length)
        if not self.masked:
            return head + self.payload
        mask = self.mask
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(self.payload))


texts = st.text(max_size=40).map(str.encode)
broken_utf8 = st.sampled_from(
    [b"\xff", b"\xc3", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]
)
broken_texts = st.builds(lambda a, bad, b: a + bad + b, texts, broken_utf8, texts)
allowed_codes = [1000, 1001, 1002, 1003, *range(1007, 1015), 3000, 3999, 4000, 4999]
refused_codes = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
close_codes = st.sampled_from([*allowed_codes, *refused_codes])


def now_and_then(
    usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], one_in: int = 8
) -> Any:
    """``rare`` about one time in ``one_in`` (a value in the middle of the range:
    Hypothesis draws the ends more often) and ``usual`` when shrinking."""
    return st.integers(0, one_in - 1).flatmap(lambda n: rare if n == one_in // 2 else usual)


close_payloads = now_and_then(
    st.builds(lambda code, why: struct.pack("!H", code) + why, close_codes, texts | broken_texts),
    st.just(b"") | st.binary(min_size=1, max_size=1),
)
control_payloads = now_and_then(st.binary(max_size=20), st.binary(min_size=120, max_size=130))
faults = now_and_then(
    st.none(),
    st.sampled_from(["unmasked", "rsv", "opcode", "fin", "length-2", "length-8"]),
    one_in=24,
)


@st.composite
def framed(draw: st.DrawFn, opcode: int, payload: bytes, fin: bool = True) -> Frame:
    """A frame as a client sends it, now and then with one thing wrong with it."""
    frame = Frame(opcode, payload, fin, mask=draw(st.binary(min_size=4, max_size=4)))
    fault = draw(faults)
    if fault == "unmasked":
        return replace(frame, masked=False)
    if fault == "rsv":
        return replace(frame, rsv=draw(st.integers(1, 7)))
    if fault == "opcode":
        return replace(frame, opcode=draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])))
    if fault == "fin":
        return replace(frame, fin=not fin)
    if fault == "length-2" and len(payload) < 65536:
        return replace(frame, length_bytes=2)
    if fault == "length-8":
        return replace(frame, length_bytes=8)
    return frame


def controls() -> st.SearchStrategy[Frame]:
    return st.one_of(
        control_payloads.flatmap(lambda p: framed(Opcode.PING, p)),
        control_payloads.flatmap(lambda p: framed(Opcode.PONG, p)),
        close_payloads.flatmap(lambda p: framed(Opcode.CLOSE, p)),
    )


@st.composite
def messages(draw: st.DrawFn) -> list[Frame]:
    """A text or binary message, in up to four fragments with control frames between
    (now and then without its last one: a new message must not start then)."""
    opcode, payload = draw(
        st.one_of(
            st.tuples(st.just(Opcode.TEXT), texts | broken_texts),
            st.tuples(st.just(Opcode.BINARY), st.binary(max_size=300)),
        )
    )
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    frames: list[Frame] = []
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1
        frames.append(draw(framed(opcode if i == 0 else Opcode.CONTINUATION, piece, last)))
        if not last:
            frames.extend(draw(st.lists(controls(), max_size=2)))
    return frames[:-1] if draw(now_and_then(st.just(False), st.just(True), 16)) else frames


@st.composite
def anything(draw: st.DrawFn) -> list[Frame]:
    """One frame with every field drawn: mostly what no client may send."""
    frame = Frame(
        opcode=draw(st.integers(0, 15)),
        payload=draw(st.binary(max_size=20)),
        fin=draw(st.booleans()),
        rsv=draw(st.sampled_from([0, 0, 1, 2, 4, 7])),
        masked=draw(st.booleans()),
        mask=draw(st.binary(min_size=4, max_size=4)),
    )
    return [frame]


@st.composite
def announcing_too_much(draw: st.DrawFn) -> list[Frame]:
    """A frame whose header announces more than the reader's bound, and some of it."""
    opcode = draw(st.sampled_from([Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION, Opcode.PING]))
    declared = draw(st.sampled_from([LIMIT + 1, 65535, 65536, 2**32, 2**63 - 1, 2**63, 2**64 - 1]))
    frame = Frame(
        opcode,
        draw(st.binary(min_size=1, max_size=16)),
        draw(st.booleans()),
        declared=declared,
        mask=draw(st.binary(min_size=4, max_size=4)),
    )
    return [frame]


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Frame], list[bytes]]:
    """Frames, and their bytes cut into the reads a server might get."""
    items = draw(
        st.lists(
            now_and_then(
                messages() | messages() | controls().map(lambda f: [f]), anything(), one_in=12
            ),
            max_size=8,
        )
    )
    if draw(now_and_then(st.just(False), st.just(True), one_in=6)):
        items.append(draw(announcing_too_much()))
    frames = [frame for item in items for frame in item]
    data = b"".join(frame.encode() for frame in frames)
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=8))))
    reads = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    return frames, [read for read in reads if read]


# -- our side ---------------------------------------------------------------------------


def handle(frames: list[tuple[Opcode, bytes]], events: list[Event]) -> End | None:
    """What ``RoomSocket._handle`` makes of the frames the reader returned: appends
    the messages and pings/pongs to ``events``; the end when there is one."""
    for opcode, payload in frames:
        if opcode is Opcode.TEXT:
            try:
                events.append(("text", payload.decode()))
            except UnicodeDecodeError:
                return ("failed", CLOSE_INVALID_TEXT)
        elif opcode is Opcode.BINARY:
            events.append(("binary", payload))
        elif opcode is Opcode.PING or opcode is Opcode.PONG:
            events.append((opcode.name.lower(), payload))
        else:
            try:
                code = parse_close(payload)
            except ProtocolError as exc:
                return ("failed", exc.code)
            return ("close", NO_STATUS if code is None else code)
    return None


def room_socket(reads: list[bytes]) -> Outcome:
    """Our reader fed ``reads`` as the room socket feeds it."""
    reader = FrameReader(LIMIT)
    events: list[Event] = []
    for read in reads:
        try:
            frames = reader.feed(read)
        except ProtocolError as exc:
            return Outcome(events, ("failed", exc.code))
        end = handle(frames, events)
        if end is not None:
            return Outcome(events, end)
    return Outcome(events, OPEN)


@dataclass(frozen=True)
class Record:
    """The reader fed one byte at a time: every frame with the offset of its last byte,
    and the violation with the offset of the byte that showed it."""

    frames: list[tuple[Opcode, bytes, int]]
    violation: tuple[int, int] | None


def record(data: bytes) -> Record:
    reader = FrameReader(LIMIT)
    frames: list[tuple[Opcode, bytes, int]] = []
    for at in range(len(data)):
        try:
            frames += [(opcode, payload, at) for opcode, payload in reader.feed(data[at : at + 1])]
        except ProtocolError as exc:
            return Record(frames, (exc.code, at))
    return Record(frames, None)


def handled(rec: Record, before: int | None = None) -> Outcome:
    """What the room socket gets by ``rec`` when the reader's violation shows in a read
    that starts at offset ``before`` (None: every frame before it is handled)."""
    events: list[Event] = []
    frames = [(o, p) for o, p, at in rec.frames if before is None or at < before]
    end = handle(frames, events)
    if end is None and rec.violation is not None:
        end = ("failed", rec.violation[0])
    return Outcome(events, end or OPEN)


def as_read(rec: Record, reads: list[bytes]) -> Outcome:
    """What the room socket gets from ``reads`` by ``rec``: a read in which the reader
    finds a violation yields only the violation."""
    if rec.violation is None:
        return handled(rec)
    offset = 0
    for read in reads:
        if rec.violation[1] < offset + len(read):
            break
        offset += len(read)
    return handled(rec, before=offset)


# -- wsproto's side ---------------------------------------------------------------------

HANDSHAKE = (
    b"GET /api/sessions/1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)


class _WholeMessageUtf8(codecs.IncrementalDecoder):
    """Checks a text message's UTF-8 when it is whole, as the room socket does."""

    def __init__(self, errors: str = "strict") -> None:
        super().__init__(errors)
        self._held = bytearray()

    def decode(self, input: Any, final: bool = False) -> str:
        self._held += input
        if not final:
            return ""
        whole, self._held = bytes(self._held), bytearray()
        return whole.decode("utf-8")


@contextmanager
def utf8_checked_when_whole() -> Iterator[None]:
    with mock.patch.object(frame_protocol, "getincrementaldecoder", lambda _: _WholeMessageUtf8):
        yield


def wsproto_server(reads: list[bytes]) -> Outcome:
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(HANDSHAKE)
    assert isinstance(next(server.events()), Request)
    server.send(AcceptConnection())
    events: list[Event] = []
    parts: list[Any] = []
    with utf8_checked_when_whole():
        for read in reads:
            server.receive_data(read)
            for got in server.events():
                if isinstance(got, TextMessage | BytesMessage):
                    parts.append(got.data)
                    if got.message_finished:
                        text = isinstance(got, TextMessage)
                        whole = "".join(parts) if text else b"".join(parts)
                        events.append(("text" if text else "binary", whole))
                        parts = []
                elif isinstance(got, Ping | Pong):
                    events.append((type(got).__name__.lower(), bytes(got.payload)))
                elif isinstance(got, CloseConnection):
                    # wsproto reports a violation as a close that the client never sent
                    if server.state is ConnectionState.REMOTE_CLOSING:
                        return Outcome(events, ("close", got.code))
                    return Outcome(events, ("failed", got.code), why=got.reason)
    return Outcome(events, OPEN)


# -- the comparison ---------------------------------------------------------------------


def expected_of_wsproto(
    frames: list[Frame], rec: Record, ours: Outcome, theirs: Outcome
) -> Outcome:
    """wsproto's outcome with our deliberate differences mapped (module docstring)."""
    if ours.end == ("failed", CLOSE_TOO_BIG) and theirs.end == OPEN:
        last = frames[-1]
        assert last.declared is not None and last.declared > LIMIT
        return Outcome(theirs.events, ours.end)
    if theirs.why == "CLOSE with unknown reserved code":
        close = next(payload for opcode, payload, _ in rec.frames if opcode is Opcode.CLOSE)
        if close[:2] == struct.pack("!H", 1014):  # then its reason decides
            return Outcome(theirs.events, ours.end)
    return theirs


@settings(max_examples=500, deadline=None)
@given(streams())
def test_our_reader_and_wsproto_agree(stream: tuple[list[Frame], list[bytes]]) -> None:
    frames, reads = stream
    rec = record(b"".join(reads))
    ours = handled(rec)
    theirs = wsproto_server(reads)
    assert ours == expected_of_wsproto(frames, rec, ours, theirs)
    as_fed = room_socket(reads)
    assert as_fed == as_read(rec, reads)
    # what was drawn (``--hypothesis-show-statistics``)
    event(f"ends: {ours.end[0]} {ours.end[1] if ours.end[0] == 'failed' else ''}")
    event(f"events before the end: {len(ours.events) if len(ours.events) < 3 else '3 or more'}")
    if as_fed != ours:
        event("frames that completed in the failing read were dropped")
