"""Accessibility of the home page and the studio (issue 21 item 8): axe-core finds no
serious or critical violation at desktop and phone sizes, and the studio fits a
390 px phone without sideways scrolling (real Chromium, real server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from browser_support import call, open_page, say_in_chat, shelved_product, signup
from playwright.async_api import Page, expect

SIZES: dict[str, dict[str, Any]] = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True},
}


async def serious(page: Page) -> list[tuple[str, str, list[Any]]]:
    """axe-core's serious and critical violations on the page, with a few nodes each."""
    from axe_playwright_python.async_playwright import (  # type: ignore[import-untyped, unused-ignore]
        Axe,
    )

    results = await Axe().run(page)
    return [
        (v["id"], v["impact"], [(n["target"], n["failureSummary"]) for n in v["nodes"]][:5])
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def overflow(page: Page) -> int:
    """How far the page is wider than the window (0: no sideways scrolling)."""
    width: int = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    return width


async def _shows(http: aiohttp.ClientSession) -> tuple[dict[str, Any], dict[str, Any]]:
    """A host with a live show (a product on its shelf, pinned, a chat line), a
    scheduled one and an ended one."""
    host, brand = await signup(http, "host"), await signup(http, "brand")
    viewer = await signup(http, "viewer")
    live = await call(http, "POST", "/api/sessions", host, {"title": "Tea time live"}, 201)
    await call(http, "POST", f"/api/sessions/{live['id']}/start", host)
    mug = await shelved_product(http, host, brand, live["id"], title="Stoneware mug")
    await call(http, "POST", f"/api/sessions/{live['id']}/pin", host, {"product_id": mug["id"]})
    await say_in_chat(http, live["id"], viewer, "Hello from the audience")
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    await call(
        http, "POST", "/api/sessions", host, {"title": "Tomorrow", "scheduled_at": later}, 201
    )
    old = await call(http, "POST", "/api/sessions", host, {"title": "Last week"}, 201)
    await call(http, "POST", f"/api/sessions/{old['id']}/start", host)
    await call(http, "POST", f"/api/sessions/{old['id']}/end", host)
    return host, live


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_home_and_studio_have_no_serious_violations(
    browser: Any, base_url: str, tmp_path: Path, size: str
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, live = await _shows(http)

    async with open_page(browser, None, **SIZES[size]) as (page, errors):
        await page.goto(f"{base_url}/")
        await expect(page.get_by_test_id("live-sessions")).to_contain_text("Tea time live")
        await expect(page.get_by_test_id("upcoming-sessions")).to_contain_text("Tomorrow")
        await page.wait_for_timeout(300)
        await page.screenshot(path=str(tmp_path / f"home-{size}.png"), full_page=True)
        assert await serious(page) == []
        assert errors == []

    async with open_page(browser, host, **SIZES[size]) as (page, errors):
        await page.goto(f"{base_url}/studio?session={live['id']}")
        shelf = page.get_by_test_id("studio-shelf")
        await expect(shelf).to_contain_text("Stoneware mug")
        await expect(page.locator("#chat-list")).to_contain_text("Hello from the audience")
        await page.wait_for_timeout(300)
        await page.screenshot(path=str(tmp_path / f"studio-{size}.png"), full_page=True)
        assert await serious(page) == []
        if size == "phone":
            assert await overflow(page) <= 0
        assert errors == []
