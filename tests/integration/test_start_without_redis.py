"""``python app.py`` with Redis down and room events waiting in the outbox (issue 18):
it starts (it exited 1 before), answers what needs only the database, says it is not
ready, and drains the outbox once Redis is there; ``/healthz`` answers throughout.
Redis here is the test's own (tests/own_redis.py), started only half-way."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson
from own_redis import OwnRedis
from redis.asyncio import Redis
from sqlalchemy import func, insert, select
from support import database_at, free_port, wait_until_up
from test_workers import ROOT, stop, workers_env

from app import Settings
from live.models import OutboxEvent


async def test_starts_with_redis_down_and_drains_when_it_is_back(
    shared: Settings, tmp_path: Path
) -> None:
    own = OwnRedis()  # not running yet
    db = await database_at(shared, "head")
    async with db.transaction() as tx:  # left behind by an earlier stop
        await tx.execute(
            insert(OutboxEvent),
            [
                {
                    "session_id": 7,
                    "type": "announcement",
                    "data": orjson.dumps({"text": f"waiting {n}"}).decode(),
                    "created_ms": n,
                }
                for n in range(30)
            ],
        )
    port = free_port()
    env = workers_env(
        shared, tmp_path, 0, REDIS_URL=own.url, LIVESHELF_PORT=str(port), LIVESHELF_WORKERS="1"
    )
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(base, server)  # GET /api/sessions: the database is enough
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as res:
                assert res.status == 200
            async with http.get(f"{base}/readyz") as res:
                assert res.status == 503 and res.headers["Retry-After"] == "2"
                checks = (await res.json())["checks"]
            assert checks["database"] == "ok" and checks["redis"] != "ok"

            await own.start()
            async with asyncio.timeout(15):
                while True:
                    async with http.get(f"{base}/readyz") as res:
                        if res.status == 200:
                            break
                    await asyncio.sleep(0.2)
        async with db.read() as s:
            assert await s.scalar(select(func.count()).select_from(OutboxEvent)) == 0
        redis = Redis.from_url(own.url)
        try:
            stream = [k async for k in redis.scan_iter(f"{shared.redis_prefix}:{{r7}}:log")]
            assert stream, "the drained events are in the room log"
            assert await redis.xlen(stream[0]) == 30
        finally:
            await redis.aclose()
    finally:
        assert stop(server) == 0
        own.kill()
        await db.dispose()


async def test_sigterm_with_redis_down_and_a_failed_join_exits_within_5_s(
    shared: Settings, tmp_path: Path
) -> None:
    own = OwnRedis()  # never started: Redis is down throughout
    port = free_port()
    env = workers_env(
        shared, tmp_path, 0, REDIS_URL=own.url, LIVESHELF_PORT=str(port), LIVESHELF_WORKERS="1"
    )
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(base, server)
        async with aiohttp.ClientSession() as http:
            signup = {"username": "hosty", "password": "correct horse", "role": "host"}
            async with http.post(f"{base}/api/auth/signup", json=signup) as res:
                token = (await res.json())["token"]
            auth = {"Authorization": f"Bearer {token}"}
            async with http.post(f"{base}/api/sessions", json={"title": "t"}, headers=auth) as res:
                sid = (await res.json())["id"]
            for _ in range(3):  # joins of a room that cannot be watched
                async with http.ws_connect(f"{base}/api/sessions/{sid}/ws") as ws:
                    msg = await ws.receive(timeout=5)
                    assert msg.type is aiohttp.WSMsgType.CLOSE and msg.data == 1013
            held = await http.ws_connect(f"{base}/api/sessions/{sid}/ws")  # left open
            started = time.monotonic()
            server.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(server.wait, 10)
            assert code == 0 and time.monotonic() - started < 5
            await held.close()
    finally:
        if server.poll() is None:
            server.kill()
