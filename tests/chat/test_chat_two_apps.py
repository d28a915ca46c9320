"""Two app instances sharing PostgreSQL and Redis, as two processes would: chat crosses
over, and moderation done on one applies on the other within ``state_refresh_s``."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from chat_support import connect, messages, next_of, refused, send
from support import Api

from app import Settings, create_app
from live.protocol import CloseCode


@pytest.mark.chat_config(state_refresh_s=0.2)
@pytest.mark.parametrize("backend", ["postgres-redis"])  # two processes share PG + Redis
async def test_moderation_applies_across_processes(
    settings: Settings, aiohttp_client: Any, backend: str
) -> None:
    one: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    two: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    api_one = Api(one)
    host = await api_one.signup("host")
    sid = int((await api_one.live_session(host))["id"])
    viewer = await api_one.signup("viewer")
    troll = await api_one.signup("viewer")
    ws_viewer, _ = await connect(two, sid, viewer)
    ws_troll, _ = await connect(two, sid, troll)
    ws_host, _ = await connect(one, sid, host)
    await send(ws_host, "hello from process one")
    assert [m["text"] for m in await messages(ws_viewer, 1)] == ["hello from process one"]

    await api_one.call(
        "POST",
        f"/api/sessions/{sid}/chat/mutes",
        host,
        json={"user_id": viewer.id, "seconds": 600},
        expect=201,
    )
    await api_one.call(
        "POST", f"/api/sessions/{sid}/chat/bans", host, json={"user_id": troll.id}, expect=201
    )
    # The troll's socket lives on process two: closed there by the refresh.
    assert (await next_of(ws_troll, "error"))["code"] == "banned"
    msg = await ws_troll.receive(timeout=5)
    while msg.type is WSMsgType.TEXT:
        msg = await ws_troll.receive(timeout=5)
    assert ws_troll.close_code == CloseCode.FORBIDDEN
    error = await refused(ws_viewer, {"type": "chat.send", "text": "muted over there?"})
    assert error["code"] == "muted"
    for ws in (ws_viewer, ws_host):
        await ws.close()
