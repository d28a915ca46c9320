"""The watch page, phone first (issue 21): layout at phone and desktop sizes, the
sign-in sheet that carries on with what a guest asked for, Buy's reasons for being off,
an unknown show, and an axe-core check (real Chromium, real server)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from browser_support import (
    PASSWORD,
    call,
    live_show,
    open_page,
    running_flash_sale,
    shelved_product,
    signup,
)
from playwright.async_api import Page, expect

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
SMALL_PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
SIZES = {"phone": PHONE, "small-phone": SMALL_PHONE, "desktop": DESKTOP}

LONG_TITLE = "Evening show: handmade ceramic mugs, teapots and a few surprises from the studio"

#: The share of the video's box a person can see (inside the viewport, not under
#: anything): sampled on a grid with elementFromPoint, which sees what is on top.
VISIBLE_SHARE = """() => {
    const video = document.querySelector('#video');
    const box = video.getBoundingClientRect();
    let seen = 0, all = 0;
    for (let i = 0; i < 30; i += 1) {
        for (let j = 0; j < 30; j += 1) {
            const x = box.left + (i + .5) * box.width / 30;
            const y = box.top + (j + .5) * box.height / 30;
            all += 1;
            if (x < 0 || y < 0 || x >= innerWidth || y >= innerHeight) continue;
            const top = document.elementFromPoint(x, y);
            if (top === video || top === video.parentElement) seen += 1;
        }
    }
    return { share: seen / all, height: box.height };
}"""

#: The header's items that are visible, with their boxes.
HEADER_BOXES = """() => {
    const items = document.querySelectorAll(`header.top :is(.brand, #live-badge, #title, .viewers,
        #replay-link, #follow, #signin-open, #auth .auth-user > *, #auth form > *)`);
    return [...items]
        .filter((el) => el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden')
        .map((el) => {
            const r = el.getBoundingClientRect();
            return { name: el.id || el.className || el.tagName, text: el.textContent.slice(0, 30),
                     left: r.left, right: r.right, top: r.top, bottom: r.bottom };
        })
        .filter((b) => b.right - b.left > 0 && b.bottom - b.top > 0);
}"""


async def _pinned_show(http: aiohttp.ClientSession) -> tuple[dict[str, Any], dict[str, Any]]:
    host, brand = await signup(http, "host"), await signup(http, "brand")
    show = await live_show(http, host, LONG_TITLE)
    product = await shelved_product(
        http, host, brand, show["id"], title="Hand-thrown stoneware mug with a speckled glaze"
    )
    await call(http, "POST", f"/api/sessions/{show['id']}/pin", host, {"product_id": product["id"]})
    return show, product


def _overlaps(boxes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    found = []
    for n, a in enumerate(boxes):
        for b in boxes[n + 1 :]:
            width = min(a["right"], b["right"]) - max(a["left"], b["left"])
            height = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
            if width > 0.5 and height > 0.5:
                found.append((f"{a['name']} {a['text']!r}", f"{b['name']} {b['text']!r}"))
    return found


async def _check_layout(page: Page) -> None:
    width = await page.evaluate("innerWidth")
    assert await page.evaluate("document.documentElement.scrollWidth") <= width
    video = await page.evaluate(VISIBLE_SHARE)
    assert video["height"] > 150, video
    assert video["share"] >= 0.7, video
    boxes = await page.evaluate(HEADER_BOXES)
    names = " ".join(b["name"] for b in boxes)
    assert "title" in names and "viewers" in names, boxes
    assert _overlaps(boxes) == [], boxes
    assert all(b["left"] >= 0 and b["right"] <= width + 0.5 for b in boxes), boxes


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("signed_in", [False, True], ids=["guest", "viewer"])
async def test_video_first_no_overflow_no_overlaps(
    browser: Any, base_url: str, tmp_path: Path, size: str, signed_in: bool
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        show, _ = await _pinned_show(http)
        viewer = await signup(http, "viewer") if signed_in else None

    async with open_page(browser, viewer, **SIZES[size]) as (page, errors):
        await page.goto(f"{base_url}/watch/{show['id']}")
        await expect(page.get_by_test_id("live-badge")).to_have_text("LIVE")
        await expect(page.get_by_test_id("product-card")).to_contain_text("stoneware mug")
        await expect(page.get_by_test_id("title")).to_have_text(LONG_TITLE)
        if signed_in:
            await expect(page.get_by_test_id("follow")).to_have_text("Follow · 0")
            await expect(page.get_by_test_id("signed-in-as")).to_be_visible()
        elif size == "desktop":
            await expect(page.get_by_label("username")).to_be_visible()
        else:  # a phone's header: a button for the sign-in sheet, no form over the video
            await expect(page.get_by_test_id("signin-open")).to_be_visible()
            await expect(page.get_by_label("username")).to_be_hidden()
        await expect(page).to_have_title(f"{LONG_TITLE} (live) · liveshelf")
        await page.wait_for_timeout(300)  # the card's pop-in animation
        await _check_layout(page)
        await page.screenshot(path=str(tmp_path / f"watch-{size}.png"))

        if size != "desktop":  # the shelf is a bottom drawer, closed by Escape
            await page.get_by_role("button", name="Shop").click()
            drawer = page.get_by_test_id("shelf")
            await expect(drawer).to_be_visible()
            box = await drawer.bounding_box()
            height = SIZES[size]["viewport"]["height"]
            assert box is not None and abs(box["y"] + box["height"] - height) < 2, box
            await page.screenshot(path=str(tmp_path / f"watch-{size}-shelf.png"))
            await page.keyboard.press("Escape")
            await expect(drawer).to_be_hidden()
            await expect(page.get_by_role("button", name="Shop")).to_be_focused()
        assert errors == []


async def test_guest_taps_buy_signs_in_on_the_sheet_and_the_order_is_placed(
    browser: Any, base_url: str, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        show, product = await _pinned_show(http)
        viewer = await signup(http, "viewer")

        async with open_page(browser, None, **PHONE) as (page, errors):
            await page.goto(f"{base_url}/watch/{show['id']}")
            await page.get_by_label("quantity").first.fill("2")
            await page.get_by_test_id("card-buy").click()

            sheet = page.get_by_role("dialog", name="Sign in to buy")
            await expect(sheet).to_be_visible()
            await expect(sheet.get_by_label("Username")).to_be_focused()
            await page.screenshot(path=str(tmp_path / "signin-sheet-phone.png"))
            # Wrong password first: a sentence, and the sheet stays.
            await sheet.get_by_label("Username").fill(viewer["username"])
            await sheet.get_by_label("Password").fill("not the password")
            await sheet.get_by_label("Password").press("Enter")
            await expect(sheet.get_by_test_id("signin-error")).to_have_text(
                "That username and password don\u2019t match. Check them and try again."
            )
            await sheet.get_by_label("Password").fill(PASSWORD)
            await sheet.get_by_label("Password").press("Enter")  # keyboard only

            await expect(sheet).to_be_hidden()
            toast = page.get_by_test_id("toast")
            await expect(toast).to_contain_text("confirmed", timeout=5000)
            await expect(toast).to_contain_text("€39.98")
            await expect(page.get_by_test_id("signed-in-as")).to_have_text(viewer["username"])
            assert errors == []

        mine = await call(http, "GET", "/api/me/orders", viewer)
        assert [(o["product_id"], o["quantity"], o["session_id"]) for o in mine["orders"]] == [
            (product["id"], 2, show["id"])
        ]


async def test_guest_follows_and_chats_after_signing_up_on_the_sheet(
    browser: Any, base_url: str
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        show, _ = await _pinned_show(http)
    username = f"fan-{int(time.time() * 1000) % 10**8}"

    async with open_page(browser, None, **PHONE) as (page, errors):
        await page.goto(f"{base_url}/watch/{show['id']}")
        follow = page.get_by_test_id("follow")
        await expect(follow).to_have_text("Follow · 0")
        await follow.click()
        sheet = page.get_by_role("dialog", name="Sign in to follow the host")
        await sheet.get_by_label("Username").fill(username)
        await sheet.get_by_label("Password").fill("short")
        await sheet.get_by_role("button", name="Create account").click()
        await expect(sheet.get_by_test_id("signin-error")).to_contain_text("at least 10 characters")
        await sheet.get_by_label("Password").fill(PASSWORD)
        await sheet.get_by_role("button", name="Create account").click()
        await expect(follow).to_have_text("Following · 1", timeout=5000)

        # Signed in now: "Join the chat" is gone and the input takes text.
        await expect(page.get_by_role("button", name="Join the chat")).to_be_hidden()
        await page.get_by_label("chat message").fill("Hello from my phone")
        await page.get_by_label("chat message").press("Enter")
        await expect(page.get_by_test_id("chat-list")).to_contain_text("Hello from my phone")
        assert errors == []


async def test_guest_chat_opens_the_sheet_and_focuses_the_input_after(
    browser: Any, base_url: str
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        show, _ = await _pinned_show(http)
        viewer = await signup(http, "viewer")

    async with open_page(browser, None, **PHONE) as (page, errors):
        await page.goto(f"{base_url}/watch/{show['id']}")
        await expect(page.get_by_test_id("live-badge")).to_have_text("LIVE")
        await page.get_by_role("button", name="Join the chat").click()
        sheet = page.get_by_role("dialog", name="Sign in to chat")
        await sheet.get_by_label("Username").fill(viewer["username"])
        await sheet.get_by_label("Password").fill(PASSWORD)
        await sheet.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_label("chat message")).to_be_focused()
        await expect(page.get_by_label("chat message")).to_be_enabled()
        assert errors == []


async def test_buy_is_off_with_its_reason_at_the_per_buyer_limit_and_when_sold_out(
    browser: Any, base_url: str, tmp_path: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host, brand = await signup(http, "host"), await signup(http, "brand")
        viewer = await signup(http, "viewer")
        show = await live_show(http, host, "Flash hour")
        mug = await shelved_product(http, host, brand, show["id"])
        gone = await shelved_product(http, host, brand, show["id"], title="Teapot", stock=0)
        await running_flash_sale(
            http, host, show["id"], mug["id"], price_minor=999, quantity=5, per_buyer_limit=1
        )
        await call(http, "POST", f"/api/sessions/{show['id']}/pin", host, {"product_id": mug["id"]})

        async with open_page(browser, viewer, **PHONE) as (page, errors):
            await page.goto(f"{base_url}/watch/{show['id']}")
            card, buy = page.get_by_test_id("product-card"), page.get_by_test_id("card-buy")
            reason = page.get_by_test_id("card-reason")
            await expect(card).to_contain_text("5 left")
            await expect(reason).to_be_hidden()
            await buy.click()
            await expect(page.get_by_test_id("toast")).to_contain_text("confirmed")
            # the limit is reached with that order: Buy is off at once and says why
            await expect(buy).to_be_disabled()
            await expect(buy).to_have_text("Limit reached")
            await expect(reason).to_have_text(
                "You have reached the limit of 1 per person at the flash price of €9.99."
            )
            await page.screenshot(path=str(tmp_path / "limit-phone.png"))

            # Opened again later: off from the start, with the reason.
            await page.reload()
            await expect(card).to_contain_text("4 left")
            await expect(buy).to_be_disabled()
            await expect(reason).to_contain_text("limit of 1 per person")

            # A sold-out product's card: Buy off, and why.
            await call(
                http, "POST", f"/api/sessions/{show['id']}/pin", host, {"product_id": gone["id"]}
            )
            await expect(card).to_contain_text("Teapot")
            await expect(buy).to_be_disabled()
            await expect(buy).to_have_text("Sold out")
            await expect(reason).to_have_text("Sold out: every unit has been bought.")
            assert errors == []


async def test_unknown_show_says_it_does_not_exist_within_two_seconds(
    browser: Any, base_url: str, tmp_path: Path
) -> None:
    async with open_page(browser, None, **PHONE) as (page, errors):
        started = time.monotonic()
        await page.goto(f"{base_url}/watch/999")
        heading = page.get_by_role("heading", name="This show doesn\u2019t exist")
        await expect(heading).to_be_visible(timeout=2000)
        assert time.monotonic() - started < 2
        await expect(page.get_by_text("Connecting")).to_be_hidden()
        await expect(page).to_have_title("Show not found · liveshelf")
        await expect(page.get_by_role("link", name="See what\u2019s live now")).to_have_attribute(
            "href", "/"
        )
        await page.screenshot(path=str(tmp_path / "not-found-phone.png"))
        # It stays so: no reconnect loop brings "Connecting…" back.
        await page.wait_for_timeout(800)
        await expect(heading).to_be_visible()
        assert errors == []


@pytest.mark.parametrize("size", ["phone", "desktop"])
async def test_watch_page_has_no_serious_accessibility_violations(
    browser: Any, base_url: str, tmp_path: Path, size: str
) -> None:
    from axe_playwright_python.async_playwright import Axe

    async with aiohttp.ClientSession(base_url) as http:
        show, _ = await _pinned_show(http)

    def serious(results: Any) -> list[tuple[str, str, list[str]]]:
        return [
            (v["id"], v["impact"], [(n["target"], n["failureSummary"]) for n in v["nodes"]][:5])
            for v in results.response["violations"]
            if v["impact"] in ("serious", "critical")
        ]

    async with open_page(browser, None, **SIZES[size]) as (page, errors):
        await page.goto(f"{base_url}/watch/{show['id']}")
        await expect(page.get_by_test_id("product-card")).to_contain_text("stoneware mug")
        await page.wait_for_timeout(300)
        assert serious(await Axe().run(page)) == []

        await page.get_by_test_id("card-buy").click()  # the sign-in sheet
        await expect(page.get_by_role("dialog")).to_be_visible()
        assert serious(await Axe().run(page)) == []
        await page.screenshot(path=str(tmp_path / f"axe-{size}-sheet.png"))
        await page.keyboard.press("Escape")
        await expect(page.get_by_role("dialog")).to_be_hidden()
        await expect(page.get_by_test_id("card-buy")).to_be_focused()
        assert errors == []
