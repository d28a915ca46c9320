"""Real headless Chromium against the real app on 127.0.0.1 (see ../shared/TESTING.md).

Skips with the reason when Chromium or the playwright package is missing; `.ci/run`
installs both. Every browser test runs with its server and browser in a network
namespace whose only interface is loopback (tests/netns.py): Chromium sends ICE checks
from every interface it has, so on the host it would pair from the outside address.
PostgreSQL and Redis are out of reach there, so browser tests run on SQLite and the
in-memory room log; the HTTP and WebSocket behaviour they drive is tested on both
backends elsewhere.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from chromium import CHROMIUM, CHROMIUM_ARGS

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"


@pytest.fixture(autouse=True)
def _loopback_only(loopback_only: None) -> None:
    """Every browser test (and its server) runs in the loopback-only namespace."""


@pytest.fixture
def backend() -> str:
    return "sqlite-memory"


@pytest.fixture
async def base_url(aiohttp_server: Any, app: web.Application) -> str:
    server = await aiohttp_server(app, host="127.0.0.1")
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[test]')")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """A folder for this test's screenshots, kept after the run (test-artifacts/e2e/)."""
    folder = ARTIFACTS / request.node.name.replace("/", "_")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder
