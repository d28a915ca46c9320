"""``GET /readyz`` says what the process lacks, and ``/healthz`` that it lives (issue 20).

Real servers on 127.0.0.1: a Redis and a PostgreSQL of the test's own
(tests/own_redis.py, tests/own_postgres.py) going away make ``/readyz`` a 503 naming
them within 2 s, and their return makes it a 200 again; a database one migration
behind the code is not ready, and says both revisions; with ``python app.py
--workers 2``, a media home that does not answer (SIGSTOP) makes the other worker not
ready, until it answers again (SIGCONT).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from alembic.script import ScriptDirectory
from own_postgres import OwnPostgres
from own_redis import OwnRedis
from support import database_at, free_port, free_port_run, migrate
from test_workers import ROOT, sockets_on, stop, wait_for_workers, workers_env

from app import Settings, create_app
from live.db import alembic_config

#: how often a test asks ``/readyz``
POLL_S = 0.1


async def readiness(
    http: TestClient[Any, Any] | aiohttp.ClientSession, status: int, within_s: float
) -> tuple[float, dict[str, Any]]:
    """Ask ``/readyz`` until it answers ``status`` (at most ``within_s`` seconds): the
    seconds it took and the answer's body; a 503 must carry ``Retry-After``."""
    started = time.monotonic()
    seen: list[tuple[int, Any]] = []
    async with asyncio.timeout(within_s + 5):  # one last request still on its way
        for _ in range(int(within_s / POLL_S) + 1):
            async with http.get("/readyz") as res:
                body = await res.json()
                if res.status == 503:
                    assert res.headers["Retry-After"] == "2"
            elapsed = time.monotonic() - started
            if res.status == status:
                return elapsed, body
            seen.append((res.status, body["checks"]))
            if elapsed > within_s:
                break
            await asyncio.sleep(POLL_S)
    raise AssertionError(f"/readyz not {status} within {within_s} s: {seen[-3:]}")


@pytest.fixture
async def own_postgres() -> AsyncIterator[OwnPostgres]:
    pg = await asyncio.to_thread(OwnPostgres)
    await asyncio.to_thread(pg.start)
    yield pg
    await asyncio.to_thread(pg.stop)


@pytest.mark.parametrize("backend", ["postgres-redis"])
async def test_not_ready_within_2_s_of_redis_going_away_and_ready_when_it_is_back(
    settings: Settings, aiohttp_client: Any, backend: str
) -> None:
    own = OwnRedis()
    await own.start()
    try:
        client = await aiohttp_client(
            create_app(settings.model_copy(update={"redis_url": own.url}))
        )
        assert (await client.get("/healthz")).status == 200
        _, body = await readiness(client, 200, within_s=10)
        assert set(body["checks"]) == {
            "database",
            "redis",
            "migrations",
            "outbox",
            "startup",
        }, body  # one process: no media home to reach
        assert set(body["checks"].values()) == {"ok"}, body

        own.kill()
        gone, body = await readiness(client, 503, within_s=2)
        assert body["checks"]["redis"].startswith("unavailable: "), body
        assert body["checks"]["database"] == "ok", body
        assert (await client.get("/healthz")).status == 200  # alive all the same

        await own.start()  # empty: a crash without persistence
        back, body = await readiness(client, 200, within_s=5)
        assert body["checks"]["redis"] == "ok", body
        print(f"redis: not ready after {gone:.2f} s, ready again {back:.2f} s after it")
    finally:
        own.kill()


@pytest.mark.parametrize("backend", ["postgres-redis"])
async def test_not_ready_within_2_s_of_postgres_going_away_and_ready_when_it_is_back(
    own_postgres: OwnPostgres,  # first: stopped after the app
    settings: Settings,
    aiohttp_client: Any,
    backend: str,
) -> None:
    # in a schema of its own: the revision is read where the app's tables are
    settings = settings.model_copy(
        update={"database_url": own_postgres.url, "database_schema": "ready", "db_pool_size": 4}
    )
    client = await aiohttp_client(create_app(settings))
    _, body = await readiness(client, 200, within_s=10)
    assert body["checks"]["database"] == body["checks"]["migrations"] == "ok", body

    await asyncio.to_thread(own_postgres.halt)
    gone, body = await readiness(client, 503, within_s=2)
    assert body["checks"]["database"].startswith("unavailable: "), body
    assert body["checks"]["migrations"].startswith("unavailable: "), body
    assert (await client.get("/healthz")).status == 200

    await asyncio.to_thread(own_postgres.start)
    back, body = await readiness(client, 200, within_s=5)
    assert body["checks"]["database"] == body["checks"]["migrations"] == "ok", body
    print(f"postgres: not ready after {gone:.2f} s, ready again {back:.2f} s after it")


async def test_a_database_behind_the_code_is_not_ready_until_migrated(
    settings: Settings, aiohttp_client: Any
) -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_revision("head")
    assert head is not None and isinstance(head.down_revision, str)
    previous = head.down_revision
    db = await database_at(settings, previous)
    try:
        client = await aiohttp_client(
            create_app(settings.model_copy(update={"auto_migrate": False}))
        )
        _, body = await readiness(client, 503, within_s=5)
        migrations = body["checks"]["migrations"]
        assert migrations == f"behind: at {previous}, code needs {head.revision}", body
        assert body["checks"]["database"] == "ok", body

        await migrate(db, "upgrade", "head")
        _, body = await readiness(client, 200, within_s=5)
        assert body["checks"]["migrations"] == "ok", body
    finally:
        await db.dispose()


async def test_a_worker_is_not_ready_while_the_media_home_does_not_answer(
    shared: Settings, tmp_path: Path
) -> None:
    port, media_port = free_port(), free_port_run(2)
    env = workers_env(shared, tmp_path, media_port)
    home_url, other_url = (f"http://127.0.0.1:{media_port + i}" for i in range(2))
    with open(tmp_path / "server.log", "wb") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "app.py", "--workers", "2", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    home_pid = None
    try:
        pids = await wait_for_workers(supervisor, f"http://127.0.0.1:{port}", port, 2)
        homes = [pid for pid, n in sockets_on(pids, media_port, "0A").items() if n]
        assert len(homes) == 1, homes
        home_pid = homes[0]
        async with (
            aiohttp.ClientSession(base_url=home_url) as home,
            aiohttp.ClientSession(base_url=other_url) as other,
        ):
            _, body = await readiness(home, 200, within_s=15)
            assert "media" not in body["checks"], body  # the home reaches itself
            _, body = await readiness(other, 200, within_s=15)
            assert body["checks"]["media"] == "ok", body

            os.kill(home_pid, signal.SIGSTOP)
            gone, body = await readiness(other, 503, within_s=5)
            assert body["checks"]["media"].startswith("unavailable: "), body
            assert body["checks"]["database"] == "ok", body

            os.kill(home_pid, signal.SIGCONT)
            back, body = await readiness(other, 200, within_s=5)
            assert body["checks"]["media"] == "ok", body
        print(f"media home: not ready after {gone:.2f} s, ready again {back:.2f} s after it")
    finally:
        if home_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(home_pid, signal.SIGCONT)
        code = stop(supervisor)
    assert code == 0, (tmp_path / "server.log").read_text()[-3000:]


async def test_probes_do_not_read_a_token(client: TestClient[Any, Any]) -> None:
    """A probe's answer never depends on a token sent along (checking one may need
    Redis): a bad one is not a 401 there, while the API refuses it."""
    bad = {"Authorization": "Bearer not-a-token"}
    for path in ("/healthz", "/readyz"):
        response = await client.get(path, headers=bad)
        assert response.status == 200, (path, await response.text())
    assert (await client.get("/api/sessions", headers=bad)).status == 401
