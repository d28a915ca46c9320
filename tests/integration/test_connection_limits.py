"""Connection-level limits (issue 18, item 6).

* A request body that does not arrive within the body timeout is answered
  ``408 body_timeout`` and its connection closed, on the JSON API and on WHEP (a client
  trickling a body used to hold a handler for as long as it liked).
* ``python app.py`` lets one client address hold at most
  ``LIVESHELF_MAX_CONNECTIONS_PER_ADDRESS`` connections: the next one is answered
  ``503 too_many_connections`` with ``Retry-After`` and closed; other addresses and a
  trusted proxy are not affected, and a closed connection frees its place.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestServer
from support import free_port, wait_until_up
from test_workers import ROOT, stop, workers_env

from app import Settings, create_app
from live.workers import LINGERING_S


async def raw_request(
    port: int, head: str, body_part: bytes, *, local: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0))
    writer.write(head.encode() + body_part)
    await writer.drain()
    return reader, writer


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one HTTP/1.1 answer."""
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


@pytest.mark.parametrize("backend", ["memory"])
@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/api/auth/login", "application/json"), ("/whep/{sid}", "application/sdp")],
)
async def test_a_body_that_does_not_arrive_in_time_is_408_and_closed(
    settings: Settings, aiohttp_client: Any, backend: str, path: str, content_type: str
) -> None:
    # as ``python app.py`` serves (live.workers): what is left of the body is read
    # and ignored for LINGERING_S, then the connection is closed
    server = TestServer(create_app(settings.model_copy(update={"body_timeout_s": 0.5})))
    await server.start_server(lingering_time=LINGERING_S)  # (server_kwargs are dropped)
    client = await aiohttp_client(server)
    res = await client.post(
        "/api/auth/signup",
        json={"username": "hosty", "password": "correct horse", "role": "host"},
    )
    auth = {"Authorization": f"Bearer {(await res.json())['token']}"}
    res = await client.post("/api/sessions", json={"title": "t"}, headers=auth)
    sid = (await res.json())["id"]
    await client.post(f"/api/sessions/{sid}/start", headers=auth)
    head = (
        f"POST {path.format(sid=sid)} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        "Content-Length: 200\r\n\r\n"
    )
    started = time.monotonic()
    reader, writer = await raw_request(client.port, head, b'{"username": ')  # then nothing
    try:
        async with asyncio.timeout(5):
            status, headers, body = await read_answer(reader)
            answered = time.monotonic() - started
            assert await reader.read() == b""  # and the connection is closed
            closed = time.monotonic() - started
        assert status == 408, (status, body)
        assert closed < answered + LINGERING_S + 0.5, (answered, closed)
        assert orjson.loads(body)["error"]["code"] == "body_timeout"
        assert headers.get("connection", "").lower() == "close"
        assert 0.5 <= answered < 2.0, answered
    finally:
        writer.close()
    # a body that does arrive in time is read as before
    res = await client.post("/api/auth/login", json={"username": "hosty", "password": "x" * 9})
    assert res.status == 401


async def test_one_address_holds_at_most_the_cap(shared: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = workers_env(
        shared,
        tmp_path,
        0,
        LIVESHELF_PORT=str(port),
        LIVESHELF_WORKERS="1",
        LIVESHELF_LIMITS="on",
        LIVESHELF_MAX_CONNECTIONS_PER_ADDRESS="40",
        LIVESHELF_TRUSTED_PROXIES="127.0.0.3/32",
    )
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    held: list[asyncio.StreamWriter] = []

    async def connect(local: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(local, 0))
        held.append(writer)
        return reader, writer

    async def healthz(local: str) -> int:
        reader, writer = await connect(local)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = await read_answer(reader)
        return status

    try:
        await wait_until_up(base, server)
        await asyncio.sleep(0.5)  # the start-up probe's connection is closed by now
        first = [await connect("127.0.0.1") for _ in range(40)]  # the cap, all idle
        await asyncio.sleep(0.2)
        reader, _ = await connect("127.0.0.1")  # one more
        async with asyncio.timeout(5):
            status, headers, body = await read_answer(reader)
            assert await reader.read() == b""  # closed
        assert status == 503, (status, body)
        assert orjson.loads(body)["error"]["code"] == "too_many_connections"
        assert headers["retry-after"] == "5"
        # the others are served: another address, and a trusted proxy past the cap
        assert await healthz("127.0.0.2") == 200
        for _ in range(45):
            await connect("127.0.0.3")
        assert await healthz("127.0.0.3") == 200
        # the held ones still work, and closing some frees their places
        _, writer = first[0]
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(first[0][0]))[0] == 200
        for _, writer in first[:5]:
            writer.close()
        await asyncio.sleep(0.3)
        assert await healthz("127.0.0.1") == 200
    finally:
        for writer in held:
            writer.close()
        assert stop(server) == 0
