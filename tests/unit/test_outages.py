"""A dependency that is down (live/outages.py): real connection failures of the
database driver and of redis-py are recognised as such, anything else is a bug; one
log line per outage transition, not one per request."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from support import free_port

from live.outages import OutageLog, dependency_of, report_failure


async def test_real_connection_failures_are_named() -> None:
    dead = free_port()  # nothing listens there
    engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{dead}/test")
    with pytest.raises(Exception) as db_down:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    await engine.dispose()
    assert dependency_of(db_down.value) == "database", repr(db_down.value)

    redis = Redis(host="127.0.0.1", port=dead, socket_connect_timeout=0.2)
    with pytest.raises(Exception) as redis_down:
        await redis.ping()
    await redis.aclose()
    assert dependency_of(redis_down.value) == "redis", repr(redis_down.value)

    assert dependency_of(ConnectionRefusedError("nothing there")) == "network"
    assert dependency_of(ConnectionResetError("our client hung up")) is None
    for bug in (ValueError("bad"), KeyError("x"), ZeroDivisionError()):
        assert dependency_of(bug) is None
    try:
        try:
            raise ConnectionRefusedError("refused")
        except ConnectionRefusedError as inner:
            raise RuntimeError("while publishing") from inner
    except RuntimeError as wrapped:
        assert dependency_of(wrapped) == "network"  # what it wraps says so


async def test_one_line_per_outage_transition(caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="liveshelf.outages")
    outages = OutageLog(every_s=0.2, quiet_s=0.3)
    for _ in range(50):  # a burst: one line
        outages.failed("redis", ConnectionError("down"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "redis unavailable" in lines[0]
    await asyncio.sleep(0.25)
    outages.failed("redis", ConnectionError("down"))  # still failing after every_s
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "50 requests answered 503" in lines[1]
    assert outages.is_down("redis")
    await asyncio.sleep(0.5)  # quiet: back
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and "redis answers again" in lines[2]
    assert not outages.is_down("redis")


async def test_a_background_round_logs_a_bug_each_time_an_outage_once(caplog: Any) -> None:
    caplog.set_level(logging.WARNING)
    log = logging.getLogger("test.rounds")
    down = ConnectionRefusedError(111, "refused")
    try:
        raise down
    except ConnectionRefusedError as exc:
        refused = exc  # raised outside a driver: "network"
    for _ in range(5):
        report_failure(log, "Loop(1)", refused)
        report_failure(log, "Loop(1)", KeyError("bug"))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(warnings) == 1 and "network is unavailable" in warnings[0].getMessage()
    assert not warnings[0].exc_info
    assert len(errors) == 5 and all(r.exc_info for r in errors)
    report_failure(log, "Loop(2)", refused)  # another task says it once too
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
