"""Helpers for the browser tests: accounts and data through the real HTTP API, and
browser contexts that start signed in."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from playwright.async_api import BrowserContext, Page, expect

PASSWORD = "correct horse"


async def signup(http: aiohttp.ClientSession, role: str) -> dict[str, Any]:
    name = f"{role}-{uuid.uuid4().hex[:6]}"
    async with http.post(
        "/api/auth/signup", json={"username": name, "password": PASSWORD, "role": role}
    ) as res:
        assert res.status == 201, await res.text()
        body = await res.json()
    return {
        "id": body["user"]["id"],
        "username": name,
        "token": body["token"],
        "user": body["user"],
    }


async def call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    who: dict[str, Any] | None = None,
    body: Any = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Any:
    all_headers = {"Authorization": f"Bearer {who['token']}"} if who else {}
    all_headers.update(headers or {})
    async with http.request(method, path, json=body, headers=all_headers) as res:
        assert res.status == status, f"{method} {path}: {res.status} {await res.text()}"
        return await res.json() if res.content_type == "application/json" else await res.text()


async def live_show(
    http: aiohttp.ClientSession, host: dict[str, Any], title: str = "Evening show"
) -> dict[str, Any]:
    """A show of ``host``'s, created and started."""
    show = await call(http, "POST", "/api/sessions", host, {"title": title}, 201)
    return dict(await call(http, "POST", f"/api/sessions/{show['id']}/start", host))


async def running_flash_sale(
    http: aiohttp.ClientSession,
    host: dict[str, Any],
    session_id: int,
    product_id: int,
    *,
    price_minor: int,
    quantity: int,
    per_buyer_limit: int,
    minutes: int = 5,
) -> dict[str, Any]:
    """A flash sale of the host's show running from now for ``minutes``."""
    start = datetime.now(UTC)
    sale: dict[str, Any] = await call(
        http,
        "POST",
        f"/api/sessions/{session_id}/flash-sales",
        host,
        {
            "product_id": product_id,
            "price_minor": price_minor,
            "quantity": quantity,
            "per_buyer_limit": per_buyer_limit,
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(minutes=minutes)).isoformat(),
        },
        201,
    )
    return sale


async def shelved_product(
    http: aiohttp.ClientSession,
    host: dict[str, Any],
    brand: dict[str, Any],
    session_id: int | None = None,
    terms: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A brand's product under an accepted cooperation (flash sales at any price above
    0, or ``terms``), on the session's shelf if given."""
    product = await call(
        http,
        "POST",
        "/api/products",
        brand,
        {
            "title": "Ceramic mug",
            "price_minor": 1999,
            "currency": "EUR",
            "stock": 10,
            "commission_bps": 1500,
            **fields,
        },
        201,
    )
    coop = await call(
        http,
        "POST",
        "/api/cooperations",
        brand,
        {
            "host_id": host["id"],
            "product_ids": [product["id"]],
            "commission_bps": 1500,
            "flash_min_price_bps": 1,
            **(terms or {}),
        },
        201,
    )
    await call(http, "POST", f"/api/cooperations/{coop['id']}/accept", host)
    if session_id is not None:
        await call(
            http,
            "POST",
            f"/api/sessions/{session_id}/shelf",
            host,
            {"product_id": product["id"]},
            201,
        )
    return dict(product)


async def sign_in_with_form(page: Page, who: dict[str, Any]) -> None:
    """Sign in as a person would: the page's form, or on a phone-sized watch page the
    header's "Sign in" button and the sheet it opens."""
    scope: Any = page
    opener = page.get_by_test_id("signin-open")
    if await opener.count() and await opener.is_visible():
        await opener.click()
        scope = page.get_by_test_id("signin-sheet")
    await scope.get_by_label("username").fill(who["username"])
    await scope.get_by_label("password").fill(PASSWORD)
    await scope.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.get_by_test_id("signed-in-as")).to_be_visible(timeout=5000)


async def signed_in_context(
    browser: Any, who: dict[str, Any] | None, **options: Any
) -> BrowserContext:
    """A fresh browser context whose pages start signed in as ``who`` (or as a guest)."""
    context: BrowserContext = await browser.new_context(**options)
    if who is not None:
        token, user = json.dumps(who["token"]), json.dumps(json.dumps(who["user"]))
        await context.add_init_script(
            f"localStorage.setItem('liveshelf.token', {token});"
            f"localStorage.setItem('liveshelf.user', {user});"
        )
    return context


def page_errors(page: Page) -> list[str]:
    """Uncaught exceptions on the page, collected for a final assert."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


@asynccontextmanager
async def open_page(
    browser: Any, who: dict[str, Any] | None, **options: Any
) -> AsyncIterator[tuple[Page, list[str]]]:
    """A page in a fresh context signed in as ``who`` (or a guest), with its uncaught
    exceptions; the context is closed on the way out."""
    context = await signed_in_context(browser, who, **options)
    try:
        page = await context.new_page()
        yield page, page_errors(page)
    finally:
        await context.close()


async def say_in_chat(
    http: aiohttp.ClientSession, session_id: int, who: dict[str, Any], text: str
) -> None:
    """``who`` posts ``text`` over the room channel; returns once it was published."""
    bearer = {"Authorization": f"Bearer {who['token']}"}
    async with http.ws_connect(f"/api/sessions/{session_id}/ws", headers=bearer) as ws:
        await ws.receive_json()  # hello
        await ws.send_json({"type": "chat.send", "text": text})
        while (await ws.receive_json())["type"] != "chat.message":
            pass
