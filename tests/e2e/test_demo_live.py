"""``python app.py --demo`` in real Chromium: the demo show's watch page plays the
built-in publisher's test picture at once, with no host action (``media.demo_publisher``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from browser_support import open_page
from playwright.async_api import expect
from support import backend_settings, free_port

from app import Settings

#: frames the page's <video> presented, counted with requestVideoFrameCallback
COUNT_FRAMES = """() => {
    const video = document.querySelector('video');
    window.presented = 0;
    const count = () => { window.presented += 1; video.requestVideoFrameCallback(count); };
    video.requestVideoFrameCallback(count);
}"""


@pytest.fixture
def settings(backend: str, tmp_path: Path) -> Settings:
    # the publisher posts to the server's own port: the server listens where it says
    demo = {"demo": True, "port": free_port()}
    return backend_settings(backend, tmp_path).model_copy(update=demo)


@pytest.fixture
async def base_url(aiohttp_server: Any, app: web.Application, settings: Settings) -> str:
    server = await aiohttp_server(app, host="127.0.0.1", port=settings.port)
    return f"http://127.0.0.1:{server.port}"


async def test_the_demo_watch_page_plays_with_no_host_action(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with open_page(browser, None) as (page, errors):
        await page.goto(f"{base_url}/watch/1")
        await expect(page.get_by_test_id("live-badge")).to_have_text("LIVE")
        await page.evaluate(COUNT_FRAMES)
        deadline = time.monotonic() + 20
        presented = 0
        while presented < 30 and time.monotonic() < deadline:
            await page.wait_for_timeout(200)
            presented = await page.evaluate("window.presented")
        assert presented >= 30, f"only {presented} frames presented"
        size = await page.evaluate(
            "(v => [v.videoWidth, v.videoHeight])(document.querySelector('video'))"
        )
        assert size == [640, 480]
        await page.screenshot(path=str(artifacts / "demo-watch.png"))
        assert errors == []
