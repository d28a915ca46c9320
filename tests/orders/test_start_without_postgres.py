"""The server starts while PostgreSQL is down (issue 18): ``/healthz`` answers,
``/readyz`` says the database and the start-up steps waiting for it; what needs the
database, a signed-in request included (its revocation cannot be checked), is
answered 503 ``database_unavailable`` with ``Retry-After``, never 500. When PostgreSQL
comes back, without restarting liveshelf: ready, the order an earlier process left
``placed`` is settled, the outbox is drained and a new order is paid.
PostgreSQL here is the test's own (tests/own_postgres.py), stopped and started."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from orders_support import open_shop, order
from own_postgres import OwnPostgres
from sqlalchemy import func, select
from support import Api

from app import Settings, create_app, db_key
from live.models import OutboxEvent
from shelf.feature import orders_key
from shelf.order_models import Order
from shelf.payments import Captured, TestPaymentProvider


class NeverAnswers(TestPaymentProvider):
    async def capture(
        self, order_id: int, amount_minor: int, currency: str, buyer_id: int
    ) -> Captured:
        raise ConnectionError("the card processor did not answer")


@pytest.fixture
async def own_postgres() -> Any:
    pg = await asyncio.to_thread(OwnPostgres)
    await asyncio.to_thread(pg.start)
    yield pg
    await asyncio.to_thread(pg.stop)


@pytest.mark.parametrize("backend", ["postgres-redis"])
async def test_starts_with_postgres_down_and_recovers_when_it_is_back(
    own_postgres: OwnPostgres,  # first: stopped after the apps
    settings: Settings,
    aiohttp_client: Any,
    backend: str,
    caplog: Any,
) -> None:
    settings = settings.model_copy(
        update={
            "database_url": own_postgres.url,
            "database_schema": None,
            "order_recovery_every_s": 3600.0,
        }
    )
    # An earlier process: an order left placed (its payment never answered).
    first = await aiohttp_client(create_app(settings))
    api = Api(first)
    shop = await open_shop(api, stock=5)
    first.app[orders_key]._payments = NeverAnswers()
    buyer = await api.signup("viewer")
    status, body = await order(api, shop, buyer, key="lost")
    assert (status, body["error"]["code"]) == (503, "payment_unavailable")
    await first.close()
    await asyncio.to_thread(own_postgres.halt)

    caplog.set_level(logging.WARNING)
    client = await aiohttp_client(create_app(settings.model_copy(update={"auto_migrate": False})))
    api = Api(client)
    assert (await client.get("/healthz")).status == 200
    res = await client.get("/readyz")
    assert res.status == 503 and res.headers["Retry-After"] == "2"
    checks = (await res.json())["checks"]
    assert checks["database"].startswith("unavailable")
    assert "settling orders left half-done" in checks["startup"], checks
    assert "loading token revocations" in checks["startup"], checks
    for method, path, headers in (
        ("GET", "/api/sessions", {}),  # needs the database
        # needs only a token, but whether it was revoked cannot be told yet
        ("POST", "/api/auth/ticket", buyer.headers),
    ):
        res = await client.request(method, path, headers=headers)
        assert res.status == 503, (path, res.status, await res.text())
        assert res.headers["Retry-After"]
        assert (await res.json())["error"]["code"] == "database_unavailable"
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, [(r.name, r.getMessage(), r.created) for r in tracebacks]

    await asyncio.to_thread(own_postgres.start)
    async with asyncio.timeout(15):
        while True:
            if (await client.get("/readyz")).status == 200:
                break
            await asyncio.sleep(0.2)
    mine = (await api.call("GET", "/api/me/orders", buyer, expect=200))["orders"]
    assert [o["status"] for o in mine] == ["paid"]  # settled by the start-up pass
    status, body = await order(api, shop, buyer, key="new")
    assert (status, body["status"]) == (201, "paid")
    db = client.app[db_key]
    async with db.read() as s:
        paid = await s.scalar(select(func.count()).select_from(Order).where(Order.status == "paid"))
    assert paid == 2
    async with asyncio.timeout(5):  # published rows are deleted by the relay's next pass
        while True:
            async with db.read() as s:
                if not await s.scalar(select(func.count()).select_from(OutboxEvent)):
                    break
            await asyncio.sleep(0.2)
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, [(r.name, r.getMessage(), r.created) for r in tracebacks]
