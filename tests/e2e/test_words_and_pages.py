"""Words for people, in real Chromium: every refusal a person can cause reads as a
sentence in their terms (static/js/messages.js: money in its currency, fields as the
page labels them, no codes), the stats page says why viewers left in plain words,
unknown pages say so at once, and the stats and brand pages fit a 390 px phone and
pass axe-core without serious or critical violations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from browser_support import call, open_page, shelved_product, sign_in_with_form, signup
from playwright.async_api import Page, Route, expect

TIMEOUT_MS = 8000
PHONE = {"width": 390, "height": 844}
CODE = r"[a-z]+_[a-z_]+"  # what a machine code looks like

DESCRIBE = """async ({ method, path, body, context }) => {
  const { api } = await import('/static/js/api.js');
  const { errorMessage } = await import('/static/js/messages.js');
  try {
    await api(method, path, body ?? undefined);
    return 'no error';
  } catch (err) {
    return `${err.code}|${errorMessage(err, context)}`;
  }
}"""


async def refusal(
    page: Page, method: str, path: str, body: Any = None, context: Any = None
) -> tuple[str, str]:
    """The API's code and the sentence messages.js shows for it, in the browser."""
    answer = await page.evaluate(
        DESCRIBE, {"method": method, "path": path, "body": body, "context": context or {}}
    )
    code, _, sentence = str(answer).partition("|")
    return code, sentence


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def test_refusals_read_as_sentences(browser: Any, base_url: str, tmp_path: Path) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        show = await call(http, "POST", "/api/sessions", host, {"title": "Words"}, 201)
        await call(http, "POST", f"/api/sessions/{show['id']}/start", host)
        product = await shelved_product(
            http, host, brand, show["id"], price_minor=3900, currency="USD"
        )
    now = datetime.now(UTC)
    flash = {
        "product_id": product["id"],
        "price_minor": 5000,
        "quantity": 2,
        "per_buyer_limit": 1,
        "starts_at": iso(now + timedelta(minutes=1)),
        "ends_at": iso(now + timedelta(minutes=5)),
    }
    seen: dict[str, str] = {}
    async with open_page(browser, host) as (page, errors):
        await page.goto(f"{base_url}/brand")
        # a too-high flash price: the regular price in its currency
        code, seen[code] = await refusal(
            page, "POST", f"/api/sessions/{show['id']}/flash-sales", flash, {"product": product}
        )
        assert code == "flash_price_not_lower"  # the API's code is unchanged
        assert seen[code] == "The flash price must be below the regular price, $39.00."
        # a window that ends before it starts; more per buyer than the sale holds
        code, seen[code] = await refusal(
            page,
            "POST",
            f"/api/sessions/{show['id']}/flash-sales",
            {**flash, "price_minor": 1000, "ends_at": flash["starts_at"]},
        )
        assert seen["invalid_window"] == "The end must be after the start."
        code, seen["limit"] = await refusal(
            page,
            "POST",
            f"/api/sessions/{show['id']}/flash-sales",
            {**flash, "price_minor": 1000, "per_buyer_limit": 3},
        )
        assert code == "invalid_input"
        assert seen["limit"] == "Limit per buyer cannot be more than the quantity."
        # someone else's product
        code, seen[code] = await refusal(page, "POST", f"/api/products/{product['id']}/archive")
        assert seen["role_not_allowed"] == "Your kind of account cannot do that here."
        assert errors == []
    async with open_page(browser, None) as (page, errors):
        await page.goto(f"{base_url}/brand")
        # a short password, a taken username, a wrong password
        code, seen["password"] = await refusal(
            page,
            "POST",
            "/api/auth/signup",
            {"username": "shorty-pw", "password": "short", "role": "viewer"},
        )
        assert code == "invalid_input"
        assert seen["password"] == "Password must be at least 10 characters long."
        code, seen[code] = await refusal(
            page,
            "POST",
            "/api/auth/signup",
            {"username": host["username"], "password": "a much longer one", "role": "viewer"},
        )
        assert seen["username_taken"] == "That username is taken; choose another one."
        code, seen[code] = await refusal(
            page,
            "POST",
            "/api/auth/login",
            {"username": host["username"], "password": "not the password"},
        )
        assert seen["invalid_credentials"] == "The username or password is wrong."
        code, seen[code] = await refusal(page, "GET", "/api/sessions/999999")
        assert seen["session_not_found"] == "This show doesn't exist."
        code, seen[code] = await refusal(page, "GET", f"/api/sessions/{show['id']}/stats")
        assert seen["sign_in_required"] == "Sign in first."
        assert errors == []
    for kind, sentence in seen.items():
        assert sentence.endswith("."), (kind, sentence)
        assert not any(word for word in sentence.split() if _is_code(word)), (kind, sentence)
        assert "String should" not in sentence and "Input should" not in sentence
    (tmp_path / "sentences.json").write_text(json.dumps(seen, indent=2, ensure_ascii=False))


def _is_code(word: str) -> bool:
    import re

    return re.fullmatch(CODE, word.strip(".,;:()")) is not None


async def test_the_brand_console_speaks_in_its_labels(
    browser: Any, base_url: str, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        brand = await signup(http, "brand")
    async with open_page(browser, brand) as (page, errors):
        await page.goto(f"{base_url}/brand")
        form = page.locator("#products").get_by_role("form", name="new product")
        error = page.get_by_test_id("product-error")

        async def add(price: str, currency: str = "EUR", image: str = "") -> None:
            await form.get_by_label("Title").fill("Apron")
            await form.get_by_label("Price").fill(price)
            await form.get_by_label("Currency").fill(currency)
            await form.get_by_label("Stock").fill("5")
            await form.get_by_label("Commission %").fill("10")
            await form.get_by_label("Image URL").fill(image)
            await form.get_by_role("button", name="Add product").click()

        await add("19.99", "XYZ")
        await expect(error).to_have_text(
            "Currency must be a currency code such as EUR or USD.", timeout=TIMEOUT_MS
        )
        await add("10000000000.01")
        await expect(error).to_have_text(
            "Price can be at most €10,000,000,000.00.", timeout=TIMEOUT_MS
        )
        await add("19.99", image="ftp://example.test/a.png")
        await expect(error).to_have_text(
            "Image URL must be a web address starting with https://.", timeout=TIMEOUT_MS
        )
        await page.screenshot(path=str(tmp_path / "brand-error.png"), full_page=True)
        assert errors == []


async def test_a_stats_page_of_no_show_says_so_at_once(browser: Any, base_url: str) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host = await signup(http, "host")
    for who in (None, host):
        async with open_page(browser, who) as (page, errors):
            for path in ("/studio/999999/stats", "/replay/999999"):
                answer = await page.goto(f"{base_url}{path}")
                assert answer is not None and answer.status == 404
                await expect(
                    page.get_by_role("heading", name="This page doesn't exist")
                ).to_be_visible(timeout=2000)
                await expect(
                    page.get_by_role("link", name="Go to the home page")
                ).to_have_attribute("href", "/")
                assert errors == []


async def test_the_not_found_page_and_the_favicon(
    browser: Any, base_url: str, tmp_path: Path
) -> None:
    async with open_page(browser, None) as (page, errors):
        answer = await page.goto(f"{base_url}/nope")
        assert answer is not None and answer.status == 404
        assert "text/html" in answer.headers["content-type"]
        assert answer.headers["x-frame-options"] == "DENY"
        await expect(page).to_have_title("Page not found · liveshelf")
        await page.get_by_role("link", name="Go to the home page").click()
        await expect(page).to_have_url(f"{base_url}/")
        icon = await page.request.get(f"{base_url}/favicon.ico")
        assert icon.status == 200 and icon.headers["content-type"] == "image/svg+xml"
        api = await page.request.get(f"{base_url}/api/nope")
        assert api.status == 404 and (await api.json())["error"]["code"] == "not_found"
        await page.goto(f"{base_url}/static/favicon.svg")
        await page.screenshot(path=str(tmp_path / "favicon.png"))
        assert errors == []


def drop_offs_answer(real: dict[str, Any]) -> dict[str, Any]:
    """The real stats answer with an audience that left: one drop-off right after the
    host paused the stream, one 20 s after a product was pinned, and the reasons."""
    second = real["audience"]["curve"][-1]["second"] if real["audience"]["curve"] else 1_800_000_000
    real["audience"]["drop_offs"] = [
        {
            "second": second,
            "leaves": 4,
            "viewers_before": 9,
            "after": [
                {
                    "kind": "live.paused",
                    "at_ms": second * 1000,
                    "seconds_before": 0.4,
                    "reason": "deleted",
                },
            ],
        },
        {
            "second": second - 60,
            "leaves": 1,
            "viewers_before": 10,
            "after": [
                {
                    "kind": "pin.start",
                    "at_ms": (second - 80) * 1000,
                    "seconds_before": 20.2,
                    "pin_id": 1,
                    "product_id": 1,
                    "title": "Teapot",
                },
            ],
        },
    ]
    real["audience"]["leave_reasons"] = {"closed": 2, "deleted": 2, "failed": 1, "watching": 1}
    return real


async def stats_with_drop_offs(page: Page) -> None:
    async def fulfil(route: Route) -> None:
        answer = await route.fetch()
        await route.fulfill(response=answer, json=drop_offs_answer(await answer.json()))

    await page.route("**/api/sessions/*/stats", fulfil)


async def a_show_with_a_pin(http: aiohttp.ClientSession) -> tuple[dict[str, Any], dict[str, Any]]:
    host, brand = await signup(http, "host"), await signup(http, "brand")
    show = await call(http, "POST", "/api/sessions", host, {"title": "A long evening of mugs"}, 201)
    await call(http, "POST", f"/api/sessions/{show['id']}/start", host)
    product = await shelved_product(
        http, host, brand, show["id"], title="Hand-thrown stoneware mug, large"
    )
    await call(http, "POST", f"/api/sessions/{show['id']}/pin", host, {"product_id": product["id"]})
    return host, show


async def test_the_stats_page_says_why_viewers_left(
    browser: Any, base_url: str, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, show = await a_show_with_a_pin(http)
    async with open_page(browser, host) as (page, errors):
        await stats_with_drop_offs(page)
        await page.goto(f"{base_url}/studio/{show['id']}/stats")
        drops = page.get_by_test_id("drop-offs").locator("li")
        await expect(drops.first).to_contain_text(
            "4 viewers of 9 left, right after the host paused the stream.", timeout=TIMEOUT_MS
        )
        await expect(drops.nth(1)).to_contain_text(
            "1 viewer of 10 left, 20 s after “Teapot” was pinned."
        )
        reasons = page.get_by_test_id("leave-reasons")
        await expect(reasons).to_have_text(
            "Why viewers left: 4 viewers closed the page · 1 viewer lost their connection"
            " · 1 viewer is still watching."
        )
        text = await page.locator("main").inner_text()
        for developer_words in ("live.paused", "(deleted)", "closed:", "deleted:", "after pin."):
            assert developer_words not in text
        await expect(page).to_have_title("A long evening of mugs · Show stats · liveshelf")
        icon = page.locator("link[rel=icon]")
        assert await icon.get_attribute("href") == "/static/favicon.svg"
        await page.screenshot(path=str(tmp_path / "stats-reasons.png"), full_page=True)
        assert errors == []


async def fits(page: Page) -> tuple[int, int]:
    return tuple(await page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]"))


async def serious(page: Page) -> list[str]:
    from axe_playwright_python.async_playwright import (  # type: ignore[import-untyped, unused-ignore]
        Axe,
    )

    violations = (await Axe().run(page)).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:5]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


async def test_stats_on_a_phone_and_axe(browser: Any, base_url: str, tmp_path: Path) -> None:
    pytest.importorskip("axe_playwright_python")
    async with aiohttp.ClientSession(base_url) as http:
        host, show = await a_show_with_a_pin(http)
    for name, viewport in (("phone", PHONE), ("desktop", {"width": 1280, "height": 900})):
        async with open_page(browser, host, viewport=viewport) as (page, errors):
            await stats_with_drop_offs(page)
            await page.goto(f"{base_url}/studio/{show['id']}/stats")
            await expect(page.get_by_test_id("pins-table")).to_contain_text(
                "stoneware", timeout=TIMEOUT_MS
            )
            await expect(
                page.get_by_test_id("chart-funnel").locator(".main-svg").first
            ).to_be_visible()
            scroll, width = await fits(page)
            await page.screenshot(path=str(tmp_path / f"stats-{name}.png"), full_page=True)
            assert scroll <= width, (name, scroll, width)
            if name == "phone":  # the pins table is cards: each figure next to its name
                cell = page.get_by_test_id("pins-table").locator("td[data-label=Orders]")
                assert (
                    await cell.evaluate("(td) => getComputedStyle(td, '::before').content")
                    == '"Orders"'
                )
            assert await serious(page) == [], name
            assert errors == []
    async with open_page(browser, None, viewport=PHONE) as (page, errors):
        await page.goto(f"{base_url}/studio/{show['id']}/stats")
        await expect(page.get_by_role("status")).to_contain_text("Sign in", timeout=TIMEOUT_MS)
        scroll, width = await fits(page)
        await page.screenshot(path=str(tmp_path / "stats-signed-out.png"), full_page=True)
        assert scroll <= width
        assert await serious(page) == []
        assert errors == []


async def test_brand_console_on_a_phone_and_axe(
    browser: Any, base_url: str, tmp_path: Path
) -> None:
    pytest.importorskip("axe_playwright_python")
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        show = await call(http, "POST", "/api/sessions", host, {"title": "Phone show"}, 201)
        await call(http, "POST", f"/api/sessions/{show['id']}/start", host)
        await shelved_product(http, host, brand, show["id"], title="Linen apron with pockets")
    async with open_page(browser, None, viewport=PHONE) as (page, errors):
        await page.goto(f"{base_url}/brand")
        await expect(page.get_by_label("username")).to_be_visible(timeout=TIMEOUT_MS)
        scroll, width = await fits(page)
        await page.screenshot(path=str(tmp_path / "brand-signed-out.png"), full_page=True)
        assert scroll <= width
        assert await serious(page) == []
        await sign_in_with_form(page, brand)
        await expect(page.locator("#products tbody")).to_contain_text(
            "Linen apron", timeout=TIMEOUT_MS
        )
        await expect(page.locator("#cooperations tbody")).to_contain_text(
            "Linen apron", timeout=TIMEOUT_MS
        )
        await expect(page.locator("#sessions")).to_contain_text("Phone show", timeout=TIMEOUT_MS)
        hint = page.locator("#products .scroll-hint")
        await expect(hint).to_be_visible()
        scroll, width = await fits(page)
        await page.screenshot(path=str(tmp_path / "brand-phone.png"), full_page=True)
        assert scroll <= width, (scroll, width)
        assert await serious(page) == []
        assert errors == []
    async with open_page(browser, brand, viewport={"width": 1280, "height": 900}) as (page, errors):
        await page.goto(f"{base_url}/brand")
        await expect(page.locator("#products tbody")).to_contain_text(
            "Linen apron", timeout=TIMEOUT_MS
        )
        await expect(page.locator("#products .scroll-hint")).to_be_hidden()
        await expect(page).to_have_title("Brand console · liveshelf")
        assert await page.locator("link[rel=icon]").get_attribute("href") == "/static/favicon.svg"
        assert await serious(page) == []
        await page.screenshot(path=str(tmp_path / "brand-desktop.png"), full_page=True)
        assert errors == []
