"""SIGKILL in the middle of a buying burst: nothing acknowledged is lost or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from redis.asyncio import Redis
from support import (
    TEST_SECRET,
    free_port,
    room_events,
    wait_until_up,
)

from app import Settings
from live.roomlog_redis import RedisRoomLog

ROOT = Path(__file__).resolve().parents[2]


class Server:
    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env = env
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await wait_until_up(self.base, self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


async def call(
    http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, **kw: Any
) -> Any:
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with http.request(method, url, headers=headers, **kw) as res:
        assert res.status < 300, f"{method} {url}: {res.status} {await res.text()}"
        return await res.json()


async def test_sigkill_during_a_burst(shared: Settings) -> None:
    env = {
        **os.environ,
        "LIVESHELF_SECRET": TEST_SECRET,
        "LIVESHELF_LIMITS": "off",
        "LIVESHELF_DATABASE_URL": shared.database_url,
        "LIVESHELF_DATABASE_SCHEMA": shared.database_schema or "",
        "REDIS_URL": shared.redis_url or "",
        "LIVESHELF_REDIS_PREFIX": shared.redis_prefix,
        "LIVESHELF_PASSWORD_TIME_COST": "1",
        "LIVESHELF_PASSWORD_MEMORY_KIB": "1024",
    }
    subprocess.run([sys.executable, "app.py", "migrate"], cwd=ROOT, env=env, check=True)
    server = Server(env, free_port())
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            base = server.base

            async def signup(role: str) -> tuple[int, str]:
                body = await call(
                    http,
                    "POST",
                    f"{base}/api/auth/signup",
                    json={
                        "username": f"{role}-{uuid.uuid4().hex[:8]}",
                        "password": "long enough",
                        "role": role,
                    },
                )
                return body["user"]["id"], body["token"]

            _, brand = await signup("brand")
            host_id, host = await signup("host")
            product = await call(
                http,
                "POST",
                f"{base}/api/products",
                brand,
                json={
                    "title": "Crash-proof mug",
                    "price_minor": 1500,
                    "currency": "EUR",
                    "stock": 5000,
                    "commission_bps": 1000,
                },
            )
            coop = await call(
                http,
                "POST",
                f"{base}/api/cooperations",
                brand,
                json={"host_id": host_id, "product_ids": [product["id"]], "commission_bps": 1000},
            )
            await call(http, "POST", f"{base}/api/cooperations/{coop['id']}/accept", host)
            session = await call(http, "POST", f"{base}/api/sessions", host, json={"title": "t"})
            sid = session["id"]
            await call(http, "POST", f"{base}/api/sessions/{sid}/start", host)
            await call(
                http,
                "POST",
                f"{base}/api/sessions/{sid}/shelf",
                host,
                json={"product_id": product["id"]},
            )
            buyers = [await signup("viewer") for _ in range(20)]

            acknowledged: list[tuple[str, str, dict[str, Any]]] = []  # token, key, order
            sent: list[tuple[str, str]] = []
            stop = asyncio.Event()

            async def buyer_loop(token: str) -> None:
                while not stop.is_set():
                    key = uuid.uuid4().hex
                    sent.append((token, key))
                    try:
                        async with http.post(
                            f"{base}/api/sessions/{sid}/orders",
                            json={"product_id": product["id"], "quantity": 1},
                            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                        ) as res:
                            if res.status == 201:
                                acknowledged.append((token, key, await res.json()))
                    except (TimeoutError, aiohttp.ClientError):
                        return

            tasks = [asyncio.create_task(buyer_loop(token)) for _, token in buyers]
            for _ in range(200):  # bounded: until enough orders went through
                if len(acknowledged) >= 60:
                    break
                await asyncio.sleep(0.02)
            server.kill()
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert len(acknowledged) >= 20

            await server.start()
            # every acknowledged order is there, once, and a retry gets the same order
            for token, key, body in acknowledged:
                again = await call(
                    http,
                    "POST",
                    f"{base}/api/sessions/{sid}/orders",
                    token,
                    json={"product_id": product["id"], "quantity": 1},
                    headers={"Idempotency-Key": key},
                )
                assert again == body
            # orders that were in flight are settled too: nothing is left "placed"
            mine = [
                await call(http, "GET", f"{base}/api/me/orders?limit=200", t) for _, t in buyers
            ]
            statuses = {o["status"] for m in mine for o in m["orders"]}
            assert statuses <= {"paid"}, statuses
            total = sum(len(m["orders"]) for m in mine)
            assert total <= len(sent)
            stock = await call(http, "GET", f"{base}/api/products/{product['id']}", brand)
            assert stock["stock"] + total == 5000

        # and every acknowledged order's ticker event is in the room log, once
        redis = Redis.from_url(shared.redis_url or "")
        room_log = RedisRoomLog(redis, prefix=shared.redis_prefix)
        placed = [
            event["data"]["order_id"]
            for event in await room_events(room_log, sid)
            if event["type"] == "order.placed"
        ]
        assert len(placed) == len(set(placed))
        assert {body["id"] for _, _, body in acknowledged} <= set(placed)
        assert len(placed) == total
        await room_log.close()
        await redis.aclose()
    finally:
        server.stop()
