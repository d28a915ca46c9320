"""Hot statements: one statement compiled once and run outside any transaction.

``Database.prepare_read`` (a SELECT) and, on PostgreSQL, ``Database.prepare_write`` (a
write that is one statement with RETURNING: it commits by itself, autocommit) give a
``Prepared``, for a statement run thousands of times a second (the order path's reads
and one-statement writes). It skips the ORM session and SQLAlchemy's execution
machinery.

On PostgreSQL the compiled SQL goes straight to an asyncpg connection of the pool the
database gives it (asyncpg prepares it once per connection and caches it): no session,
no greenlet hop, no result-row machinery (what that saves: bench/RESULTS.md, "Flash
sale"). That is only sound for columns and parameters whose SQLAlchemy types do no
Python-side conversion (integers, strings, lists of them): the constructor refuses
any other with ``TypeError``. A constraint violation leaves as SQLAlchemy's
``IntegrityError``, the one the ORM path raises. Every read sees the latest committed
data (READ COMMITTED), like any other read. On SQLite a read runs as a Core statement
on a connection (the same answer, no speed claim); writes are PostgreSQL only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import ARRAY, ColumnElement, Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import ReturningInsert
from sqlalchemy.types import TypeEngine

if TYPE_CHECKING:
    from live.db import Database


class Prepared:
    """One statement compiled once and run outside any transaction (module docstring).
    ``first(params)`` is its first row as a dict keyed by the returned columns' names
    (or None), ``all`` every row, ``value`` the first column of the first row."""

    def __init__(
        self,
        db: Database,
        statement: Select[*tuple[Any, ...]] | ReturningInsert[Any],
        columns: Iterable[ColumnElement[Any]],
        pool: Callable[[], Awaitable[asyncpg.Pool]],
    ) -> None:
        """``pool``: the asyncpg pool it runs on (PostgreSQL)."""
        self._db = db
        self._pool = pool
        self._statement = statement
        self._sql = ""
        # Per positional parameter: its name, and whether the caller binds it (else its
        # literal value, compiled into the statement, is sent).
        self._binds: list[tuple[str, bool, Any]] = []
        if not db.is_sqlite:
            dialect = db.engine.dialect
            compiled = statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            for column in columns:
                if column.type.dialect_impl(dialect).result_processor(dialect, None):
                    raise TypeError(f"{column}: a prepared statement returns ints and strings")
            self._sql = compiled.string
            for name in compiled.positiontup or ():
                bind = compiled.binds[name]
                if not _sent_as_is(bind.type, dialect):
                    raise TypeError(f"{name}: a prepared statement binds ints and strings")
                self._binds.append((name, bind.required, bind.effective_value))

    async def first(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        if self._db.is_sqlite:
            async with self._db.engine.connect() as conn:
                row = (await conn.execute(self._statement, dict(params))).mappings().first()
            return None if row is None else dict(row)
        record = await self._run("fetchrow", params)
        return None if record is None else dict(record.items())

    async def all(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row, as ``first`` gives one. Array parameters (PostgreSQL) take lists."""
        if self._db.is_sqlite:
            async with self._db.engine.connect() as conn:
                rows = (await conn.execute(self._statement, dict(params))).mappings().all()
            return [dict(row) for row in rows]
        return [dict(record.items()) for record in await self._run("fetch", params)]

    async def value(self, params: Mapping[str, Any]) -> Any:
        """The first column of the first row, or None (no row). PostgreSQL (the
        one-statement writes)."""
        assert not self._db.is_sqlite, "value() serves prepare_write, PostgreSQL only"
        return await self._run("fetchval", params)

    async def _run(self, method: str, params: Mapping[str, Any]) -> Any:
        """The statement through asyncpg's ``fetchrow`` / ``fetch`` / ``fetchval``.
        A constraint violation leaves as SQLAlchemy's ``IntegrityError``, the one the
        ORM path raises: callers catch one kind (e.g. an Idempotency-Key that a
        concurrent retry inserted first)."""
        pool = await self._pool()
        async with pool.acquire() as conn:
            try:
                return await getattr(conn, method)(self._sql, *self._args(params))
            except asyncpg.IntegrityConstraintViolationError as exc:
                raise IntegrityError(self._sql, None, exc) from exc

    def _args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] if bound else literal for name, bound, literal in self._binds]


def _sent_as_is(type_: TypeEngine[Any], dialect: Dialect) -> bool:
    """Does a value of ``type_`` go to asyncpg unconverted (ints, strings, lists of them)?"""
    if isinstance(type_, ARRAY):
        return _sent_as_is(type_.item_type, dialect)
    return type_.dialect_impl(dialect).bind_processor(dialect) is None
