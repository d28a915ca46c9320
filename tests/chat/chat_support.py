"""Helpers for the chat tests: room sockets and reading chat events off them."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from support import Account, Api

TIMEOUT = 10.0

#: Tests on a ManualClock advance it 1 ms before each outbox-published change: the
#: outbox's dedup key is (row id, created ms), and SQLite reuses the id of a deleted
#: last row, so two events in the same millisecond would count as one.
OUTBOX_NOTE = None


async def connect(
    client: TestClient[Any, Any], sid: int, account: Account | None = None
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    headers = account.headers if account else {}
    ws = await client.ws_connect(f"/api/sessions/{sid}/ws", headers=headers)
    hello = await receive(ws)
    assert hello["type"] == "hello", hello
    return ws, hello


async def receive(ws: aiohttp.ClientWebSocketResponse, wait_s: float = TIMEOUT) -> dict[str, Any]:
    msg = await ws.receive(timeout=wait_s)
    assert msg.type is WSMsgType.TEXT, msg
    return dict(orjson.loads(msg.data))


async def next_of(
    ws: aiohttp.ClientWebSocketResponse, *types: str, wait_s: float = TIMEOUT
) -> dict[str, Any]:
    """The next frame whose type is one of ``types`` (others are skipped)."""
    while True:
        message = await receive(ws, wait_s)
        if message["type"] in types:
            return message


async def send(
    ws: aiohttp.ClientWebSocketResponse, text: str, ref: str | int | None = None
) -> None:
    await ws.send_json({"type": "chat.send", "text": text, "ref": ref})


async def refused(ws: aiohttp.ClientWebSocketResponse, message: dict[str, Any]) -> dict[str, Any]:
    """Send ``message`` and return the ``error`` it gets (with the ref echoed)."""
    await ws.send_json({**message, "ref": "r-refused"})
    error = await next_of(ws, "error")
    assert error["ref"] == "r-refused", error
    return error


async def messages(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[dict[str, Any]]:
    """The next ``n`` chat messages, whether they come one by one or in batches."""
    out: list[dict[str, Any]] = []
    while len(out) < n:
        frame = await next_of(ws, "chat.message", "chat.batch", "error")
        assert frame["type"] != "error", frame
        if frame["type"] == "chat.message":
            out.append(frame["data"])
        else:
            out.extend(frame["data"]["messages"])
    assert len(out) == n, out
    return out


async def quiet(ws: aiohttp.ClientWebSocketResponse, types: tuple[str, ...], s: float) -> None:
    """Assert that no frame of ``types`` arrives within ``s`` seconds."""
    try:
        async with asyncio.timeout(s):
            while True:
                message = await receive(ws)
                assert message["type"] not in types, message
    except TimeoutError:
        return


async def room(api: Api) -> tuple[Account, int]:
    host = await api.signup("host")
    return host, int((await api.live_session(host))["id"])
