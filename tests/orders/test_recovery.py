"""Orders left ``placed`` are settled while the server runs (issue 18): the payment
call is lost after the units were taken (the buyer hears 503 ``payment_unavailable``),
and the background pass settles the order within its bound, without a restart and
without a retry; the same key then answers with the paid order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from orders_support import open_shop, order
from support import Api

from app import Settings
from shelf.feature import orders_key
from shelf.payments import Captured, TestPaymentProvider


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"order_recovery_every_s": 0.2, "order_recovery_after_s": 0.5}
    )


class LosesTheFirstCall(TestPaymentProvider):
    """A card processor whose first answer never arrives."""

    lost = 0

    async def capture(
        self, order_id: int, amount_minor: int, currency: str, buyer_id: int
    ) -> Captured:
        if not self.lost:
            self.lost += 1
            raise ConnectionError("the card processor did not answer")
        return await super().capture(order_id, amount_minor, currency, buyer_id)


async def test_an_order_left_placed_is_settled_without_a_restart(api: Api) -> None:
    shop = await open_shop(api, stock=5)
    api.client.app[orders_key]._payments = LosesTheFirstCall()
    buyer = await api.signup("viewer")
    status, body = await order(api, shop, buyer, key="lost")
    assert status == 503, body
    assert body["error"]["code"] == "payment_unavailable"
    # nobody retries: the background pass settles it by itself
    async with asyncio.timeout(5):
        while True:
            mine = (await api.call("GET", "/api/me/orders", buyer, expect=200))["orders"]
            if mine and mine[0]["status"] != "placed":
                break
            await asyncio.sleep(0.1)
    assert [o["status"] for o in mine] == ["paid"]
    status, body = await order(api, shop, buyer, key="lost")  # the buyer's retry
    assert (status, body["id"], body["status"]) == (201, mine[0]["id"], "paid")
    product = await api.call("GET", f"/api/products/{shop.products[0]['id']}", expect=200)
    assert product["stock"] == 4  # taken once, for the one order


async def test_recovery_survives_a_failing_pass(api: Api, caplog: Any) -> None:
    """A pass that fails (the database down) is logged once and retried."""
    from shelf.recovery import OrderRecovery

    class Down:
        calls = 0

        async def recover(self, older_than_ms: int = 0) -> int:
            self.calls += 1
            if self.calls < 4:
                raise ConnectionRefusedError("database down")
            return 2

    down = Down()
    recovery = OrderRecovery(down, every_s=0.01, after_s=0)
    results = [await recovery.run_once() for _ in range(5)]
    assert results == [0, 0, 0, 2, 2]
    warnings = [r for r in caplog.records if "cannot settle" in r.getMessage()]
    assert len(warnings) == 1
