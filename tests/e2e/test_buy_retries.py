"""Buying when the answer is lost (issue 18): the server places the order but the page
gets a 500 (or nothing); the page retries with the same Idempotency-Key and the buyer
is charged exactly once (real Chromium, real server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from browser_support import call, open_page, shelved_product, signup
from playwright.async_api import Route, expect

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


async def test_a_500_after_the_order_was_placed_charges_once(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        viewer = await signup(http, "viewer")
        show = await call(http, "POST", "/api/sessions", host, {"title": "Evening show"}, 201)
        await call(http, "POST", f"/api/sessions/{show['id']}/start", host)
        mug = await shelved_product(http, host, brand, show["id"], stock=5)
        await call(http, "POST", f"/api/sessions/{show['id']}/pin", host, {"product_id": mug["id"]})

        orders = f"**/api/sessions/{show['id']}/orders"
        keys: list[str] = []  # the Idempotency-Key of every attempt, in order

        def losing(answers_lost: int) -> Any:
            """A route handler: every attempt reaches the server (the order is placed),
            but the page is told 500 for the first ``answers_lost`` of them."""

            async def handle(route: Route) -> None:
                keys.append(route.request.headers["idempotency-key"])
                response = await route.fetch()
                if len(keys) <= answers_lost:
                    await route.fulfill(status=500, json={"error": {"code": "internal_error"}})
                else:
                    await route.fulfill(response=response)

            return handle

        async with open_page(browser, viewer, **PHONE) as (page, errors):
            await page.route(orders, losing(1))
            await page.goto(f"{base_url}/watch/{show['id']}")
            card = page.get_by_test_id("product-card")
            await expect(card).to_contain_text("Ceramic mug")
            toast = page.get_by_test_id("toast")
            await page.get_by_test_id("card-buy").click()
            await expect(toast).to_contain_text("confirmed", timeout=8000)
            await page.screenshot(path=str(artifacts / "retried.png"))
            assert len(keys) == 2 and keys[0] == keys[1]  # one purchase, one key

            # Every retry lost: the page says it could not confirm, and the next tap
            # on the same purchase still uses the key of the attempt that got through.
            keys.clear()
            await page.unroute(orders)
            await page.route(orders, losing(1_000))
            await page.get_by_test_id("card-buy").click()
            await expect(toast).to_contain_text("could not confirm", timeout=15000)
            tried = list(keys)
            keys.clear()
            await page.unroute(orders)
            await page.route(orders, losing(0))
            await page.get_by_test_id("card-buy").click()
            await expect(toast).to_contain_text("confirmed", timeout=8000)
            assert len(set(tried)) == 1 and keys == tried[:1]
            assert errors == []

        mine = (await call(http, "GET", "/api/me/orders", viewer))["orders"]
        assert len(mine) == 2  # two purchases, each charged once
        assert (await call(http, "GET", f"/api/products/{mug['id']}"))["stock"] == 3
