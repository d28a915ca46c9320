"""Fixtures: the real app on each backend (SQLite + in-memory bus, PostgreSQL + Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import netns
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from netns import LoopbackNamespace
from support import (
    BACKENDS,
    TEMPLATES,
    Api,
    backend_settings,
    checked,
    drop_backend_state,
    drop_run_state,
)

from app import Settings, create_app

pytest_plugins = ["loopback_guard"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session", autouse=True)
def _drop_run_state() -> Iterator[None]:
    """Each test has its own schema and key prefix; they are dropped when the run ends,
    after every app has stopped (dropping them per test raced the app's shutdown)."""
    yield
    TEMPLATES.close()
    asyncio.run(drop_run_state())


@pytest.fixture
def settings(backend: str, tmp_path: Path) -> Settings:
    return backend_settings(backend, tmp_path)


@pytest.fixture
def app(settings: Settings) -> Iterator[web.Application]:
    """The app, its answers held to the OpenAPI document (``support.checked``)."""
    yield from checked(create_app(settings))


@pytest.fixture
async def client(aiohttp_client: Any, app: web.Application) -> TestClient[Any, Any]:
    return await aiohttp_client(app)  # type: ignore[no-any-return]


@pytest.fixture
def api(client: TestClient[Any, Any]) -> Api:
    return Api(client)


@pytest.fixture
async def shared(tmp_path: Path) -> AsyncIterator[Settings]:
    """PostgreSQL + Redis settings for tests that start server processes of their own
    (their schema and keys are dropped afterwards); the servers migrate it."""
    settings = backend_settings("postgres-redis", tmp_path, migrated=False)
    yield settings
    await drop_backend_state(settings)


@pytest.fixture(scope="session")
def loopback_namespace() -> Iterator[LoopbackNamespace]:
    """One loopback-only network namespace for the run (tests/netns.py)."""
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(
            f"WebRTC with a browser or GStreamer stays on 127.0.0.0/8 only in a "
            f"network namespace: {reason}"
        )
    namespace = LoopbackNamespace()
    yield namespace
    namespace.close()


@pytest.fixture
def loopback_only(loopback_namespace: LoopbackNamespace) -> Iterator[None]:
    """The test runs in a network namespace whose only interface is ``lo``; request it
    before any fixture that opens a socket, and use the ``sqlite-memory`` backend
    (PostgreSQL and Redis on the host are out of reach from there)."""
    with loopback_namespace.entered():
        yield
