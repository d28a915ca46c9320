"""Who is calling: signed bearer tokens, password hashing, and the Principal they yield.

Tokens are HS256 JWTs carrying the account id, username, role and display name, so
checking one needs no database round trip. They expire after ``ttl_s``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher as Argon2Hasher
from argon2.exceptions import InvalidHashError, VerificationError

from live.clock import Clock
from live.errors import Forbidden, Unauthenticated
from live.models import Role

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
        self._verified: dict[str, tuple[Principal, int]] = {}

    def issue(self, user_id: int, username: str, role: str, display_name: str) -> str:
        now = self._clock.now_ms() // 1000
        claims = {
            "sub": str(user_id),
            "usr": username,
            "role": role,
            "name": display_name,
            "iat": now,
            "exp": now + self.ttl_s,
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, token: str) -> Principal:
        """The principal a valid, unexpired token names; ``Unauthenticated`` otherwise.

        Verified tokens are remembered (bounded), so a client's every request does not
        pay for the HMAC and JSON decoding again; expiry is still checked each time.
        """
        known = self._verified.get(token)
        if known is not None:
            principal, expires = known
            if expires <= self._clock.now_ms() // 1000:
                raise Unauthenticated("token_expired", "the token has expired; sign in again")
            return principal
        principal, expires = self._decode(token)
        if len(self._verified) >= self._cache_size:
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    def _decode(self, token: str) -> tuple[Principal, int]:
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
        if expires <= self._clock.now_ms() // 1000:
            raise Unauthenticated("token_expired", "the token has expired; sign in again")
        try:
            role = Role(claims["role"])
            principal = Principal(int(claims["sub"]), str(claims["usr"]), role, str(claims["name"]))
        except (KeyError, ValueError) as exc:
            raise Unauthenticated("invalid_token", "the token is not valid") from exc
        return principal, expires


class PasswordHasher:
    """Argon2id, run in a worker thread so hashing never stalls the event loop."""

    def __init__(self, *, time_cost: int = 3, memory_cost_kib: int = 65536) -> None:
        self._hasher = Argon2Hasher(time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=1)

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)
