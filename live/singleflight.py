"""Collapse concurrent identical loads into one (a crowd joining at once makes one query)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """``await flight.do(key, load)``: while a load for ``key`` runs, later callers for the
    same key wait for its result (or its exception) instead of starting another."""

    def __init__(self) -> None:
        #: one per load under way, removed when it ends
        self._running: dict[Hashable, asyncio.Future[T]] = {}

    async def do(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            result = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._running[key]
