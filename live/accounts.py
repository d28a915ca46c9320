"""Accounts: sign-up, login, lookup, admin creation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from live.auth import PasswordHasher, TokenSigner
from live.clock import Clock, iso
from live.db import Database
from live.errors import Conflict, Forbidden, NotFound, Unauthenticated
from live.models import Role, User

# Verified against when the username is unknown, so a wrong name and a wrong password
# take the same time.
_DUMMY_PASSWORD = "liveshelf-no-such-user"


def user_dict(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "created_at": iso(user.created_ms),
        "disabled": bool(user.disabled),
    }


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str
    user: User

    def to_dict(self) -> dict[str, Any]:
        return {"token": self.token, "user": user_dict(self.user)}


class AccountService:
    def __init__(
        self, db: Database, hasher: PasswordHasher, tokens: TokenSigner, clock: Clock
    ) -> None:
        self._db = db
        self._hasher = hasher
        self._tokens = tokens
        self._clock = clock
        self._dummy_hash: str | None = None

    async def signup(
        self, username: str, password: str, role: Role, display_name: str | None = None
    ) -> SignedIn:
        user = await self.create(username, password, role, display_name)
        return SignedIn(self.token_for(user), user)

    async def create(
        self, username: str, password: str, role: Role, display_name: str | None = None
    ) -> User:
        password_hash = await self._hasher.hash(password)
        user = User(
            username=username,
            display_name=display_name or username,
            role=role.value,
            password_hash=password_hash,
            created_ms=self._clock.now_ms(),
            disabled=False,
        )
        try:
            async with self._db.transaction() as tx:
                tx.add(user)
        except IntegrityError as exc:
            raise Conflict("username_taken", f"the username {username!r} is taken") from exc
        return user

    async def login(self, username: str, password: str) -> SignedIn:
        async with self._db.read() as s:
            user = await s.scalar(select(User).where(User.username == username))
        if user is None:
            await self._hasher.verify(await self._dummy(), password)
            raise Unauthenticated("invalid_credentials", "wrong username or password")
        if not await self._hasher.verify(user.password_hash, password):
            raise Unauthenticated("invalid_credentials", "wrong username or password")
        if user.disabled:
            raise Forbidden("account_disabled", "this account is disabled")
        return SignedIn(self.token_for(user), user)

    async def get(self, user_id: int) -> User:
        async with self._db.read() as s:
            user = await s.get(User, user_id)
        if user is None:
            raise NotFound("user_not_found", "no such account")
        return user

    async def by_username(self, username: str) -> User:
        async with self._db.read() as s:
            user = await s.scalar(select(User).where(User.username == username))
        if user is None:
            raise NotFound("user_not_found", f"no account named {username!r}")
        return user

    def token_for(self, user: User) -> str:
        return self._tokens.issue(user.id, user.username, user.role, user.display_name)

    async def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = await self._hasher.hash(_DUMMY_PASSWORD)
        return self._dummy_hash
