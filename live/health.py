"""``GET /healthz`` (the process answers) and ``GET /readyz`` (it can do its work).

``/readyz`` runs its checks side by side, each within ``timeout_s``:

- ``database``: the database answers ``SELECT 1``;
- ``redis``, when configured: Redis answers ``PING``;
- ``migrations``: the database's Alembic revision (``alembic_version``, in the app's
  schema) is the newest one the code has (read once, from ``live/migrations``); else
  e.g. ``behind: at 0011, code needs 0012``;
- ``media``, on a worker of several other than the media home (``media.cluster``): the
  home answers its internal status;
- ``outbox``: the outbox relay is not behind (room events are not waiting for the room
  log);
- ``startup``: no start-up step waits for a dependency (``live.startup``: the database
  was down when the process started).

``200 {"ready": true, "checks": {...}}`` when all are ``"ok"``, else ``503`` with
``Retry-After`` and the same body saying which failed and why (``unavailable: ...``).
A load balancer sends traffic only to a ready process; the process itself starts and
keeps running while a dependency is down (it answers 503 for what needs it,
``live.outages``), and becomes ready when it is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy import text

from .answers import AliveAnswer, ReadyAnswer
from .db import Database, migration_scripts
from .http import json_response
from .openapi import Answer, operation
from .tasks import reraise_if_cancelling

#: Probes carry no account: a token sent along is not even read (its check could need
#: Redis, and a probe must answer while Redis is down)
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})

#: A check of a dependency: it returns when the dependency is there and raises if not.
Reachable = Callable[[], Awaitable[None]]


class Health:
    """``media_home`` gives the media home's check (``MediaFeature.home_reachable``), or
    None where there is none (one process, or the home itself); it is read at each
    request, since the media is set up after these routes."""

    def __init__(
        self,
        db: Database,
        redis: Redis | None,
        outbox_behind: Callable[[], bool],
        *,
        starting: Callable[[], list[str]] = list,
        media_home: Callable[[], Reachable | None] = lambda: None,
        timeout_s: float = 1.0,
    ) -> None:
        self._db = db
        self._redis = redis
        self._outbox_behind = outbox_behind
        self._starting = starting
        self._media_home = media_home
        self._timeout_s = timeout_s
        scripts = migration_scripts()
        self._head = scripts.get_current_head()
        self._known = {script.revision for script in scripts.walk_revisions()}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self.alive), web.get("/readyz", self.ready)]

    @operation("Liveness: the process answers", tag="health", answers=Answer(200, AliveAnswer))
    async def alive(self, _request: web.Request) -> web.Response:
        return json_response({"alive": True})

    @operation(
        "Readiness: the process can do its work",
        tag="health",
        answers=[
            Answer(200, ReadyAnswer, description="every check is ok"),
            Answer(
                503,
                ReadyAnswer,
                description="not ready: the checks say which failed and why",
                headers={"Retry-After": "seconds to wait before asking again"},
            ),
        ],
    )
    async def ready(self, _request: web.Request) -> web.Response:
        """``200`` when every check (database, Redis if configured, migrations, the media
        home on a worker of several, outbox, start-up) is ``"ok"``, else ``503`` with the
        same body saying which failed and why (``live/health.py``)."""
        probes: dict[str, Callable[[], Awaitable[str | None]]] = {"database": self._database}
        if self._redis is not None:
            probes["redis"] = self._ping
        probes["migrations"] = self._migrations
        home = self._media_home()
        if home is not None:
            probes["media"] = home
        states = await asyncio.gather(*(self._check(probe) for probe in probes.values()))
        checks = dict(zip(probes, states, strict=True))
        checks["outbox"] = "behind" if self._outbox_behind() else "ok"
        waiting = self._starting()
        checks["startup"] = f"waiting: {', '.join(waiting)}" if waiting else "ok"
        ready = all(state == "ok" for state in checks.values())
        body = {"ready": ready, "checks": checks}
        if ready:
            return json_response(body)
        return json_response(body, status=503, headers={"Retry-After": "2"})

    async def _check(self, probe: Callable[[], Awaitable[str | None]]) -> str:
        """``"ok"``, what the probe found wrong, or ``unavailable: ...`` if it failed."""
        try:
            async with asyncio.timeout(self._timeout_s):
                found = await probe()
        except Exception as exc:
            reraise_if_cancelling()
            return f"unavailable: {type(exc).__name__}"
        return found or "ok"

    async def _database(self) -> None:
        async with self._db.read() as s:
            await s.execute(text("SELECT 1"))

    async def _ping(self) -> None:
        assert self._redis is not None
        await self._redis.ping()

    async def _migrations(self) -> str | None:
        """None when the database is at the code's newest revision, else how it differs."""
        async with self._db.read() as s:
            at = set((await s.scalars(text("SELECT version_num FROM alembic_version"))).all())
        if at == {self._head}:
            return None
        where = ", ".join(sorted(at)) or "no revision"
        if at - self._known:
            return f"ahead: at {where}, code knows up to {self._head}"
        return f"behind: at {where}, code needs {self._head}"
