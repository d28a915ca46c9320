"""``live.coalesce``: random schedules of concurrent callers, cancellations (the first
caller's included) and failing work, checked against what each shape promises.

A schedule runs in steps of one event-loop iteration each: callers arrive, callers are
cancelled, and the work of each round ends (or fails) a drawn number of steps after it
started. Then everything left is let go and the checks run: every caller not cancelled
got the outcome of the one round that served it, the work ran once per round, and
nothing is left (no task, no future, no key)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from live.coalesce import Batcher, SingleFlight


class WorkFailed(Exception):
    def __init__(self, round_: int) -> None:
        super().__init__(round_)
        self.round = round_


@dataclass(frozen=True)
class Caller:
    arrives: int  # step
    cancelled_after: int | None  # steps after arriving; None: never


@dataclass(frozen=True)
class Schedule:
    callers: list[Caller]
    #: per round (cycled): (steps it takes, whether it fails)
    rounds: list[tuple[int, bool]]


schedules = st.builds(
    Schedule,
    callers=st.lists(
        st.builds(
            Caller,
            arrives=st.integers(0, 12),
            cancelled_after=st.none() | st.integers(0, 8),
        ),
        min_size=1,
        max_size=10,
    ),
    rounds=st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=1, max_size=6),
)


@dataclass
class Round:
    started: int  # sequence number when the work was started
    steps: int
    fails: bool
    released: asyncio.Event = field(default_factory=asyncio.Event)
    start_step: int = 0
    items: list[int] = field(default_factory=list)
    runner: int | None = None  # Batcher: the caller whose task ran it
    ran: bool = False  # its body began
    cancelled: bool = False  # its body saw CancelledError
    ended: bool = False  # returned or raised


class Harness:
    """Runs callers on a schedule and records what happened, in one sequence of events."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.seq = itertools.count()
        self.step = 0
        self.rounds: list[Round] = []
        self.in_flight = 0
        self.most_in_flight = 0
        #: per caller: the sequence number when it called (None: cancelled before it ran)
        self.called: dict[int, int] = {}
        self.tasks: dict[int, asyncio.Task[Any]] = {}
        #: callers the schedule cancelled before they ended (the others must not end
        #: cancelled)
        self.cancelled: set[int] = set()
        self.task_caller: dict[asyncio.Task[Any], int] = {}

    def new_round(self) -> Round:
        steps, fails = self.schedule.rounds[len(self.rounds) % len(self.schedule.rounds)]
        round_ = Round(next(self.seq), steps, fails, start_step=self.step)
        self.rounds.append(round_)
        return round_

    async def body(self, index: int) -> int:
        round_ = self.rounds[index]
        round_.ran = True
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await round_.released.wait()
        except asyncio.CancelledError:
            round_.cancelled = True
            raise
        finally:
            self.in_flight -= 1
        round_.ended = True
        if round_.fails:
            raise WorkFailed(index)
        return index

    async def call(self, index: int, do: Callable[[], Awaitable[Any]]) -> Any:
        self.called[index] = next(self.seq)
        return await do()

    async def run(self, start: Callable[[int], Coroutine[Any, Any, Any]]) -> dict[int, Any]:
        """Play the schedule; the outcome (a value, or the exception) of every caller
        it did not cancel."""
        callers = self.schedule.callers
        last = max(c.arrives + (c.cancelled_after or 0) for c in callers)
        for self.step in range(last + 1):
            for i, caller in enumerate(callers):
                if caller.arrives == self.step:
                    task = asyncio.create_task(start(i))
                    self.tasks[i] = task
                    self.task_caller[task] = i
            for i, caller in enumerate(callers):
                after = caller.cancelled_after
                due = after is not None and caller.arrives + after == self.step
                if due and self.tasks[i].cancel():
                    self.cancelled.add(i)
            self.release_due()
            await asyncio.sleep(0)
        # The rest of the schedule: each round ends when due, until every caller is done.
        for _ in range(1000):
            if all(task.done() for task in self.tasks.values()):
                break
            self.step += 1
            self.release_due()
            await asyncio.sleep(0)
        assert all(task.done() for task in self.tasks.values()), "a caller hangs"
        for _ in range(5):  # the work's own tasks wind down
            await asyncio.sleep(0)
        outcomes: dict[int, Any] = {}
        for i, task in self.tasks.items():
            if i in self.cancelled:
                continue
            if task.cancelled():
                outcomes[i] = asyncio.CancelledError()
            elif task.exception() is not None:
                outcomes[i] = task.exception()
            else:
                outcomes[i] = task.result()
        return outcomes

    def release_due(self) -> None:
        for round_ in self.rounds:
            if round_.ran and self.step >= round_.start_step + round_.steps:
                round_.released.set()


def run_checked(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``scenario`` on a fresh loop that records every future it creates; afterwards
    none may be pending and no task may be left."""
    futures: list[asyncio.Future[Any]] = []

    class Loop(asyncio.SelectorEventLoop):
        def create_future(self) -> asyncio.Future[Any]:
            future = super().create_future()
            futures.append(future)
            return future

    async def main() -> None:
        await scenario()
        assert asyncio.all_tasks() == {asyncio.current_task()}, "a task is left"

    with asyncio.Runner(loop_factory=Loop) as runner:
        runner.run(main())
    pending = [f for f in futures if not f.done()]
    assert not pending, f"{len(pending)} futures left pending"


def outcome_of(round_: Round, index: int) -> Any:
    return f"failed {index}" if round_.fails else index


def described(outcome: Any) -> Any:
    """An outcome as comparable data: the round's value, 'failed N' or 'cancelled'."""
    if isinstance(outcome, WorkFailed):
        return f"failed {outcome.round}"
    if isinstance(outcome, asyncio.CancelledError):
        return "cancelled"
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


@settings(max_examples=400, deadline=None)
@given(schedules)
def test_single_flight_shares_one_computation_whatever_is_cancelled(schedule: Schedule) -> None:
    async def scenario() -> None:
        harness = Harness(schedule)
        flight: SingleFlight[int] = SingleFlight()

        def work() -> Coroutine[Any, Any, int]:
            round_ = harness.new_round()
            return harness.body(harness.rounds.index(round_))

        async def start(i: int) -> Any:
            return await harness.call(i, lambda: flight.do("key", work))

        outcomes = await harness.run(start)
        rounds = harness.rounds
        # The round each caller joined: the one it started (at once after it called), or
        # the last one started before it called (one key: a caller joins the work under
        # way or starts the next).
        joined = {
            i: max(r for r, round_ in enumerate(rounds) if round_.started <= called + 1)
            for i, called in harness.called.items()
        }
        for i, outcome in outcomes.items():
            # A caller that was not cancelled gets its round's result or exception,
            # however many others (the first included) were cancelled.
            assert described(outcome) == outcome_of(rounds[joined[i]], joined[i])
        for r, round_ in enumerate(rounds):
            served = [i for i, j in joined.items() if j == r]
            assert served, "a round nobody asked for"
            if round_.cancelled or not round_.ran:  # only once every caller of it was gone
                assert all(i in harness.cancelled for i in served)
            else:
                assert round_.ended
        assert len(flight) == 0

    run_checked(scenario)


@settings(max_examples=400, deadline=None)
@given(schedules)
def test_batcher_answers_every_caller_from_one_round_trip(schedule: Schedule) -> None:
    async def scenario() -> None:
        harness = Harness(schedule)

        async def round_trip(key: str, items: list[int]) -> list[tuple[int, int]]:
            assert key == "key"
            round_ = harness.new_round()
            round_.items = list(items)
            task = asyncio.current_task()
            assert task is not None
            round_.runner = harness.task_caller[task]
            index = len(harness.rounds) - 1
            await harness.body(index)
            return [(index, item) for item in items]

        batcher: Batcher[str, int, tuple[int, int]] = Batcher(round_trip)

        async def start(i: int) -> Any:
            return await harness.call(i, lambda: batcher.submit("key", i))

        outcomes = await harness.run(start)
        rounds = harness.rounds
        assert harness.most_in_flight <= 1, "two round trips in flight for one key"
        for round_ in rounds:
            # The caller that starts a round runs it, its own item first.
            assert round_.runner == round_.items[0]
            if round_.cancelled:  # abandoned: only because its runner was cancelled
                assert round_.runner in harness.cancelled
            else:
                assert round_.ended
            for item in round_.items:  # every item arrived before its round began
                assert harness.called[item] < round_.started
        for i, outcome in outcomes.items():
            called = harness.called[i]
            mine = [r for r, round_ in enumerate(rounds) if i in round_.items]
            # It went in the first round that began after it called ...
            first = next(r for r, round_ in enumerate(rounds) if round_.started > called)
            assert mine[0] == first
            # ... and again only while rounds with it were abandoned; the one that was
            # not answered it (its value for this item, or its failure).
            served = [r for r in mine if not rounds[r].cancelled]
            assert len(served) == 1 and served[0] == mine[-1]
            r = served[0]
            expected = f"failed {r}" if rounds[r].fails else (r, i)
            assert described(outcome) == expected
        assert len(batcher) == 0

    run_checked(scenario)


# -- SingleFlight: the cases the properties cover, spelled out -----------------------


async def test_the_work_is_cancelled_once_every_caller_is_gone() -> None:
    flight: SingleFlight[int] = SingleFlight()
    started = asyncio.Event()
    cancelled = False

    async def load() -> int:
        nonlocal cancelled
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled = True
            raise
        return 1

    callers = [asyncio.create_task(flight.do("k", load)) for _ in range(3)]
    await started.wait()
    callers[0].cancel()
    callers[1].cancel()
    await asyncio.sleep(0)
    assert not cancelled and len(flight) == 1  # one caller still waits
    callers[2].cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    assert cancelled  # and it ended before the last caller's cancellation went on
    assert len(flight) == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


# -- Batcher: the cases the properties cover, spelled out ----------------------------


class Trips:
    """A round trip held until let go; records each batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self, key: str, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await self.release.wait()
        self.release.clear()
        if self.fail is not None:
            raise self.fail
        return [item * 10 for item in items]


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_items_that_arrive_during_a_round_trip_go_together_in_the_next() -> None:
    trips = Trips()
    batcher: Batcher[str, int, int] = Batcher(trips)
    first = asyncio.create_task(batcher.submit("k", 1))
    await settle()
    later = [asyncio.create_task(batcher.submit("k", i)) for i in (2, 3, 4)]
    other_key = asyncio.create_task(batcher.submit("j", 9))  # never waits for "k"
    await settle()
    assert trips.batches == [[1], [9]]
    trips.release.set()
    await settle()
    assert await first == 10
    assert trips.batches == [[1], [9], [2, 3, 4]] and await other_key == 90
    trips.release.set()
    assert await asyncio.gather(*later) == [20, 30, 40]
    assert len(batcher) == 0


async def test_a_chosen_runner_cancelled_before_it_starts_passes_the_round_on() -> None:
    trips = Trips()
    batcher: Batcher[str, int, int] = Batcher(trips)
    first = asyncio.create_task(batcher.submit("k", 1))
    await settle()
    later = [asyncio.create_task(batcher.submit("k", i)) for i in (2, 3)]
    await settle()
    trips.release.set()
    assert await first == 10  # the round ends; 2 is woken to run the next one ...
    later[0].cancel()  # ... and cancelled before it could
    await settle()
    assert trips.batches[-1] == [3]
    trips.release.set()
    assert await later[1] == 30
    with pytest.raises(asyncio.CancelledError):
        await later[0]
    assert len(batcher) == 0


async def test_a_failed_round_trip_fails_its_round_only() -> None:
    trips = Trips()
    batcher: Batcher[str, int, int] = Batcher(trips)
    first = asyncio.create_task(batcher.submit("k", 1))
    await settle()
    trips.fail = OSError("connection lost")
    second = asyncio.create_task(batcher.submit("k", 2))
    await settle()
    trips.release.set()
    with pytest.raises(OSError):
        await first
    trips.fail = None
    await settle()
    trips.release.set()
    assert await second == 20


async def test_wait_idle_returns_once_the_rounds_in_flight_are_answered() -> None:
    trips = Trips()
    batcher: Batcher[str, int, int] = Batcher(trips)
    await batcher.wait_idle()  # idle: at once
    first = asyncio.create_task(batcher.submit("k", 1))
    await settle()
    idle = asyncio.create_task(batcher.wait_idle())
    await settle()
    assert not idle.done()
    trips.release.set()
    await asyncio.wait_for(idle, 1)
    assert await first == 10


async def test_a_round_trip_must_answer_every_item() -> None:
    async def short(key: str, items: list[int]) -> list[int]:
        return []

    batcher: Batcher[str, int, int] = Batcher(short)
    with pytest.raises(ValueError, match="0 answers for 1 items"):
        await batcher.submit("k", 1)
    assert len(batcher) == 0
