"""Orders while Redis is down (issue 18): an order the database holds as paid is
answered 201, never a 5xx; its ``order.placed`` reaches the room once Redis is back,
exactly once. Redis here is the test's own (tests/own_redis.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import orjson
import pytest
from orders_support import many_viewers, open_shop, order
from own_redis import OwnRedis
from sqlalchemy import select
from support import Api

from app import Settings, create_app, db_key, outbox_relay_key, room_log_key
from shelf.order_models import Order


@pytest.mark.parametrize("backend", ["postgres-redis"])
async def test_orders_while_redis_is_down_are_answered_201_and_announced_later(
    settings: Settings, aiohttp_client: Any, backend: str
) -> None:
    own = OwnRedis()
    await own.start()
    try:
        app = create_app(settings.model_copy(update={"redis_url": own.url, "outbox_poll_s": 0.2}))
        api = Api(await aiohttp_client(app))
        shop = await open_shop(api, stock=200)
        buyers = await many_viewers(api, 30)
        for buyer in buyers[:5]:
            assert (await order(api, shop, buyer))[0] == 201

        own.kill()
        keys = [uuid.uuid4().hex for _ in buyers[5:25]]
        answers = await asyncio.gather(
            *(order(api, shop, b, key=k) for b, k in zip(buyers[5:25], keys, strict=True))
        )
        assert [status for status, _ in answers] == [201] * 20, answers
        assert app[outbox_relay_key].behind
        # a retry with the same key (a buyer who did not see the answer) is the same order
        status, again = await order(api, shop, buyers[5], key=keys[0])
        assert (status, again["id"]) == (201, answers[0][1]["id"])
        during = {body["id"] for _, body in answers}
        async with app[db_key].read() as s:
            paid = set(await s.scalars(select(Order.id).where(Order.status == "paid")))
        assert during <= paid and len(paid) == 25  # every paid order was answered 201

        await own.start()  # empty: a crash without persistence
        async with asyncio.timeout(10):
            while app[outbox_relay_key].behind:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        log = app[room_log_key]
        position = await log.position(shop.session_id)
        raw = await log.read_since(shop.session_id, 0, position.epoch)
        assert raw is not None
        events = [orjson.loads(r) for r in raw]
        placed = [e["data"]["order_id"] for e in events if e["type"] == "order.placed"]
        assert Counter(placed) == Counter(during)  # each once
    finally:
        own.kill()
