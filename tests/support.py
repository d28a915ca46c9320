"""Helpers shared by the tests: an API client wrapper and backend settings."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl as ssl_module
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient
from alembic import command
from multidict import CIMultiDictProxy
from redis.asyncio import Redis
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from templates import Templates

from app import Settings, accounts_key
from live.db import Database, alembic_config
from live.guests import GUEST_COOKIE, GuestIds
from live.models import Role
from live.openapi import AnswerChecker
from live.roomlog import RoomLog

TEST_SECRET = "test-secret-0123456789abcdef-0123456789"
#: Names every PostgreSQL schema and Redis key this pytest run makes; dropped at its end.
RUN_TAG = uuid.uuid4().hex[:6]
BACKENDS = ("sqlite-memory", "postgres-redis")
#: the migrated databases tests start from (closed by conftest at the end of the run)
TEMPLATES = Templates(Path(tempfile.mkdtemp(prefix="liveshelf-")), f"t_{RUN_TAG}_template")


def backend_settings(backend: str, tmp_path: Path, *, migrated: bool = True) -> Settings:
    """Settings for one test on one backend, isolated by file, schema and key prefix;
    its database is at the newest revision already unless not ``migrated``
    (``tests/templates.py``)."""
    base = Settings(
        secret=TEST_SECRET,
        auto_migrate=True,
        password_time_cost=1,
        password_memory_kib=1024,
        presence_interval_s=0.2,
        outbox_poll_s=0.2,
        recordings_dir=tmp_path / "recordings",
        # many clients from 127.0.0.1: the limits have their own tests (test_guard.py)
        limits=False,
    )
    if backend == "sqlite-memory":
        settings = base.model_copy(
            update={"database_url": f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"}
        )
        if migrated:
            TEMPLATES.prepare(settings)
        return settings
    database_url = os.environ.get("TEST_DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    if not database_url or not redis_url:
        import pytest

        pytest.skip("postgres-redis backend needs TEST_DATABASE_URL and REDIS_URL (see .ci/run)")
    unique = uuid.uuid4().hex[:10]
    settings = base.model_copy(
        update={
            "database_url": database_url,
            "database_schema": f"t_{RUN_TAG}_{unique}",
            "redis_url": redis_url,
            "redis_prefix": f"test:{RUN_TAG}:{unique}",
        }
    )
    if migrated:
        TEMPLATES.prepare(settings)
    return settings


async def drop_run_state() -> None:
    """Drop every schema and key this run made (its apps have all stopped by then)."""
    database_url = os.environ.get("TEST_DATABASE_URL")
    if database_url:
        engine = create_async_engine(database_url)
        async with engine.connect() as conn:
            result = await conn.exec_driver_sql(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1",
                (f"t\\_{RUN_TAG}\\_%",),
            )
            names = list(result.scalars())
        pending = iter(names)

        async def drop() -> None:
            for name in pending:  # one transaction each: a schema's tables take many locks
                async with engine.begin() as conn:
                    await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')

        await asyncio.gather(*(drop() for _ in range(4)))  # ~450 schemas: 4 at a time
        await engine.dispose()
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        redis = Redis.from_url(redis_url)
        keys = [k async for k in redis.scan_iter(match=f"test:{RUN_TAG}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
        await redis.aclose()


@dataclass
class Account:
    id: int
    username: str
    role: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    """Thin helpers over the test client for the calls most tests make."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self._n = 0

    async def signup(self, role: str, username: str | None = None) -> Account:
        self._n += 1
        username = username or f"{role}{self._n}-{uuid.uuid4().hex[:6]}"
        res = await self.client.post(
            "/api/auth/signup",
            json={"username": username, "password": "correct horse", "role": role},
        )
        assert res.status == 201, await res.text()
        body = await res.json()
        return Account(body["user"]["id"], username, role, body["token"])

    async def call(
        self,
        method: str,
        path: str,
        account: Account | None = None,
        *,
        json: Any = None,
        expect: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        all_headers = dict(account.headers if account else {})
        all_headers.update(headers or {})
        res = await self.client.request(method, path, json=json, headers=all_headers)
        text = await res.text()
        if expect is not None:
            assert res.status == expect, f"{method} {path}: {res.status} {text}"
        return await res.json() if text and res.content_type == "application/json" else text

    async def live_session(self, host: Account, title: str = "Test show") -> dict[str, Any]:
        created = await self.call("POST", "/api/sessions", host, json={"title": title}, expect=201)
        return dict(
            await self.call("POST", f"/api/sessions/{created['id']}/start", host, expect=200)
        )


async def admin(api: Api) -> Account:
    """A new admin account (made directly: nobody may sign up as one), signed in."""
    name = f"admin-{uuid.uuid4().hex[:6]}"
    await api.client.app[accounts_key].create(name, "admin-password", Role.ADMIN)
    res = await api.client.post(
        "/api/auth/login", json={"username": name, "password": "admin-password"}
    )
    body = await res.json()
    return Account(body["user"]["id"], name, "admin", body["token"])


async def drop_backend_state(settings: Settings) -> None:
    """Remove the test's PostgreSQL schema and Redis keys, so runs never see each other."""
    if settings.database_schema:
        engine = create_async_engine(settings.database_url)
        async with engine.begin() as conn:
            await conn.exec_driver_sql(
                f'DROP SCHEMA IF EXISTS "{settings.database_schema}" CASCADE'
            )
        await engine.dispose()
    if settings.redis_url:
        redis = Redis.from_url(settings.redis_url)
        keys = [
            key async for key in redis.scan_iter(match=f"{settings.redis_prefix}:*", count=1000)
        ]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


def sqlite_server(tmp_path: Path, port: int, **settings: str) -> subprocess.Popen[bytes]:
    """``python app.py --port port`` on a SQLite file of its own (migrated first), no
    Redis, its standard error in ``tmp_path/server.log``; ``settings`` add or replace
    ``LIVESHELF_*`` variables (access log off unless given)."""
    env = {
        **os.environ,
        "LIVESHELF_SECRET": TEST_SECRET,
        "LIVESHELF_LIMITS": "off",
        "LIVESHELF_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'server.db'}",
        "LIVESHELF_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "LIVESHELF_ICE_ADDRESSES": "127.0.0.1",
        "LIVESHELF_ACCESS_LOG": "off",
        **settings,
    }
    for key in ("REDIS_URL", "LIVESHELF_DATABASE_SCHEMA"):
        env.pop(key, None)
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "app.py", "migrate"], cwd=root, env=env, check=True)
    with (tmp_path / "server.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_run(n: int) -> int:
    """A port p such that p .. p + n - 1 are all free now (several workers' ports)."""
    for _ in range(50):
        base = free_port()
        try:
            for port in range(base, base + n):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no run of free ports")


async def wait_until_up(
    base: str,
    proc: subprocess.Popen[bytes],
    *,
    within_s: float = 15,
    ssl: ssl_module.SSLContext | None = None,
) -> None:
    """Poll ``base`` until the server process answers (it must not exit meanwhile);
    ``ssl``: what an ``https`` base is trusted with."""
    async with aiohttp.ClientSession() as http:
        for _ in range(int(within_s / 0.05)):
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                async with http.get(f"{base}/api/sessions", ssl=ssl or True) as res:
                    if res.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{base} did not come up")


@dataclass
class Posted:
    """A 201 answer to a WHIP/WHEP POST (``HasAnswer`` for the aiortc clients)."""

    answer_sdp: str
    location: str
    etag: str
    headers: CIMultiDictProxy[str]


def guest_cookie() -> dict[str, str]:
    """The ``Cookie`` header of a new guest's browser (``live.guests``): viewers without
    a guest cookie from one address count as one person."""
    return {"Cookie": f"{GUEST_COOKIE}={GuestIds(TEST_SECRET).issue()}"}


def poster(
    client: TestClient[Any, Any] | aiohttp.ClientSession,
    path: str,
    who: Account | str | None = None,
    extra: dict[str, str] | None = None,
) -> Callable[[str], Any]:
    """An ``Exchange`` for the aiortc clients: POST the offer over HTTP (a test client,
    or a session with a base URL), with ``who``'s bearer token (an account or a token)
    and the ``extra`` headers (e.g. ``guest_cookie()``)."""
    token = who.token if isinstance(who, Account) else who

    async def exchange(offer: str) -> Posted:
        headers = {"Content-Type": "application/sdp", **(extra or {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        res = await client.post(path, data=offer, headers=headers)
        body = await res.text()
        assert res.status == 201, body
        return Posted(body, res.headers["Location"], res.headers["ETag"], res.headers)

    return exchange


async def room_events(room_log: RoomLog, session_id: int) -> list[dict[str, Any]]:
    """Every event of the room's current epoch, decoded."""
    position = await room_log.position(session_id)
    raws = await room_log.read_since(session_id, 0, position.epoch)
    assert raws is not None
    return [orjson.loads(raw) for raw in raws]


async def database_at(settings: Settings, revision: str) -> Database:
    """The test's database emptied, then migrated up to ``revision`` only (a migration's
    own test fills it, then moves on with ``migrate``). The caller disposes of it."""
    db = Database(settings.database_url, schema=settings.database_schema)
    if schema := settings.database_schema:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    elif db.is_sqlite:
        path = Path(make_url(settings.database_url).database or "")
        for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
    await migrate(db, "upgrade", revision)
    return db


async def migrate(db: Database, direction: str, revision: str) -> None:
    """Alembic ``upgrade`` or ``downgrade`` of ``db`` to ``revision``."""

    def run(connection: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        getattr(command, direction)(cfg, revision)

    async with db.engine.begin() as conn:
        await conn.run_sync(run)


def checked(app: web.Application) -> Iterator[web.Application]:
    """``app`` with every successful JSON answer held to its route's OpenAPI entry, and
    every JSON body read with the documented model (``live.openapi.AnswerChecker``); a
    test whose answers break the document fails. For ``app`` fixtures:
    ``yield from checked(create_app(...))``."""
    checker = AnswerChecker()
    app.middlewares.append(checker.middleware)
    yield app
    assert not checker.mismatches, "answers that break the OpenAPI document:\n" + "\n".join(
        checker.mismatches
    )
