"""Rate limits that hold across workers: logins, signups, WHEP offers, room sockets.

Each limit is a ``Rate``: ``burst`` attempts at once, then one every ``1 / per_s``
seconds (GCRA, the generic cell rate algorithm: one timestamp per key, the "theoretical
arrival time"). ``RateLimiter.acquire`` counts one attempt and answers how long the
caller must wait (0: go ahead; nothing is counted for a refused attempt).

- ``MemoryRateLimiter``: this process only (one process, or no Redis).
- ``RedisRateLimiter``: one key per limited thing in Redis, updated by one Lua script,
  so every worker and node counts the same attempts. While Redis cannot be reached it
  falls back to its own memory (limits then hold per process) rather than refusing or
  letting everything through.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .clock import Clock
from .errors import RateLimited

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rate:
    """``burst`` at once, then ``per_s`` a second."""

    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_s <= 0 or self.burst < 1:
            raise ValueError(f"a rate needs per_s > 0 and burst >= 1, got {self}")

    @property
    def interval_ms(self) -> float:
        return 1000.0 / self.per_s


class RateLimiter(Protocol):
    async def acquire(self, key: str, rate: Rate) -> int:
        """Count an attempt on ``key``: 0 if allowed, else the milliseconds to wait."""
        ...


async def check(limiter: RateLimiter, key: str, rate: Rate, code: str, message: str) -> None:
    """Count an attempt; ``RateLimited`` (429 with ``Retry-After``) if over the rate."""
    wait_ms = await limiter.acquire(key, rate)
    if wait_ms:
        raise RateLimited(code, message, retry_after_ms=wait_ms)


class MemoryRateLimiter:
    """GCRA in this process's memory."""

    #: keys kept before the expired ones are dropped: the map holds at most this many
    #: keys, or if more, twice the keys not back to their full burst (tried within the
    #: last ``burst / per_s`` seconds) at the last pruning; pruning again only after the
    #: map doubled keeps its cost constant per call (an attack spread over many keys
    #: would otherwise make every call rebuild the map)
    PRUNE_AT = 10_000

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}
        self._prune_at = self.PRUNE_AT

    async def acquire(self, key: str, rate: Rate) -> int:
        return self.take(key, rate)

    def take(self, key: str, rate: Rate) -> int:
        now = float(self._clock.now_ms())
        interval = rate.interval_ms
        tat = max(self._tat.get(key, now), now)
        allowed_from = tat - interval * (rate.burst - 1)
        if now < allowed_from:
            return math.ceil(allowed_from - now)
        if len(self._tat) >= self._prune_at:
            self._tat = {k: t for k, t in self._tat.items() if t > now}
            self._prune_at = max(self.PRUNE_AT, 2 * len(self._tat))
        self._tat[key] = tat + interval
        return 0


# KEYS[1]: the key; ARGV: now (ms), interval (ms), burst. Returns the wait in ms (0: go).
_GCRA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
local allowed_from = tat - interval * (burst - 1)
if now < allowed_from then return math.ceil(allowed_from - now) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1)
return 0
"""


class RedisRateLimiter:
    """GCRA in Redis (one key per limited thing, expiring when it is back to full)."""

    def __init__(self, redis: Redis, prefix: str, clock: Clock) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:rl:"
        self._clock = clock
        self._script = redis.register_script(_GCRA)
        self._fallback = MemoryRateLimiter(clock)
        self._down = False

    async def acquire(self, key: str, rate: Rate) -> int:
        now = self._clock.now_ms()
        try:
            wait = await self._script(
                keys=[self._prefix + key], args=[now, rate.interval_ms, rate.burst]
            )
        except RedisError as exc:
            if not self._down:
                log.warning("rate limits held per process while Redis is down: %r", exc)
            self._down = True
            return self._fallback.take(key, rate)
        self._down = False
        return int(wait)
