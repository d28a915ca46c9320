"""The spine's metrics (``live.metrics``): room sockets and fan-out, room log appends,
the outbox, the database pools and Redis round trips. Features register their own in
their ``setup``."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.connection import AbstractConnection
from sqlalchemy import func, select

from live.feature import Core
from live.metrics import Metrics
from live.models import OutboxEvent


class CountingConnectionPool(BlockingConnectionPool):
    """Redis's blocking pool, counting what it lends: every command and pipeline
    borrows a connection once (a pub/sub's connection is borrowed once, for good)."""

    round_trips = 0

    async def get_connection(
        self, command_name: Any = None, *keys: Any, **options: Any
    ) -> AbstractConnection:
        self.round_trips += 1
        borrowed: AbstractConnection = await super().get_connection()  # type: ignore[no-untyped-call]
        return borrowed


def register_core_metrics(metrics: Metrics, core: Core, *, database_wide: bool) -> None:
    """``database_wide``: this process also reports what every process shares (the
    outbox's backlog): one process per deployment's node should (worker 0), so a sum
    over workers does not count it twice."""
    hub = core.hub
    stats = hub.stats
    metrics.gauge(
        "room_sockets", "Open room sockets (WebSockets) in this process", hub.socket_count
    )
    metrics.counter(
        "room_events_fanned_out",
        "Room events written to this process's sockets (once per event and room)",
        lambda: stats.events,
    )
    metrics.counter(
        "room_deliveries",
        "Room events times the sockets they were written to",
        lambda: stats.deliveries,
    )
    metrics.counter(
        "room_slow_consumer_closes",
        "Room sockets closed for reading too slowly (close code 4008)",
        lambda: stats.slow_consumer_closes,
    )
    metrics.histogram(
        "room_fanout_lag_ms",
        "Age of the newest event of a write round when written (ms since its append)",
        stats.lag_ms,
    )
    room_log = core.room_log
    metrics.counter(
        "room_events_appended", "Room events this process appended", lambda: room_log.appended
    )
    metrics.gauge(
        "db_pool_connections",
        "Database connections per pool: in use, and the pool's size",
        core.db.pool_usage,
        labels=("pool", "state"),
    )
    if core.redis is not None:
        pool = core.redis.connection_pool
        metrics.counter(
            "redis_round_trips",
            "Commands and pipelines sent to Redis (pub/sub messages aside)",
            lambda: pool.round_trips if isinstance(pool, CountingConnectionPool) else 0,
        )
    relay = core.relay
    metrics.gauge(
        "outbox_behind",
        "1 while events wait in the outbox for the room log to be reachable",
        lambda: 1.0 if relay.behind else 0.0,
    )
    if database_wide:
        backlog = {"rows": 0.0, "oldest_ms": 0.0}

        async def read_backlog() -> None:
            async with core.db.read() as s:
                count, oldest = (
                    await s.execute(select(func.count(), func.min(OutboxEvent.created_ms)))
                ).one()
            backlog["rows"] = float(count)
            backlog["oldest_ms"] = float(oldest) if oldest is not None else 0.0

        metrics.refresh_with(read_backlog)
        metrics.gauge(
            "outbox_backlog_rows",
            "Outbox rows not yet deleted (published rows go within ~0.1 s); deployment-wide",
            lambda: backlog["rows"],
        )
        metrics.gauge(
            "outbox_oldest_age_seconds",
            "Age of the oldest outbox row (0 when empty); deployment-wide",
            lambda: (
                max(0.0, core.clock.now_ms() - backlog["oldest_ms"]) / 1000
                if backlog["oldest_ms"]
                else 0.0
            ),
        )
