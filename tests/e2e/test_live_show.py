"""The whole show in real Chromium: a host goes live from the studio with the fake
camera, a viewer watches over WHEP, the host pins a product, the viewer buys it, and
chat goes both ways. Screenshots of both pages land in test-artifacts/e2e/."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
from browser_support import call, page_errors, shelved_product, sign_in_with_form, signup
from playwright.async_api import Page, expect


async def _frames_decoded(page: Page) -> int:
    return int(
        await page.evaluate(
            """async () => {
                const player = window.liveshelfWatch.player();
                if (!player) return 0;
                let frames = 0;
                (await player.pc.getStats()).forEach((r) => {
                    if (r.type === 'inbound-rtp' && r.kind === 'video') {
                        frames += r.framesDecoded || 0;
                    }
                });
                return frames;
            }"""
        )
    )


async def test_host_goes_live_viewer_watches_buys_and_chats(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host = await signup(http, "host")
        brand = await signup(http, "brand")
        viewer = await signup(http, "viewer")
        product = await shelved_product(http, host, brand)
        show = await call(http, "POST", "/api/sessions", host, {"title": "Mugs live"}, 201)

    studio_ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    watch_ctx = await browser.new_context(viewport={"width": 420, "height": 860})
    studio = await studio_ctx.new_page()
    watch = await watch_ctx.new_page()
    studio_errors, watch_errors = page_errors(studio), page_errors(watch)
    offers: list[Any] = []  # the watch page's WHEP offers
    watch.on("request", lambda r: offers.append(r) if "/whep/" in r.url else None)
    sockets: list[str] = []  # the watch page's room sockets
    watch.on("websocket", lambda ws: sockets.append(ws.url))
    try:
        # The host signs in, opens the show and goes live with the fake camera.
        await studio.goto(f"{base_url}/studio")
        await sign_in_with_form(studio, host)
        await studio.locator(f'[data-session-id="{show["id"]}"]').click()
        await studio.get_by_test_id("go-live").click()
        await expect(studio.get_by_test_id("publish-state")).to_have_text(
            "Streaming", timeout=10000
        )
        await expect(studio.locator("#ws-status")).to_have_text("live", timeout=5000)

        # A viewer opens the shared link and decodes the stream.
        await watch.goto(f"{base_url}/watch/{show['id']}")
        await sign_in_with_form(watch, viewer)
        await expect(watch.get_by_test_id("live-badge")).to_have_text("LIVE", timeout=5000)
        deadline = time.monotonic() + 20
        frames = 0
        while frames < 30 and time.monotonic() < deadline:
            await watch.wait_for_timeout(200)
            frames = await _frames_decoded(watch)
        assert frames >= 30, f"only {frames} frames decoded"
        assert await watch.evaluate("document.querySelector('video').videoWidth") > 0
        # it played from the URL the media endpoint named, whose token stands for the
        # viewer (a browser would drop Authorization on a redirect to another node)
        posts = [r for r in offers if r.method == "POST"]
        assert posts and all(f"/whep/{show['id']}?token=" in r.url for r in posts), posts
        for post in posts:
            assert "authorization" not in await post.all_headers()
        # signed in, the room socket carries a one-minute ticket, never the token
        assert any("ticket=" in url for url in sockets), sockets
        assert not any("token=" in url for url in sockets), sockets
        await expect(studio.locator("#n-viewers")).to_have_text("1", timeout=5000)

        # The host shelves and pins the mug; the card pops up on the watch page in < 1 s.
        await studio.locator(f'#catalogue [data-product-id="{product["id"]}"] button').click()
        pin = studio.locator(f'#shelf-list [data-product-id="{product["id"]}"] [data-action="pin"]')
        await expect(pin).to_be_visible(timeout=5000)
        card = watch.get_by_test_id("product-card")
        await expect(card).to_be_hidden()
        pinned_at = time.monotonic()
        await pin.click()
        await expect(card).to_be_visible(timeout=1000)
        assert time.monotonic() - pinned_at < 1.0
        await expect(card).to_contain_text("Ceramic mug")
        await expect(card).to_contain_text("10 left")

        # The viewer buys two; the studio's numbers show the order and its GMV.
        await watch.get_by_label("quantity").first.fill("2")
        await watch.get_by_test_id("card-buy").click()
        await expect(watch.get_by_test_id("toast")).to_contain_text("confirmed", timeout=5000)
        await expect(watch.get_by_test_id("toast")).to_contain_text("39.98")
        await expect(card).to_contain_text("8 left", timeout=3000)
        await expect(studio.get_by_test_id("n-orders")).to_have_text("1", timeout=5000)
        await expect(studio.get_by_test_id("n-gmv")).to_contain_text("39.98")

        # The viewer follows the host.
        follow = watch.get_by_test_id("follow")
        await expect(follow).to_have_text("Follow · 0")
        await follow.click()
        await expect(follow).to_have_text("Following · 1")

        # Chat both ways.
        await watch.get_by_label("chat message").fill("Is it dishwasher safe?")
        await watch.get_by_label("chat message").press("Enter")
        await expect(studio.get_by_test_id("studio-chat")).to_contain_text(
            "Is it dishwasher safe?", timeout=3000
        )
        await studio.get_by_label("chat message").fill("Yes, it is!")
        await studio.get_by_label("chat message").press("Enter")
        await expect(watch.get_by_test_id("chat-list")).to_contain_text("Yes, it is!", timeout=3000)

        await watch.screenshot(path=str(artifacts / "watch.png"))
        await studio.screenshot(path=str(artifacts / "studio.png"), full_page=True)

        # The stats dashboard: the pin's funnel (the watch page reported seeing and
        # tapping the card) and the charts, refreshing while the show is live.
        stats = await studio_ctx.new_page()
        stats_errors = page_errors(stats)
        await stats.goto(f"{base_url}/studio/{show['id']}/stats")
        pin_row = stats.get_by_test_id("pins-table").locator("tbody tr").first
        await expect(pin_row).to_contain_text("Ceramic mug", timeout=5000)
        cells = pin_row.locator("td")
        await expect(cells.nth(3)).to_have_text("1", timeout=8000)  # saw the card
        await expect(cells.nth(4)).to_have_text("1")  # tapped Buy
        await expect(cells.nth(5)).to_have_text("1")  # ordered
        await expect(cells.nth(7)).to_contain_text("39.98")
        for chart in ("chart-viewers", "chart-retention", "chart-funnel"):
            await expect(stats.get_by_test_id(chart).locator(".main-svg").first).to_be_visible()
        await expect(stats.get_by_test_id("kpis")).to_contain_text("peak viewers")
        # The viewer signed in after the video started: the page claimed its WHEP
        # resource, so the watching counts for the account, not a guest.
        await expect(stats.get_by_test_id("kpis")).to_contain_text("0 / 1 / 0", timeout=8000)
        await stats.screenshot(path=str(artifacts / "stats.png"), full_page=True)
        assert stats_errors == []
        assert studio_errors == [] and watch_errors == []
    finally:
        await studio_ctx.close()
        await watch_ctx.close()
