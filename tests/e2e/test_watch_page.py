"""The watch page without media: guests, flash-sale cards, refusals and resuming the
room channel after the connection drops (real Chromium, real server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from browser_support import (
    call,
    live_show,
    open_page,
    page_errors,
    running_flash_sale,
    say_in_chat,
    shelved_product,
    signed_in_context,
    signup,
)
from playwright.async_api import expect

from app import hub_key
from live.protocol import CloseCode

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


async def test_guest_watches_reads_chat_and_is_asked_to_sign_in(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        show = await live_show(http, host)
        product = await shelved_product(http, host, brand, show["id"])
        await call(
            http, "POST", f"/api/sessions/{show['id']}/pin", host, {"product_id": product["id"]}
        )
        await say_in_chat(http, show["id"], host, "Welcome, everyone!")

    async with open_page(browser, None, **PHONE) as (page, errors):
        await page.goto(f"{base_url}/watch/{show['id']}")
        await expect(page.get_by_test_id("live-badge")).to_have_text("LIVE")
        await expect(page.get_by_test_id("chat-list")).to_contain_text("Welcome, everyone!")
        await expect(page.get_by_label("chat message")).to_be_disabled()
        await expect(page.get_by_label("chat message")).to_have_attribute(
            "placeholder", "Sign in to chat"
        )
        card = page.get_by_test_id("product-card")
        await expect(card).to_contain_text("Ceramic mug")
        await expect(card).to_contain_text("€19.99")
        await page.get_by_test_id("card-buy").click()
        await expect(page.get_by_test_id("toast")).to_contain_text("Sign in to buy")
        await page.screenshot(path=str(artifacts / "guest-phone.png"))
        assert errors == []


async def test_flash_card_counts_down_and_refusals_are_clear(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        viewer = await signup(http, "viewer")
        show = await live_show(http, host)
        mug = await shelved_product(http, host, brand, show["id"])
        gone = await shelved_product(http, host, brand, show["id"], title="Teapot", stock=0)
        await running_flash_sale(
            http, host, show["id"], mug["id"], price_minor=999, quantity=3, per_buyer_limit=1
        )
        await call(http, "POST", f"/api/sessions/{show['id']}/pin", host, {"product_id": mug["id"]})

    async with open_page(browser, viewer, **PHONE) as (page, errors):
        await page.goto(f"{base_url}/watch/{show['id']}")
        card = page.get_by_test_id("product-card")
        await expect(card).to_contain_text("€9.99")
        await expect(card).to_contain_text("€19.99")  # the regular price, struck through
        await expect(card).to_contain_text("3 left")
        await expect(card).to_contain_text("FLASH · ends in 4:")

        await page.get_by_test_id("card-buy").click()
        await expect(page.get_by_test_id("toast")).to_contain_text("confirmed")
        await expect(page.get_by_test_id("toast")).to_contain_text("€9.99")
        await expect(card).to_contain_text("2 left", timeout=3000)
        # The per-person limit (1) is reached: Buy is off at once and says why.
        await expect(page.get_by_test_id("card-buy")).to_be_disabled()
        await expect(card).to_contain_text("You have reached the limit of 1 per person")

        # The sold-out teapot can't be bought from the shelf drawer.
        await page.get_by_role("button", name="Shop").click()
        teapot = page.locator(f'#shelf-list [data-product-id="{gone["id"]}"]')
        await expect(teapot).to_contain_text("Sold out")
        await expect(teapot.get_by_role("button")).to_be_disabled()
        await page.screenshot(path=str(artifacts / "flash-phone.png"))
        assert errors == []


async def test_page_resumes_the_room_channel_after_a_drop(
    browser: Any, base_url: str, app: web.Application
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        viewer = await signup(http, "viewer")
        show = await live_show(http, host)
        context = await signed_in_context(browser, viewer)
        page = await context.new_page()
        errors = page_errors(page)
        try:
            await page.goto(f"{base_url}/watch/{show['id']}")
            await expect(page.get_by_test_id("live-badge")).to_have_text("LIVE")
            await page.wait_for_function("() => window.liveshelfWatch.room.lastHello !== null")

            # The network goes away: no reconnect can succeed, and the server drops the socket.
            await context.set_offline(True)
            for conn in app[hub_key].connections(show["id"]):
                app[hub_key].close(conn, CloseCode.SLOW_CONSUMER, "test: connection dropped")
            await page.wait_for_function("() => window.liveshelfWatch.room.socket === null")
            seq_before = await page.evaluate("window.liveshelfWatch.room.seq")
            # Things happen while the viewer is away.
            product = await shelved_product(http, host, brand, show["id"], title="Teapot")
            await call(
                http, "POST", f"/api/sessions/{show['id']}/pin", host, {"product_id": product["id"]}
            )
            await page.wait_for_timeout(700)  # room for a reconnect, if offline allowed one
            away = await page.evaluate(
                """() => {
                    const room = window.liveshelfWatch.room;
                    return { seq: room.seq, open: room.socket?.readyState === WebSocket.OPEN };
                }"""
            )
            assert away == {"seq": seq_before, "open": False}  # the pin events were missed
            await context.set_offline(False)

            card = page.get_by_test_id("product-card")
            await expect(card).to_contain_text("Teapot", timeout=5000)
            hello = await page.evaluate("window.liveshelfWatch.room.lastHello")
            assert hello["recovered"] is True  # replayed from its last seq, not a snapshot
            assert errors == []
        finally:
            await context.close()
