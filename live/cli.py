"""The command line's actions on the core (``python app.py migrate | create-admin``);
``app.py`` parses the arguments and calls them."""

from __future__ import annotations

from live.accounts import AccountService
from live.auth import PasswordHasher, TokenSigner
from live.clock import SystemClock
from live.db import Database
from live.models import Role
from live.schemas import password_problem
from live.settings import Settings
from live.startup import wait_for


async def migrate(settings: Settings, *, wait: bool = False) -> None:
    """Apply the migrations; ``wait``: while the database is down, wait for it."""
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        if wait:
            await wait_for("applying the database migrations", db.migrate)
        else:
            await db.migrate()
    finally:
        await db.dispose()


async def create_admin(settings: Settings, username: str, password: str) -> None:
    """Create an admin account; ``SystemExit`` with the reason if the password is weak."""
    problem = password_problem(username, password)
    if problem is not None:
        raise SystemExit(problem)
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        clock = SystemClock()
        hasher = PasswordHasher(time_cost=settings.password_time_cost)
        accounts = AccountService(db, hasher, TokenSigner(settings.secret, clock), clock)
        await accounts.create(username, password, Role.ADMIN, username)
    finally:
        await db.dispose()
