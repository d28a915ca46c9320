"""Client frames as the room socket reads them: masking, fragments, control frames, limits."""

from __future__ import annotations

import struct
import time

import pytest
from wsclient import client_frame

from live.wsframe import (
    CLOSE_INVALID_TEXT,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_TOO_BIG,
    PING_FRAME,
    FrameReader,
    Opcode,
    ProtocolError,
    accept_key,
    close_frame,
    control_frame,
    parse_close,
)

LIMIT = 1000


def refused(data: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        FrameReader(LIMIT).feed(data)
    return info.value


@pytest.mark.parametrize("size", [0, 1, 125, 126, 999, 1000])
def test_masked_text_of_every_length_encoding(size: int) -> None:
    payload = ("é" * (size // 2) + "a" * (size % 2)).encode()
    assert FrameReader(LIMIT).feed(client_frame(Opcode.TEXT, payload)) == [(Opcode.TEXT, payload)]


def test_64_bit_length_is_read() -> None:
    reader = FrameReader(100_000)
    payload = b"x" * 70_000
    assert reader.feed(client_frame(Opcode.BINARY, payload)) == [(Opcode.BINARY, payload)]


def test_frames_split_anywhere_and_several_in_one_read() -> None:
    data = (
        client_frame(Opcode.TEXT, b'{"type":"ping"}')
        + client_frame(Opcode.PING, b"hi")
        + client_frame(Opcode.TEXT, b"x" * 300)
    )
    reader = FrameReader(LIMIT)
    got = []
    for i in range(len(data)):  # one byte at a time
        got.extend(reader.feed(data[i : i + 1]))
    assert got == [
        (Opcode.TEXT, b'{"type":"ping"}'),
        (Opcode.PING, b"hi"),
        (Opcode.TEXT, b"x" * 300),
    ]
    assert FrameReader(LIMIT).feed(data) == got


def test_fragments_are_reassembled_with_control_frames_in_between() -> None:
    data = (
        client_frame(Opcode.TEXT, b'{"type":', fin=False)
        + client_frame(Opcode.PING, b"p")
        + client_frame(Opcode.CONTINUATION, b'"ping",', fin=False)
        + client_frame(Opcode.CONTINUATION, b'"ref":1}')
    )
    assert FrameReader(LIMIT).feed(data) == [
        (Opcode.PING, b"p"),
        (Opcode.TEXT, b'{"type":"ping","ref":1}'),
    ]


def test_many_tiny_fragments_are_reassembled_in_linear_time() -> None:
    # Summing the fragments on every continuation frame made this quadratic: 20,000
    # one-byte fragments blocked the event loop for seconds.
    count = 20_000
    data = client_frame(Opcode.TEXT, b"a", fin=False) + b"".join(
        client_frame(Opcode.CONTINUATION, b"b", fin=i == count - 1) for i in range(1, count)
    )
    reader = FrameReader(64 * 1024)
    started = time.perf_counter()
    got = reader.feed(data)
    elapsed = time.perf_counter() - started
    assert got == [(Opcode.TEXT, b"a" + b"b" * (count - 1))]
    assert elapsed < 1.0


def test_a_message_over_the_limit_is_refused_by_its_header_alone() -> None:
    header_only = struct.pack("!BBH", 0x81, 0x80 | 126, LIMIT + 1) + b"mask"
    assert refused(header_only).code == CLOSE_TOO_BIG
    huge = struct.pack("!BBQ", 0x81, 0x80 | 127, 2**62) + b"mask"
    assert refused(huge).code == CLOSE_TOO_BIG


def test_fragments_together_over_the_limit_are_refused() -> None:
    reader = FrameReader(LIMIT)
    reader.feed(client_frame(Opcode.TEXT, b"x" * 600, fin=False))
    with pytest.raises(ProtocolError) as info:
        reader.feed(client_frame(Opcode.CONTINUATION, b"x" * 401))
    assert info.value.code == CLOSE_TOO_BIG


@pytest.mark.parametrize(
    "data",
    [
        client_frame(Opcode.TEXT, b"hi", masked=False),  # clients must mask
        client_frame(Opcode.TEXT, b"hi", rsv=0x40),  # no extension was negotiated
        client_frame(0x3, b"hi"),  # reserved opcode
        client_frame(Opcode.CONTINUATION, b"hi"),  # nothing to continue
        client_frame(Opcode.PING, b"x" * 126),  # control frames are short
        client_frame(Opcode.PING, b"x", fin=False),  # ... and never fragmented
        client_frame(Opcode.TEXT, b"a", fin=False) + client_frame(Opcode.TEXT, b"b"),
        # lengths in the fewest bytes (RFC 6455 5.2), the 64-bit one with its top bit 0
        struct.pack("!BBH", 0x81, 0x80 | 126, 125) + b"mask" + b"x" * 125,
        struct.pack("!BBQ", 0x81, 0x80 | 127, 65535) + b"mask",
        struct.pack("!BBQ", 0x81, 0x80 | 127, 2**63) + b"mask",
    ],
    ids=[
        "unmasked",
        "rsv",
        "opcode",
        "continuation",
        "long-ping",
        "fragmented-ping",
        "interleaved",
        "16-bit-length-under-126",
        "64-bit-length-under-65536",
        "64-bit-length-top-bit",
    ],
)
def test_protocol_violations(data: bytes) -> None:
    assert refused(data).code == CLOSE_PROTOCOL_ERROR


def test_close_payloads() -> None:
    assert parse_close(b"") is None
    assert parse_close(struct.pack("!H", 1000) + b"bye") == 1000
    assert parse_close(struct.pack("!H", 4000)) == 4000
    # registered after RFC 6455; the hub closes with 1013 itself and clients echo it
    assert [parse_close(struct.pack("!H", c)) for c in (1012, 1013, 1014)] == [1012, 1013, 1014]
    for bad in (b"\x03", *(struct.pack("!H", c) for c in (999, 1004, 1005, 1015, 2999, 5000))):
        with pytest.raises(ProtocolError) as info:
            parse_close(bad)
        assert info.value.code == CLOSE_PROTOCOL_ERROR
    with pytest.raises(ProtocolError) as info:
        parse_close(struct.pack("!H", 1000) + b"\xff")
    assert info.value.code == CLOSE_INVALID_TEXT


def test_nothing_after_a_close_frame_is_read() -> None:
    # a violation after the client's close, in the same read, must not hide the close
    close = client_frame(Opcode.CLOSE, struct.pack("!H", 1000))
    reader = FrameReader(LIMIT)
    assert reader.feed(close + client_frame(Opcode.TEXT, b"x", masked=False)) == [
        (Opcode.CLOSE, struct.pack("!H", 1000))
    ]
    assert reader.feed(client_frame(Opcode.PING, b"")) == []


def test_server_control_frames() -> None:
    assert PING_FRAME == b"\x89\x00"
    assert control_frame(Opcode.PONG, b"abc") == b"\x8a\x03abc"
    frame = close_frame(4008, ("é" * 100).encode())
    assert frame[0] == 0x88 and frame[1] == len(frame) - 2 <= 125
    assert struct.unpack("!H", frame[2:4])[0] == 4008
    frame[4:].decode()  # cut on a character boundary
    with pytest.raises(ValueError):
        control_frame(Opcode.PING, b"x" * 126)


def test_accept_key_is_the_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
