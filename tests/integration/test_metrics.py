"""``GET /metrics`` through the real command, on one process and on ``--workers 2``
(PostgreSQL, Redis, real aiortc peers on 127.0.0.1): after a scripted show (one
publisher, 3 viewers, 10 orders and one refused, 20 chat messages) the counters say
exactly that, summed over the workers; who may read them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import free_port, guest_cookie, poster, wait_until_up
from test_workers import ROOT, stop, wait_for_workers, workers_env

from app import Settings
from media.clients import PublisherClient, ViewerClient
from media.config import MediaConfig

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def summed(text: str) -> Samples:
    """Every sample, summed over the ``worker`` label."""
    out: Samples = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = frozenset((k, v) for k, v in s.labels.items() if k != "worker")
            out[(s.name, labels)] += s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def account(http: aiohttp.ClientSession, role: str) -> tuple[int, dict[str, str]]:
    name = f"{role}-{uuid.uuid4().hex[:8]}"
    async with http.post(
        "/api/auth/signup", json={"username": name, "password": "correct horse", "role": role}
    ) as res:
        assert res.status == 201, await res.text()
        body = await res.json()
    return int(body["user"]["id"]), {"Authorization": f"Bearer {body['token']}"}


async def call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    who: dict[str, str],
    body: Any = None,
    expect: int = 200,
    headers: dict[str, str] | None = None,
) -> Any:
    async with http.request(method, path, json=body, headers={**who, **(headers or {})}) as res:
        assert res.status == expect, f"{method} {path}: {res.status} {await res.text()}"
        return await res.json()


async def chat(http: aiohttp.ClientSession, sid: int, who: dict[str, str], n: int) -> None:
    """``n`` chat messages from ``who``, each seen published (alone, or in a batch)."""
    async with http.ws_connect(f"/api/sessions/{sid}/ws", headers=who) as ws:
        assert (await ws.receive_json())["type"] == "hello"
        for i in range(n):
            text = f"{who['Authorization'][-6:]} says {i}"
            await ws.send_json({"type": "chat.send", "text": text})
            while True:
                event = await ws.receive_json()
                assert event["type"] != "error", event
                if event["type"] == "chat.message":
                    texts = [event["data"]["text"]]
                elif event["type"] == "chat.batch":
                    texts = [m["text"] for m in event["data"]["messages"]]
                else:
                    continue
                if text in texts:
                    break


async def scrape(http: aiohttp.ClientSession, **headers: str) -> Samples:
    async with http.get("/metrics", headers=headers) as res:
        assert res.status == 200, await res.text()
        assert res.headers["Content-Type"].startswith("text/plain")
        return summed(await res.text())


@pytest.mark.parametrize("workers", [1, 2])
async def test_a_scripted_show_counts_exactly(
    shared: Settings, tmp_path: Path, workers: int
) -> None:
    port = free_port()
    env = workers_env(shared, tmp_path, free_port(), LIVESHELF_METRICS_TOKEN="t" * 32)
    command = [sys.executable, "app.py", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    else:
        subprocess.run([sys.executable, "app.py", "migrate"], cwd=ROOT, env=env, check=True)
    base = f"http://127.0.0.1:{port}"
    config = MediaConfig(ice_addresses=("127.0.0.1",))
    peers: list[PublisherClient | ViewerClient] = []
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        if workers > 1:
            await wait_for_workers(server, base, port, workers)
        else:
            await wait_until_up(base, server)
        async with aiohttp.ClientSession(base) as http, asyncio.timeout(90):
            host_id, host = await account(http, "host")
            _, brand = await account(http, "brand")
            sid = (await call(http, "POST", "/api/sessions", host, {"title": "Counted"}, 201))["id"]
            await call(http, "POST", f"/api/sessions/{sid}/start", host)
            product = await call(
                http,
                "POST",
                "/api/products",
                brand,
                {
                    "title": "Mug",
                    "price_minor": 1500,
                    "currency": "EUR",
                    "stock": 10,
                    "commission_bps": 1000,
                },
                201,
            )
            coop = await call(
                http,
                "POST",
                "/api/cooperations",
                brand,
                {"host_id": host_id, "product_ids": [product["id"]], "commission_bps": 1000},
                201,
            )
            await call(http, "POST", f"/api/cooperations/{coop['id']}/accept", host)
            await call(
                http, "POST", f"/api/sessions/{sid}/shelf", host, {"product_id": product["id"]}, 201
            )

            publisher = PublisherClient(config)
            peers.append(publisher)
            await publisher.connect(poster(http, f"/whip/{sid}", host["Authorization"][7:]))
            for _ in range(3):
                viewer = ViewerClient(config, decode=False)
                peers.append(viewer)
                await viewer.connect(poster(http, f"/whep/{sid}", None, guest_cookie()))
                await viewer.wait_for("video", encoded=10, within_s=20)

            buyers = [await account(http, "viewer") for _ in range(4)]
            path = f"/api/sessions/{sid}/orders"
            for i in range(10):
                order = await call(
                    http,
                    "POST",
                    path,
                    buyers[i % 4][1],
                    {"product_id": product["id"], "quantity": 1},
                    201,
                    {"Idempotency-Key": f"order-{i}"},
                )
                assert order["status"] == "paid"
            refused = await call(
                http,
                "POST",
                path,
                buyers[0][1],
                {"product_id": product["id"], "quantity": 1},
                409,
                {"Idempotency-Key": "order-sold-out"},
            )
            assert refused["error"]["code"] == "out_of_stock"
            for _, who in buyers:
                await chat(http, sid, who, 5)

            samples = await scrape(http)
            for _ in range(50):  # the last chat flush and viewer states settle
                if value(samples, "liveshelf_chat_messages_total") >= 20 and (
                    value(samples, "liveshelf_whep_viewers") >= 3
                ):
                    break
                await asyncio.sleep(0.1)
                samples = await scrape(http)

            assert value(samples, "liveshelf_whip_publishers") == 1
            assert value(samples, "liveshelf_whep_viewers") == 3
            assert value(samples, "liveshelf_orders_answered_total", state="paid") == 10
            assert value(samples, "liveshelf_orders_refused_total", reason="out_of_stock") == 1
            assert value(samples, "liveshelf_chat_messages_total") == 20
            route = "/api/sessions/{id}/orders"
            created = {"method": "POST", "route": route, "status": "201"}
            assert value(samples, "liveshelf_http_requests_total", **created) == 10
            count = "liveshelf_http_request_duration_seconds_count"
            assert value(samples, count, **created) == 10
            conflict = {"method": "POST", "route": route, "status": "409"}
            assert value(samples, "liveshelf_http_requests_total", **conflict) == 1
            offers = {"method": "POST", "route": "/whep/{session_id}", "status": "201"}
            assert value(samples, "liveshelf_http_requests_total", **offers) == 3
            assert value(samples, "liveshelf_room_events_appended_total") >= 10 + 20
            assert value(samples, "liveshelf_room_slow_consumer_closes_total") == 0
            pool_size = value(samples, "liveshelf_db_pool_connections", pool="orm", state="size")
            assert pool_size >= 1
            assert value(samples, "liveshelf_redis_round_trips_total") > 0
            if workers > 1:
                assert value(samples, "liveshelf_metrics_worker_up") == workers

            # who may read: a request through a proxy needs the token
            async with http.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}) as res:
                assert res.status == 403
                assert (await res.json())["error"]["code"] == "metrics_forbidden"
            proxied = await scrape(
                http, **{"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer " + "t" * 32}
            )
            assert value(proxied, "liveshelf_whip_publishers") == 1
    finally:
        for peer in peers:
            await peer.close()
        code = stop(server)
    assert code == 0, (tmp_path / "server.log").read_text()[-3000:]
