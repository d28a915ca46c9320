"""SingleFlight: concurrent loads of one key run once; failures reach every waiter; a
cancelled caller (the first one included) leaves the load and the others alone."""

from __future__ import annotations

import asyncio

import pytest

from live.coalesce import SingleFlight


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


async def test_cancelling_the_first_caller_leaves_the_others_their_result() -> None:
    """The caller that started the load goes away (its client disconnected): the load
    goes on and every other caller gets its result (they got CancelledError before)."""
    flight: SingleFlight[int] = SingleFlight()
    release = asyncio.Event()
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    first = asyncio.create_task(flight.do("k", load))
    await asyncio.sleep(0)
    others = [asyncio.create_task(flight.do("k", load)) for _ in range(3)]
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.wait_for(asyncio.gather(*others), 1) == [42, 42, 42]
    assert calls == 1
    with pytest.raises(asyncio.CancelledError):
        await first
