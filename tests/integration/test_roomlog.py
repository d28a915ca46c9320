"""The RoomLog contract, run against both implementations, and the hub's gap repair."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from live.clock import ManualClock
from live.events import Event, seq_of
from live.presence import MemoryPresence
from live.redis_keys import room_keys
from live.roomhub import Connection, RoomHub
from live.roomlog import RoomLog
from live.roomlog_memory import MemoryRoomLog
from live.roomlog_redis import RedisRoomLog


@pytest.fixture(params=["memory", "redis"])
async def room_log(request: pytest.FixtureRequest) -> AsyncIterator[RoomLog]:
    if request.param == "memory":
        log = MemoryRoomLog(ManualClock(), history_size=100)
        yield log
        await log.close()
        return
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("the Redis room log needs REDIS_URL (see .ci/run)")
    redis = Redis.from_url(url)
    prefix = f"test:{uuid.uuid4().hex[:10]}"
    log = RedisRoomLog(redis, prefix=prefix, history_size=100)
    yield log
    await log.close()
    keys = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


async def test_seq_is_gap_free_and_per_room(room_log: RoomLog) -> None:
    a = [await room_log.append(1, "x.y", {"i": i}) for i in range(5)]
    b = [await room_log.append(2, "x.y", {"i": i}) for i in range(3)]
    assert [e.seq for e in a] == [1, 2, 3, 4, 5]
    assert [e.seq for e in b] == [1, 2, 3]
    assert len({e.epoch for e in a}) == 1
    position = await room_log.position(1)
    assert (position.seq, position.epoch) == (5, a[0].epoch)
    assert Event.from_raw(a[2].raw).data == {"i": 2}
    assert seq_of(a[4].raw) == 5


async def test_read_since(room_log: RoomLog) -> None:
    events = [await room_log.append(7, "x.y", {"i": i}) for i in range(10)]
    epoch = events[0].epoch
    assert await room_log.read_since(7, 10, epoch) == []
    assert await room_log.read_since(7, 6, epoch) == [e.raw for e in events[6:]]
    assert await room_log.read_since(7, 0, epoch) == [e.raw for e in events]
    assert await room_log.read_since(7, 11, epoch) is None
    assert await room_log.read_since(7, 3, "other") is None


async def test_trimmed_history_is_not_recoverable(room_log: RoomLog) -> None:
    events = [await room_log.append(3, "x.y", {"i": i}) for i in range(400)]
    epoch = events[0].epoch
    assert await room_log.read_since(3, 0, epoch) is None
    recent = await room_log.read_since(3, 390, epoch)
    assert recent == [e.raw for e in events[390:]]


async def test_dedup_key_stores_once(room_log: RoomLog) -> None:
    first = await room_log.append(4, "order.placed", {"n": 1}, dedup_key="outbox:1")
    again = await room_log.append(4, "order.placed", {"n": 1}, dedup_key="outbox:1")
    other = await room_log.append(4, "order.placed", {"n": 2}, dedup_key="outbox:2")
    assert again.seq == first.seq
    assert other.seq == first.seq + 1
    assert (await room_log.position(4)).seq == 2


async def test_dedup_key_stores_once_after_its_event_was_trimmed(room_log: RoomLog) -> None:
    await room_log.append(8, "order.placed", {"n": 1}, dedup_key="outbox:1")
    for i in range(400):  # the history keeps about 100: the first event is trimmed
        await room_log.append(8, "x.y", {"i": i})
    again = await room_log.append(8, "order.placed", {"n": 1}, dedup_key="outbox:1")
    assert again.raw == b""  # reported without its data, as it is gone
    assert (await room_log.position(8)).seq == 401  # and not stored again


async def test_listener_gets_watched_rooms_in_order(room_log: RoomLog) -> None:
    got: list[tuple[int, int]] = []
    done = asyncio.Event()

    def listener(room: int, raw: bytes) -> None:
        got.append((room, seq_of(raw)))
        if len(got) == 20:
            done.set()

    room_log.set_listener(listener)
    await room_log.watch(5)
    await asyncio.sleep(0.05)
    await room_log.append(6, "x.y", {})  # not watched
    for _ in range(20):
        await room_log.append(5, "x.y", {})
    await asyncio.wait_for(done.wait(), 5)
    assert got == [(5, i) for i in range(1, 21)]
    await room_log.unwatch(5)


async def test_lost_redis_history_changes_the_epoch() -> None:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("the Redis room log needs REDIS_URL (see .ci/run)")
    redis = Redis.from_url(url)
    prefix = f"test:{uuid.uuid4().hex[:10]}"
    room_log = RedisRoomLog(redis, prefix=prefix)
    try:
        before = await room_log.append(9, "x.y", {})
        await redis.delete(*room_keys(prefix, 9).log_keys)  # as if Redis lost the room
        after = await room_log.append(9, "x.y", {})
        assert after.seq == 1
        assert after.epoch != before.epoch
        assert await room_log.read_since(9, 0, before.epoch) is None
    finally:
        await room_log.close()
        await redis.delete(*room_keys(prefix, 9).log_keys)
        await redis.aclose()


async def test_memory_epoch_differs_per_instance() -> None:
    a, b = MemoryRoomLog(ManualClock()), MemoryRoomLog(ManualClock())
    assert (await a.position(1)).epoch != (await b.position(1)).epoch


def split_frames(data: bytes) -> list[bytes]:
    """Payloads of consecutive small unmasked frames (< 126 bytes each)."""
    out = []
    while data:
        length = data[1] & 0x7F
        assert length < 126
        out.append(data[2 : 2 + length])
        data = data[2 + length :]
    return out


class FakeTransport:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.frames.append(data)

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        return None


class FakeSocket:
    closed = False

    async def close(self, **_: Any) -> bool:
        return True


async def test_hub_fills_a_gap_from_history_before_delivering_later_events() -> None:
    log = MemoryRoomLog(ManualClock())
    hub = RoomHub(log, MemoryPresence())
    transport = FakeTransport()
    conn = Connection("c1", 1, FakeSocket(), transport, None, "guest", "guest", True)
    await hub.join(conn)
    assert await hub.attach(conn, 0)
    events = [await log.append(1, "x.y", {"i": i}) for i in range(3)]
    # Simulate a pub/sub message lost in transit: the room log has 4 and 5, the hub
    # hears only 5; it must fetch 4 from history and deliver 4 before 5.
    log.set_listener(lambda room, raw: None)
    e4 = await log.append(1, "x.y", {"i": 3})
    e5 = await log.append(1, "x.y", {"i": 4})
    hub._deliver(1, e5.raw)
    for _ in range(10):
        await asyncio.sleep(0)
    seqs = [orjson.loads(payload)["seq"] for payload in split_frames(b"".join(transport.frames))]
    assert seqs == [e.seq for e in events] + [e4.seq, e5.seq]
