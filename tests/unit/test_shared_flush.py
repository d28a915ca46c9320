"""``Database.flush_commits``: concurrent callers share flushes, and no caller is
covered by a flush that started before it asked."""

from __future__ import annotations

import asyncio

from live.db import Database


class FakeFlushes:
    """Stands in for the flush statement: records each flush and holds it until let go."""

    def __init__(self) -> None:
        self.started = 0
        self.release = asyncio.Event()

    async def __call__(self) -> None:
        self.started += 1
        await self.release.wait()
        self.release.clear()


def database(flushes: FakeFlushes) -> Database:
    db = Database("sqlite+aiosqlite://")
    db._early_release = True
    db._flush = flushes  # type: ignore[method-assign]
    return db


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_callers_that_ask_during_a_flush_share_the_next_one() -> None:
    flushes = FakeFlushes()
    db = database(flushes)
    first = asyncio.create_task(db.flush_commits())
    await settle()
    assert flushes.started == 1
    waiting = [asyncio.create_task(db.flush_commits()) for _ in range(20)]
    await settle()
    flushes.release.set()  # the first flush ends: it started before the 20 asked
    await settle()
    assert first.done() and not any(t.done() for t in waiting)
    assert flushes.started == 2  # one more flush, for all twenty
    flushes.release.set()
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=1)
    assert flushes.started == 2
    await db.dispose()


async def test_a_failed_flush_fails_its_caller_and_the_others_flush_again() -> None:
    calls = 0

    async def failing_once() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 1:
            raise OSError("connection lost")

    db = Database("sqlite+aiosqlite://")
    db._early_release = True
    db._flush = failing_once  # type: ignore[method-assign]
    results = await asyncio.gather(*(db.flush_commits() for _ in range(5)), return_exceptions=True)
    assert isinstance(results[0], OSError)
    assert results[1:] == [None] * 4
    assert calls == 2
    await db.dispose()


async def test_nothing_to_flush_without_early_release() -> None:
    flushes = FakeFlushes()
    db = database(flushes)
    db._early_release = False
    await db.flush_commits()
    assert flushes.started == 0
    await db.dispose()
