"""Who is calling: signed bearer tokens, password hashing, and the Principal they yield.

Tokens are HS256 JWTs carrying the account id, username, role and display name, so
checking one needs no database round trip. They expire after ``ttl_s``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import jwt
from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import InvalidHashError, VerificationError

from live.clock import Clock
from live.errors import Forbidden, Unauthenticated, Unavailable
from live.models import Role

T = TypeVar("T")

GUEST_ROLE = "guest"


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in caller, as stated by a valid token."""

    user_id: int
    username: str
    role: Role
    display_name: str

    def require(self, *roles: Role) -> None:
        """Raise ``Forbidden`` unless this principal has one of ``roles`` (admins always pass)."""
        if self.role not in roles and self.role is not Role.ADMIN:
            allowed = ", ".join(sorted(roles))
            raise Forbidden("role_not_allowed", f"this needs one of the roles: {allowed}")


def require_signed_in(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthenticated("sign_in_required", "sign in to do this")
    return principal


class TokenSigner:
    def __init__(
        self, secret: str, clock: Clock, *, ttl_s: int = 7 * 86400, cache_size: int = 50_000
    ) -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 characters")
        self._secret = secret
        self._clock = clock
        self.ttl_s = ttl_s
        self._cache_size = cache_size
        #: token -> what it says: at most ``cache_size`` tokens; when full it is
        #: emptied (each token is decoded again once)
        self._verified: dict[str, tuple[Principal, int, int, str | None]] = {}
        #: user id -> the first millisecond of the tokens that still count
        #: (``live.revocations`` keeps it: the accounts revoked within ``ttl_s``, older
        #: revocations dropped)
        self.valid_from_ms: dict[int, int] = {}
        #: False while the revocations could not be loaded (the database is down at
        #: start-up): no token is taken then, since a revoked one cannot be told apart
        self.revocations_known = True

    def issue(self, user_id: int, username: str, role: str, display_name: str) -> str:
        now = self._clock.now_ms() // 1000
        claims = {
            "sub": str(user_id),
            "usr": username,
            "role": role,
            "name": display_name,
            "iat": now,
            "iam": self._clock.now_ms(),  # issued at, in milliseconds (revocations)
            "exp": now + self.ttl_s,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    #: how long a room-channel ticket may be used
    TICKET_TTL_S = 60

    def issue_ticket(self, principal: Principal) -> tuple[str, int]:
        """A short-lived ticket for one purpose (opening a room socket: ``?ticket=``,
        where a browser cannot send ``Authorization``), and when it expires. It is not
        a bearer token: ``verify`` refuses it, and a URL that leaks it is worth a minute."""
        now_ms = self._clock.now_ms()
        expires = now_ms // 1000 + self.TICKET_TTL_S
        claims = {
            "sub": str(principal.user_id),
            "usr": principal.username,
            "role": principal.role.value,
            "name": principal.display_name,
            "iam": now_ms,
            "exp": expires,
            "use": "room",
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), expires

    def verify_ticket(self, ticket: str) -> Principal:
        """The principal a valid room-channel ticket names; ``Unauthenticated`` else."""
        return self._checked(ticket, "room")

    def verify(self, token: str) -> Principal:
        """The principal a valid, unexpired token names; ``Unauthenticated`` otherwise.

        Verified tokens are remembered (bounded), so a client's every request does not
        pay for the HMAC and JSON decoding again; expiry is still checked each time.
        """
        return self._checked(token, None)

    def _checked(self, token: str, use: str | None) -> Principal:
        known = self._verified.get(token)
        if known is None:
            known = self._decode(token)
            if len(self._verified) >= self._cache_size:
                self._verified.clear()
            self._verified[token] = known
        principal, expires, issued_ms, purpose = known
        if purpose != use:
            raise Unauthenticated("invalid_token", "the token is not valid here")
        if expires <= self._clock.now_ms() // 1000:
            raise Unauthenticated("token_expired", "the token has expired; sign in again")
        if issued_ms < self.valid_from_ms.get(principal.user_id, 0):
            raise Unauthenticated("token_revoked", "you were signed out; sign in again")
        if not self.revocations_known:
            raise Unavailable(
                "database_unavailable",
                "sign-ins cannot be checked until the database answers; retry soon",
                retry_after_ms=2000,
            )
        return principal

    def _decode(self, token: str) -> tuple[Principal, int, int, str | None]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"require": ["sub", "exp", "role"], "verify_exp": False},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated("invalid_token", "the token is not valid") from exc
        expires = int(claims["exp"])
        try:
            role = Role(claims["role"])
            principal = Principal(int(claims["sub"]), str(claims["usr"]), role, str(claims["name"]))
            issued_ms = int(claims.get("iam", int(claims.get("iat", 0)) * 1000))
            use = claims.get("use")
        except (KeyError, ValueError, TypeError) as exc:
            raise Unauthenticated("invalid_token", "the token is not valid") from exc
        return principal, expires, issued_ms, use if isinstance(use, str) else None


class PasswordHasher:
    """Argon2id in a small thread pool of its own, so hashing never stalls the event
    loop nor the default executor (static files use it): at most ``threads`` hashes at
    once (each holds ``memory_cost_kib``), and at most ``queue`` more waiting; past that
    ``Unavailable`` (503 with ``Retry-After``)."""

    def __init__(
        self,
        *,
        time_cost: int = 3,
        memory_cost_kib: int = 65536,
        threads: int = 2,
        queue: int = 32,
    ) -> None:
        self._hasher = Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=1)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        self._room = threads + queue
        self._taken = 0

    async def _run(self, work: Callable[[], T]) -> T:
        if self._taken >= self._room:
            raise Unavailable("busy", "too many sign-ins at once; try again in a moment")
        self._taken += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work)
        finally:
            self._taken -= 1

    async def hash(self, password: str) -> str:
        return await self._run(lambda: self._hasher.hash(password))

    async def verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await self._run(check)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
