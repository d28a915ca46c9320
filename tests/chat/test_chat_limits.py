"""Per-viewer and per-room rate limits: an ``error`` event, never a dropped connection."""

from __future__ import annotations

import pytest
from chat_support import connect, messages, next_of, refused, room, send
from support import Api

from live.clock import ManualClock


async def test_per_viewer_message_rate(api: Api, clock: ManualClock) -> None:
    # Defaults: 3 messages a second, 6 saved up. The clock stands still unless advanced.
    _host, sid = await room(api)
    viewer = await api.signup("viewer")
    other = await api.signup("viewer")
    ws, _ = await connect(api.client, sid, viewer)
    other_ws, _ = await connect(api.client, sid, other)
    for i in range(6):
        await send(ws, f"m{i}")
    await messages(ws, 6)
    error = await refused(ws, {"type": "chat.send", "text": "one too many"})
    assert error["code"] == "chat_rate_limited"
    assert 0 < error["details"]["retry_after_ms"] <= 334
    # The connection stays, and other viewers are not affected.
    await ws.send_json({"type": "ping", "ref": 7})
    assert (await next_of(ws, "pong"))["ref"] == 7
    await send(other_ws, "me too")
    assert [m["text"] for m in await messages(ws, 1)] == ["me too"]
    clock.advance(334)
    await send(ws, "after a pause")
    assert [m["text"] for m in await messages(ws, 1)] == ["after a pause"]
    for socket in (ws, other_ws):
        await socket.close()


@pytest.mark.chat_config(room_message_rate=1, room_message_burst=3)
async def test_per_room_ceiling(api: Api, clock: ManualClock) -> None:
    _host, sid = await room(api)
    sockets = [(await connect(api.client, sid, await api.signup("viewer")))[0] for _ in range(4)]
    for i, ws in enumerate(sockets[:3]):
        await send(ws, f"v{i}")
    await messages(sockets[0], 3)
    error = await refused(sockets[3], {"type": "chat.send", "text": "crowded"})
    assert error["code"] == "room_busy"
    clock.advance(1000)
    await send(sockets[3], "now")
    assert [m["text"] for m in await messages(sockets[0], 1)] == ["now"]
    for ws in sockets:
        await ws.close()


@pytest.mark.chat_config(like_burst=3, likes_interval_s=0.1)
async def test_like_rate(api: Api, clock: ManualClock) -> None:
    _host, sid = await room(api)
    ws, _ = await connect(api.client, sid, await api.signup("viewer"))
    for _ in range(3):
        await ws.send_json({"type": "like", "count": 10})
    error = await refused(ws, {"type": "like", "count": 10})
    assert error["code"] == "like_rate_limited"
    event = await next_of(ws, "likes.updated")
    while event["data"]["total"] < 30:
        event = await next_of(ws, "likes.updated")
    assert event["data"]["total"] == 30
    clock.advance(100)
    await ws.send_json({"type": "like"})
    assert (await next_of(ws, "likes.updated"))["data"]["total"] == 31
    await ws.close()
