"""The deal routes over HTTP (API.md "Deals"), on both backends: an offer paid once per
Idempotency-Key, steps by the right party only, the receipt, the fee schedule."""

from __future__ import annotations

from market_support import publish, service
from support import Api, admin


async def test_an_offer_its_steps_and_its_receipt(api: Api) -> None:
    brand, host, stranger = (
        await api.signup("brand"),
        await api.signup("host"),
        await api.signup("brand"),
    )
    card = await publish(api, host, [service("live_segment", 12_345)])
    body = {
        "host_id": host.id,
        "card_version": card["version"],
        "service_id": card["services"][0]["id"],
    }
    key = {"Idempotency-Key": "deal-1"}
    deal = await api.call("POST", "/api/deals", brand, json=body, headers=key, expect=201)
    assert (deal["state"], deal["price_minor"], deal["platform_fee_bps"]) == (
        "offered",
        12_345,
        1_000,
    )
    again = await api.call("POST", "/api/deals", brand, json=body, headers=key, expect=200)
    assert again == deal
    await api.call("POST", "/api/deals", brand, json=body, expect=400)
    path = f"/api/deals/{deal['id']}"
    assert await api.call("GET", path, host, expect=200) == deal
    await api.call("GET", path, stranger, expect=403)
    await api.call("POST", f"{path}/accept", brand, expect=403)
    await api.call("POST", f"{path}/approve", brand, expect=409)
    await api.call("POST", f"{path}/nonsense", host, expect=404)
    step = {"Idempotency-Key": "decline-1"}
    declined = await api.call("POST", f"{path}/decline", host, headers=step, expect=200)
    assert declined["state"] == "declined"
    assert await api.call("POST", f"{path}/decline", host, headers=step, expect=200) == declined
    # a key names one step: the offer's is not the decline's
    await api.call("POST", f"{path}/decline", host, headers=key, expect=422)
    receipt = await api.call("GET", f"{path}/receipt", brand, expect=200)
    assert sorted((x["txn"], x["account"], x["amount_minor"]) for x in receipt["lines"]) == [
        (f"deal:{deal['id']}:escrow", "brand_payments", -12_345),
        (f"deal:{deal['id']}:escrow", "deal_escrow", 12_345),
        (f"deal:{deal['id']}:refund", "brand_payments", 12_345),
        (f"deal:{deal['id']}:refund", "deal_escrow", -12_345),
    ]
    assert {b["account"]: b["payable_minor"] for b in receipt["balances"]} == {
        "brand_payments": 0,
        "deal_escrow": 0,
    }
    await api.call("GET", f"{path}/receipt", await admin(api), expect=200)


async def test_the_fee_schedule_is_published(api: Api) -> None:
    fees = await api.call("GET", "/api/fees", None, expect=200)
    assert (fees["platform_fee_bps"], fees["agency_share_bps"]) == (1_000, 1_500)
