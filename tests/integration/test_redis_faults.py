"""Room joins through a Redis failure (issue 18): a join while Redis is down fails
cleanly, and once Redis is back the next join of that room gets its ``hello`` at once
(no room left half-registered). Redis here is the test's own (tests/own_redis.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from own_redis import OwnRedis
from support import Api

from app import Settings, create_app
from live.protocol import CloseCode


@pytest.mark.parametrize("backend", ["postgres-redis"])
async def test_a_room_first_joined_while_redis_is_down_works_once_it_is_back(
    settings: Settings, aiohttp_client: Any, backend: str
) -> None:
    own = OwnRedis()
    await own.start()
    try:
        client = await aiohttp_client(
            create_app(settings.model_copy(update={"redis_url": own.url}))
        )
        api = Api(client)
        host = await api.signup("host")
        sid = int((await api.live_session(host))["id"])
        path = f"/api/sessions/{sid}/ws"

        own.kill()
        for _ in range(2):  # the first join of the room, and one while it failed
            try:
                async with client.ws_connect(path) as ws:
                    msg = await ws.receive(timeout=5)
                    assert msg.type is aiohttp.WSMsgType.CLOSE, msg
                    assert msg.data == CloseCode.TRY_AGAIN_LATER  # reconnect later
            except aiohttp.WSServerHandshakeError as exc:
                assert exc.status == 503

        await own.start()  # empty: a crash without persistence
        started = time.monotonic()
        async with client.ws_connect(path) as ws:
            hello = await ws.receive_json(timeout=2)
            assert hello["type"] == "hello", hello
        assert time.monotonic() - started < 2
        # and another socket joins the now-watched room as well
        async with client.ws_connect(path) as ws:
            assert (await ws.receive_json(timeout=2))["type"] == "hello"
        await asyncio.sleep(0)
    finally:
        own.kill()


@pytest.mark.parametrize("backend", ["postgres-redis"])
async def test_a_request_that_needs_redis_while_it_is_down_is_a_503(
    settings: Settings, aiohttp_client: Any, backend: str, caplog: Any
) -> None:
    own = OwnRedis()
    await own.start()
    try:
        api = Api(
            await aiohttp_client(create_app(settings.model_copy(update={"redis_url": own.url})))
        )
        host = await api.signup("host")
        sid = int((await api.live_session(host))["id"])
        url = f"/api/sessions/{sid}/announcements"
        own.kill()
        for _ in range(20):
            res = await api.client.post(url, json={"text": "Flash sale soon"}, headers=host.headers)
            assert res.status == 503, await res.text()
            assert res.headers["Retry-After"] == "2"
            assert (await res.json())["error"]["code"] == "redis_unavailable"
        tracebacks = [r for r in caplog.records if r.exc_info and "unhandled" in r.getMessage()]
        assert tracebacks == []
        outage_lines = [r for r in caplog.records if r.name == "liveshelf.outages"]
        assert len(outage_lines) == 1
        await own.start()
        await api.call("POST", url, host, json={"text": "Flash sale soon"}, expect=201)
    finally:
        own.kill()
