"""The market in real Chromium: a host builds its rate card in the studio (a bad price
is refused in the page and adds nothing) and publishes it; a brand finds the host in
the brand console's creator directory by tag and price, with its verified figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from browser_support import call, open_page, signup
from playwright.async_api import expect

TIMEOUT_MS = 5000


async def test_a_rate_card_made_in_the_studio_is_found_by_a_brand(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        fan = await signup(http, "viewer")
        await call(http, "POST", f"/api/hosts/{host['id']}/follow", fan)
        profile = {"tags": ["beauty"], "region": "FR", "bio": "Skincare live"}
        await call(http, "PUT", "/api/me/creator-profile", host, profile)

        async with open_page(browser, host, viewport={"width": 1280, "height": 900}) as (
            page,
            errors,
        ):
            await page.goto(f"{base_url}/studio")
            card = page.get_by_test_id("rate-card")
            await expect(card.get_by_role("heading", name="Rate card")).to_be_visible(
                timeout=TIMEOUT_MS
            )
            await expect(page.get_by_test_id("rate-card-current")).to_have_text(
                "No rate card published yet.", timeout=TIMEOUT_MS
            )
            form = card.get_by_role("form", name="new service")
            await form.get_by_label("Minutes").fill("15")
            await form.get_by_label("Price").fill("-1")
            await form.get_by_label("Turnaround days").fill("5")
            await form.get_by_role("button", name="Add service").click()
            await expect(page.get_by_test_id("rate-card-error")).to_contain_text(
                "Price must be an amount above zero", timeout=TIMEOUT_MS
            )
            services = page.get_by_test_id("rate-card-services")
            await expect(services.locator("li")).to_have_count(0)
            await form.get_by_label("Price").fill("120.00")
            await form.get_by_label("Description").fill("Pinned, with a demo")
            await form.get_by_role("button", name="Add service").click()
            await form.get_by_label("Service").select_option("shelf_slot")
            await expect(form.get_by_label("Minutes")).to_be_hidden()
            await form.get_by_label("Price").fill("40")
            await form.get_by_role("button", name="Add service").click()
            await expect(services.locator("li")).to_have_count(2)
            await card.get_by_role("button", name="Publish rate card").click()
            await expect(page.get_by_test_id("rate-card-current")).to_contain_text(
                "Version 1 is published", timeout=TIMEOUT_MS
            )
            await page.screenshot(path=str(artifacts / "studio-rate-card.png"), full_page=True)
            assert errors == []

        published = await call(http, "GET", f"/api/hosts/{host['id']}/rate-card")
        assert [(s["kind"], s["minutes"], s["price_minor"]) for s in published["services"]] == [
            ("live_segment", 15, 12_000),
            ("shelf_slot", None, 4_000),
        ]
        assert published["services"][0]["turnaround_days"] == 5

        async with open_page(browser, brand, viewport={"width": 1280, "height": 900}) as (
            page,
            errors,
        ):
            await page.goto(f"{base_url}/brand")
            search = page.get_by_role("form", name="creator search")
            await expect(search).to_be_visible(timeout=TIMEOUT_MS)
            await search.get_by_label("Tag").fill("beauty")
            await search.get_by_label("Currency").fill("EUR")
            await search.get_by_label("Highest price").fill("50")
            await search.get_by_label("Sort").select_option("price")
            await search.get_by_role("button", name="Search").click()
            found = page.get_by_test_id("creator-list").locator("li")
            await expect(found).to_have_count(1, timeout=TIMEOUT_MS)
            await expect(found).to_contain_text(host["user"]["display_name"])
            await expect(found).to_contain_text("self-reported: beauty · FR")
            await expect(found.get_by_test_id("creator-verified")).to_contain_text(
                "Verified (last 30 days): 1 followers"
            )
            await page.screenshot(path=str(artifacts / "brand-creators.png"), full_page=True)
            await search.get_by_label("Tag").fill("gaming")
            await search.get_by_role("button", name="Search").click()
            await expect(found).to_have_text("No creator matches.", timeout=TIMEOUT_MS)
            assert errors == []
