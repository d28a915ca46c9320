"""Not-found answers: an HTML page outside the API (with the pages' security headers),
JSON under ``/api``; a page about a session that does not exist is that page too; the
favicon; and a report's CSV with money both in minor units and as amounts."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import Account, Api

from live.http import SECURITY_HEADERS
from shelf.reports import BRAND_COLUMNS, HOST_COLUMNS


@pytest.fixture
def backend() -> str:
    """Pages and routing do not depend on the store: one backend is enough."""
    return "sqlite-memory"


def assert_security_headers(headers: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name


@pytest.mark.parametrize(
    "path", ["/nope", "/watch", "/studio/1/nope", "/brand/x", "/static/nope.js"]
)
async def test_an_unknown_page_is_an_html_404(client: TestClient[Any, Any], path: str) -> None:
    res = await client.get(path)
    assert res.status == 404
    assert res.content_type == "text/html"
    text = await res.text()
    assert "This page doesn't exist" in text
    assert 'href="/"' in text
    assert_security_headers(res.headers)


@pytest.mark.parametrize("path", ["/api/nope", "/api", "/api/sessions/1/nope"])
async def test_an_unknown_api_path_stays_json(client: TestClient[Any, Any], path: str) -> None:
    res = await client.get(path)
    assert res.status == 404
    assert res.content_type == "application/json"
    assert (await res.json())["error"]["code"] == "not_found"


async def test_the_wrong_method_is_still_405(client: TestClient[Any, Any]) -> None:
    res = await client.delete("/api/auth/login")
    assert res.status == 405
    assert res.content_type == "application/json"


async def test_a_page_about_a_missing_session_is_the_not_found_page(api: Api) -> None:
    host = await api.signup("host")
    show = await api.live_session(host)
    for path in ("/studio/999999/stats", "/replay/999999", "/replay/99999999999"):
        res = await api.client.get(path)
        assert res.status == 404, path
        assert res.content_type == "text/html"
        assert "This page doesn't exist" in await res.text()
        assert_security_headers(res.headers)
    for path in (f"/studio/{show['id']}/stats", f"/replay/{show['id']}", "/watch/999999"):
        res = await api.client.get(path)
        assert res.status == 200, path
        assert "This page doesn't exist" not in await res.text()


async def test_the_favicon(client: TestClient[Any, Any]) -> None:
    for path in ("/favicon.ico", "/static/favicon.svg"):
        res = await client.get(path)
        assert res.status == 200, path
        assert res.content_type == "image/svg+xml"
        assert (await res.text()).lstrip().startswith("<svg")
        assert_security_headers(res.headers)


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def sold_three(api: Api) -> tuple[Account, Account]:
    """A host's live show sells 3 of a brand's 19.99 EUR product; (host, brand)."""
    host, brand, buyer = [await api.signup(r) for r in ("host", "brand", "viewer")]
    show = await api.live_session(host)
    product = await api.call(
        "POST",
        "/api/products",
        brand,
        json={
            "title": "Mug",
            "price_minor": 1_999,
            "currency": "EUR",
            "stock": 9,
            "commission_bps": 1500,
        },
        expect=201,
    )
    coop = await api.call(
        "POST",
        "/api/cooperations",
        brand,
        json={"host_id": host.id, "product_ids": [product["id"]], "commission_bps": 1500},
        expect=201,
    )
    await api.call("POST", f"/api/cooperations/{coop['id']}/accept", host, expect=200)
    await api.call(
        "POST",
        f"/api/sessions/{show['id']}/shelf",
        host,
        json={"product_id": product["id"]},
        expect=201,
    )
    await api.call(
        "POST",
        f"/api/sessions/{show['id']}/orders",
        buyer,
        json={"product_id": product["id"], "quantity": 3},
        headers={"Idempotency-Key": uuid.uuid4().hex},
        expect=201,
    )
    return host, brand


async def test_the_csv_has_minor_units_and_amounts(api: Api) -> None:
    host, brand = await sold_three(api)  # 59.97 EUR, 15 % commission: 8.99
    res = await api.client.get(f"/api/brands/{brand.id}/sales?format=csv", headers=brand.headers)
    assert res.status == 200
    (row,) = parse_csv(await res.text())
    money = [c for c in BRAND_COLUMNS if c.endswith("_minor")]
    assert list(row) == BRAND_COLUMNS + [c.removesuffix("_minor") for c in money]
    assert (row["currency"], row["gmv_minor"], row["gmv"]) == ("EUR", "5997", "59.97")
    assert (row["host_commission_minor"], row["host_commission"]) == ("899", "8.99")
    for column in money:
        minor = int(row[column])
        assert row[column.removesuffix("_minor")] == f"{minor // 100}.{minor % 100:02d}"

    res = await api.client.get(f"/api/hosts/{host.id}/commission?format=csv", headers=host.headers)
    (row,) = parse_csv(await res.text())
    assert list(row)[: len(HOST_COLUMNS)] == HOST_COLUMNS
    assert (row["gmv_minor"], row["gmv"]) == ("5997", "59.97")
    assert (row["commission_total_minor"], row["commission_total"]) == ("899", "8.99")


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (5, "EUR", "0.05"),
        (-5, "EUR", "-0.05"),
        (1500, "JPY", "1500"),
        (1234, "KWD", "1.234"),
        (0, "USD", "0.00"),
        (10**12, "EUR", "10000000000.00"),
    ],
)
def test_amounts_in_the_currency(minor: int, currency: str, text: str) -> None:
    from shelf.report_answers import amount

    assert str(amount(minor, currency)) == text
