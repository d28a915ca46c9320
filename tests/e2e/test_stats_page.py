"""The stats page in real Chromium: a brand's product title is text on the charts, never
markup (plotly renders a subset of HTML in labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from browser_support import call, open_page, shelved_product, signup
from playwright.async_api import expect

TITLE = '<a href="https://evil.example/">free</a> <b>mug</b>'


async def test_a_product_title_is_text_on_the_charts(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        show = await call(http, "POST", "/api/sessions", host, {"title": "Escapes"}, 201)
        await call(http, "POST", f"/api/sessions/{show['id']}/start", host)
        product = await shelved_product(http, host, brand, show["id"], title=TITLE)
        await call(
            http, "POST", f"/api/sessions/{show['id']}/pin", host, {"product_id": product["id"]}
        )
    async with open_page(browser, host) as (page, errors):
        await page.goto(f"{base_url}/studio/{show['id']}/stats")
        await expect(page.get_by_test_id("pins-table")).to_contain_text(TITLE, timeout=8000)
        chart = page.get_by_test_id("chart-viewers")
        await expect(chart.locator(".main-svg").first).to_be_visible()
        await expect(chart).to_contain_text(TITLE)  # shown as typed
        assert await page.locator("a[href='https://evil.example/']").count() == 0
        assert await page.locator(".main-svg b, .main-svg a").count() == 0
        await page.screenshot(path=str(artifacts / "stats-escaped.png"), full_page=True)
        assert errors == []
