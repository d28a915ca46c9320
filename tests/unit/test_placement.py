"""Where a new WHEP viewer goes (media/placement.py): the rules, on a board held in
memory, and the board itself on real Redis."""

from __future__ import annotations

import math
import os
import time
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from media.placement import LoadBoard, Placement, SteadyCpu, WorkerLoad

CAP = 3


class Board:
    """What ``Placement`` reads, held in memory."""

    def __init__(self, *loads: WorkerLoad) -> None:
        self.records = {load.worker: load for load in loads}

    async def loads(self) -> dict[int, WorkerLoad]:
        return dict(self.records)


def load(worker: int, viewers: int, sessions: tuple[int, ...] = (), **more: Any) -> WorkerLoad:
    fields: dict[str, Any] = {"pulls": 0, "cpu": 0.1, "state": "serving", **more}
    return WorkerLoad(worker=worker, viewers=viewers, sessions=sessions, **fields)


def placement(board: Board, me: int = 0, cpu_limit: float = 1.0) -> Placement:
    return Placement(me, CAP, board, cpu_limit)  # type: ignore[arg-type]


async def test_a_worker_relaying_the_session_with_room_keeps_the_viewer() -> None:
    board = Board(load(1, 0))
    assert await placement(board).choose(7, load(0, 2, (7,))) == 0


async def test_else_the_least_loaded_worker_relaying_it() -> None:
    board = Board(load(1, 2, (7,)), load(2, 1, (7,)), load(3, 0))
    assert await placement(board).choose(7, load(0, 0)) == 2  # not 3: no new pull


async def test_else_the_least_loaded_worker_with_room_which_will_pull() -> None:
    board = Board(load(1, CAP, (7,)), load(2, 2), load(3, 1))
    assert await placement(board).choose(7, load(0, 2)) == 3


async def test_ties_stay_here_and_cpu_breaks_the_others() -> None:
    board = Board(load(1, 1, cpu=0.5), load(2, 1, cpu=0.2))
    assert await placement(board).choose(7, load(0, 1, cpu=0.9)) == 2
    assert await placement(Board(load(1, 1))).choose(7, load(0, 1, cpu=0.1)) == 0


async def test_everyone_full_or_draining_is_nobody() -> None:
    board = Board(load(1, CAP, (7,)), load(2, 0, state="draining"))
    assert await placement(board).choose(7, load(0, CAP, (7,))) is None
    draining_here = load(0, 0, (7,), state="draining")
    assert await placement(Board(load(1, CAP))).choose(7, draining_here) is None


async def test_a_burst_spreads_over_the_workers_between_reports() -> None:
    board = Board(load(1, 0, (7,)), load(2, 0, (7,)))
    chooser = placement(board)
    here_full = load(0, CAP, (7,))
    chosen = [await chooser.choose(7, here_full) for _ in range(2 * CAP + 1)]
    assert sorted(c for c in chosen if c is not None) == [1, 1, 1, 2, 2, 2]
    assert chosen[-1] is None
    # a report made a second after they were placed counts them: reservations go
    board.records = {w: load(w, CAP - 1, (7,), at=time.time() + 2) for w in (1, 2)}
    assert await chooser.choose(7, here_full) in (1, 2)


async def test_a_worker_that_refused_is_not_chosen_again() -> None:
    board = Board(load(1, 0, (7,)), load(2, 1, (7,)))
    assert await placement(board).choose(7, load(0, CAP), tried={1}) == 2
    assert await placement(board).choose(7, load(0, 0, (7,)), tried={0, 1, 2}) is None


async def test_a_worker_at_its_cpu_limit_is_full_whatever_its_viewers() -> None:
    busy_relay = load(1, 0, (7,), cpu=0.9)
    # this worker relays the show but is at its limit: the relaying worker 1 is too,
    # so the viewer goes to worker 2, which will pull
    board = Board(busy_relay, load(2, 2, cpu=0.3))
    chosen = await placement(board, cpu_limit=0.85).choose(7, load(0, 0, (7,), cpu=0.86))
    assert chosen == 2
    assert await placement(board, cpu_limit=0.95).choose(7, load(0, 0, (7,), cpu=0.86)) == 0
    everyone_busy = Board(busy_relay, load(2, 0, cpu=0.88))
    assert await placement(everyone_busy, cpu_limit=0.85).choose(7, load(0, 0, cpu=0.9)) is None


def test_a_moment_of_full_load_leaves_room_and_a_steady_one_does_not() -> None:
    # one second per sample: starting up (a second at 0.9), then idle, then saturated
    shares = iter([0.9, 0.1, 0.1] + [1.0] * 8)
    cpu = SteadyCpu(3.0, lambda: (next(shares), 1.0))
    readings = [cpu.reading() for _ in range(11)]
    limit = Placement(0, CAP, Board(), cpu_limit=0.85)  # type: ignore[arg-type]

    def full(share: float) -> bool:
        return not limit.has_room(load(0, 0, cpu=share))

    assert [full(r) for r in readings[:3]] == [False] * 3
    assert readings[0] == pytest.approx(0.9 * (1 - math.exp(-1 / 3)), rel=1e-6)
    # saturated: full after six seconds, not before
    assert [full(r) for r in readings[3:]] == [False] * 5 + [True] * 3


def test_an_idle_gap_weighs_as_long_as_it_lasted() -> None:
    samples = iter([(1.0, 30.0), (0.0, 30.0)])
    cpu = SteadyCpu(3.0, lambda: next(samples))
    assert cpu.reading() == pytest.approx(1.0, abs=1e-4)
    assert cpu.reading() == pytest.approx(0.0, abs=1e-4)


@pytest.fixture
async def redis() -> Any:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs REDIS_URL (see .ci/run)")
    client = Redis.from_url(url)
    yield client
    await client.aclose()


async def test_the_board_keeps_fresh_records_only(redis: Redis) -> None:
    board = LoadBoard(redis, f"test-{uuid.uuid4().hex[:8]}", stale_s=5.0)
    await board.report(load(0, 2, (7, 8)))
    await board.report(load(1, 1, at=time.time() - 6))  # stale: a dead worker's
    await redis.hset(board._key, "2", "not json")
    loads = await board.loads()
    assert list(loads) == [0]
    assert loads[0].sessions == (7, 8) and loads[0].viewers == 2
    assert loads[0].pid == os.getpid()
    await board.withdraw(0)
    assert await board.loads() == {}
    await redis.delete(board._key)
