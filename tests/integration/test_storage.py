"""Storage on SQLite and PostgreSQL: migrations match the models; the outbox survives crashes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import String, bindparam, event, false, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from support import Api, backend_settings, database_at, migrate

import app as app_module
from app import Settings, create_app, db_key, outbox_relay_key, room_log_key
from live.clock import ManualClock
from live.db import Base, Database
from live.models import OutboxEvent, User
from live.outbox import OutboxRelay
from live.roomlog_memory import MemoryRoomLog


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection)
    return list(compare_metadata(context, Base.metadata))


@pytest.mark.parametrize("start", ["empty", "the tests' template"])
async def test_migrations_match_the_models(settings: Settings, start: str) -> None:
    """Migrated from nothing, and as every other test gets it (tests/templates.py)."""
    # every package's models must be imported so Base.metadata is complete
    assert app_module.create_app
    if start == "empty":
        db = await database_at(settings, "head")
    else:
        db = Database(settings.database_url, schema=settings.database_schema)
    try:
        await db.migrate()
        await db.migrate()  # idempotent
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(_diff)
        assert diff == []
    finally:
        await db.dispose()


async def test_outbox_rows_left_by_a_crash_are_published_once(
    settings: Settings, aiohttp_client: Any
) -> None:
    # A "previous process" committed events to the outbox and died before publishing.
    db = Database(settings.database_url, schema=settings.database_schema)
    await db.migrate()
    async with db.transaction() as tx:
        for i in range(3):
            tx.add(
                OutboxEvent(
                    session_id=42,
                    type="order.placed",
                    data=orjson.dumps({"i": i}).decode(),
                    created_ms=i,
                )
            )
    await db.dispose()

    app = create_app(settings)
    await aiohttp_client(app)  # startup drains the outbox
    room_log = app[room_log_key]
    published = await room_log.read_since(42, 0, (await room_log.position(42)).epoch)
    assert published is not None
    assert [orjson.loads(raw)["data"]["i"] for raw in published] == [0, 1, 2]
    async with app[db_key].read() as s:
        assert await s.scalar(select(func.count()).select_from(OutboxEvent)) == 0
    # publishing the same rows again (crash after append, before delete) stores nothing new
    relay = app[outbox_relay_key]
    rows = [OutboxEvent(id=1, session_id=42, type="order.placed", data='{"i":0}', created_ms=0)]
    await relay.publish(rows)
    assert (await room_log.position(42)).seq == 3


async def test_session_events_are_committed_and_published(api: Api) -> None:
    host = await api.signup("host")
    session = await api.live_session(host)
    room_log = api.client.app[room_log_key]
    position = await room_log.position(session["id"])
    events = await room_log.read_since(session["id"], 0, position.epoch)
    assert events is not None
    assert [orjson.loads(raw)["type"] for raw in events] == ["session.started"]


async def test_a_burst_of_published_rows_is_deleted_in_one_statement(
    settings: Settings,
) -> None:
    """Each publication appends its row at once; the rows are deleted a moment later,
    all of a burst's together (a flash sale's orders do not pay a transaction each)."""
    db = Database(settings.database_url, schema=settings.database_schema)
    await db.migrate()
    room_log = MemoryRoomLog(ManualClock())
    relay = OutboxRelay(db, room_log, poll_interval_s=60, forget_after_s=1.0)
    deletes: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM OUTBOX"):
            deletes.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        await relay.start()
        async with db.transaction() as tx:
            rows = [
                OutboxEvent(session_id=7, type="order.placed", data=f'{{"i":{i}}}', created_ms=i)
                for i in range(5)
            ]
            tx.add_all(rows)
        for row in rows:  # one by one, as orders settle
            await relay.publish([row])
            await asyncio.sleep(0.02)
        assert (await room_log.position(7)).seq == 5  # in the room log at once
        async with db.read() as s:
            assert await s.scalar(select(func.count()).select_from(OutboxEvent)) == 5
        for _ in range(200):
            await asyncio.sleep(0.02)
            async with db.read() as s:
                if not await s.scalar(select(func.count()).select_from(OutboxEvent)):
                    break
        else:
            raise AssertionError("the published rows were never deleted")
        assert len(deletes) == 1
    finally:
        await relay.stop()
        await db.dispose()


async def test_the_poll_finds_unpublished_rows_while_publications_keep_coming(
    settings: Settings,
) -> None:
    """A row nobody published (its process died first) is found by the poll within
    about ``poll_interval_s``, even while this process publishes without a pause."""
    db = Database(settings.database_url, schema=settings.database_schema)
    await db.migrate()
    room_log = MemoryRoomLog(ManualClock())
    relay = OutboxRelay(db, room_log, poll_interval_s=0.3, forget_after_s=0.05)
    try:
        await relay.start()
        async with db.transaction() as tx:
            tx.add(OutboxEvent(session_id=8, type="order.placed", data="{}", created_ms=0))
        found = False
        for i in range(40):  # 2 s of publications every 50 ms
            async with db.transaction() as tx:
                row = OutboxEvent(session_id=9, type="stock.changed", data="{}", created_ms=i)
                tx.add(row)
            await relay.publish([row])
            await asyncio.sleep(0.05)
            if (await room_log.position(8)).seq:
                found = True
                break
        assert found, "the unpublished row waited for a quiet spell"
    finally:
        await relay.stop()
        await db.dispose()


async def test_outbox_ids_are_never_reused(settings: Settings, aiohttp_client: Any) -> None:
    """Two events in the same millisecond, the first row already deleted: both publish.

    (SQLite hands a deleted last row's id to the next insert unless the table is
    AUTOINCREMENT; ids name events in the room log's dedup keys.)"""
    app = create_app(settings, clock=ManualClock())  # time stands still
    api = Api(await aiohttp_client(app))
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    await app[outbox_relay_key].drain()  # the session.started row is deleted now
    await api.call("POST", f"/api/sessions/{sid}/end", host, expect=200)
    room_log = app[room_log_key]
    raws = await room_log.read_since(sid, 0, (await room_log.position(sid)).epoch)
    assert raws is not None
    assert [orjson.loads(raw)["type"] for raw in raws] == ["session.started", "session.ended"]


async def test_the_connection_pool_is_open_before_the_first_request(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """PostgreSQL (SQLite opens its file per connection: nothing to keep warm): a fixed
    pool, opened at start-up; a burst of requests waits for a connection instead of
    opening (and closing) extra ones."""
    settings = backend_settings("postgres-redis", tmp_path).model_copy(update={"db_pool_size": 5})
    client = await aiohttp_client(create_app(settings))
    db = client.app[db_key]
    assert not db.is_sqlite
    pool = db.engine.pool
    assert pool.checkedin() + pool.checkedout() == 5  # open (some may be busy at start-up)
    opened = 0

    def on_connect(*_: Any) -> None:
        nonlocal opened
        opened += 1

    event.listen(db.engine.sync_engine, "connect", on_connect)
    api = Api(client)
    host = await api.signup("host")
    await asyncio.gather(*(api.call("GET", "/api/me", host, expect=200) for _ in range(40)))
    await asyncio.gather(*(api.call("GET", "/api/sessions", expect=200) for _ in range(40)))
    assert opened == 0  # 80 requests, 40 at a time: the five connections served them all
    assert pool.checkedin() + pool.checkedout() == 5


async def test_a_prepared_write_reports_a_constraint_violation_as_integrity_error(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """PostgreSQL's one-statement writes run on asyncpg directly; a unique violation
    leaves them as SQLAlchemy's IntegrityError, like the ORM path's, so the order path
    catches one kind (two concurrent retries of one Idempotency-Key: the second insert
    loses, and its buyer gets the first one's order, not a 500)."""
    settings = backend_settings("postgres-redis", tmp_path).model_copy(update={"db_pool_size": 4})
    client = await aiohttp_client(create_app(settings))
    db = client.app[db_key]
    add_user = db.prepare_write(
        insert(User)
        .values(
            username=bindparam("u_name", type_=String),
            password_hash="x",
            role="viewer",
            display_name="x",
            created_ms=0,
            disabled=false(),  # a SQL keyword: prepared statements bind ints and strings
        )
        .returning(User.id)
    )
    assert isinstance(await add_user.value({"u_name": "twice"}), int)
    with pytest.raises(IntegrityError):
        await add_user.value({"u_name": "twice"})


async def test_announced_stock_versions_survive_the_move_to_their_own_table(
    settings: Settings,
) -> None:
    """0008 moves ``products.published_version`` to ``stock_announcements`` and back."""
    db = await database_at(settings, "0007")
    try:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO users (id, username, display_name, role, password_hash, "
                "created_ms) VALUES (1, 'brand', 'Brand', 'brand', 'x', 0)"
            )
            for pid, stock_version, published in ((1, 5, 3), (2, 0, 0), (3, 4, 4)):
                await conn.exec_driver_sql(
                    "INSERT INTO products (id, brand_id, title, description, price_minor, "
                    "currency, stock, commission_bps, stock_version, published_version, "
                    f"created_ms, updated_ms) VALUES ({pid}, 1, 'p', '', 100, 'EUR', 1, 0, "
                    f"{stock_version}, {published}, 0, 0)"
                )
        await migrate(db, "upgrade", "0008")
        async with db.engine.begin() as conn:
            rows = await conn.exec_driver_sql(
                "SELECT product_id, version FROM stock_announcements ORDER BY product_id"
            )
            assert [tuple(r) for r in rows] == [(1, 3), (3, 4)]
        await migrate(db, "downgrade", "0007")
        async with db.engine.begin() as conn:
            rows = await conn.exec_driver_sql(
                "SELECT id, published_version FROM products ORDER BY id"
            )
            assert [tuple(r) for r in rows] == [(1, 3), (2, 0), (3, 4)]
    finally:
        await db.dispose()


async def test_agreements_made_before_flash_terms_allow_no_flash_sales(
    settings: Settings,
) -> None:
    """0009 adds the brand's flash-sale terms to agreements: none for the old ones (no
    flash sales until the brand proposes terms), and goes back."""
    db = await database_at(settings, "0008")
    try:
        async with db.engine.begin() as conn:
            for uid, role in ((1, "brand"), (2, "host")):
                await conn.exec_driver_sql(
                    "INSERT INTO users (id, username, display_name, role, password_hash, "
                    f"created_ms) VALUES ({uid}, '{role}', 'X', '{role}', 'x', 0)"
                )
            await conn.exec_driver_sql(
                "INSERT INTO cooperations (id, brand_id, host_id, commission_bps, status, "
                "created_ms) VALUES (7, 1, 2, 1200, 'accepted', 0)"
            )
        await migrate(db, "upgrade", "0009")
        async with db.engine.begin() as conn:
            rows = await conn.exec_driver_sql(
                "SELECT id, commission_bps, flash_min_price_bps, flash_max_units FROM cooperations"
            )
            assert [tuple(r) for r in rows] == [(7, 1200, None, None)]
        await migrate(db, "downgrade", "0008")
        async with db.engine.begin() as conn:
            rows = await conn.exec_driver_sql("SELECT id, commission_bps FROM cooperations")
            assert [tuple(r) for r in rows] == [(7, 1200)]
    finally:
        await db.dispose()
