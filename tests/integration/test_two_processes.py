"""Two real server processes sharing one Redis and one PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from support import (
    TEST_SECRET,
    free_port,
    wait_until_up,
)

from app import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def two_servers(shared: Settings) -> AsyncIterator[tuple[str, str]]:
    env = {
        **os.environ,
        "LIVESHELF_SECRET": TEST_SECRET,
        "LIVESHELF_LIMITS": "off",
        "LIVESHELF_DATABASE_URL": shared.database_url,
        "LIVESHELF_DATABASE_SCHEMA": shared.database_schema or "",
        "REDIS_URL": shared.redis_url or "",
        "LIVESHELF_REDIS_PREFIX": shared.redis_prefix,
    }
    subprocess.run([sys.executable, "app.py", "migrate"], cwd=ROOT, env=env, check=True)
    procs, bases = [], []
    for _ in range(2):
        port = free_port()
        procs.append(
            subprocess.Popen(
                [sys.executable, "app.py", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        bases.append(f"http://127.0.0.1:{port}")
    try:
        for base, proc in zip(bases, procs, strict=True):
            await wait_until_up(base, proc)
        yield bases[0], bases[1]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


async def test_event_appended_in_a_reaches_socket_on_b(two_servers: tuple[str, str]) -> None:
    a, b = two_servers
    async with aiohttp.ClientSession() as http:
        name = f"host-{uuid.uuid4().hex[:6]}"
        async with http.post(
            f"{a}/api/auth/signup",
            json={"username": name, "password": "pw-long-enough", "role": "host"},
        ) as res:
            token = (await res.json())["token"]
        auth = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{a}/api/sessions", json={"title": "x"}, headers=auth) as res:
            sid = (await res.json())["id"]
        ws = await http.ws_connect(f"{b}/api/sessions/{sid}/ws")
        hello = orjson.loads((await ws.receive(timeout=10)).data)
        assert hello["type"] == "hello"

        sent: list[dict[str, Any]] = []
        for i in range(5):
            async with http.post(
                f"{a}/api/sessions/{sid}/announcements", json={"text": f"from A {i}"}, headers=auth
            ) as res:
                assert res.status == 201
                sent.append(await res.json())
        got = []
        while len(got) < 5:
            message = orjson.loads((await ws.receive(timeout=10)).data)
            if message.get("type") == "announcement":
                got.append(message)
        assert [m["seq"] for m in got] == [s["seq"] for s in sent]
        assert [m["data"]["text"] for m in got] == [f"from A {i}" for i in range(5)]
        assert got[0]["epoch"] == hello["epoch"]

        # a session state change made through B reaches a socket on A, through the outbox
        ws_a = await http.ws_connect(f"{a}/api/sessions/{sid}/ws")
        assert orjson.loads((await ws_a.receive(timeout=10)).data)["type"] == "hello"
        async with http.post(f"{b}/api/sessions/{sid}/start", headers=auth) as res:
            assert res.status == 200
        while True:
            message = orjson.loads((await ws_a.receive(timeout=10)).data)
            if message.get("type") == "session.started":
                break
        await ws.close()
        await ws_a.close()
