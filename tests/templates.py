"""Each test's database starts at the newest revision, copied from one migrated once
per run.

Migrating a fresh database takes ~150 ms on SQLite and ~330 ms on PostgreSQL (a dozen
revisions, each a round of DDL); nearly every test starts an app on a fresh database,
so the suite spent minutes migrating. Here the first test of a run migrates a template
(a SQLite file; a PostgreSQL schema, read back with ``pg_dump --schema-only``) and every
later one copies it: a file copy (~1 ms), or the dump's DDL replayed in one round trip
under the test's own schema name (~100 ms). The app's ``auto_migrate`` then finds the
newest revision and does nothing.

Migrations themselves still run for real wherever a test is about them:
``support.database_at`` starts from an empty database, and the server processes of
``shared`` settings, ``python app.py migrate`` and the storage schema test migrate
from nothing. Without ``pg_dump`` (or with one that cannot read the server) PostgreSQL
tests migrate as before, slower.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from sqlalchemy.engine import make_url

from app import Settings
from live.db import Database, migration_scripts

T = TypeVar("T")
#: psql meta-commands (``\\restrict`` ...) in newer dumps: not SQL
_META_LINE = re.compile(r"^\\.*$", re.MULTILINE)


class Templates:
    """Migrated templates for one run, made on first use; ``prepare`` copies one."""

    def __init__(self, directory: Path, template_schema: str) -> None:
        self._directory = directory
        self._schema = template_schema
        self._lock = threading.Lock()
        # Started now, at import: a thread started later by a test inside the loopback
        # network namespace (tests/netns.py) would stay in it and not reach the host's
        # PostgreSQL.
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="templates", daemon=True
        )
        self._thread.start()
        self._sqlite: Path | None = None
        #: database URL -> (a connection, the DDL with the template's schema name), or
        #: None where no dump could be made
        self._postgres: dict[str, tuple[asyncpg.Connection, str] | None] = {}

    def prepare(self, settings: Settings) -> None:
        """Give ``settings``' database the newest schema: a SQLite file that does not
        exist yet, a PostgreSQL schema that does not."""
        with self._lock:
            if settings.database_url.startswith("sqlite"):
                self._copy_sqlite(settings.database_url)
            elif settings.database_schema:
                self._run(self._clone(settings.database_url, settings.database_schema))

    def close(self) -> None:
        for made in self._postgres.values():
            if made is not None:
                self._run(made[0].close())
        self._postgres.clear()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    # -- SQLite ----------------------------------------------------------------------

    def _copy_sqlite(self, url: str) -> None:
        target = Path(make_url(url).database or "")
        if target.exists():
            return  # a second app on the test's database
        if self._sqlite is None:
            template = self._directory / "template.db"
            self._run(_migrate(f"sqlite+aiosqlite:///{template}", None))
            # disposed: the write-ahead log is checkpointed into the file and removed
            assert not template.with_name(template.name + "-wal").exists()
            self._sqlite = template
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._sqlite, target)

    # -- PostgreSQL ------------------------------------------------------------------

    async def _clone(self, url: str, schema: str) -> None:
        if url not in self._postgres:
            self._postgres[url] = await self._dump(url)
        made = self._postgres[url]
        if made is None:
            return  # the app migrates
        conn, ddl = made
        await conn.execute(ddl.replace(self._schema, schema))

    async def _dump(self, url: str) -> tuple[asyncpg.Connection, str] | None:
        await _migrate(url, self._schema)
        parsed = make_url(url)
        command = ["pg_dump", "--schema-only", "--no-owner", "--no-privileges"]
        command += [f"--schema={self._schema}", "-h", parsed.host or "127.0.0.1"]
        command += ["-p", str(parsed.port or 5432), "-U", parsed.username or "postgres"]
        env = {**os.environ, "PGPASSWORD": parsed.password or ""}
        try:
            dumped = subprocess.run(
                [*command, parsed.database or "postgres"],
                capture_output=True,
                text=True,
                env=env,
                timeout=60,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"tests/templates.py: no pg_dump ({exc!r}); tests migrate", file=sys.stderr)
            return None
        head = migration_scripts().get_current_head()
        ddl = _META_LINE.sub("", dumped)
        ddl += f"\nINSERT INTO {self._schema}.alembic_version VALUES ('{head}');\n"
        plain = parsed.set(drivername="postgresql")
        conn = await asyncpg.connect(plain.render_as_string(hide_password=False))
        return conn, ddl

    # -- the loop the copies run on (callers may be inside another loop) ---------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=120)


async def _migrate(url: str, schema: str | None) -> None:
    db = Database(url, schema=schema)
    try:
        await db.migrate()
    finally:
        await db.dispose()
