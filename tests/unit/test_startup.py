"""Start-up steps (live/startup.py): a step that fails because a dependency is down
is retried in the background and named as pending until it is done; a bug still
stops the start; ``wait_for`` retries in place."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from live.startup import StartUp, wait_for


class Flaky:
    """A step that finds its dependency down ``failures`` times, then works."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionRefusedError(111, "refused")
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error


async def test_a_step_waiting_for_a_dependency_is_retried_until_done(caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    startup = StartUp(every_s=0.05)
    step = Flaky(3)
    await startup.run("warming", step)  # does not raise
    assert startup.pending == ["warming"]
    async with asyncio.timeout(2):
        while True:
            if not startup.pending:
                break
            await asyncio.sleep(0.01)
    assert step.calls == 4 and startup.pending == []
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines  # waits, then done: not one line per try
    assert "waits for the network" in lines[0] and "done (try 4)" in lines[1]
    await startup.stop()


async def test_a_bug_stops_the_start() -> None:
    startup = StartUp(every_s=0.05)
    with pytest.raises(KeyError):
        await startup.run("loading", Flaky(1, KeyError("bug")))
    assert startup.pending == []


async def test_stop_ends_the_retries() -> None:
    startup = StartUp(every_s=0.05)
    step = Flaky(10**9)
    await startup.run("forever", step)
    await asyncio.sleep(0.2)
    await startup.stop()
    calls = step.calls
    await asyncio.sleep(0.2)
    assert step.calls == calls and startup.pending == []


async def test_wait_for_retries_in_place_and_raises_a_bug() -> None:
    step = Flaky(2)
    await wait_for("migrating", step, every_s=0.01)
    assert step.calls == 3
    with pytest.raises(KeyError):
        await wait_for("migrating", Flaky(2, KeyError("bug")), every_s=0.01)
