"""HTTPS served by liveshelf itself (``LIVESHELF_TLS_CERT``/``LIVESHELF_TLS_KEY``):
``python app.py`` with a self-signed certificate for 127.0.0.1; Chromium, trusting
exactly that certificate (its public key's hash), goes live from the studio over WHIP
and a viewer plays over WHEP, the room channel on ``wss:``. Plain HTTP to the port is
not served."""

from __future__ import annotations

import signal
import ssl
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from browser_support import call, page_errors, sign_in_with_form, signup
from chromium import CHROMIUM_ARGS
from playwright.async_api import async_playwright, expect
from support import free_port, sqlite_server, wait_until_up
from test_live_show import _frames_decoded
from tls_support import self_signed


async def test_going_live_and_watching_over_https(
    tmp_path: Path, chromium_path: str, artifacts: Path
) -> None:
    pair = self_signed(tmp_path)
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    proc = sqlite_server(
        tmp_path,
        port,
        LIVESHELF_TLS_CERT=str(pair.cert),
        LIVESHELF_TLS_KEY=str(pair.key),
    )
    trust = ssl.create_default_context(cafile=str(pair.cert))
    try:
        await wait_until_up(base, proc, ssl=trust)
        connector = aiohttp.TCPConnector(ssl=trust)
        async with aiohttp.ClientSession(base, connector=connector) as http:
            host = await signup(http, "host")
            viewer = await signup(http, "viewer")
            show = await call(http, "POST", "/api/sessions", host, {"title": "Secure mugs"}, 201)
        async with aiohttp.ClientSession() as plain:  # the same port without TLS
            with pytest.raises(aiohttp.ClientError):
                async with plain.get(f"http://127.0.0.1:{port}/api/sessions") as res:
                    await res.read()

        args = [*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={pair.spki_sha256}"]
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path, args=args)
            try:
                studio = await (await browser.new_context()).new_page()
                watch = await (await browser.new_context()).new_page()
                errors = page_errors(studio) + page_errors(watch)
                sockets: list[str] = []
                watch.on("websocket", lambda ws: sockets.append(ws.url))
                await studio.goto(f"{base}/studio")
                assert await studio.evaluate("window.isSecureContext") is True
                await sign_in_with_form(studio, host)
                await studio.locator(f'[data-session-id="{show["id"]}"]').click()
                await studio.get_by_test_id("go-live").click()
                await expect(studio.get_by_test_id("publish-state")).to_have_text(
                    "Streaming", timeout=10000
                )
                await watch.goto(f"{base}/watch/{show['id']}")
                await sign_in_with_form(watch, viewer)
                await expect(watch.get_by_test_id("live-badge")).to_have_text("LIVE", timeout=5000)
                frames, deadline = 0, time.monotonic() + 20
                while frames < 30 and time.monotonic() < deadline:
                    await watch.wait_for_timeout(200)
                    frames = await _frames_decoded(watch)
                await watch.screenshot(path=str(artifacts / "https-watch.png"))
                assert frames >= 30, f"only {frames} frames decoded"
                assert sockets and all(url.startswith("wss://127.0.0.1") for url in sockets)
                assert errors == []
            finally:
                await browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
