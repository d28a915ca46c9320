"""The studio's shows in real Chromium: scheduling a show in the viewer's time zone
(stored UTC) and editing it until it starts; the lists of live, scheduled and ended
shows with their numbers and working stats and replay links; the end of a show (every
camera and microphone track stopped, what no longer applies disabled with the reason,
a summary equal to the reports); and the home page's Replays section."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from browser_support import call, open_page, shelved_product, signup
from playwright.async_api import Page, expect

TIMEOUT_MS = 8000

#: every track getUserMedia hands the page, kept where the test can read them
RECORD_TRACKS = """(() => {
    window.__tracks = [];
    const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
    navigator.mediaDevices.getUserMedia = async (constraints) => {
        const stream = await real(constraints);
        window.__tracks.push(...stream.getTracks());
        return stream;
    };
})();"""


def euros(minor: int) -> str:
    return f"€{minor / 100:,.2f}"


async def until(page: Page, expression: str, timeout_s: float = 8) -> None:
    """Polls ``expression`` (a function) in the page until it is true; the pages'
    Content-Security-Policy refuses ``wait_for_function``'s eval."""
    for _ in range(int(timeout_s * 10)):
        if await page.evaluate(expression):
            return
        await page.wait_for_timeout(100)
    raise AssertionError(f"still false after {timeout_s} s: {expression}")


async def host_sessions(http: aiohttp.ClientSession, host: dict[str, Any]) -> list[Any]:
    return list((await call(http, "GET", f"/api/sessions?host_id={host['id']}"))["sessions"])


async def test_schedule_and_edit_a_show_in_the_viewers_time_zone(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host = await signup(http, "host")
        async with open_page(
            browser,
            host,
            viewport={"width": 1280, "height": 900},
            locale="en-US",
            timezone_id="Asia/Tokyo",
        ) as (page, errors):
            await page.goto(f"{base_url}/studio")
            await expect(page.get_by_test_id("shows-scheduled")).to_contain_text(
                "No scheduled shows", timeout=TIMEOUT_MS
            )

            # A past date is refused with its code, and nothing is created.
            await page.get_by_label("new show title").fill("Autumn knits")
            await page.get_by_label("new show start").fill("2020-01-01T10:00")
            await page.get_by_role("button", name="Create").click()
            await expect(page.get_by_test_id("sessions-error")).to_contain_text(
                "Pick a start time in the future.", timeout=TIMEOUT_MS
            )
            assert await host_sessions(http, host) == []

            # 20:00 in Tokyo is 11:00 UTC; the list shows it in Tokyo time.
            await page.get_by_label("new show start").fill("2099-05-01T20:00")
            await page.get_by_role("button", name="Create").click()
            await expect(page.locator("#ws-title")).to_have_text("Autumn knits", timeout=TIMEOUT_MS)
            (show,) = await host_sessions(http, host)
            assert show["scheduled_at"] == "2099-05-01T11:00:00.000Z"
            item = page.get_by_test_id("shows-scheduled").locator(f"[data-show-id='{show['id']}']")
            await expect(item).to_contain_text("Autumn knits")
            await expect(item).to_contain_text("May 1, 2099")
            await expect(item).to_contain_text("08:00 PM")
            await expect(page.get_by_test_id("ws-when")).to_contain_text("08:00 PM")

            # Edit the title and the time; then a past time is refused, nothing changes.
            form = page.get_by_test_id("edit-session")
            await expect(page.get_by_label("show start", exact=True)).to_have_value(
                "2099-05-01T20:00"
            )
            await page.get_by_label("show title", exact=True).fill("Autumn knits, live")
            await page.get_by_label("show start", exact=True).fill("2099-05-02T09:30")
            await form.get_by_role("button", name="Save").click()
            await expect(form).to_contain_text("Saved.", timeout=TIMEOUT_MS)
            edited = await call(http, "GET", f"/api/sessions/{show['id']}")
            assert (edited["title"], edited["scheduled_at"]) == (
                "Autumn knits, live",
                "2099-05-02T00:30:00.000Z",
            )
            await expect(item).to_contain_text("Autumn knits, live")
            await expect(item).to_contain_text("09:30 AM")
            await page.get_by_label("show start", exact=True).fill("2021-05-02T09:30")
            await form.get_by_role("button", name="Save").click()
            await expect(page.get_by_test_id("edit-error")).to_contain_text(
                "Pick a start time in the future.", timeout=TIMEOUT_MS
            )
            assert await call(http, "GET", f"/api/sessions/{show['id']}") == edited
            await page.screenshot(path=str(artifacts / "scheduled.png"), full_page=True)

            # Once it started, the form goes away and an edit is refused with a code.
            await call(http, "POST", f"/api/sessions/{show['id']}/start", host)
            await expect(form).to_be_hidden(timeout=TIMEOUT_MS)
            live_list = page.get_by_test_id("shows-live")
            await expect(live_list.locator(f"[data-show-id='{show['id']}']")).to_be_visible(
                timeout=TIMEOUT_MS
            )
            refused = await call(
                http, "PATCH", f"/api/sessions/{show['id']}", host, {"title": "late"}, 409
            )
            assert refused["error"]["code"] == "session_started"
            assert errors == []


async def wait_for_replay(http: aiohttp.ClientSession, session_id: int) -> None:
    """The ended show's recording is finished (the MP4 copy, for H.264, written)."""
    for _ in range(75):
        detail = await call(http, "GET", f"/api/sessions/{session_id}")
        if detail["recording"]["state"] == "complete":
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"no complete recording: {detail['recording']}")


async def numbers_in_list(page: Page, status: str, session_id: int) -> Any:
    return page.get_by_test_id(f"shows-{status}").locator(f"[data-show-id='{session_id}']")


async def test_the_end_of_a_show_releases_media_and_sums_it_up(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        viewer = await signup(http, "viewer")
        show = await call(http, "POST", "/api/sessions", host, {"title": "Mugs live"}, 201)
        sid = show["id"]
        mug = await shelved_product(http, host, brand, sid, title="Ceramic mug")
        later = await call(
            http,
            "POST",
            "/api/sessions",
            host,
            {"title": "Teapots next year", "scheduled_at": "2099-01-10T18:00:00Z"},
            201,
        )
        past = await call(http, "POST", "/api/sessions", host, {"title": "Quiet one"}, 201)
        await call(http, "POST", f"/api/sessions/{past['id']}/start", host)
        await call(http, "POST", f"/api/sessions/{past['id']}/end", host)

        async with open_page(
            browser, host, viewport={"width": 1280, "height": 1000}, locale="en-US"
        ) as (page, errors):
            await page.add_init_script(RECORD_TRACKS)
            await page.goto(f"{base_url}/studio?session={sid}")
            await expect(page.get_by_test_id("shows-ended")).to_contain_text(
                "Quiet one", timeout=TIMEOUT_MS
            )
            await expect(page.get_by_test_id("shows-scheduled")).to_contain_text(
                "Teapots next year"
            )
            await expect(await numbers_in_list(page, "scheduled", later["id"])).to_contain_text(
                "Jan"
            )

            # Live from the fake camera; a viewer buys two mugs.
            await page.get_by_test_id("go-live").click()
            await expect(page.get_by_test_id("publish-state")).to_have_text(
                "Streaming", timeout=10000
            )
            live_item = await numbers_in_list(page, "live", sid)
            await expect(live_item).to_contain_text("Mugs live", timeout=TIMEOUT_MS)
            await expect(live_item.locator("a[data-link='stats']")).to_have_attribute(
                "href", f"/studio/{sid}/stats"
            )
            await call(
                http,
                "POST",
                f"/api/sessions/{sid}/orders",
                viewer,
                {"product_id": mug["id"], "quantity": 2},
                201,
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            await expect(page.get_by_test_id("n-orders")).to_have_text("1", timeout=TIMEOUT_MS)
            tracks = await page.evaluate("() => window.__tracks.map((t) => t.readyState)")
            assert len(tracks) >= 2 and set(tracks) == {"live"}, tracks

            # End show: every track stopped, the controls off with the reason, a summary.
            page.once("dialog", lambda dialog: dialog.accept())
            await page.get_by_role("button", name="End show").click()
            summary = page.get_by_test_id("show-summary")
            await expect(summary).to_be_visible(timeout=TIMEOUT_MS)
            await until(
                page,
                "() => window.__tracks.length >= 2"
                " && window.__tracks.every((t) => t.readyState === 'ended')",
            )
            assert await page.evaluate("() => document.querySelector('#preview').srcObject") is None
            assert await page.evaluate("() => window.liveshelfStudio.publisher()") is None

            reasons = page.get_by_test_id("closed-reason")
            await expect(reasons).to_have_count(4)
            for i in range(4):
                await expect(reasons.nth(i)).to_be_visible()
                await expect(reasons.nth(i)).to_contain_text("The show has ended")
            go_live = page.get_by_test_id("go-live")
            await expect(go_live).to_be_disabled()
            await expect(go_live).to_have_attribute("title", re.compile("camera and microphone"))
            pin = page.locator(f'#shelf-list [data-product-id="{mug["id"]}"] [data-action="pin"]')
            await expect(pin).to_be_disabled()
            await expect(pin).to_have_attribute(
                "title", "The show has ended: products can no longer be pinned."
            )
            await expect(page.locator("#flash-form button[type='submit']")).to_be_disabled()
            await expect(page.locator("#flash-price")).to_be_disabled()
            await expect(page.get_by_label("chat message")).to_be_disabled()
            await expect(page.get_by_test_id("publish-state")).to_have_text("This show has ended.")

            # The summary's figures are the reports' own.
            await expect(page.get_by_test_id("sum-orders")).to_have_text("1", timeout=TIMEOUT_MS)
            stats = await call(http, "GET", f"/api/sessions/{sid}/stats", host)
            report = await call(
                http, "GET", f"/api/hosts/{host['id']}/commission?session_id={sid}", host
            )
            (row,) = report["rows"]
            assert (row["orders"], row["gmv_minor"], row["currency"]) == (1, 3998, "EUR")
            await expect(page.get_by_test_id("sum-viewers")).to_have_text(
                str(stats["audience"]["viewers"])
            )
            await expect(page.get_by_test_id("sum-gmv")).to_have_text(euros(row["gmv_minor"]))
            await expect(page.get_by_test_id("sum-commission")).to_have_text(
                euros(row["commission_total_minor"])
            )
            await expect(page.get_by_test_id("sum-stats")).to_have_attribute(
                "href", f"/studio/{sid}/stats"
            )
            await expect(page.get_by_test_id("sum-replay")).to_have_attribute(
                "href", f"/replay/{sid}"
            )

            # The list: the show moved to the ended ones, with its numbers and links.
            ended_item = await numbers_in_list(page, "ended", sid)
            await expect(ended_item.get_by_test_id("show-numbers")).to_have_text(
                f"{stats['audience']['viewers']} viewers · 1 orders · €39.98 GMV",
                timeout=TIMEOUT_MS,
            )
            await expect(page.get_by_test_id("shows-live")).to_contain_text("No live shows")
            await page.screenshot(path=str(artifacts / "ended.png"), full_page=True)

            # The stats link opens the show's stats with its data.
            await ended_item.locator("a[data-link='stats']").click()
            await page.wait_for_url(f"{base_url}/studio/{sid}/stats")
            kpis = page.get_by_test_id("kpis")
            await expect(kpis).to_contain_text("peak viewers", timeout=TIMEOUT_MS)
            await expect(
                page.get_by_test_id("chart-viewers").locator(".main-svg").first
            ).to_be_visible()

            # The replay link plays the recording.
            await wait_for_replay(http, sid)
            await page.go_back()
            ended_item = await numbers_in_list(page, "ended", sid)
            await ended_item.locator("a[data-link='replay']").click()
            await page.wait_for_url(f"{base_url}/replay/{sid}")
            await expect(page.locator("#title")).to_have_text("Mugs live", timeout=TIMEOUT_MS)
            await until(page, "() => document.querySelector('#video').videoWidth > 0")
            assert errors == []

        # The home page's Replays: the recorded show (not the one without a recording),
        # and its card opens the replay.
        async with open_page(browser, None, locale="en-US") as (home, home_errors):
            await home.goto(f"{base_url}/")
            replays = home.get_by_test_id("replay-sessions")
            card = replays.locator(f"a[data-session-id='{sid}']")
            await expect(card).to_have_attribute("href", f"/replay/{sid}", timeout=TIMEOUT_MS)
            await expect(card).to_contain_text("Mugs live")
            await expect(replays).not_to_contain_text("Quiet one")
            await expect(home.get_by_test_id("live-sessions")).not_to_contain_text("Mugs live")
            await home.screenshot(path=str(artifacts / "home-replays.png"), full_page=True)
            await card.click()
            await home.wait_for_url(f"{base_url}/replay/{sid}")
            await expect(home.locator("#title")).to_have_text("Mugs live", timeout=TIMEOUT_MS)
            await until(home, "() => document.querySelector('#video').videoWidth > 0")
            assert home_errors == []
