"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can do its work).

``/readyz`` checks, each within ``timeout_s``: the database answers ``SELECT 1``;
Redis, when configured, answers ``PING``; the outbox relay is not behind (room events
are not waiting for the room log); no start-up step waits for a dependency
(``live.startup``: the database was down when the process started).
``200 {"ready": true, "checks": {...}}`` when all pass, else ``503`` with
``Retry-After`` and the same body saying which failed. A load balancer sends traffic
only to a ready process; the process itself starts and keeps running while a
dependency is down (it answers 503 for what needs it, ``live.outages``), and becomes
ready when it is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy import text

from .db import Database
from .http import json_response
from .tasks import reraise_if_cancelling


class Health:
    def __init__(
        self,
        db: Database,
        redis: Redis | None,
        outbox_behind: Callable[[], bool],
        *,
        starting: Callable[[], list[str]] = list,
        timeout_s: float = 1.0,
    ) -> None:
        self._db = db
        self._redis = redis
        self._outbox_behind = outbox_behind
        self._starting = starting
        self._timeout_s = timeout_s

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self.alive), web.get("/readyz", self.ready)]

    async def alive(self, _request: web.Request) -> web.Response:
        return json_response({"alive": True})

    async def ready(self, _request: web.Request) -> web.Response:
        checks = {"database": await self._check(self._database)}
        if self._redis is not None:
            checks["redis"] = await self._check(self._ping)
        checks["outbox"] = "behind" if self._outbox_behind() else "ok"
        waiting = self._starting()
        checks["startup"] = f"waiting: {', '.join(waiting)}" if waiting else "ok"
        ready = all(state == "ok" for state in checks.values())
        body = {"ready": ready, "checks": checks}
        if ready:
            return json_response(body)
        return json_response(body, status=503, headers={"Retry-After": "2"})

    async def _check(self, probe: Callable[[], Awaitable[object]]) -> str:
        try:
            async with asyncio.timeout(self._timeout_s):
                await probe()
        except Exception as exc:
            reraise_if_cancelling()
            return f"unavailable: {type(exc).__name__}"
        return "ok"

    async def _database(self) -> None:
        async with self._db.read() as s:
            await s.execute(text("SELECT 1"))

    async def _ping(self) -> None:
        assert self._redis is not None
        await self._redis.ping()
