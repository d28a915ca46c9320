"""The home page (/) in real Chromium: live and upcoming sessions as cards linking to
/watch/{id}, ended ones nowhere, and the lists refreshed on a timer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from browser_support import call, open_page, signup
from playwright.async_api import expect

TIMEOUT_MS = 5000


async def test_home_lists_live_and_upcoming(browser: Any, base_url: str, artifacts: Path) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host = await signup(http, "host")
        live = await call(http, "POST", "/api/sessions", host, {"title": "Spring knits"}, 201)
        await call(http, "POST", f"/api/sessions/{live['id']}/start", host)
        soon = await call(
            http,
            "POST",
            "/api/sessions",
            host,
            {"title": "Tea tasting", "scheduled_at": "2099-05-01T18:00:00Z"},
            201,
        )
        later = await call(http, "POST", "/api/sessions", host, {"title": "Later show"}, 201)
        over = await call(http, "POST", "/api/sessions", host, {"title": "Yesterday"}, 201)
        await call(http, "POST", f"/api/sessions/{over['id']}/start", host)
        await call(http, "POST", f"/api/sessions/{over['id']}/end", host)

        async with open_page(
            browser, None, viewport={"width": 390, "height": 844}, locale="en-US"
        ) as (page, errors):
            await page.clock.install()
            await page.goto(f"{base_url}/")
            live_list = page.get_by_test_id("live-sessions")
            upcoming = page.get_by_test_id("upcoming-sessions")

            card = live_list.locator(f"a[data-session-id='{live['id']}']")
            await expect(card).to_have_attribute("href", f"/watch/{live['id']}", timeout=TIMEOUT_MS)
            await expect(card).to_contain_text("Spring knits")
            await expect(card).to_contain_text(f"with {host['username']}")
            await expect(card.locator(".badge.live")).to_have_text("LIVE")
            # No cover yet (nobody streamed): the card falls back to a drawn one.
            await expect(card.locator(".cover-fallback")).to_be_visible(timeout=TIMEOUT_MS)

            soon_card = upcoming.locator(f"a[data-session-id='{soon['id']}']")
            await expect(soon_card).to_have_attribute("href", f"/watch/{soon['id']}")
            await expect(soon_card).to_contain_text("Tea tasting")
            await expect(soon_card).to_contain_text("May")
            await expect(soon_card.locator(".badge.live")).to_have_count(0)
            later_card = upcoming.locator(f"a[data-session-id='{later['id']}']")
            await expect(later_card).to_contain_text("Date to be announced")
            await expect(upcoming.locator("a.card")).to_have_count(2)  # dated one first
            await expect(upcoming.locator("a.card").first).to_contain_text("Tea tasting")
            await expect(live_list.locator("a.card")).to_have_count(1)
            await expect(page.get_by_text("Yesterday")).to_have_count(0)

            await expect(page.locator("header.top nav a[href='/studio']")).to_be_visible()
            await expect(page.locator("header.top nav a[href='/brand']")).to_be_visible()
            await page.screenshot(path=str(artifacts / "home-phone.png"), full_page=True)

            # The lists refresh by themselves: the scheduled show goes live.
            await call(http, "POST", f"/api/sessions/{later['id']}/start", host)
            await page.clock.run_for(11_000)
            moved = live_list.locator(f"a[data-session-id='{later['id']}']")
            await expect(moved).to_contain_text("LIVE", timeout=TIMEOUT_MS)
            await expect(upcoming.locator("a.card")).to_have_count(1)

            await page.set_viewport_size({"width": 1280, "height": 800})
            await page.screenshot(path=str(artifacts / "home-desktop.png"), full_page=True)
            assert errors == []
