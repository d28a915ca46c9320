"""Rate limits (live/ratelimit.py): the GCRA rule, the same in memory and in Redis, and
Redis going away."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from live.clock import ManualClock
from live.ratelimit import MemoryRateLimiter, Rate, RateLimiter, RedisRateLimiter

FIVE_THEN_ONE_PER_10S = Rate(0.1, 5)


@pytest.fixture(params=["memory", "redis"])
async def limiter_and_clock(request: pytest.FixtureRequest) -> Any:
    clock = ManualClock()
    if request.param == "memory":
        yield MemoryRateLimiter(clock), clock
        return
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs REDIS_URL (see .ci/run)")
    redis = Redis.from_url(url)
    prefix = f"test-rl-{uuid.uuid4().hex[:8]}"
    yield RedisRateLimiter(redis, prefix, clock), clock
    keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def attempts(limiter: RateLimiter, key: str, rate: Rate, n: int) -> list[int]:
    return [await limiter.acquire(key, rate) for _ in range(n)]


async def test_a_burst_then_one_per_interval(limiter_and_clock: Any) -> None:
    limiter, clock = limiter_and_clock
    waits = await attempts(limiter, "k", FIVE_THEN_ONE_PER_10S, 7)
    assert waits[:5] == [0] * 5
    assert 9_990 <= waits[5] <= 10_000 and waits[6] == waits[5]  # refusals count nothing
    clock.advance(9_000)
    assert 990 <= await limiter.acquire("k", FIVE_THEN_ONE_PER_10S) <= 1_000
    clock.advance(1_000)
    assert await limiter.acquire("k", FIVE_THEN_ONE_PER_10S) == 0  # one more now
    assert await limiter.acquire("k", FIVE_THEN_ONE_PER_10S) > 0
    assert await limiter.acquire("other", FIVE_THEN_ONE_PER_10S) == 0  # keys are apart
    clock.advance(60_000)  # back to a full burst, no more
    assert await attempts(limiter, "k", FIVE_THEN_ONE_PER_10S, 6) == [0] * 5 + [10_000]


async def test_redis_down_falls_back_to_this_process(limiter_and_clock: Any) -> None:
    limiter, _ = limiter_and_clock
    if not isinstance(limiter, RedisRateLimiter):
        pytest.skip("Redis only")
    dead = RedisRateLimiter(
        Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.2),
        "x",
        ManualClock(),
    )
    waits = await attempts(dead, "k", Rate(1.0, 2), 3)
    assert waits[:2] == [0, 0] and waits[2] > 0


def test_a_rate_needs_a_positive_rate_and_a_burst() -> None:
    for per_s, burst in ((0, 1), (-1, 1), (1, 0)):
        with pytest.raises(ValueError):
            Rate(per_s, burst)


def test_many_live_keys_are_pruned_rarely_and_expired_ones_dropped() -> None:
    """An attack spread over many keys must not make every call rebuild the map (it
    did once more than PRUNE_AT keys were still counting), and keys back to their full
    burst are dropped."""
    clock = ManualClock(0)
    limiter = MemoryRateLimiter(clock)
    slow = Rate(per_s=1 / 3600, burst=1)  # each key counts for an hour
    prunes = 0

    for n in range(30_000):
        before = limiter._tat
        limiter.take(f"k{n}", slow)
        prunes += limiter._tat is not before
    assert prunes <= 2, prunes  # at 10,000 and 20,000 live keys, not on every call
    assert len(limiter._tat) == 30_000  # all still counting: none may be dropped
    clock.advance(3_600_001)  # all back to full
    for n in range(50_000):
        limiter.take(f"new{n}", Rate(per_s=1000, burst=1))  # each counts for 1 ms
        clock.advance(2)
    # the 30,000 were dropped at the next pruning, and the map shrank back to the floor
    assert len(limiter._tat) <= MemoryRateLimiter.PRUNE_AT, len(limiter._tat)
