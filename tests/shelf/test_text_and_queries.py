"""Input PostgreSQL cannot take is refused before it gets there (4xx, never a 500):
NUL characters in product and agreement text and in a host search, ids past any id's
range in ``GET /api/hosts?ids=``."""

from __future__ import annotations

from shelf_support import make_product
from support import Api


async def test_nul_characters_are_refused(api: Api) -> None:
    brand, host = await api.signup("brand"), await api.signup("host")
    for field, value in (("description", "a\x00b"), ("image_url", "https://a.example/\x00")):
        body = {"title": "Scarf", "price_minor": 1, "currency": "EUR", "stock": 1}
        res = await api.call(
            "POST",
            "/api/products",
            brand,
            json={**body, "commission_bps": 0, field: value},
            expect=422,
        )
        assert res["error"]["code"] == "invalid_input", field
    product = await make_product(api, brand)
    res = await api.call(
        "PATCH", f"/api/products/{product['id']}", brand, json={"description": "\x00"}, expect=422
    )
    assert res["error"]["code"] == "invalid_input"
    proposal = {"host_id": host.id, "product_ids": [product["id"]], "commission_bps": 1}
    res = await api.call(
        "POST", "/api/cooperations", brand, json={**proposal, "note": "x\x00"}, expect=422
    )
    assert res["error"]["code"] == "invalid_input"
    res = await api.call("GET", "/api/hosts?q=a%00", brand, expect=400)
    assert res["error"]["code"] == "invalid_query"


async def test_ids_past_any_ids_range_name_no_host(api: Api) -> None:
    brand, host = await api.signup("brand"), await api.signup("host")
    found = await api.call("GET", f"/api/hosts?ids={host.id},999999999999", brand, expect=200)
    assert [h["id"] for h in found["hosts"]] == [host.id]
    assert await api.call("GET", "/api/hosts?ids=2147483648", brand, expect=200) == {"hosts": []}
    res = await api.call("GET", "/api/hosts?ids=%C2%B2", brand, expect=400)
    assert res["error"]["code"] == "invalid_query"
