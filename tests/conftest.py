"""Fixtures: the real app on each backend (SQLite + in-memory bus, PostgreSQL + Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import create_async_engine
from support import BACKENDS, Api, backend_settings

from app import Settings, create_app


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def settings(backend: str, tmp_path: Path) -> AsyncIterator[Settings]:
    settings = backend_settings(backend, tmp_path)
    yield settings
    await drop_backend_state(settings)


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


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_app(settings)


@pytest.fixture
async def client(aiohttp_client: Any, app: web.Application) -> TestClient[Any, Any]:
    return await aiohttp_client(app)  # type: ignore[no-any-return]


@pytest.fixture
def api(client: TestClient[Any, Any]) -> Api:
    return Api(client)
