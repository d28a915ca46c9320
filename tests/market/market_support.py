"""Helpers of the market tests: rate cards to publish, an app on a scripted clock."""

from __future__ import annotations

import uuid
from typing import Any

from support import Account, Api

T0 = 1_764_000_000_000  # a whole second
DAY = 86_400_000


def service(kind: str = "shelf_slot", price: int = 5_000, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": kind,
        "price_minor": price,
        "currency": "EUR",
        "turnaround_days": 7,
    }
    if kind == "live_segment":
        body["minutes"] = 10
    body.update(more)
    return body


async def publish(
    api: Api, host: Account, services: list[dict[str, Any]], *, by: Account | None = None
) -> dict[str, Any]:
    return dict(
        await api.call(
            "PUT",
            f"/api/hosts/{host.id}/rate-card",
            by or host,
            json={"services": services},
            expect=201,
        )
    )


async def shop(api: Api, price_minor: int) -> tuple[Account, Account, int, int]:
    """A brand, a host with a live show, and one product of the brand's on its shelf
    under an accepted agreement: ``(brand, host, session id, product id)``."""
    brand, host = await api.signup("brand"), await api.signup("host")
    product = await api.call(
        "POST",
        "/api/products",
        brand,
        json={
            "title": "Serum",
            "price_minor": price_minor,
            "currency": "EUR",
            "stock": 100,
            "commission_bps": 1000,
        },
        expect=201,
    )
    coop = await api.call(
        "POST",
        "/api/cooperations",
        brand,
        json={"host_id": host.id, "product_ids": [product["id"]], "commission_bps": 1000},
        expect=201,
    )
    await api.call("POST", f"/api/cooperations/{coop['id']}/accept", host, expect=200)
    session = await api.live_session(host)
    await api.call(
        "POST",
        f"/api/sessions/{session['id']}/shelf",
        host,
        json={"product_id": product["id"]},
        expect=201,
    )
    return brand, host, int(session["id"]), int(product["id"])


async def buy(api: Api, buyer: Account, session_id: int, product_id: int, quantity: int) -> int:
    """An order placed (and paid) through the API: its id."""
    body = await api.call(
        "POST",
        f"/api/sessions/{session_id}/orders",
        buyer,
        json={"product_id": product_id, "quantity": quantity},
        headers={"Idempotency-Key": uuid.uuid4().hex},
        expect=201,
    )
    assert body["status"] == "paid", body
    return int(body["id"])
