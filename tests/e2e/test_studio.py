"""The host studio without a camera: shelf order, flash sale from the form, and chat
moderation actions, each checked against what viewers get (real Chromium)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from browser_support import (
    call,
    open_page,
    say_in_chat,
    shelved_product,
    signup,
)
from playwright.async_api import expect


async def test_studio_reorders_starts_a_flash_sale_and_moderates(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        rude = await signup(http, "viewer")
        show = await call(http, "POST", "/api/sessions", host, {"title": "Tea time"}, 201)
        await call(http, "POST", f"/api/sessions/{show['id']}/start", host)
        mug = await shelved_product(http, host, brand, show["id"], title="Mug")
        pot = await shelved_product(http, host, brand, show["id"], title="Teapot")
        await say_in_chat(http, show["id"], rude, "buy elsewhere, it's cheaper")

        async with open_page(browser, host, viewport={"width": 1280, "height": 900}) as (
            page,
            errors,
        ):
            await page.goto(f"{base_url}/studio?session={show['id']}")
            shelf = page.get_by_test_id("studio-shelf")
            await expect(shelf.locator("li")).to_have_count(2)
            await expect(shelf.locator("li").first).to_contain_text("Mug")

            # Reorder: the teapot goes up, and the server's shelf says so.
            await shelf.locator(f'[data-product-id="{pot["id"]}"]').get_by_title("up").click()
            await expect(shelf.locator("li").first).to_contain_text("Teapot")
            body = await call(http, "GET", f"/api/sessions/{show['id']}/shelf")
            assert [i["product_id"] for i in body["shelf"]] == [pot["id"], mug["id"]]

            # A flash sale from the form: a bad price is refused on the page, then it runs.
            await page.get_by_label("flash product").select_option(str(mug["id"]))
            await page.locator("#flash-price").fill("9.999")
            await page.get_by_role("button", name="Start now").click()
            await expect(page.locator("#flash-error")).to_contain_text("9.99 in EUR")
            sales = await call(http, "GET", f"/api/sessions/{show['id']}/flash-sales")
            assert sales["flash_sales"] == []
            await page.locator("#flash-price").fill("12.50")
            await page.locator("#flash-qty").fill("4")
            await page.get_by_role("button", name="Start now").click()
            flash = page.locator("#flash-list")
            await expect(flash).to_contain_text("€12.50, 4/4 left, ends in 4:", timeout=5000)
            (sale,) = (await call(http, "GET", f"/api/sessions/{show['id']}/flash-sales"))[
                "flash_sales"
            ]
            assert (sale["product_id"], sale["price_minor"], sale["quantity"]) == (
                mug["id"],
                1250,
                4,
            )
            # "now" on the page is a moment before the server stamps the start
            assert 295_000 < sale["ends_ms"] - sale["starts_ms"] <= 300_000

            # Moderation: delete the message, then ban its author.
            chat = page.get_by_test_id("studio-chat")
            line = chat.locator("li", has_text="cheaper")
            await line.hover()
            await line.get_by_role("button", name="delete").click()
            await expect(chat).not_to_contain_text("cheaper", timeout=3000)
            await say_in_chat(http, show["id"], rude, "still here")
            line = chat.locator("li", has_text="still here")
            await line.hover()
            page.once("dialog", lambda dialog: dialog.accept())
            await line.get_by_role("button", name="ban").click()
            settings_path = f"/api/sessions/{show['id']}/chat/settings"
            for _ in range(50):  # the click's request is on its way; wait for its effect
                bans = (await call(http, "GET", settings_path, host))["bans"]
                if bans:
                    break
                await page.wait_for_timeout(100)
            assert bans == [rude["id"]]
            async with http.ws_connect(
                f"/api/sessions/{show['id']}/ws",
                headers={"Authorization": f"Bearer {rude['token']}"},
            ) as ws:
                refused = await ws.receive_json()
            assert (refused["type"], refused["code"]) == ("error", "banned")
            await page.screenshot(path=str(artifacts / "studio.png"), full_page=True)
            assert errors == []
