"""A flash sale outside the brand's terms, in real Chromium: the host asks from the
studio, the brand console shows the request (with the count in its title) and the
brand approves one and declines another; the studio hears both answers live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from browser_support import call, open_page, shelved_product, signup
from playwright.async_api import expect

TIMEOUT_MS = 8000
#: half the regular price at least, 5 units a sale at most; beyond that: ask the brand
TERMS = {"flash_min_price_bps": 5000, "flash_max_units": 5, "flash_ask_brand": True}


async def test_the_brand_answers_a_flash_sale_beyond_its_terms(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        show = await call(http, "POST", "/api/sessions", host, {"title": "Evening show"}, 201)
        await call(http, "POST", f"/api/sessions/{show['id']}/start", host)
        mug = await shelved_product(http, host, brand, show["id"], TERMS, title="Mug")
        pot = await shelved_product(http, host, brand, show["id"], TERMS, title="Teapot")
        sales_url = f"/api/sessions/{show['id']}/flash-sales"

        async with (
            open_page(browser, host, viewport={"width": 1280, "height": 900}) as (studio, e1),
            open_page(browser, brand, viewport={"width": 1280, "height": 1000}) as (console, e2),
        ):
            await studio.goto(f"{base_url}/studio?session={show['id']}")
            await expect(studio.get_by_test_id("studio-shelf").locator("li")).to_have_count(2)
            await console.goto(f"{base_url}/brand")
            panel = console.locator("#approvals")
            await expect(panel).to_be_hidden(timeout=TIMEOUT_MS)

            async def ask(product: dict[str, Any], price: str, units: str) -> None:
                await studio.get_by_label("flash product").select_option(str(product["id"]))
                await studio.locator("#flash-price").fill(price)
                await studio.locator("#flash-qty").fill(units)
                await studio.get_by_role("button", name="Start now").click()

            # 5.00 EUR is under the mug's floor (19.99 / 2, rounded up: 10.00).
            await ask(mug, "5.00", "4")
            flash = studio.locator("#flash-list")
            await expect(flash).to_contain_text(
                "waiting for the brand's approval", timeout=TIMEOUT_MS
            )
            assert (await call(http, "GET", sales_url))["flash_sales"] == []  # viewers: nothing
            # 8 units is over the cap of 5.
            await ask(pot, "15.00", "8")
            await expect(studio.get_by_test_id("flash-awaiting")).to_have_count(
                2, timeout=TIMEOUT_MS
            )

            # The console finds both within its polling period, says what is beyond terms.
            requests = panel.locator("li")
            await expect(requests).to_have_count(2, timeout=TIMEOUT_MS)
            await expect(console).to_have_title("(2) Brand console · liveshelf", timeout=TIMEOUT_MS)
            mug_request = requests.filter(has_text="Mug")
            await expect(mug_request).to_contain_text("below your floor of €10.00")
            await expect(requests.filter(has_text="Teapot")).to_contain_text(
                "over your cap of 5 units"
            )
            await console.screenshot(path=str(artifacts / "console.png"), full_page=True)

            await mug_request.get_by_role("button", name="Approve").click()
            await expect(requests).to_have_count(1, timeout=TIMEOUT_MS)
            # The studio hears the approval; the sale starts (it was asked for "now").
            await expect(flash).to_contain_text("€5.00, 4/4 left, ends in", timeout=TIMEOUT_MS)
            await expect(studio.get_by_test_id("flash-awaiting")).to_have_count(1)

            await requests.filter(has_text="Teapot").get_by_role("button", name="Decline").click()
            await expect(panel).to_be_hidden(timeout=TIMEOUT_MS)
            await expect(console).to_have_title("Brand console · liveshelf", timeout=TIMEOUT_MS)
            await expect(studio.locator("#flash-error")).to_contain_text(
                "The brand declined the flash sale of Teapot", timeout=TIMEOUT_MS
            )
            await expect(studio.get_by_test_id("flash-awaiting")).to_have_count(0)
            await studio.screenshot(path=str(artifacts / "studio.png"), full_page=True)

            listed = (await call(http, "GET", sales_url, host))["flash_sales"]
            assert sorted((s["product_id"], s["status"]) for s in listed) == sorted(
                [(mug["id"], "running"), (pot["id"], "declined")]
            )
            assert e1 == [] and e2 == []
