"""Verified figures of hosts, computed from liveshelf's own records only, and the
periodic pass that keeps the ``creator_figures`` table fresh (the directory reads only
that table: computing every host's figures per request would not scale).

Over the ``WINDOW_DAYS`` before the computation (``computed_ms``, the answer's
``as_of_ms``):

* ``followers``: open follows at that moment (``live.follows``);
* concurrent video viewers, as the session stats count them (``shelf.stats``,
  ``live.analytics.concurrency``): per second of a show, the people receiving media,
  summed over processes; a second between a show's first and last sample with no
  sample counts 0. ``peak_viewers`` is the highest second, ``avg_viewers`` the mean
  over every such second of every show of the host in the window (2 decimals);
* ``avg_watch_s``: per show, each person's watch time (their watch intervals merged,
  ``live.analytics.watch_times_s``; an interval still open counts until now), averaged
  over every (show, person) whose intervals began in the window (3 decimals);
* ``orders`` and GMV per currency: orders paid in the window and never refunded
  (``HostSales``, which the shelf implements).

``FiguresRefresher`` recomputes every listed host (a published rate card) every
``every_s`` (default 10 minutes), ``batch`` hosts at a time, and a host's figures once
right after its first card; so figures are at most about one interval plus one pass
old.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from live.analytics import Interval, viewer_key, watch_times_s
from live.clock import Clock
from live.db import Database, upsert
from live.models import AudienceSecond, Follow, LiveSession, WatchInterval
from live.tasks import reraise_if_cancelling, stop_task
from market.models import CreatorFigures, CreatorSales, RateCardHead
from market.protocol import HostSales
from market.views import WINDOW_DAYS

log = logging.getLogger(__name__)

DAY_MS = 86_400_000


class CreatorFiguresWriter:
    """Computes hosts' figures now and stores them (``creator_figures``,
    ``creator_sales``)."""

    def __init__(self, db: Database, clock: Clock, sales: HostSales) -> None:
        self._db = db
        self._clock = clock
        self._sales = sales

    async def refresh(self, host_ids: Sequence[int]) -> None:
        """The figures of ``host_ids`` as of now."""
        ids = sorted(set(host_ids))
        if not ids:
            return
        now = self._clock.now_ms()
        since = now - WINDOW_DAYS * DAY_MS
        async with self._db.read() as s:
            followers = dict(
                (
                    await s.execute(
                        select(Follow.host_id, func.count())
                        .where(Follow.host_id.in_(ids), Follow.removed_ms.is_(None))
                        .group_by(Follow.host_id)
                    )
                ).all()
            )
            sessions = dict(
                (
                    await s.execute(
                        select(LiveSession.id, LiveSession.host_id).where(
                            LiveSession.host_id.in_(ids),
                            or_(LiveSession.ended_ms.is_(None), LiveSession.ended_ms >= since),
                        )
                    )
                ).all()
            )
            viewers = await _concurrency(s, list(sessions), since, now)
            intervals = await _intervals(s, list(sessions), since, now)
        sales = await self._sales.paid_sales(ids, since)
        peak: dict[int, int] = defaultdict(int)
        seconds: dict[int, int] = defaultdict(int)
        total: dict[int, int] = defaultdict(int)
        for session_id, (top, summed, span) in viewers.items():
            host = sessions[session_id]
            peak[host] = max(peak[host], top)
            total[host] += summed
            seconds[host] += span
        watch: dict[int, list[float]] = defaultdict(list)
        for session_id, own in intervals.items():
            watch[sessions[session_id]].extend(watch_times_s(own).values())
        orders: dict[int, int] = defaultdict(int)
        for host, _currency, count, _gmv in sales:
            orders[host] += count
        rows = [
            {
                "host_id": host,
                "computed_ms": now,
                "followers": int(followers.get(host, 0)),
                "avg_viewers": round(total[host] / seconds[host], 2) if seconds[host] else 0.0,
                "peak_viewers": peak[host],
                "avg_watch_s": round(statistics.fmean(watch[host]), 3) if watch[host] else 0.0,
                "orders": orders[host],
            }
            for host in ids
        ]
        async with self._db.transaction() as tx:
            stmt = upsert(tx, CreatorFigures)
            await tx.execute(
                stmt.on_conflict_do_update(
                    index_elements=["host_id"],
                    set_={
                        name: getattr(stmt.excluded, name) for name in rows[0] if name != "host_id"
                    },
                ),
                rows,
            )
            if sales:
                stmt = upsert(tx, CreatorSales)
                await tx.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["host_id", "currency"],
                        set_={
                            "orders": stmt.excluded.orders,
                            "gmv_minor": stmt.excluded.gmv_minor,
                            "computed_ms": stmt.excluded.computed_ms,
                        },
                    ),
                    [
                        {
                            "host_id": host,
                            "currency": currency,
                            "orders": count,
                            "gmv_minor": gmv,
                            "computed_ms": now,
                        }
                        for host, currency, count, gmv in sales
                    ],
                )
            await tx.execute(
                delete(CreatorSales).where(
                    CreatorSales.host_id.in_(ids), CreatorSales.computed_ms < now
                )
            )


async def _concurrency(
    s: AsyncSession, session_ids: list[int], since_ms: int, now_ms: int
) -> dict[int, tuple[int, int, int]]:
    """Per session: (its highest second, the sum over its seconds, how many seconds
    from its first to its last sample), of the seconds in ``[since_ms, now_ms]``."""
    if not session_ids:
        return {}
    per_second = (
        select(
            AudienceSecond.session_id,
            AudienceSecond.second,
            func.sum(AudienceSecond.media_viewers).label("viewers"),
        )
        .where(
            AudienceSecond.session_id.in_(session_ids),
            AudienceSecond.second >= since_ms // 1000,
            AudienceSecond.second <= now_ms // 1000,
        )
        .group_by(AudienceSecond.session_id, AudienceSecond.second)
        .subquery()
    )
    query = select(
        per_second.c.session_id,
        func.max(per_second.c.viewers),
        func.sum(per_second.c.viewers),
        func.min(per_second.c.second),
        func.max(per_second.c.second),
    ).group_by(per_second.c.session_id)
    rows = (await s.execute(query)).all()
    return {int(r[0]): (int(r[1] or 0), int(r[2] or 0), int(r[4]) - int(r[3]) + 1) for r in rows}


async def _intervals(
    s: AsyncSession, session_ids: list[int], since_ms: int, now_ms: int
) -> dict[int, list[Interval]]:
    """Per session, the watch intervals that began in ``[since_ms, now_ms]`` (open
    ones cut at ``now_ms``)."""
    if not session_ids:
        return {}
    rows = await s.execute(
        select(
            WatchInterval.session_id,
            WatchInterval.user_id,
            WatchInterval.viewer,
            WatchInterval.resource_id,
            WatchInterval.joined_ms,
            WatchInterval.left_ms,
        ).where(
            WatchInterval.session_id.in_(session_ids),
            WatchInterval.joined_ms >= since_ms,
            WatchInterval.joined_ms <= now_ms,
        )
    )
    out: dict[int, list[Interval]] = defaultdict(list)
    for r in rows:
        left = r.left_ms if r.left_ms is not None else max(now_ms, r.joined_ms)
        out[int(r.session_id)].append(
            Interval(
                viewer_key(r.user_id, r.viewer, r.resource_id),
                int(r.joined_ms),
                int(left),
                None,
            )
        )
    return out


class FiguresRefresher:
    """Recomputes every listed host's figures every ``every_s``, ``batch`` hosts per
    computation (one pass right at start). A pass that fails is logged once per outage;
    the next one tries again."""

    def __init__(
        self, db: Database, writer: CreatorFiguresWriter, *, every_s: float, batch: int
    ) -> None:
        self._db = db
        self._writer = writer
        self._every_s = every_s
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"FiguresRefresher({id(self)})")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def refresh_all(self) -> int:
        """One pass over every host with a rate card; returns how many it refreshed."""
        done, after = 0, 0
        while True:
            async with self._db.read() as s:
                ids = list(
                    await s.scalars(
                        select(RateCardHead.host_id)
                        .where(RateCardHead.host_id > after)
                        .order_by(RateCardHead.host_id)
                        .limit(self._batch)
                    )
                )
            if not ids:
                return done
            await self._writer.refresh(ids)
            done += len(ids)
            after = ids[-1]

    async def run_once(self) -> int:
        try:
            done = await self.refresh_all()
        except Exception as exc:
            reraise_if_cancelling()
            if not self._failing:
                log.warning("FiguresRefresher(%s): cannot refresh figures: %r", id(self), exc)
            self._failing = True
            return 0
        if self._failing:
            log.warning("FiguresRefresher(%s): refreshing figures again", id(self))
            self._failing = False
        return done

    async def _run(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self._every_s)
