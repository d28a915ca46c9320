"""The audience recorder keeps its queued watch intervals when a commit fails."""

from __future__ import annotations

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
