"""The shoppable replay in real Chromium: an aiortc publisher streams a session over
WHIP (VP8, recorded as WebM; H.264, recorded as Matroska) while the host pins
product A and then product B; after the session ends, /replay/{id} plays the
recording, lists one chapter per pin window, shows B's card after a jump to B's
chapter (the recorded picture there is the one captured when B was pinned), and a
viewer buys from that card: a `source: replay` order attributed to the host. A show
without a recording, and one still live, get a clear message instead. Screenshots
land in test-artifacts/e2e/."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from browser_support import (
    call,
    open_page,
    shelved_product,
    sign_in_with_form,
    signup,
)
from playwright.async_api import Page, expect
from support import poster

from media.clients import STAMP_BITS, PublisherClient
from media.config import MediaConfig

# Reads the capture time SyntheticVideoTrack draws into the top rows of each frame
# (40 black/white 16x16 blocks, twice): the wall-clock ms, modulo 2**40, of the frame
# on screen.
READ_STAMP = """() => {
    const v = document.querySelector('#video');
    const c = document.createElement('canvas');
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const g = c.getContext('2d');
    g.drawImage(v, 0, 0);
    const rows = [0, 16].map((top) => {
        let value = 0;
        for (let bit = 0; bit < 40; bit++) {
            const d = g.getImageData(bit * 16 + 4, top + 4, 8, 8).data;
            let sum = 0;
            for (let i = 0; i < d.length; i += 4) sum += d[i];
            if (sum / (d.length / 4) > 128) value += 2 ** bit;
        }
        return value;
    });
    return { stamp: rows[0] === rows[1] ? rows[0] : null, time: v.currentTime };
}"""


async def wait_for_recording(http: aiohttp.ClientSession, session_id: int) -> None:
    async with asyncio.timeout(10):
        while True:
            async with http.head(f"/api/sessions/{session_id}/recording") as res:
                if res.status == 200:
                    return
            await asyncio.sleep(0.1)


async def pin(
    http: aiohttp.ClientSession, session_id: int, host: dict[str, Any], product_id: int
) -> float:
    """Pins the product; returns the wall-clock ms it happened at (mid-request)."""
    before = time.time()
    await call(http, "POST", f"/api/sessions/{session_id}/pin", host, {"product_id": product_id})
    return (before + time.time()) / 2 * 1000


async def video_time(page: Page) -> float:
    return float(await page.evaluate("document.querySelector('#video').currentTime"))


#: VP8 sessions are recorded as WebM; H.264 ones as Matroska, copied to MP4 once the
#: session ended (media/README.md): what a replay gets.
CODECS = {"video/VP8": "video/webm", "video/H264": "video/mp4"}


async def wait_for_replay_type(http: aiohttp.ClientSession, session_id: int, mime: str) -> None:
    """The ended session's recording is served as ``mime`` (the MP4 copy is written
    after the end)."""
    async with asyncio.timeout(10):
        while True:
            async with http.head(f"/api/sessions/{session_id}/recording") as res:
                if res.status == 200 and res.content_type == mime:
                    return
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("codec", list(CODECS))
async def test_replay_plays_chapters_and_sells(
    browser: Any, base_url: str, artifacts: Path, codec: str
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host = await signup(http, "host")
        brand = await signup(http, "brand")
        viewer = await signup(http, "viewer")
        show = await call(http, "POST", "/api/sessions", host, {"title": "Kitchen replay"}, 201)
        sid = show["id"]
        mug = await shelved_product(http, host, brand, sid, title="Ceramic mug")
        apron = await shelved_product(
            http, host, brand, sid, title="Linen apron", price_minor=3450, stock=5
        )
        await call(http, "POST", f"/api/sessions/{sid}/start", host)

        # 640 px wide: wide enough for the 40-bit capture-time stamp in each frame.
        publisher = PublisherClient(
            MediaConfig(ice_addresses=("127.0.0.1",)), video_codec=codec, width=640, height=480
        )
        try:
            await publisher.connect(poster(http, f"/whip/{sid}", host["token"]))
            await wait_for_recording(http, sid)
            await asyncio.sleep(1.5)
            await pin(http, sid, host, mug["id"])
            await asyncio.sleep(2.5)
            apron_pinned_ms = await pin(http, sid, host, apron["id"])
            await asyncio.sleep(2.0)
            await call(http, "POST", f"/api/sessions/{sid}/end", host)
        finally:
            await publisher.close()
        pins = (await call(http, "GET", f"/api/sessions/{sid}/pins"))["pins"]
        await wait_for_replay_type(http, sid, CODECS[codec])

    assert [p["product_id"] for p in pins] == [mug["id"], apron["id"]]
    assert 1.0 <= pins[0]["media_start_s"] < pins[1]["media_start_s"]
    assert abs(pins[1]["media_start_s"] - pins[0]["media_start_s"] - 2.5) < 0.5
    assert abs(pins[0]["media_end_s"] - pins[1]["media_start_s"]) < 0.1
    # The pin still open at the end is closed before the recording stops: it has an end.
    assert abs(pins[1]["media_end_s"] - pins[1]["media_start_s"] - 2.0) < 0.5

    async with open_page(browser, None, viewport={"width": 1100, "height": 760}) as (page, errors):
        await page.goto(f"{base_url}/replay/{sid}")
        chapters = page.get_by_test_id("chapter")
        await expect(chapters).to_have_count(2, timeout=5000)

        # The recording plays: time advances, frames have a size.
        async with asyncio.timeout(10):
            while await video_time(page) < 0.5:
                await page.wait_for_timeout(100)
        assert await page.evaluate("document.querySelector('#video').videoWidth") == 640
        assert await page.evaluate("document.querySelector('#video').duration") > 5.0

        # One chapter per pin window, at the windows' media times.
        for li, p in zip(await chapters.all(), pins, strict=True):
            assert int(await li.get_attribute("data-product-id") or 0) == p["product_id"]
            assert abs(float(await li.get_attribute("data-start") or -1) - p["media_start_s"]) < 1
        await expect(chapters.nth(0)).to_contain_text("Ceramic mug")
        await expect(chapters.nth(1)).to_contain_text("Linen apron")
        await expect(chapters.nth(1)).to_contain_text("34.50")

        # A guest jumps to the mug and is asked to sign in to buy.
        card = page.get_by_test_id("product-card")
        await chapters.nth(0).click()
        await expect(page.get_by_test_id("card-title")).to_have_text("Ceramic mug", timeout=3000)
        await page.get_by_test_id("card-buy").click()
        await expect(page.get_by_test_id("toast")).to_contain_text("Sign in to buy")

        # Jump to the apron: its card, and the recorded picture there was captured when
        # the apron was pinned (the chapter lands at the right media time).
        await chapters.nth(1).click()
        await expect(page.get_by_test_id("card-title")).to_have_text("Linen apron", timeout=3000)
        await expect(chapters.nth(1)).to_have_class("current")
        await page.evaluate(
            """() => new Promise((done) => {
                const v = document.querySelector('#video');
                v.pause();
                v.addEventListener('seeked', done, { once: true });
                v.currentTime = v.currentTime;
            })"""
        )
        frame = await page.evaluate(READ_STAMP)
        assert frame["stamp"] is not None, "no capture-time stamp readable in the frame"
        offset_ms = (frame["time"] - pins[1]["media_start_s"]) * 1000
        captured_ms = frame["stamp"] - offset_ms
        assert abs(captured_ms - apron_pinned_ms % 2**STAMP_BITS) < 1000, frame
        await expect(card).to_be_visible()

        # The viewer signs in and buys two aprons from the replay card.
        await sign_in_with_form(page, viewer)
        await page.get_by_label("quantity").fill("2")
        await page.get_by_test_id("card-buy").click()
        toast = page.get_by_test_id("toast")
        await expect(toast).to_contain_text("confirmed", timeout=5000)
        await expect(page.locator("#card-stock")).to_have_text("3 left", timeout=3000)
        await page.screenshot(path=str(artifacts / "replay.png"))
        # and on a phone: the page fits its width
        await page.set_viewport_size({"width": 390, "height": 844})
        assert await page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        await page.screenshot(path=str(artifacts / "replay-phone.png"))
        confirmed = re.search(r"Order #(\d+) confirmed", await toast.text_content() or "")
        assert confirmed is not None
        order_id = int(confirmed.group(1))
        assert errors == []

    async with aiohttp.ClientSession(base_url) as http:
        order = await call(http, "GET", f"/api/orders/{order_id}", viewer)
        assert order["source"] == "replay"
        assert (order["session_id"], order["product_id"], order["quantity"]) == (
            sid,
            apron["id"],
            2,
        )
        assert order["amount_minor"] == 6900 and order["status"] == "paid"
        # Attributed to the host: they may read it, and their report counts it.
        await call(http, "GET", f"/api/orders/{order_id}", host)
        report = await call(
            http, "GET", f"/api/hosts/{host['id']}/commission?session_id={sid}", host
        )
        assert [(r["session_id"], r["orders"], r["gmv_minor"]) for r in report["rows"]] == [
            (sid, 1, 6900)
        ]


async def test_replay_explains_missing_recording(
    browser: Any, base_url: str, artifacts: Path
) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        host = await signup(http, "host")
        ended = await call(http, "POST", "/api/sessions", host, {"title": "No camera"}, 201)
        await call(http, "POST", f"/api/sessions/{ended['id']}/start", host)
        await call(http, "POST", f"/api/sessions/{ended['id']}/end", host)
        live = await call(http, "POST", "/api/sessions", host, {"title": "On air"}, 201)
        await call(http, "POST", f"/api/sessions/{live['id']}/start", host)

    async with open_page(browser, None, viewport={"width": 900, "height": 600}) as (page, errors):
        await page.goto(f"{base_url}/replay/{ended['id']}")
        status = page.get_by_test_id("stage-status")
        await expect(status).to_contain_text("ended without a recording", timeout=5000)
        await expect(page.locator("#chapters-empty")).to_be_visible()
        await page.screenshot(path=str(artifacts / "no-recording.png"))

        await page.goto(f"{base_url}/replay/{live['id']}")
        await expect(status).to_contain_text("live right now", timeout=5000)
        await expect(status.get_by_role("link")).to_have_attribute("href", f"/watch/{live['id']}")
        assert errors == []
