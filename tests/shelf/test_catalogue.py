"""Brands' catalogues: create, edit, archive, list; role checks; bad bodies."""

from __future__ import annotations

from typing import Any

import pytest
from shelf_support import make_product
from support import Api


async def test_create_edit_archive_list(api: Api) -> None:
    brand = await api.signup("brand")
    product = await make_product(
        api, brand, description="warm", image_url="https://img.example/scarf.jpg"
    )
    assert product["brand_id"] == brand.id
    assert product["price_minor"] == 3900 and product["currency"] == "EUR"
    assert product["archived"] is False
    pid = product["id"]
    edited = await api.call(
        "PATCH", f"/api/products/{pid}", brand, json={"price_minor": 3500, "stock": 7}, expect=200
    )
    assert edited["price_minor"] == 3500
    assert edited["stock"] == 7
    assert edited["stock_version"] == product["stock_version"] + 1
    assert edited["title"] == product["title"]
    cleared = await api.call(
        "PATCH", f"/api/products/{pid}", brand, json={"image_url": None}, expect=200
    )
    assert cleared["image_url"] is None
    listed = await api.call("GET", f"/api/brands/{brand.id}/products", expect=200)
    assert [p["id"] for p in listed["products"]] == [pid]

    archived = await api.call("POST", f"/api/products/{pid}/archive", brand, expect=200)
    assert archived["archived"] is True
    again = await api.call("POST", f"/api/products/{pid}/archive", brand, expect=200)
    assert again["archived_at"] == archived["archived_at"]
    res = await api.call("PATCH", f"/api/products/{pid}", brand, json={"title": "x"}, expect=409)
    assert res["error"]["code"] == "product_archived"
    assert (await api.call("GET", f"/api/brands/{brand.id}/products", expect=200))["products"] == []
    own = await api.call(
        "GET", f"/api/brands/{brand.id}/products?include_archived=1", brand, expect=200
    )
    assert [p["id"] for p in own["products"]] == [pid]
    assert (await api.call("GET", f"/api/products/{pid}", expect=200))["archived"] is True


@pytest.mark.parametrize("role", ["viewer", "host", "agency"])
async def test_only_brands_create_products(api: Api, role: str) -> None:
    account = await api.signup(role)
    body = {"title": "t", "price_minor": 1, "currency": "EUR", "stock": 1, "commission_bps": 1}
    res = await api.call("POST", "/api/products", account, json=body, expect=403)
    assert res["error"]["code"] == "role_not_allowed"
    await api.call("POST", "/api/products", json=body, expect=401)


async def test_a_brand_cannot_touch_another_brands_product(api: Api) -> None:
    owner = await api.signup("brand")
    other = await api.signup("brand")
    host = await api.signup("host")
    pid = (await make_product(api, owner))["id"]
    for account, status, code in (
        (other, 403, "not_your_product"),
        (host, 403, "role_not_allowed"),
    ):
        res = await api.call(
            "PATCH", f"/api/products/{pid}", account, json={"title": "mine"}, expect=status
        )
        assert res["error"]["code"] == code
        res = await api.call("POST", f"/api/products/{pid}/archive", account, expect=status)
        assert res["error"]["code"] == code
    await api.call("PATCH", f"/api/products/{pid}", json={"title": "mine"}, expect=401)
    product = await api.call("GET", f"/api/products/{pid}", expect=200)
    assert product["title"] == "Merino scarf" and product["archived"] is False
    res = await api.call("PATCH", "/api/products/999999", owner, json={"title": "x"}, expect=404)
    assert res["error"]["code"] == "product_not_found"


BAD_PRODUCTS: list[Any] = [
    {},
    {"title": "", "price_minor": 1, "currency": "EUR", "stock": 1, "commission_bps": 1},
    {"title": "x" * 201, "price_minor": 1, "currency": "EUR", "stock": 1, "commission_bps": 1},
    {"title": "t", "price_minor": -1, "currency": "EUR", "stock": 1, "commission_bps": 1},
    {"title": "t", "price_minor": 1.5, "currency": "EUR", "stock": 1, "commission_bps": 1},
    {"title": "t", "price_minor": "100", "currency": "EUR", "stock": 1, "commission_bps": 1},
    {"title": "t", "price_minor": 1, "currency": "XYZ", "stock": 1, "commission_bps": 1},
    {"title": "t", "price_minor": 1, "currency": "eur", "stock": 1, "commission_bps": 1},
    {"title": "t", "price_minor": 1, "currency": "EUR", "stock": -1, "commission_bps": 1},
    {"title": "t", "price_minor": 1, "currency": "EUR", "stock": 1, "commission_bps": 10001},
    {"title": "t", "price_minor": 1, "currency": "EUR", "stock": 1, "commission_bps": 1, "x": 1},
    {"title": "t", "price_minor": 10**13, "currency": "EUR", "stock": 1, "commission_bps": 1},
    {
        "title": "t",
        "price_minor": 1,
        "currency": "EUR",
        "stock": 1,
        "commission_bps": 1,
        "image_url": "javascript:alert(1)",
    },
    {
        "title": "t",
        "price_minor": 1,
        "currency": "EUR",
        "stock": 1,
        "commission_bps": 1,
        "description": "d" * 4001,
    },
    [1, 2],
]


async def test_bad_product_bodies_change_nothing(api: Api) -> None:
    brand = await api.signup("brand")
    pid = (await make_product(api, brand))["id"]
    for body in BAD_PRODUCTS:
        res = await api.call("POST", "/api/products", brand, json=body, expect=422)
        assert res["error"]["code"] == "invalid_input", body
    for body in (
        {},
        {"title": None},
        {"stock": -3},
        {"currency": "ABC"},
        {"price_minor": None},
        {"brand_id": 5},
    ):
        res = await api.call("PATCH", f"/api/products/{pid}", brand, json=body, expect=422)
        assert res["error"]["code"] == "invalid_input", body
    res = await api.client.post(
        "/api/products",
        data=b"{not json",
        headers={**brand.headers, "Content-Type": "application/json"},
    )
    assert res.status == 400 and (await res.json())["error"]["code"] == "invalid_json"
    listed = await api.call("GET", f"/api/brands/{brand.id}/products", expect=200)
    assert [p["id"] for p in listed["products"]] == [pid]
    assert listed["products"][0]["stock_version"] == 0


async def test_the_offered_commission_is_for_the_parties_of_agreements_only(api: Api) -> None:
    brand = await api.signup("brand")
    product = await make_product(api, brand, commission_bps=1700)
    path, listing = f"/api/products/{product['id']}", f"/api/brands/{brand.id}/products"
    for who in (brand, await api.signup("host"), await api.signup("agency")):
        assert (await api.call("GET", path, who, expect=200))["commission_bps"] == 1700
        assert (await api.call("GET", listing, who, expect=200))["products"][0][
            "commission_bps"
        ] == 1700
    for who in (None, await api.signup("viewer")):
        assert "commission_bps" not in await api.call("GET", path, who, expect=200)
        listed = (await api.call("GET", listing, who, expect=200))["products"][0]
        assert "commission_bps" not in listed and listed["price_minor"] == product["price_minor"]
