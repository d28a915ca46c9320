"""Coalescing: concurrent callers that want the same thing share one round trip.

Two shapes, each keyed (different keys never wait for each other):

* ``SingleFlight``: ``await flight.do(key, work)`` shares one in-flight computation.
  While ``work`` for ``key`` runs, later callers for ``key`` wait for its result (or
  its exception) instead of starting another; once it ends, the next caller starts a
  new one (nothing is cached). For loads many callers ask for at once (a crowd joining
  a room makes one snapshot).
* ``Batcher``: ``await batcher.submit(key, item)`` batches items while a round trip is
  in flight. The first item goes at once, alone; items that arrive while its round
  trip runs wait and go together in the next one, and so on while any wait. For work
  that serves many items in one round trip (one read for many order attempts, one WAL
  flush for many commits). An idle key adds no delay; a busy one makes one round trip
  per round trip's time instead of one per item.

Cancellation is where they differ, because of where the work runs:

* ``SingleFlight`` runs the work in a task of its own, so a caller that is cancelled
  (its client went away), the first one included, never cancels the work or the other
  callers. The work is cancelled when every caller waiting for it is gone; the last one
  to leave waits for it to end before its ``CancelledError`` goes on. So the work never
  outlives all its callers, and a shutdown that cancels the callers ends it too.
* ``Batcher`` runs each round trip in the task of the caller that starts it (no task of
  its own, for hot paths). A cancelled waiter is only dropped from the answers. If the
  caller running the round trip is cancelled, that round trip is abandoned and the
  others of its round go in the next one, started at once by one of them. So a round
  trip must be safe to abandon and to repeat: a read, a flush; not a charge.

Either way, when the work raises, every caller it served gets that exception, and the
next caller or round starts afresh; no future is left pending and nothing is kept per
key once its last caller is answered.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
#: an item of a batch
V = TypeVar("V")
R = TypeVar("R")


class _Flight(Generic[T]):
    """One computation under way and the callers waiting for it."""

    __slots__ = ("key", "waiters", "waiting", "work")

    def __init__(self, key: Hashable, work: asyncio.Future[T]) -> None:
        self.key = key
        self.work = work
        #: one per caller, answered when the work ends
        self.waiters: list[asyncio.Future[T]] = []
        #: callers not gone yet
        self.waiting = 0


class SingleFlight(Generic[T]):
    """``await flight.do(key, work)``: while ``work()`` for ``key`` runs, later callers
    for the same key wait for its result (or its exception) instead of starting another.
    A cancelled caller never cancels the work or the others; the work is cancelled
    when no caller waits for it any more (module docstring)."""

    def __init__(self) -> None:
        #: one per key with work under way, removed when it ends or is given up
        self._flights: dict[Hashable, _Flight[T]] = {}

    def __len__(self) -> int:
        """Keys with work under way."""
        return len(self._flights)

    async def do(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> T:
        flight = self._flights.get(key)
        if flight is None:
            new = flight = self._flights[key] = _Flight(key, asyncio.ensure_future(work()))
            new.work.add_done_callback(lambda _: self._landed(new))
        answer: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        flight.waiters.append(answer)
        flight.waiting += 1
        try:
            return await answer
        except asyncio.CancelledError:
            if answer.cancelled():  # this caller was cancelled, not the work
                flight.waiting -= 1
                if not flight.waiting and not flight.work.done():
                    await self._give_up(flight)
            raise

    async def _give_up(self, flight: _Flight[T]) -> None:
        """Nobody waits for ``flight`` any more: cancel it and wait for it to end. A new
        caller for its key starts a new one meanwhile."""
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
        flight.work.cancel()
        await asyncio.wait((flight.work,))

    def _landed(self, flight: _Flight[T]) -> None:
        """The work ended: every caller still waiting gets its outcome."""
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
        work = flight.work
        if work.cancelled():  # by someone else (a shutdown): so are its callers
            for answer in flight.waiters:
                answer.cancel()
            return
        error = work.exception()  # retrieved here: only the callers raise it
        if error is not None:
            for answer in flight.waiters:
                if not answer.done():
                    answer.set_exception(error)
            return
        result = work.result()
        for answer in flight.waiters:
            if not answer.done():
                answer.set_result(result)


class _Lead(enum.Enum):
    """What a waiting caller of a ``Batcher`` is woken with when the next round is its
    to run."""

    NEXT_ROUND = 0


class _Queue(Generic[V, R]):
    """One key's items waiting for the next round trip."""

    __slots__ = ("heir", "items", "running", "waiters")

    def __init__(self) -> None:
        self.items: list[V] = []
        #: per item: its caller's answer (None: the caller runs the round itself)
        self.waiters: list[asyncio.Future[R | _Lead] | None] = []
        #: a round trip is in flight, or a waiter was chosen to run the next one
        self.running = False
        #: the waiter chosen to run the next round, until it starts it
        self.heir: asyncio.Future[R | _Lead] | None = None


class Batcher(Generic[K, V, R]):
    """``await batcher.submit(key, item)``: the answer for ``item`` from a round trip
    ``round_trip(key, items)`` that returns one answer per item, in order. The first
    item of an idle key goes at once, alone; items that arrive while a round trip for
    their key is in flight go together in the next one (module docstring: a round
    trip runs in its caller's task and may be abandoned and repeated)."""

    def __init__(self, round_trip: Callable[[K, list[V]], Awaitable[Sequence[R]]]) -> None:
        self._round_trip = round_trip
        #: one per key with a round trip in flight or items waiting; removed when a
        #: round ends with none waiting
        self._queues: dict[K, _Queue[V, R]] = {}
        #: ``wait_idle`` callers
        self._idle: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        """Keys with a round trip in flight or items waiting."""
        return len(self._queues)

    async def submit(self, key: K, item: V) -> R:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        queue.items.append(item)
        if not queue.running:  # idle: this caller runs the round, its item first
            queue.running = True
            queue.waiters.append(None)
            return await self._run(key, queue)
        answer: asyncio.Future[R | _Lead] = asyncio.get_running_loop().create_future()
        queue.waiters.append(answer)
        try:
            outcome = await answer
        except asyncio.CancelledError:
            if queue.heir is answer:  # chosen to run the next round, gone before it could
                self._hand_on(key, queue)
            raise
        if outcome is _Lead.NEXT_ROUND:
            return await self._run(key, queue)
        return outcome

    async def wait_idle(self) -> None:
        """Return once no round trip is in flight and no item waits."""
        if self._queues:
            idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle.append(idle)
            await idle

    async def _run(self, key: K, queue: _Queue[V, R]) -> R:
        """Run one round trip for every item waiting (this caller's first), answer them
        and hand the next round on."""
        queue.heir = None
        items, waiters = queue.items, queue.waiters
        queue.items, queue.waiters = [], []
        try:
            answers = await self._round_trip(key, items)
            if len(answers) != len(items):
                raise ValueError(f"{len(answers)} answers for {len(items)} items")
        except Exception as exc:
            if _cancelling():  # a library made our cancellation an error: as below
                self._requeue(key, queue, items, waiters)
                raise
            self._hand_on(key, queue)  # the next round first: its runner wakes sooner
            for waiter in waiters:
                if waiter is not None and not waiter.done():
                    waiter.set_exception(exc)
            raise
        except BaseException:  # cancelled
            self._requeue(key, queue, items, waiters)
            raise
        self._hand_on(key, queue)
        for i in range(1, len(waiters)):
            waiter = waiters[i]
            if waiter is not None and not waiter.done():
                waiter.set_result(answers[i])
        return answers[0]

    def _requeue(
        self,
        key: K,
        queue: _Queue[V, R],
        items: list[V],
        waiters: list[asyncio.Future[R | _Lead] | None],
    ) -> None:
        """The round trip for ``items`` was abandoned (its caller was cancelled): the
        others of its round go first in the next one."""
        queue.items[:0] = items
        queue.waiters[:0] = waiters
        self._hand_on(key, queue)  # skips the cancelled caller's own entry: done or None

    def _hand_on(self, key: K, queue: _Queue[V, R]) -> None:
        """The round in flight is over: wake the first caller still waiting to run the
        next round, or forget ``key`` if nobody waits."""
        waiters = queue.waiters
        for gone, waiter in enumerate(waiters):
            if waiter is not None and not waiter.done():
                queue.heir = waiter
                if gone:  # their items need no answer: leave them out
                    del queue.items[:gone], waiters[:gone]
                waiter.set_result(_Lead.NEXT_ROUND)
                return
        queue.items.clear()
        waiters.clear()
        queue.running = False
        queue.heir = None
        if self._queues.get(key) is queue:
            del self._queues[key]
        if not self._queues and self._idle:
            idle, self._idle = self._idle, []
            for waiter_idle in idle:
                if not waiter_idle.done():
                    waiter_idle.set_result(None)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
