"""Prebuilt WebSocket frames written straight to the transport arrive as the same text."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import WSMsgType, web

from live.events import encode_event, seq_of
from live.wsframe import text_frame

SIZES = [0, 1, 125, 126, 65535, 65536, 200_000]


def _payload(size: int) -> bytes:
    return ("é" * (size // 2) + "a" * (size % 2)).encode()


async def _handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False)
    await ws.prepare(request)
    assert request.transport is not None
    for size in SIZES:
        request.transport.write(text_frame(_payload(size)))
    await ws.receive()
    return ws


async def test_frames_round_trip(aiohttp_client: Any) -> None:
    app = web.Application()
    app.router.add_get("/ws", _handler)
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/ws", max_msg_size=2**20)
    for size in SIZES:
        message = await ws.receive(timeout=5)
        assert message.type is WSMsgType.TEXT
        assert message.data == _payload(size).decode()
    await ws.close()


def test_seq_is_read_without_parsing() -> None:
    raw = encode_event(1042, "k3f9", "card.shown", 1764320000123, b'{"a":1}')
    assert raw == (
        b'{"seq":1042,"epoch":"k3f9","type":"card.shown","ts":1764320000123,"data":{"a":1}}'
    )
    assert seq_of(raw) == 1042
    with pytest.raises(ValueError):
        seq_of(b'{"type":"hello"}')
