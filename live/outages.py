"""A dependency that is down is a ``503`` with ``Retry-After``, and one log line per
outage, never a ``500`` with a traceback per request.

``dependency_of(exc)`` names what an exception says cannot be reached:

* ``"database"``: SQLAlchemy's connection-level errors (``OperationalError``,
  ``InterfaceError``, a ``DBAPIError`` that invalidated its connection, the pool's
  ``TimeoutError``) and asyncpg's (cannot connect now: starting up or shutting down;
  the connection is gone; an admin shutdown), however they are wrapped;
* ``"redis"``: redis-py's ``ConnectionError`` and ``TimeoutError`` (busy loading
  included);
* ``"network"``: a refused connection to anything else (a bare socket error is the
  database's or Redis's when its traceback passes through their driver);
* None: anything else is a bug (a ``500``, logged with its traceback).

``report_failure`` is the same for a background task's failed round: a bug logs its
traceback each time; an outage one warning per task every 30 s.

``OutageLog`` writes one warning when a dependency starts failing, one every
``every_s`` while it keeps failing (with how many requests it refused), and one when
it has not failed for ``quiet_s`` (it is taken to be back).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

import redis.exceptions as redis_errors
import sqlalchemy.exc as sa_errors
from asyncpg import exceptions as pg_errors

log = logging.getLogger("liveshelf.outages")

#: asyncpg errors that say the server is not there for us (rather than a bad query)
_PG_GONE: tuple[type[BaseException], ...] = (
    pg_errors.CannotConnectNowError,
    pg_errors.ConnectionDoesNotExistError,
    pg_errors.AdminShutdownError,
    pg_errors.CrashShutdownError,
    pg_errors.TooManyConnectionsError,
    pg_errors.ConnectionFailureError,
)
_DB_GONE = (*_PG_GONE, sa_errors.OperationalError, sa_errors.InterfaceError)
_REDIS_DOWN = (redis_errors.ConnectionError, redis_errors.TimeoutError)


def dependency_of(exc: BaseException) -> str | None:
    """The dependency ``exc`` (or what it wraps) says is unreachable, or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _REDIS_DOWN):
            return "redis"
        if isinstance(current, _DB_GONE):
            return "database"
        if isinstance(current, sa_errors.TimeoutError):  # no pooled connection came free
            return "database"
        if isinstance(current, sa_errors.DBAPIError):
            if current.connection_invalidated:
                return "database"
            orig = current.orig
            if isinstance(orig, BaseException) and dependency_of(orig) == "database":
                return "database"
        if isinstance(current, ConnectionError | TimeoutError):  # refused, reset, aborted
            # A refused connection is a service that is not there; a reset elsewhere
            # may be our own client hanging up, which is no outage.
            refused = isinstance(current, ConnectionRefusedError)
            return _raised_in(current) or ("network" if refused else None)
        current = current.__cause__ or current.__context__
    return None


def _raised_in(exc: BaseException) -> str | None:
    """Which driver a bare socket error came out of (the database driver lets a refused
    connection through unwrapped): from the modules its traceback passes through."""
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(("asyncpg", "sqlalchemy", "aiosqlite")):
            return "database"
        if module.startswith("redis"):
            return "redis"
        tb = tb.tb_next
    return None


#: task name -> when its outage was last logged: one per background task (the names
#: name a task, never a room or an item)
_last_said: dict[str, float] = {}


def report_failure(
    logger: logging.Logger, what: str, exc: BaseException, *, every_s: float = 30.0
) -> None:
    """A background task's round failed with ``exc``. A bug is logged with its
    traceback; a dependency that is down with one warning for ``what`` every
    ``every_s`` (``what`` names the task, not a room or an item: it is remembered)."""
    dependency = dependency_of(exc)
    if dependency is None:
        logger.error("%s failed", what, exc_info=exc)
        return
    now = time.monotonic()
    if now - _last_said.get(what, -math.inf) >= every_s:
        _last_said[what] = now
        logger.warning(
            "%s failed: the %s is unavailable (%r); retrying, said again in %.0f s if so",
            what,
            dependency,
            exc,
            every_s,
        )


class OutageLog:
    """Log lines per outage transition, not per failed request (module doc)."""

    def __init__(self, *, every_s: float = 10.0, quiet_s: float = 10.0) -> None:
        self._every_s = every_s
        self._quiet_s = quiet_s
        #: dependency -> [requests refused since the last line, when that line was]
        self._down: dict[str, list[float]] = {}
        self._last_failure: dict[str, float] = {}
        self._checks: dict[str, asyncio.TimerHandle] = {}

    def failed(self, dependency: str, exc: BaseException) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._last_failure[dependency] = now
        state = self._down.get(dependency)
        if state is None:
            self._down[dependency] = [0.0, now]
            log.warning("%s unavailable: %r; answering 503 until it is back", dependency, exc)
        else:
            state[0] += 1
            if now - state[1] >= self._every_s:
                log.warning(
                    "%s still unavailable: %d requests answered 503 in the last %.0f s",
                    dependency,
                    int(state[0]),
                    now - state[1],
                )
                state[0], state[1] = 0.0, now
        if dependency not in self._checks:
            self._checks[dependency] = loop.call_later(self._quiet_s, self._check, dependency)

    def is_down(self, dependency: str) -> bool:
        return dependency in self._down

    def _check(self, dependency: str) -> None:
        loop = asyncio.get_running_loop()
        quiet_for = loop.time() - self._last_failure.get(dependency, 0.0)
        if quiet_for >= self._quiet_s:
            self._checks.pop(dependency, None)
            if self._down.pop(dependency, None) is not None:
                log.warning("%s answers again (no failure for %.0f s)", dependency, quiet_for)
            return
        delay = self._quiet_s - quiet_for
        self._checks[dependency] = loop.call_later(delay, self._check, dependency)
