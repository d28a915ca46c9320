"""The cooperation inbox in real Chromium (static/js/negotiation.js): a brand's proposal
reaches the host's studio live (no reload), the host accepts, shelves and pins the
product, and a viewer buys it at the agreed commission; and a counter-offer goes from
the host's studio to the brand console live, where the brand accepts, and the host sees
that live too. Phone width (390 px) for the host."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
from browser_support import call, open_page, signup
from playwright.async_api import Locator, Page, expect

TIMEOUT_MS = 5000
PHONE = {"width": 390, "height": 844}


async def _product(http: aiohttp.ClientSession, brand: dict[str, Any], title: str) -> Any:
    body = {"title": title, "price_minor": 2500, "currency": "EUR", "stock": 20}
    return await call(http, "POST", "/api/products", brand, {**body, "commission_bps": 1000}, 201)


async def _propose(
    http: aiohttp.ClientSession, brand: dict[str, Any], host: dict[str, Any], pid: int, note: str
) -> Any:
    body = {"host_id": host["id"], "product_ids": [pid], "commission_bps": 1200, "note": note}
    return await call(http, "POST", "/api/cooperations", brand, body, 201)


async def _check_controls_are_labelled_and_fit(page: Page, panel: Locator) -> None:
    """Every control of the panel has a name, and nothing spills past its width."""
    unnamed = await panel.evaluate(
        """(root) => [...root.querySelectorAll('input, textarea, select, button')]
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
              && !el.textContent.trim())
            .map((el) => el.outerHTML)"""
    )
    assert unnamed == []
    box = await panel.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert await panel.evaluate("(e) => e.scrollWidth <= e.clientWidth + 1")


async def test_a_proposal_reaches_the_studio_live_and_sells(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        brand = await signup(http, "brand")
        host = await signup(http, "host")
        viewer = await signup(http, "viewer")
        show = await call(http, "POST", "/api/sessions", host, {"title": "Tea time"}, 201)
        await call(http, "POST", f"/api/sessions/{show['id']}/start", host)
        async with open_page(browser, host, viewport=PHONE, locale="en-US") as (studio, errors):
            await studio.goto(f"{base_url}/studio?session={show['id']}")
            inbox = studio.get_by_test_id("coop-inbox")
            await expect(inbox.get_by_test_id("inbox-stream")).to_have_text(
                "live", timeout=TIMEOUT_MS
            )
            await expect(inbox.get_by_test_id("inbox-waiting")).to_contain_text("Nothing waits")

            # The brand proposes (API): the studio shows it without a reload.
            product = await _product(http, brand, "Oolong tin")
            coop = await _propose(http, brand, host, product["id"], "Our autumn oolong")
            item = inbox.locator(f'[data-cooperation-id="{coop["id"]}"]')
            await expect(item).to_be_visible(timeout=TIMEOUT_MS)
            await expect(item).to_contain_text("Oolong tin")
            await expect(item).to_contain_text(brand["user"]["display_name"])
            await expect(item.get_by_test_id("coop-terms")).to_contain_text("Commission 12 %")
            await expect(item.get_by_test_id("coop-terms")).to_contain_text("no flat fee")
            await expect(item).to_contain_text("Our autumn oolong")
            await expect(inbox.get_by_test_id("inbox-news")).to_contain_text("New proposal")
            await _check_controls_are_labelled_and_fit(studio, inbox)
            await studio.screenshot(path=str(artifacts / "inbox-proposal.png"), full_page=True)

            await item.get_by_role("button", name="Accept").click()
            accepted = inbox.get_by_test_id("inbox-history").locator(
                f'[data-cooperation-id="{coop["id"]}"]'
            )
            await expect(accepted).to_have_attribute("data-status", "accepted", timeout=TIMEOUT_MS)
            await expect(inbox.get_by_test_id("inbox-news")).to_contain_text("You accepted")

            # Its product can now go on the shelf (no reload), be pinned and sold.
            add = studio.locator(f'#catalogue [data-product-id="{product["id"]}"] button')
            await expect(add).to_be_visible(timeout=TIMEOUT_MS)
            await add.click()
            pin = studio.locator(
                f'#shelf-list [data-product-id="{product["id"]}"] [data-action="pin"]'
            )
            await expect(pin).to_be_visible(timeout=TIMEOUT_MS)
            await pin.click()
            await expect(studio.locator("#shelf-list li.pinned")).to_have_count(
                1, timeout=TIMEOUT_MS
            )
            order = await call(
                http,
                "POST",
                f"/api/sessions/{show['id']}/orders",
                viewer,
                {"product_id": product["id"], "quantity": 1},
                201,
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            assert order["status"] == "paid" and order["commission_bps"] == 1200
            await expect(studio.get_by_test_id("n-orders")).to_have_text("1", timeout=TIMEOUT_MS)
            await studio.screenshot(path=str(artifacts / "inbox-sold.png"), full_page=True)
            assert errors == []


async def test_a_counter_offer_round_trip(browser: Any, base_url: str, artifacts: Path) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        brand = await signup(http, "brand")
        host = await signup(http, "host")
        product = await _product(http, brand, "Linen apron")
        async with (
            open_page(browser, host, viewport=PHONE, locale="en-US") as (studio, studio_errors),
            open_page(browser, brand, viewport={"width": 1100, "height": 900}, locale="en-US") as (
                console,
                console_errors,
            ),
        ):
            await studio.goto(f"{base_url}/studio")
            await console.goto(f"{base_url}/brand")
            inbox = studio.get_by_test_id("coop-inbox")
            brand_side = console.get_by_test_id("coop-inbox")
            for panel in (inbox, brand_side):
                await expect(panel.get_by_test_id("inbox-stream")).to_have_text(
                    "live", timeout=TIMEOUT_MS
                )
            coop = await _propose(http, brand, host, product["id"], "Aprons for your kitchen show")
            item = inbox.locator(f'[data-cooperation-id="{coop["id"]}"]')
            await expect(item).to_be_visible(timeout=TIMEOUT_MS)
            # the brand sees its own proposal waiting for the host, live
            await expect(brand_side.get_by_test_id("inbox-sent")).to_contain_text(
                "Linen apron", timeout=TIMEOUT_MS
            )

            # The host counters: 20 % and a 150.00 EUR flat fee, with a message.
            await item.get_by_role("button", name="Counter-offer").click()
            form = item.get_by_role("form")
            await form.get_by_label("Commission %").fill("abc")
            await form.get_by_role("button", name="Send counter-offer").click()
            await expect(form.get_by_role("alert")).to_contain_text("Commission %")
            await form.get_by_label("Commission %").fill("20")
            await form.get_by_label("Flat fee").fill("150")
            await form.get_by_label("Fee currency").fill("EUR")
            await form.get_by_label("Message").fill("20 % and a fee for the studio time")
            await _check_controls_are_labelled_and_fit(studio, inbox)
            await studio.screenshot(path=str(artifacts / "counter-form.png"), full_page=True)
            await form.get_by_role("button", name="Send counter-offer").click()
            sent = inbox.get_by_test_id("inbox-sent").locator(
                f'[data-cooperation-id="{coop["id"]}"]'
            )
            await expect(sent).to_contain_text("Commission 20 %", timeout=TIMEOUT_MS)
            await expect(sent).to_contain_text("Waiting for")

            # The brand console shows it live, whose turn it is, and the rounds.
            waiting = brand_side.get_by_test_id("inbox-waiting").locator(
                f'[data-cooperation-id="{coop["id"]}"]'
            )
            await expect(waiting).to_be_visible(timeout=TIMEOUT_MS)
            await expect(waiting.get_by_test_id("coop-terms")).to_contain_text("Commission 20 %")
            await expect(waiting.get_by_test_id("coop-terms")).to_contain_text("150.00")
            await expect(waiting).to_contain_text("20 % and a fee for the studio time")
            await expect(brand_side.get_by_test_id("inbox-news")).to_contain_text("counter-offer")
            await waiting.locator("summary").click()
            rounds = waiting.get_by_test_id("coop-rounds").locator("li")
            await expect(rounds).to_have_count(2)
            await expect(rounds.nth(0)).to_contain_text("Round 1")
            await expect(rounds.nth(0)).to_contain_text("12 %")
            await expect(rounds.nth(1)).to_contain_text("countered")
            await console.screenshot(path=str(artifacts / "brand-counter.png"), full_page=True)

            await waiting.get_by_role("button", name="Accept").click()
            done = brand_side.get_by_test_id("inbox-history").locator(
                f'[data-cooperation-id="{coop["id"]}"]'
            )
            await expect(done).to_have_attribute("data-status", "accepted", timeout=TIMEOUT_MS)
            # ... and the host hears of it live
            await expect(inbox.get_by_test_id("inbox-news")).to_contain_text(
                "accepted", timeout=TIMEOUT_MS
            )
            host_done = inbox.get_by_test_id("inbox-history").locator(
                f'[data-cooperation-id="{coop["id"]}"]'
            )
            await expect(host_done).to_have_attribute("data-status", "accepted")
            final = await call(http, "GET", f"/api/cooperations/{coop['id']}", host)
            assert (final["status"], final["commission_bps"], final["flat_fee_minor"]) == (
                "accepted",
                2000,
                15000,
            )
            await studio.screenshot(path=str(artifacts / "inbox-accepted.png"), full_page=True)
            assert studio_errors == [] and console_errors == []
