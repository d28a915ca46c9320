"""Caps on what clients hold (live/holdings.py): one contract for the memory and the
Redis twin; two processes' Redis twins see each other's holdings; a dead process's
holdings expire; Redis going away leaves the caps per process."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from live.clock import ManualClock
from live.holdings import Holdings, MemoryHoldings, RedisHoldings

CAPS = {"a:10.0.0.1": 3, "u:7": 2}


@pytest.fixture
async def redis_and_prefix() -> AsyncIterator[tuple[Redis, str]]:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs REDIS_URL (see .ci/run)")
    redis = Redis.from_url(url)
    prefix = f"test-hold-{uuid.uuid4().hex[:8]}"
    yield redis, prefix
    keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.fixture(params=["memory", "redis"])
async def make(
    request: pytest.FixtureRequest, redis_and_prefix: tuple[Redis, str]
) -> AsyncIterator[Callable[[], Any]]:
    """A factory of twins sharing one store (processes of one deployment)."""
    redis, prefix = redis_and_prefix
    clock = ManualClock()
    made: list[Holdings] = []
    shared = MemoryHoldings()

    async def new() -> Holdings:
        twin: Holdings = (
            shared if request.param == "memory" else RedisHoldings(redis, prefix, clock)
        )
        await twin.start()
        made.append(twin)
        return twin

    yield new
    for twin in made:
        await twin.stop()


async def test_caps_per_key_and_nothing_counted_on_a_refusal(make: Callable[[], Any]) -> None:
    h: Holdings = await make()
    assert await h.take(1, CAPS, "s1")
    assert await h.take(1, CAPS, "s2")
    assert not await h.take(1, CAPS, "s3")  # user 7 holds 2
    assert await h.take(1, CAPS, "s1")  # the same holding again: no-op
    # Nothing was counted for s3 under the address: a third from it (another user) fits.
    assert await h.take(1, {"a:10.0.0.1": 3, "u:8": 2}, "s4")
    assert not await h.take(1, {"a:10.0.0.1": 3}, "s5")  # the address holds 3
    assert await h.take(2, CAPS, "s5")  # another show counts apart
    assert await h.take(1, {"a:10.0.0.2": 3}, "s6")  # another address too
    for i in range(5):
        assert await h.take(1, {"a:10.0.0.9": 0}, f"n{i}")  # 0: no cap
    h.give_back(1, CAPS, "s1")
    await asyncio.sleep(0.05)  # the Redis twin uncounts in the background
    assert await h.take(1, CAPS, "s3")


async def test_every_process_sees_the_same_counts(make: Callable[[], Any]) -> None:
    a: Holdings = await make()
    b: Holdings = await make()
    assert await a.take(1, CAPS, "a1") and await b.take(1, CAPS, "b1")
    assert not await a.take(1, CAPS, "a2")
    assert not await b.take(1, CAPS, "b2")
    b.give_back(1, CAPS, "b1")
    for _ in range(50):
        if await a.take(1, CAPS, "a2"):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("a holding given back in one process never freed the cap")


async def test_a_dead_process_holdings_expire_and_live_ones_are_restamped(
    redis_and_prefix: tuple[Redis, str],
) -> None:
    redis, prefix = redis_and_prefix
    clock = ManualClock()
    alive = RedisHoldings(redis, prefix, clock, ttl_ms=300)
    dead = RedisHoldings(redis, prefix, clock, ttl_ms=300)
    await alive.start()
    try:
        assert await alive.take(1, {"u:7": 2}, "alive")
        assert await dead.take(1, {"u:7": 2}, "dead")  # its process then dies: no restamp
        assert not await alive.take(1, {"u:7": 2}, "third")
        for _ in range(4):  # the live one re-stamps every ttl/3 (100 ms here)
            clock.advance(100)
            await asyncio.sleep(0.15)
        assert await alive.take(1, {"u:7": 2}, "third")  # "dead" expired, "alive" did not
        assert not await alive.take(1, {"u:7": 2}, "fourth")
    finally:
        await alive.stop()


async def test_redis_down_keeps_caps_per_process(redis_and_prefix: tuple[Redis, str]) -> None:
    _, prefix = redis_and_prefix
    gone = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2)  # nothing listens
    h = RedisHoldings(gone, prefix, ManualClock())
    try:
        assert await h.take(1, {"u:7": 2}, "a") and await h.take(1, {"u:7": 2}, "b")
        assert not await h.take(1, {"u:7": 2}, "c")
        h.give_back(1, {"u:7": 2}, "a")
        assert await h.take(1, {"u:7": 2}, "c")
    finally:
        await gone.aclose()
