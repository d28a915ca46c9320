"""Bounded memory under churn (issue 27): what a long show, its audience coming and going
and one show after another leave in the process's memory stays within its stated bound.

Each test churns one structure far past its bound (thousands of sockets, viewers,
rooms, revocations, orders) and checks it is back to its baseline or within its cap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from chat.rooms import ChatRooms
from chat.state import Moderation
from live import audience as audience_module
from live.audience import AudienceRecorder, AudienceSources
from live.auth import TokenSigner
from live.clock import ManualClock
from live.presence import MemoryPresence
from live.revocations import PRUNE_AT, Revocations
from live.roomchannel import SNAPSHOT_CACHE_PRUNE_AT, RoomChannel
from live.roomhub import Connection, RoomHub
from live.roomlog_memory import MemoryRoomLog
from live.settings import ChatSettings
from shelf.payments import Captured, TestPaymentProvider

SECRET = "s" * 32
DAY_MS = 86_400_000


class FakeTransport:
    def write(self, data: bytes) -> None:
        return None

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def abort(self) -> None:
        return None


class FakeSocket:
    async def close(self, **_: Any) -> bool:
        return True


# -- the room log --------------------------------------------------------------------


async def test_a_long_show_keeps_at_most_history_size_events_and_dedup_size_keys() -> None:
    log = MemoryRoomLog(ManualClock(), history_size=100, dedup_size=300)
    for i in range(10_000):
        await log.append(1, "order.placed", {"i": i}, dedup_key=f"outbox:{i}")
    room = log._rooms[1]
    assert len(room.history) == 100
    assert len(room.dedup) == 300
    position = await log.position(1)
    assert position.seq == 10_000
    assert await log.read_since(1, 9_900, position.epoch) is not None
    assert await log.read_since(1, 9_899, position.epoch) is None  # trimmed


async def test_shows_idle_for_the_ttl_are_forgotten_when_the_next_one_starts() -> None:
    clock = ManualClock()
    log = MemoryRoomLog(clock, history_size=50, ttl_s=3600)
    for room in range(1, 1_001):  # 1,000 shows, one after another, each 20 events
        for i in range(20):
            await log.append(room, "chat.message", {"i": i})
        clock.advance(60_000)
    # the last hour's shows are kept (59 of them, the minute each one ended included)
    assert len(log._rooms) == 60
    epoch = (await log.position(1_000)).epoch
    clock.advance(3_600_000)
    await log.append(1_001, "session.started", {})
    assert list(log._rooms) == [1_001]
    # A forgotten room that starts again is a new history: resuming it is refused.
    again = await log.append(1_000, "x.y", {})
    assert (again.seq, again.epoch != epoch) == (1, True)
    assert await log.read_since(1_000, 0, epoch) is None


# -- the room hub, the channel and presence ----------------------------------------------


async def test_10000_sockets_joining_and_leaving_1000_rooms_leave_nothing_behind() -> None:
    clock = ManualClock()
    log = MemoryRoomLog(clock)
    presence = MemoryPresence()
    hub = RoomHub(log, presence)
    # every snapshot is stale at once: the cache keeps only its floor
    channel = RoomChannel(hub, log, presence, clock, snapshot_ttl_s=0.0)
    for n in range(10_000):
        room = n % 1_000 + 1
        conns = [
            Connection(f"c{n}-{k}", room, FakeSocket(), FakeTransport(), k, "viewer", "v", True)
            for k in range(2)
        ]
        for conn in conns:
            assert await channel.open(conn, None, None)
            await channel.receive(conn, '{"type": "ping"}')  # a rate bucket per socket
        await presence.tick(room)  # what the hub's presence loop does every second
        for conn in conns:
            await channel.close(conn)
    assert hub._rooms == {}
    assert presence._members == {} and presence._published == {}
    assert channel._buckets == {}
    assert len(channel._snapshot_cache) <= SNAPSHOT_CACHE_PRUNE_AT
    assert log._watched == set()


# -- token revocations -------------------------------------------------------------------


async def test_revocations_older_than_a_token_lifetime_are_dropped() -> None:
    clock = ManualClock()
    tokens = TokenSigner(SECRET, clock, ttl_s=86_400)
    revocations = Revocations(SimpleNamespace(), tokens, clock)  # type: ignore[arg-type]
    for user_id in range(1, 10_001):  # 10,000 logouts over about 35 days
        revocations._heard(f"{user_id}:{clock.now_ms()}".encode())
        clock.advance(300_000)
    # one day of logouts (288 of them, 5 minutes apart) is all that can refuse a token
    assert len(tokens.valid_from_ms) <= PRUNE_AT
    assert 10_000 in tokens.valid_from_ms
    # a revocation still younger than the token lifetime still refuses older tokens
    tokens.revocations_known = True
    old = tokens.issue(9_999, "u9999", "viewer", "U")
    revocations._heard(f"9999:{clock.now_ms() + 1}".encode())
    with pytest.raises(Exception, match="signed out"):
        tokens.verify(old)


# -- audience writes while the database is away ---------------------------------------------


class DownDatabase:
    def __init__(self) -> None:
        self.down = True
        self.statements = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        if self.down:
            raise ConnectionError("database went away")
        yield self

    def get_bind(self) -> Any:
        return SimpleNamespace(dialect=SimpleNamespace(name="sqlite"))

    async def execute(self, statement: Any, rows: Any = None) -> None:
        self.statements += 1


async def test_audience_writes_kept_for_a_database_that_is_away_are_capped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audience_module, "MAX_PENDING_WRITES", 500)
    db = DownDatabase()
    sources = AudienceSources(lambda: [], lambda _s: 0, lambda: [], lambda _s: 0)
    recorder = AudienceRecorder(db, ManualClock(), sources, process="p", interval_s=0)  # type: ignore[arg-type]
    for n in range(10_000):  # 10,000 viewers come and go, a sample every 100
        recorder.viewer_joined(n % 7, f"r{n}", None, f"g:{n % 300}")
        recorder.viewer_left(n % 7, f"r{n}", "deleted")
        if n % 100 == 99:
            with pytest.raises(ConnectionError):
                await recorder.sample()
    assert len(recorder._pending) == 500
    assert recorder._viewers == {} and recorder._watching == {}
    db.down = False
    await recorder.sample()
    assert recorder._pending == [] and db.statements == 500


# -- chat: rate buckets and slow-mode stamps -------------------------------------------------


class FlakyRepo:
    """Loads a room's moderation once; then the database is away."""

    def __init__(self) -> None:
        self.loads = 0

    async def load_moderation(self, session_id: int, now_ms: int) -> Moderation:
        self.loads += 1
        if self.loads > 1:
            raise ConnectionError("database went away")
        return Moderation(session_id, 1, "live", frozenset(), frozenset(), {}, 10, ())


async def test_chat_buckets_are_pruned_while_the_database_is_away() -> None:
    clock = ManualClock()
    hub = SimpleNamespace(local_sockets=lambda _room: 1)
    config = ChatSettings()
    rooms = ChatRooms(FlakyRepo(), hub, clock, config)  # type: ignore[arg-type]
    room = await rooms.get(5)
    for user_id in range(10_000):  # a user taps and posts, then leaves; 10 a second
        now = clock.now_ms()
        assert room.like_buckets.get(user_id, now).take(now)
        assert room.message_buckets.get(user_id, now).take(now)
        room.last_post_ms[user_id] = now
        clock.advance(100)
        if user_id % 20 == 19:  # a refresh every 2 s, each failing to reload
            with pytest.raises(ConnectionError):
                await rooms.refresh()
    # kept: the users of the last few seconds (burst / rate: 2 s; slow mode: 10 s)
    assert len(room.like_buckets) <= 40
    assert len(room.message_buckets) <= 40
    assert len(room.last_post_ms) <= 120


# -- the stand-in payment provider ------------------------------------------------------------


async def test_the_test_payment_provider_remembers_the_last_captures_only() -> None:
    payments = TestPaymentProvider(remember=100)
    with pytest.raises(ValueError):
        await payments.refund("test_1", "1:0", 100)  # never captured
    for order_id in range(1, 1_001):  # 1,000 orders, each refunded in part
        captured = await payments.capture(order_id, 1_000, "EUR", buyer_id=order_id)
        await payments.refund(captured.reference, f"{order_id}:0", 400)
    assert len(payments.captures) == len(payments.amounts) == len(payments.refunds) == 100
    assert await payments.capture(1, 1_000, "EUR", 1) == Captured(True, "test_1")  # forgotten
    await payments.refund("test_2", "2:1", 900)  # forgotten: not checked, not kept
    assert "test_2" not in payments.refunds
    with pytest.raises(ValueError):  # remembered: still checked
        await payments.refund("test_1000", "1000:1", 601)
    await payments.refund("test_1000", "1000:1", 600)
