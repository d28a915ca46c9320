"""The audience recorder keeps its queued watch intervals when a commit fails, and
commits one sample at a time, in order."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from live.audience import AudienceRecorder, AudienceSources
from live.clock import ManualClock


class FlakyDatabase:
    """Fails the first transaction; records the statements of the later ones."""

    def __init__(self) -> None:
        self.failures = 1
        self.statements: list[str] = []

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database went away")
        yield self

    def get_bind(self) -> Any:  # what ``upsert`` asks for the dialect
        return SimpleNamespace(dialect=SimpleNamespace(name="sqlite"))

    async def execute(self, statement: Any, rows: Any = None) -> None:
        self.statements.append(str(statement).split()[0] + " " + statement.table.name)


async def test_a_failed_commit_keeps_the_intervals_in_order() -> None:
    db = FlakyDatabase()
    sources = AudienceSources(
        media_sessions=lambda: [7],
        media_viewers=lambda _sid: 1,
        socket_rooms=lambda: [],
        sockets=lambda _sid: 0,
    )
    recorder = AudienceRecorder(db, ManualClock(), sources, process="p", interval_s=0)  # type: ignore[arg-type]
    recorder.viewer_joined(7, "r1", None)
    recorder.viewer_left(7, "r1", "deleted")
    with pytest.raises(ConnectionError):
        await recorder.sample()
    await recorder.sample()
    assert db.statements == [
        "INSERT watch_intervals",
        "UPDATE watch_intervals",
        "INSERT audience_seconds",
    ]


class SlowDatabase(FlakyDatabase):
    """Holds its first transaction open until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.transactions = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        self.transactions += 1
        if self.transactions == 1:
            self.entered.set()
            await self.release.wait()
        yield self


def _recorder(db: Any) -> AudienceRecorder:
    sources = AudienceSources(
        media_sessions=lambda: [7],
        media_viewers=lambda _sid: 1,
        socket_rooms=lambda: [],
        sockets=lambda _sid: 0,
    )
    return AudienceRecorder(db, ManualClock(), sources, process="p", interval_s=0)


@pytest.mark.parametrize("second", ["sample", "close_session"])
async def test_a_sample_during_a_commit_waits_for_it(second: str) -> None:
    """The loop's commit (a viewer's insert) is slow; a leave and a ``sample`` or the
    session's end meanwhile commit after it, so the update finds the row."""
    db = SlowDatabase()
    recorder = _recorder(db)
    recorder.viewer_joined(7, "r1", None)
    first = asyncio.create_task(recorder.sample())
    await asyncio.wait_for(db.entered.wait(), 5)
    if second == "sample":
        recorder.viewer_left(7, "r1", "deleted")
        later = asyncio.create_task(recorder.sample())
    else:
        later = asyncio.create_task(recorder.close_session(7, 1234))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not later.done()
    assert db.statements == []
    db.release.set()
    await asyncio.wait_for(asyncio.gather(first, later), 5)
    assert db.statements == [
        "INSERT watch_intervals",
        "INSERT audience_seconds",
        "UPDATE watch_intervals",
        "INSERT audience_seconds",
    ]


async def test_a_sample_leaves_no_cyclic_garbage() -> None:
    """The per-second upsert is built once: building it each second made an alias of
    the table (``excluded``) with its columns, ~230 objects for the cyclic collector."""

    class QuietDatabase(FlakyDatabase):
        async def execute(self, statement: Any, rows: Any = None) -> None:
            pass  # compiling it to text would make garbage of its own

    db = QuietDatabase()
    db.failures = 0
    recorder = _recorder(db)
    await recorder.sample()  # the first builds it
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            await recorder.sample()
        garbage = gc.collect()
    finally:
        gc.enable()
    assert garbage < 200, garbage
