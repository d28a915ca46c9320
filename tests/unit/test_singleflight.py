"""SingleFlight: concurrent loads of one key run once; failures reach every waiter."""

from __future__ import annotations

import asyncio

import pytest

from live.singleflight import SingleFlight


async def test_concurrent_callers_share_one_load() -> None:
    flight: SingleFlight[int] = SingleFlight()
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 42

    results = await asyncio.gather(*(flight.do("k", load) for _ in range(50)))
    assert results == [42] * 50
    assert calls == 1
    assert await flight.do("k", load) == 42
    assert calls == 2  # nothing is cached once the flight landed


async def test_a_failure_reaches_every_waiter_and_is_not_kept() -> None:
    flight: SingleFlight[int] = SingleFlight()

    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("db down")

    results = await asyncio.gather(
        *(flight.do("k", boom) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)

    async def ok() -> int:
        return 1

    assert await flight.do("k", ok) == 1
    with pytest.raises(RuntimeError):
        await flight.do("j", boom)
