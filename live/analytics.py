"""Audience figures of one session, from what ``live/audience.py`` recorded.

Pure functions over plain rows (unit-tested on their own), and ``AudienceReport``,
which reads the rows and applies them. Times are epoch milliseconds; curves are per
second of wall-clock time (``second`` = epoch seconds).

* concurrency: per second, people receiving media and people in the room channel,
  summed over processes, with that second's people starting and stopping to watch and
  joining and leaving the room channel (``live.audience``: people, not connections);
* watch time: per viewer, a person (``live.guests``: a signed-in user, a guest's signed
  id, or a cookie-less guest's address; a guest in rows recorded before the person was
  kept: one WHEP resource), the sum of their watch intervals (overlapping connections
  count once); average and median over viewers;
* retention: share of viewers still watching ``t`` seconds after they first joined;
* drop-offs: seconds where leaving spiked (at least ``min_leavers`` viewers and at
  least ``min_share`` of the audience of the second before), each with what happened
  in the ``lookback_s`` seconds before it (pins, flash sales, publisher pauses), each
  with ``seconds_before`` the start of that second (negative: during it).
"""

from __future__ import annotations

import bisect
import itertools
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from live.db import Database
from live.models import AudienceSecond, SessionMark, WatchInterval


@dataclass(frozen=True, slots=True)
class Interval:
    #: ``u<user id>`` for a signed-in viewer; for a guest their person key
    #: (``g:...``/``a:...``) or, in old rows, ``r<resource id>``
    viewer: str
    joined_ms: int
    left_ms: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class Moment:
    """Something that happened, for annotating drop-offs: ``pin.start``, ``flash.end``..."""

    at_ms: int
    kind: str
    detail: dict[str, Any]


_CURVE_FIELDS = ("media_viewers", "sockets", "joins", "leaves", "socket_joins", "socket_leaves")


def concurrency(rows: Iterable[Any]) -> list[dict[str, int]]:
    """Per-second samples of every process added up, in time order, gaps filled with 0."""
    by_second: dict[int, list[int]] = defaultdict(lambda: [0] * len(_CURVE_FIELDS))
    for r in rows:
        acc = by_second[int(r.second)]
        for k, name in enumerate(_CURVE_FIELDS):
            acc[k] += int(getattr(r, name))
    if not by_second:
        return []
    zero = [0] * len(_CURVE_FIELDS)
    return [
        {"second": second, **dict(zip(_CURVE_FIELDS, by_second.get(second, zero), strict=True))}
        for second in range(min(by_second), max(by_second) + 1)
    ]


def _merged(intervals: Sequence[Interval]) -> dict[str, list[tuple[int, int]]]:
    """Each viewer's intervals merged into sorted, non-overlapping spans."""
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i in sorted(intervals, key=lambda i: (i.viewer, i.joined_ms)):
        start, stop = i.joined_ms, max(i.joined_ms, i.left_ms)
        own = spans[i.viewer]
        if own and start <= own[-1][1]:
            own[-1] = (own[-1][0], max(own[-1][1], stop))
        else:
            own.append((start, stop))
    return spans


def watch_times_s(intervals: Sequence[Interval]) -> dict[str, float]:
    """Seconds watched per viewer (overlapping intervals of one viewer count once)."""
    return {
        viewer: sum(stop - start for start, stop in spans) / 1000
        for viewer, spans in _merged(intervals).items()
    }


def retention(intervals: Sequence[Interval], *, points: int = 120) -> list[dict[str, float]]:
    """``[{t, share}]``: share of viewers still watching ``t`` s after first joining.

    ``t`` runs from 0 (everyone, by definition) to the longest watch in whole seconds,
    stepping so that at most ``points`` + 1 points come out.
    """
    spans = _merged(intervals)
    if not spans:
        return []
    longest_s = max((s[-1][1] - s[0][0]) // 1000 for s in spans.values())
    step = max(1, -(-longest_s // points))
    watching = [0] * (longest_s // step + 1)
    for own in spans.values():
        first = own[0][0]
        starts = [start for start, _ in own]
        for k in range(len(watching)):
            at = first + k * step * 1000
            i = bisect.bisect_right(starts, at) - 1
            if k == 0 or (i >= 0 and at < own[i][1]):
                watching[k] += 1
    return [{"t": k * step, "share": round(n / len(spans), 4)} for k, n in enumerate(watching)]


def drop_offs(
    curve: Sequence[dict[str, int]],
    moments: Sequence[Moment],
    *,
    min_leavers: int = 2,
    min_share: float = 0.2,
    lookback_s: int = 30,
) -> list[dict[str, Any]]:
    """Seconds where leaving spiked, each with the moments just before it (newest first)."""
    out = []
    for before, now in itertools.pairwise(curve):
        audience = max(before["media_viewers"], 1)
        if now["leaves"] >= min_leavers and now["leaves"] >= min_share * audience:
            end_ms = (now["second"] + 1) * 1000
            start_ms = end_ms - (lookback_s + 1) * 1000
            near = [m for m in moments if start_ms <= m.at_ms < end_ms]
            near.sort(key=lambda m: m.at_ms, reverse=True)
            out.append(
                {
                    "second": now["second"],
                    "leaves": now["leaves"],
                    "viewers_before": before["media_viewers"],
                    "after": [
                        {
                            "kind": m.kind,
                            "at_ms": m.at_ms,
                            "seconds_before": round((now["second"] * 1000 - m.at_ms) / 1000, 3),
                            **m.detail,
                        }
                        for m in near
                    ],
                }
            )
    return out


def summary(intervals: Sequence[Interval]) -> dict[str, Any]:
    times = sorted(watch_times_s(intervals).values())
    return {
        "viewers": len(times),
        "average_watch_s": round(statistics.fmean(times), 3) if times else 0.0,
        "median_watch_s": round(statistics.median(times), 3) if times else 0.0,
    }


def viewer_key(user_id: int | None, person: str | None, resource_id: str) -> str:
    """The person a watch interval counts for (``Interval.viewer``), from its row."""
    if user_id is not None:
        return f"u{user_id}"
    return person or f"r{resource_id}"


class AudienceReport:
    """Reads a session's audience rows and turns them into figures."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def intervals(self, session_id: int, now_ms: int) -> list[Interval]:
        """Watch intervals, open ones cut at ``now_ms``, each with its viewer (a person:
        ``Interval.viewer``)."""
        async with self._db.read() as s:
            rows = await s.execute(
                select(
                    WatchInterval.user_id,
                    WatchInterval.resource_id,
                    WatchInterval.viewer,
                    WatchInterval.joined_ms,
                    WatchInterval.left_ms,
                    WatchInterval.reason,
                ).where(WatchInterval.session_id == session_id)
            )
            return [
                Interval(
                    viewer_key(r.user_id, r.viewer, r.resource_id),
                    int(r.joined_ms),
                    int(r.left_ms if r.left_ms is not None else max(now_ms, r.joined_ms)),
                    r.reason,
                )
                for r in rows
            ]

    async def curve(self, session_id: int) -> list[dict[str, int]]:
        async with self._db.read() as s:
            columns = [getattr(AudienceSecond, name) for name in ("second", *_CURVE_FIELDS)]
            rows = await s.execute(select(*columns).where(AudienceSecond.session_id == session_id))
            return concurrency(rows)

    async def marks(self, session_id: int) -> list[Moment]:
        async with self._db.read() as s:
            rows = await s.execute(select(SessionMark).where(SessionMark.session_id == session_id))
            return [
                Moment(int(m.at_ms), m.kind, {"reason": m.detail} if m.detail else {})
                for m in rows.scalars()
            ]

    async def viewers_of_host_before(
        self, host_session_ids: Sequence[int], before_ms: int
    ) -> set[int]:
        """Signed-in users who watched any of these sessions before ``before_ms``."""
        if not host_session_ids:
            return set()
        async with self._db.read() as s:
            rows = await s.execute(
                select(func.distinct(WatchInterval.user_id)).where(
                    WatchInterval.session_id.in_(host_session_ids),
                    WatchInterval.user_id.is_not(None),
                    WatchInterval.joined_ms < before_ms,
                )
            )
            return {int(r[0]) for r in rows}
