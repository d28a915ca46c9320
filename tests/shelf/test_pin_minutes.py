"""``shelf.pin_minutes.PinWindows``: the pinned minutes a deal's delivery is checked
against (every window of the product in the session, an open one until now), and
whose a product is; on both backends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from live.clock import ManualClock
from live.db import Database
from live.models import LiveSession, Role, User
from live.settings import Settings
from shelf.models import Pin, Product
from shelf.pin_minutes import PinWindows

T0 = 1_764_000_000_000
MINUTE = 60_000


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url, schema=settings.database_schema)
    await database.migrate()
    yield database
    await database.dispose()


async def test_pinned_minutes_add_every_window_and_an_open_one_until_now(db: Database) -> None:
    clock = ManualClock(T0 + 30 * MINUTE)
    async with db.transaction() as tx:
        brand = User(
            username="b",
            display_name="b",
            role=Role.BRAND,
            password_hash="x",
            created_ms=T0,
            disabled=False,
        )
        host = User(
            username="h",
            display_name="h",
            role=Role.HOST,
            password_hash="x",
            created_ms=T0,
            disabled=False,
        )
        tx.add_all([brand, host])
        await tx.flush()
        show = LiveSession(host_id=host.id, title="s", status="live", created_ms=T0)
        products = [
            Product(
                brand_id=brand.id,
                title=t,
                description="",
                price_minor=1,
                currency="EUR",
                stock=1,
                commission_bps=0,
                created_ms=T0,
                updated_ms=T0,
            )
            for t in ("a", "b")
        ]
        tx.add_all([show, *products])
        await tx.flush()
        a, b = products[0].id, products[1].id
        tx.add_all(
            [
                Pin(session_id=show.id, product_id=a, start_ms=T0, end_ms=T0 + 4 * MINUTE + 59_999),
                Pin(
                    session_id=show.id,
                    product_id=b,
                    start_ms=T0 + 5 * MINUTE,
                    end_ms=T0 + 6 * MINUTE,
                ),
                Pin(session_id=show.id, product_id=a, start_ms=T0 + 25 * MINUTE, end_ms=None),
            ]
        )
        session_id, brand_id = show.id, brand.id
    pins = PinWindows(db, clock)
    # 4 min 59.999 s + 5 min (open, until now): 9 whole minutes
    assert await pins.pinned_minutes(session_id, a) == 9
    clock.advance(1)
    assert await pins.pinned_minutes(session_id, a) == 10
    assert await pins.pinned_minutes(session_id, b) == 1
    assert await pins.pinned_minutes(session_id + 1, a) == 0
    assert await pins.brand_of(a) == brand_id
    assert await pins.brand_of(b + 100) is None
