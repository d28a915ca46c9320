"""The API docs page (/api/docs) in real Chromium: Swagger UI renders this server's
OpenAPI 3.1 document, and every request the page makes goes to 127.0.0.1 (its assets
come from the swagger-ui-py package, served by liveshelf; no CDN, no validator)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from browser_support import open_page
from playwright.async_api import expect

TIMEOUT_MS = 10_000


async def test_docs_page_renders_the_document_from_loopback_only(
    browser: Any, base_url: str
) -> None:
    async with open_page(browser, None) as (page, errors):
        hosts: list[str] = []
        page.on("request", lambda request: hosts.append(urlsplit(request.url).hostname or ""))
        await page.goto(f"{base_url}/api/docs")
        await expect(page.locator(".info .title")).to_contain_text("liveshelf", timeout=TIMEOUT_MS)
        await expect(page.locator(".info .title")).to_contain_text("OAS 3.1")
        # The operations are listed under their tags, e.g. signing up.
        signup = page.locator("#operations-accounts-post_api_auth_signup")
        await expect(signup).to_be_visible(timeout=TIMEOUT_MS)
        await signup.locator(".opblock-summary").click()
        body = signup.locator(".opblock-body")
        await expect(body).to_contain_text('"username"', timeout=TIMEOUT_MS)  # the request
        await expect(body).to_contain_text('"token"')  # the 201 answer
        await expect(page.locator(".errors-wrapper")).to_have_count(0)
        assert errors == []
    assert hosts and set(hosts) == {"127.0.0.1"}, hosts
