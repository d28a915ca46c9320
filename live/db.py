"""Database access: one async engine, read and write sessions, migrations.

The same code runs on SQLite (aiosqlite) and PostgreSQL (asyncpg). SQLite needs two
adjustments for concurrent writers, both applied here and nowhere else:

* WAL journal + busy timeout, so readers never block the writer and a second writer
  waits instead of failing at once;
* write transactions start with ``BEGIN IMMEDIATE``. A deferred transaction that reads
  and then writes can deadlock against another one doing the same ("database is
  locked" without waiting); taking the write lock up front serialises writers cleanly.

Hot statements (``Database.prepare_read``, ``Database.prepare_write``): a statement
run thousands of times a second outside any transaction (the order path's reads, and
on PostgreSQL its one-statement writes) is a ``live.prepared.Prepared``, which skips
the ORM session; on PostgreSQL it runs on a small asyncpg pool of the database's own
(``raw_pool``).

Early lock release (PostgreSQL): a one-statement write that locks a row every buyer
queues on (a flash sale's product) can be prepared with ``flush_at_commit=False``. It
then runs on a few connections with ``synchronous_commit = off``: its COMMIT returns,
and its row locks go, as soon as the commit record is in the WAL buffers, instead of
after the WAL is flushed to disk (about a millisecond here, while every other buyer of
the row waits). Nothing acknowledged is lost that way, provided the caller calls
``flush_commits()`` before anything outside the database depends on the write (a
payment, an answer to a client): the WAL is one sequence, so the flush of a later
synchronous commit covers every earlier record. A database crash before that flush
loses the write as a whole, before anyone outside was told of it; what others read
of it meanwhile (fewer units left) was never promised to anyone. If the database
refuses that flush statement (a role without the right to emit WAL messages), such
writes commit synchronously like any other, and a warning says so at start-up.

The pools are fixed in size and opened at start-up (``warm_up``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.script import ScriptDirectory
from sqlalchemy import Select, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.dml import ReturningInsert

from live.coalesce import Batcher
from live.prepared import Prepared

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

log = logging.getLogger(__name__)


#: The flush barrier of early lock release: a transactional logical-decoding message
#: (any role may emit one by default; no table keeps it, and nothing reads it unless a
#: logical replication slot asks for this prefix).
FLUSH_SQL = "SELECT pg_logical_emit_message(true, 'liveshelf', '')"


class Base(DeclarativeBase):
    """Declarative base for every table of every package."""


class Database:
    """The engine plus session factories. Create once per app; ``dispose()`` on shutdown."""

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 20) -> None:
        self.url = url
        self.schema = schema
        self._pool_size = pool_size
        # The asyncpg pool behind ``Prepared`` (PostgreSQL only), opened by ``warm_up``
        # (or on first use).
        self._raw_pool: asyncpg.Pool | None = None
        self._raw_pool_lock = asyncio.Lock()
        # The connections of ``flush_at_commit=False`` writes (synchronous_commit off).
        self._early_pool: asyncpg.Pool | None = None
        self._early_pool_lock = asyncio.Lock()
        # Whether ``FLUSH_SQL`` runs here (None: not tried yet).
        self._early_release: bool | None = None
        # Shared flushes (``flush_commits``): callers that ask while one runs share the next.
        self._flushes: Batcher[None, None, None] = Batcher(self._flush_for)
        kwargs: dict[str, Any] = {"pool_pre_ping": False}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
        else:
            # A fixed set of connections, opened at start-up (``warm_up``): under load
            # a request waits for one in the process, which costs nothing, instead of
            # opening an overflow connection that is closed again when it is returned;
            # that churn (a PostgreSQL backend process, asyncpg's type introspection and
            # every statement prepared again, per connection) halved the order path's
            # throughput in a flash sale (bench/RESULTS.md).
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = 0
            if schema:
                kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._write_engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(self._write_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def pool_usage(self) -> dict[tuple[str, ...], float]:
        """Connections per pool (``orm``, and on PostgreSQL ``raw`` and ``early``):
        ``in_use`` and ``size``, for ``live.metrics``."""
        pool = self.engine.sync_engine.pool
        in_use = getattr(pool, "checkedout", None)
        size = getattr(pool, "size", None)
        usage: dict[tuple[str, ...], float] = {}
        if callable(in_use) and callable(size):
            usage[("orm", "in_use")] = float(in_use())
            usage[("orm", "size")] = float(size())
        for name, raw in (("raw", self._raw_pool), ("early", self._early_pool)):
            if raw is not None:
                usage[(name, "in_use")] = float(raw.get_size() - raw.get_idle_size())
                usage[(name, "size")] = float(raw.get_size())
        return usage

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; whatever it did is rolled back on exit."""
        async with self._read() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed if the block succeeds, rolled back if it raises."""
        async with self._write() as session, session.begin():
            yield session

    @asynccontextmanager
    async def write_connection(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction on a bare Core connection (no ORM session, no identity
        map): for hot paths that only run prebuilt Core statements. Committed if the
        block succeeds, rolled back if it raises; ``BEGIN IMMEDIATE`` on SQLite."""
        async with self._write_engine.begin() as conn:
            yield conn

    def prepare_read(self, statement: Select[*tuple[Any, ...]]) -> Prepared:
        """``statement`` (bind parameters by name) made ready to run often; see
        ``Prepared``."""
        return Prepared(self, statement, statement.selected_columns, self.raw_pool)

    def prepare_write(
        self, statement: ReturningInsert[Any], *, flush_at_commit: bool = True
    ) -> Prepared:
        """PostgreSQL: a one-statement write with RETURNING, made ready to run often on
        the raw pool, in autocommit (each run is its own transaction); see ``Prepared``.
        ``flush_at_commit=False``: early lock release (module docstring); the caller
        owes a ``flush_commits()`` before it acts on the write."""
        assert not self.is_sqlite, "SQLite writes go through write_connection"
        pool = self.raw_pool if flush_at_commit else self._release_early_pool
        return Prepared(self, statement, statement.exported_columns, pool)

    async def flush_commits(self) -> None:
        """PostgreSQL: return once every commit made so far is flushed to disk, the
        ``flush_at_commit=False`` ones included. One synchronous write of a few bytes
        (``FLUSH_SQL``): its commit flushes the WAL up to itself, so all earlier
        records too. Nothing to do when early release is off.

        Shared (``live.coalesce.Batcher``): any flush that starts after this call
        covers the caller, so callers that ask while a flush runs wait for it to end,
        and one of them runs the next flush for all of them (a flash sale's concurrent
        orders share flushes instead of running one each). A flush that fails fails
        every caller it was for; the next caller flushes again."""
        if not self._early_release:
            return
        await self._flushes.submit(None, None)

    async def _flush_for(self, _key: None, callers: list[None]) -> list[None]:
        """One flush for ``callers``: their answers are the list itself (one None each)."""
        await self._flush()
        return callers

    async def _flush(self) -> None:
        pool = await self.raw_pool()
        async with pool.acquire() as conn:
            await conn.execute(FLUSH_SQL)

    async def _can_release_early(self) -> bool:
        if self._early_release is None:
            try:
                await self._flush()
            except asyncpg.PostgresError as exc:
                log.warning("early lock release is off, hot writes wait for the WAL flush: %s", exc)
                self._early_release = False
            else:
                self._early_release = True
        return self._early_release

    async def _release_early_pool(self) -> asyncpg.Pool:
        """Where ``flush_at_commit=False`` writes run: the early-release pool, or the
        raw pool if ``FLUSH_SQL`` cannot run here."""
        if await self._can_release_early():
            return await self._early_release_pool()
        return await self.raw_pool()

    async def raw_pool(self) -> asyncpg.Pool:
        """The asyncpg pool for prepared hot statements (PostgreSQL only)."""
        if self._raw_pool is None:
            async with self._raw_pool_lock:
                if self._raw_pool is None:
                    # Half the ORM pool's size (the hot statements are short and batched).
                    self._raw_pool = await self._open_raw_pool(max(2, self._pool_size // 2))
        return self._raw_pool

    async def _early_release_pool(self) -> asyncpg.Pool:
        if self._early_pool is None:
            async with self._early_pool_lock:
                if self._early_pool is None:
                    # Writes to one row queue on its lock anyway: a few connections.
                    self._early_pool = await self._open_raw_pool(
                        max(2, self._pool_size // 4), synchronous_commit="off"
                    )
        return self._early_pool

    async def _open_raw_pool(self, size: int, **settings: str) -> asyncpg.Pool:
        _args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        # Options only SQLAlchemy's adapter understands.
        for option in ("prepared_statement_cache_size", "prepared_statement_name_func"):
            kwargs.pop(option, None)
        if self.schema:
            settings["search_path"] = self.schema
        if settings:
            kwargs["server_settings"] = settings
        # All opened at once: no connection is opened under a burst (see ``__init__``),
        # and kept open while idle too: a flash sale starts after a quiet spell.
        pool = await asyncpg.create_pool(
            min_size=size,
            max_size=size,
            max_inactive_connection_lifetime=0,
            reset=_keep_session,
            **kwargs,
        )
        assert pool is not None
        return pool

    async def warm_up(self) -> None:
        """Open the pools' connections now (PostgreSQL), not under the first burst of
        requests."""
        if self.is_sqlite:
            return
        conns = await asyncio.gather(*(self.engine.connect() for _ in range(self._pool_size)))
        for conn in conns:
            await conn.close()  # back into the pool, still open
        await self.raw_pool()
        await self._release_early_pool()

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (creating ``schema`` if set)."""
        if self.schema and not self.is_sqlite:
            async with self.engine.begin() as conn:
                await conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade_to_head)

    async def dispose(self) -> None:
        for pool in (self._raw_pool, self._early_pool):
            if pool is not None:
                await pool.close()
        self._raw_pool = self._early_pool = None
        await self.engine.dispose()


async def _keep_session(_connection: Any) -> None:
    """The raw pool's connections only ever run single statements outside any
    transaction (reads, and autocommit writes) and never change session state, so
    returning one to the pool needs no reset (asyncpg's default sends ``RESET ALL`` &
    co: a round trip per statement, half its cost)."""


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


@functools.cache
def migration_scripts() -> ScriptDirectory:
    """The migration scripts, read once per process: reading them compiles every
    revision file (~0.3 s), which an app start would otherwise pay twice (the readiness
    check's head, the upgrade)."""
    return ScriptDirectory.from_config(alembic_config())


def _upgrade_to_head(connection: Connection) -> None:
    """What ``alembic upgrade head`` does (``live/migrations/env.py`` configures the
    same), on the scripts read once."""
    scripts = migration_scripts()

    def steps(revision: Any, _context: Any) -> Any:
        return scripts._upgrade_revs("head", revision)  # what alembic's command uses

    with EnvironmentContext(alembic_config(), scripts, fn=steps, destination_rev="head") as env:
        env.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
        with env.begin_transaction():
            env.run_migrations()


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite's implicit BEGIN is DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())


def _dialect_name(tx: AsyncSession | AsyncConnection) -> str:
    return (tx.dialect if isinstance(tx, AsyncConnection) else tx.get_bind().dialect).name


def upsert(tx: AsyncSession | AsyncConnection, table: Any) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for the session's (connection's) dialect."""
    return (sqlite_insert if _dialect_name(tx) == "sqlite" else pg_insert)(table)


_Statement = TypeVar("_Statement")


def once_per_dialect(
    build: Callable[[AsyncSession | AsyncConnection], _Statement],
) -> Callable[[AsyncSession | AsyncConnection], _Statement]:
    """The statement ``build`` makes for a session's dialect, built at its first use
    and then reused (values go in as bound parameters).

    For statements that run all the time: building one makes cyclic garbage (each
    comparison and its comparator point at each other; an ``ON CONFLICT``'s
    ``excluded`` is a new alias of the table with copies of its columns), which only
    the cyclic collector frees, in its pauses (issue 27)."""
    built: dict[str, _Statement] = {}

    def statement(tx: AsyncSession | AsyncConnection) -> _Statement:
        dialect = _dialect_name(tx)
        found = built.get(dialect)
        if found is None:
            found = built[dialect] = build(tx)
        return found

    return statement
