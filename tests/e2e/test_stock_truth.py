"""One truth for stock (issue 21 item 7): the studio, the watch page and the brand
console show the API's regular, reserved and flash units (``stock_figures``) through a
flash sale -- reserved a lead time before it starts, running at the flash price, a
purchase, and its end returning the unsold units to regular stock within 2 s -- each
updated live (real Chromium, real server and scheduler)."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from browser_support import call, open_page, shelved_product, signup
from playwright.async_api import Locator, expect

WIDE = {"viewport": {"width": 1280, "height": 900}, "locale": "en-US"}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


async def api_figures(http: aiohttp.ClientSession, show_id: int, product_id: int) -> dict[str, Any]:
    """The figures the API gives, the same in the product and in the show's shelf (read
    again when a change fell between the two reads)."""
    for _ in range(20):
        product = await call(http, "GET", f"/api/products/{product_id}")
        shelf = await call(http, "GET", f"/api/sessions/{show_id}/shelf")
        figures: dict[str, Any] = product["stock_figures"]
        if shelf["stock"][str(product_id)]["stock_figures"] == figures:
            return figures
        await asyncio.sleep(0.05)
    raise AssertionError(f"the product says {figures}, the shelf {shelf['stock']}")


async def shows(place: Locator, figures: dict[str, Any], within_ms: int = 5000) -> None:
    """``place`` shows ``figures`` (its data attributes, set from shelfstate.js)."""
    price = figures["flash_price_minor"]
    wanted = {
        "data-regular": str(figures["regular"]),
        "data-flash": str(figures["flash"]),
        "data-reserved": str(figures["reserved"]),
        "data-flash-price": "" if price is None else str(price),
        "data-running": "1" if figures["flash_running"] else "0",
    }
    for name, value in wanted.items():
        await expect(place).to_have_attribute(name, value, timeout=within_ms)


async def all_show(places: list[Locator], figures: dict[str, Any], within_ms: int = 5000) -> None:
    await asyncio.gather(*(shows(p, figures, within_ms) for p in places))


async def wait_for_api(
    http: aiohttp.ClientSession, show_id: int, product_id: int, done: Any, within_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    while True:
        figures = await api_figures(http, show_id, product_id)
        if done(figures):
            return figures
        assert time.monotonic() < deadline, figures
        await asyncio.sleep(0.05)


async def test_studio_watch_and_brand_console_show_the_apis_stock(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        viewer = await signup(http, "viewer")
        show = await call(http, "POST", "/api/sessions", host, {"title": "Stock show"}, 201)
        await call(http, "POST", f"/api/sessions/{show['id']}/start", host)
        mug = await shelved_product(http, host, brand, show["id"], title="Mug", stock=10)
        sid, pid = show["id"], mug["id"]
        await call(http, "POST", f"/api/sessions/{sid}/pin", host, {"product_id": pid})

        async with (
            open_page(browser, host, **WIDE) as (studio, studio_errors),
            open_page(browser, viewer, **PHONE) as (watch, watch_errors),
            open_page(browser, brand, **WIDE) as (console, console_errors),
        ):
            await studio.goto(f"{base_url}/studio?session={sid}")
            await watch.goto(f"{base_url}/watch/{sid}")
            await console.goto(f"{base_url}/brand")
            places = [
                studio.locator(f'#shelf-list [data-product-id="{pid}"] .stock'),
                watch.locator("#card-stock"),
                console.locator(f'tr[data-product-id="{pid}"] .stock-figures'),
            ]
            regular_only = await api_figures(http, sid, pid)
            assert regular_only == {
                "regular": 10,
                "flash": 0,
                "reserved": 0,
                "flash_price_minor": None,
                "flash_running": False,
            }
            await all_show(places, regular_only)
            await expect(watch.locator("#card-stock")).to_have_text("10 left")

            # A sale starting within the reserve lead: its units are held at once, and
            # every page says they are reserved (not gone, not regular).
            start = datetime.now(UTC) + timedelta(seconds=6)
            sale = await call(
                http,
                "POST",
                f"/api/sessions/{sid}/flash-sales",
                host,
                {
                    "product_id": pid,
                    "price_minor": 999,
                    "quantity": 4,
                    "per_buyer_limit": 2,
                    "starts_at": start.isoformat(),
                    "ends_at": (start + timedelta(seconds=7)).isoformat(),
                },
                201,
            )
            reserved = await wait_for_api(http, sid, pid, lambda f: f["reserved"] == 4, 3)
            assert reserved == {
                "regular": 6,
                "flash": 0,
                "reserved": 4,
                "flash_price_minor": 999,
                "flash_running": False,
            }
            await all_show(places, reserved, within_ms=3000)
            await expect(places[1]).to_have_text("6 left · 4 reserved for a flash sale at €9.99")
            await expect(places[0]).to_contain_text("4 reserved for a flash sale at €9.99")
            await expect(places[2]).to_contain_text("4 reserved for a flash sale at €9.99")
            await expect(studio.locator("#flash-list")).to_contain_text("units reserved")
            await studio.screenshot(path=str(artifacts / "studio-reserved.png"))

            # It runs: the flash units at the flash price, on every page.
            running = await wait_for_api(http, sid, pid, lambda f: f["flash_running"], 10)
            assert running == {
                "regular": 6,
                "flash": 4,
                "reserved": 0,
                "flash_price_minor": 999,
                "flash_running": True,
            }
            await all_show(places, running, within_ms=3000)
            await expect(places[0]).to_contain_text("4 at flash price €9.99 · 6 regular")
            await expect(places[2]).to_contain_text("4 at flash price €9.99 · 6 regular")
            card = watch.get_by_test_id("product-card")
            await expect(card).to_contain_text("€9.99")
            await expect(places[1]).to_have_text(
                "4 left at the flash price · 6 at the regular price after the sale"
            )

            # A purchase: the flash units drop on every page, live, as in the API.
            order = await call(
                http,
                "POST",
                f"/api/sessions/{sid}/orders",
                viewer,
                {"product_id": pid, "quantity": 1},
                201,
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            assert (order["unit_price_minor"], order["flash_sale_id"]) == (999, sale["id"])
            bought = await api_figures(http, sid, pid)
            assert (bought["flash"], bought["regular"]) == (3, 6)
            await all_show(places, bought, within_ms=3000)
            await watch.screenshot(path=str(artifacts / "watch-flash.png"))

            # The end: the 3 unsold units are regular again, on every page within 2 s
            # of the API saying so.
            ended = await wait_for_api(http, sid, pid, lambda f: not f["flash_running"], 12)
            seen_at = time.monotonic()
            assert ended == {
                "regular": 9,
                "flash": 0,
                "reserved": 0,
                "flash_price_minor": None,
                "flash_running": False,
            }
            await all_show(places, ended, within_ms=2000)
            assert time.monotonic() - seen_at < 2.0
            await expect(places[1]).to_have_text("9 left")
            await expect(card).not_to_contain_text("€9.99")
            await console.screenshot(path=str(artifacts / "brand-after.png"))
            assert studio_errors == watch_errors == console_errors == []
