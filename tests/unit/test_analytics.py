"""The audience arithmetic on its own: curves, watch time, retention, drop-offs."""

from __future__ import annotations

from types import SimpleNamespace

from live.analytics import (
    Interval,
    Moment,
    concurrency,
    drop_offs,
    retention,
    summary,
    watch_times_s,
)


def row(
    second: int,
    media: int,
    sockets: int = 0,
    joins: int = 0,
    leaves: int = 0,
    sj: int = 0,
    sl: int = 0,
) -> object:
    return SimpleNamespace(
        second=second,
        media_viewers=media,
        sockets=sockets,
        joins=joins,
        leaves=leaves,
        socket_joins=sj,
        socket_leaves=sl,
    )


def point(second: int, *values: int) -> dict[str, int]:
    names = ("media_viewers", "sockets", "joins", "leaves", "socket_joins", "socket_leaves")
    return {"second": second, **dict(zip(names, values, strict=True))}


def test_processes_add_up_and_missing_seconds_are_zero() -> None:
    rows = [row(10, 3, 5, 3, 0, 5), row(10, 2, 1, 2, 0, 1), row(13, 1, 1, 0, 4, 0, 5)]
    assert concurrency(rows) == [
        point(10, 5, 6, 5, 0, 6, 0),
        point(11, 0, 0, 0, 0, 0, 0),
        point(12, 0, 0, 0, 0, 0, 0),
        point(13, 1, 1, 0, 4, 0, 5),
    ]
    assert concurrency([]) == []


def test_a_viewers_overlapping_intervals_count_once() -> None:
    intervals = [
        Interval("u1", 0, 10_000, "deleted"),
        Interval("u1", 5_000, 12_000, "failed"),  # a second tab, overlapping
        Interval("u1", 20_000, 21_000, "deleted"),
        Interval("r-guest", 0, 4_000, "deleted"),
    ]
    assert watch_times_s(intervals) == {"u1": 13.0, "r-guest": 4.0}
    assert summary(intervals) == {"viewers": 2, "average_watch_s": 8.5, "median_watch_s": 8.5}
    assert summary([]) == {"viewers": 0, "average_watch_s": 0.0, "median_watch_s": 0.0}


def test_retention_follows_each_viewer_from_its_first_join() -> None:
    intervals = [
        Interval("a", 1_000, 5_000, None),  # watches 4 s
        Interval("b", 3_000, 4_000, None),  # 1 s, then comes back for 2 s
        Interval("b", 5_000, 7_000, None),
    ]
    # t seconds after joining: a at 1000+t*1000; b at 3000+t*1000
    assert retention(intervals) == [
        {"t": 0, "share": 1.0},
        {"t": 1, "share": 0.5},  # b left at 4000
        {"t": 2, "share": 1.0},  # b is back at 5000
        {"t": 3, "share": 1.0},
        {"t": 4, "share": 0.0},
    ]
    assert len(retention([Interval("a", 0, 3_600_000, None)], points=60)) == 61
    assert retention([]) == []


def test_drop_offs_need_enough_leavers_and_name_what_came_before() -> None:
    curve = [
        {"second": 100, "media_viewers": 10, "sockets": 0, "joins": 0, "leaves": 0},
        {"second": 101, "media_viewers": 9, "sockets": 0, "joins": 0, "leaves": 1},  # one: no
        {"second": 102, "media_viewers": 5, "sockets": 0, "joins": 0, "leaves": 4},  # spike
        {"second": 103, "media_viewers": 40, "sockets": 0, "joins": 35, "leaves": 0},
        {"second": 104, "media_viewers": 38, "sockets": 0, "joins": 0, "leaves": 2},  # 5 %: no
    ]
    moments = [
        Moment(101_500, "pin.start", {"pin_id": 7}),
        Moment(60_000, "flash.start", {}),  # more than 30 s before: left out
        Moment(102_400, "live.paused", {"reason": "timeout"}),
        Moment(103_000, "pin.end", {}),  # after the spike: left out
    ]
    (spike,) = drop_offs(curve, moments)
    assert (spike["second"], spike["leaves"], spike["viewers_before"]) == (102, 4, 9)
    assert [(m["kind"], m["seconds_before"]) for m in spike["after"]] == [
        ("live.paused", -0.4),
        ("pin.start", 0.5),
    ]
    assert spike["after"][0]["reason"] == "timeout"
