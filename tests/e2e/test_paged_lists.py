"""Pages that read paged lists fetch every page (``static/js/api.js`` ``apiAll``), in
real Chromium: the brand console lists a catalogue of more than one page (50 products
a page at most), and the studio's catalogue holds the products of more agreements than
one page carries (100)."""

from __future__ import annotations

from typing import Any

import aiohttp
from browser_support import call, open_page, signup
from playwright.async_api import expect

TIMEOUT_MS = 10_000


async def product(http: aiohttp.ClientSession, brand: dict[str, Any], n: int) -> int:
    body = {
        "title": f"Item {n}",
        "price_minor": 100 + n,
        "currency": "EUR",
        "stock": 5,
        "commission_bps": 1000,
    }
    return int((await call(http, "POST", "/api/products", brand, body, 201))["id"])


async def test_the_brand_console_lists_every_page(browser: Any, base_url: str) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        brand = await signup(http, "brand")
        ids = [await product(http, brand, n) for n in range(120)]
        await call(http, "POST", f"/api/products/{ids[0]}/archive", brand)
        async with open_page(browser, brand, viewport={"width": 1280, "height": 900}) as (
            page,
            errors,
        ):
            await page.goto(f"{base_url}/brand")
            rows = page.locator("#products tbody tr[data-product-id]")
            await expect(rows).to_have_count(119, timeout=TIMEOUT_MS)
            await page.get_by_label("Show archived").check()
            await expect(rows).to_have_count(120, timeout=TIMEOUT_MS)
            checks = page.get_by_role("group", name="products to propose").locator("input")
            await expect(checks).to_have_count(119, timeout=TIMEOUT_MS)
            assert errors == []


async def test_the_studio_catalogue_reads_every_agreement(browser: Any, base_url: str) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        for n in range(105):
            pid = await product(http, brand, n)
            body = {"host_id": host["id"], "product_ids": [pid], "commission_bps": 1000}
            coop = await call(http, "POST", "/api/cooperations", brand, body, 201)
            await call(http, "POST", f"/api/cooperations/{coop['id']}/accept", host)
        show = await call(http, "POST", "/api/sessions", host, {"title": "Many"}, 201)
        async with open_page(browser, host, viewport={"width": 1280, "height": 900}) as (
            page,
            errors,
        ):
            await page.goto(f"{base_url}/studio?session={show['id']}")
            await expect(page.locator("#catalogue li")).to_have_count(105, timeout=TIMEOUT_MS)
            assert errors == []
