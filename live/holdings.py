"""What clients hold at once, counted across workers: the caps on room sockets and WHEP
peers per show, per client address and per user.

A *holding* is one open thing (a room socket, a WebRTC peer), named by a token unique
to it and counted under a few keys, each with its cap (``"ws:a:<address>"`` at most
300, ``"ws:u:<user id>"`` at most 10...). The contract both twins keep:

* ``take(show, caps, token)`` counts the holding under every key of ``caps`` and
  answers True -- unless one key already counts its cap (0: no cap), and then nothing
  is counted and it answers False. Taking a token again is a no-op that answers True.
* ``give_back(show, keys, token)`` uncounts it (at once in this process; in Redis
  within a moment: it never waits on Redis, so a closing socket never blocks).
* A holding of a process that died stops counting by itself (Redis twin: within
  ``ttl_ms``; the memory twin dies with its process).

- ``MemoryHoldings``: this process's memory (one process, or no Redis).
- ``RedisHoldings``: one sorted set per key and show in Redis, members the tokens
  scored by when they expire; one Lua script checks and counts under all keys at once,
  so every worker and node sees the same counts. Each process re-stamps its own
  holdings every ``ttl_ms / 3``. While Redis cannot be reached it counts in its own
  memory (caps then hold per process) rather than refusing everyone or no one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from contextlib import suppress
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .clock import Clock
from .tasks import stop_task

log = logging.getLogger(__name__)


class Holdings(Protocol):
    async def take(self, show: int, caps: Mapping[str, int], token: str) -> bool: ...

    def give_back(self, show: int, keys: Iterable[str], token: str) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class MemoryHoldings:
    def __init__(self) -> None:
        #: (show, key) -> the tokens counted under it: only keys holding a token (the
        #: open sockets and peers), a key goes with its last one
        self._held: dict[tuple[int, str], set[str]] = {}

    async def take(self, show: int, caps: Mapping[str, int], token: str) -> bool:
        return self.take_now(show, caps, token)

    def take_now(self, show: int, caps: Mapping[str, int], token: str) -> bool:
        for key, cap in caps.items():
            tokens = self._held.get((show, key), ())
            if cap and token not in tokens and len(tokens) >= cap:
                return False
        for key in caps:
            self._held.setdefault((show, key), set()).add(token)
        return True

    def give_back(self, show: int, keys: Iterable[str], token: str) -> None:
        for key in keys:
            tokens = self._held.get((show, key))
            if tokens is not None:
                tokens.discard(token)
                if not tokens:
                    del self._held[show, key]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


# KEYS: the sorted sets; ARGV: now (ms), ttl (ms), token, then each key's cap (0:
# none). Returns 1 when counted under every key, 0 when one was full (nothing counted).
# Scores are on the server clock passed in; key expiry (Redis's own clock) only bounds
# what an idle show leaves behind.
_TAKE = """
local now, ttl, token = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local cap = tonumber(ARGV[3 + i])
  if cap > 0 and not redis.call('ZSCORE', key, token)
      and redis.call('ZCARD', key) >= cap then
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, token)
  redis.call('PEXPIRE', key, ttl)
end
return 1
"""


class RedisHoldings:
    def __init__(self, redis: Redis, prefix: str, clock: Clock, *, ttl_ms: int = 30_000) -> None:
        self._redis = redis
        self._prefix = prefix
        self._clock = clock
        self._ttl_ms = ttl_ms
        self._script = redis.register_script(_TAKE)
        #: this process's holdings: (show, token) -> keys; re-stamped by the refresher;
        #: one per open socket or peer, removed by ``give_back``
        self._mine: dict[tuple[int, str], tuple[str, ...]] = {}
        #: given back, not yet uncounted in Redis: emptied by every flush, even one
        #: that fails (``_flush_returned``)
        self._returned: list[tuple[int, tuple[str, ...], str]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._fallback = MemoryHoldings()
        self._down = False

    def _key(self, show: int, key: str) -> str:
        # one hash tag per show: a holding's keys share a Redis Cluster slot
        return f"{self._prefix}:{{h{show}}}:{key}"

    async def take(self, show: int, caps: Mapping[str, int], token: str) -> bool:
        now = self._clock.now_ms()
        keys = [self._key(show, key) for key in caps]
        try:
            taken = await self._script(keys=keys, args=[now, self._ttl_ms, token, *caps.values()])
        except RedisError as exc:
            self._went_down(exc)
            return self._fallback.take_now(show, caps, token)
        self._down = False
        if taken:
            self._mine[show, token] = tuple(caps)
        return bool(taken)

    def give_back(self, show: int, keys: Iterable[str], token: str) -> None:
        self._fallback.give_back(show, keys, token)
        held = self._mine.pop((show, token), None)
        if held is not None:
            self._returned.append((show, held, token))
            self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"RedisHoldings({id(self)})")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        with suppress(RedisError):
            await self._flush_returned()

    async def _run(self) -> None:
        """Uncount what was given back as soon as it was; re-stamp what this process
        holds every third of the ttl."""
        period = self._ttl_ms / 3000
        loop = asyncio.get_running_loop()
        next_stamp = loop.time() + period
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_stamp - loop.time()))
            self._wake.clear()
            try:
                await self._flush_returned()
                if loop.time() >= next_stamp:
                    next_stamp = loop.time() + period
                    await self._stamp()
                self._down = False
            except RedisError as exc:
                self._went_down(exc)
                await asyncio.sleep(min(period, 1.0))

    async def _flush_returned(self) -> None:
        """Uncount what was given back. If Redis cannot be reached they are dropped,
        not kept: no longer re-stamped, they stop counting within ``ttl_ms`` anyway."""
        returned, self._returned = self._returned, []
        if not returned:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for show, keys, token in returned:
                for key in keys:
                    pipe.zrem(self._key(show, key), token)
            await pipe.execute()

    async def _stamp(self) -> None:
        if not self._mine:
            return
        expiry = self._clock.now_ms() + self._ttl_ms
        async with self._redis.pipeline(transaction=False) as pipe:
            for (show, token), keys in list(self._mine.items()):
                for key in keys:
                    pipe.zadd(self._key(show, key), {token: expiry})
                    pipe.pexpire(self._key(show, key), self._ttl_ms)
            await pipe.execute()

    def _went_down(self, exc: BaseException) -> None:
        if not self._down:
            log.warning(
                "RedisHoldings(%s): caps held per process while Redis is down: %r", id(self), exc
            )
        self._down = True


def caps_for(
    kind: str, address: str, user_id: int | None, per_address: int, per_user: int
) -> dict[str, int]:
    """The keys a holding of ``kind`` (``"ws"``, ``"whep"``) by this client counts
    under, with their caps: per client address, and per user when signed in (a cap of
    0 is none: no key)."""
    caps = {}
    if per_address:
        caps[f"{kind}:a:{address}"] = per_address
    if per_user and user_id is not None:
        caps[f"{kind}:u:{user_id}"] = per_user
    return caps
