"""Revoking an account's tokens: a logout, or an admin disabling the account.

Tokens are signed, not stored, so a revoked one is told apart by when it was issued:
``users.tokens_valid_from_ms`` is the first millisecond of the tokens that still count.
Every process keeps a copy of the recent ones in memory (``TokenSigner.valid_from_ms``:
one dict lookup per request, no database or Redis round trip) and hears of new ones
through Redis pub/sub, so a revocation counts on every worker as soon as it hears. A
process (re)subscribing reloads them from the database, so none is missed while Redis
was away. Without Redis there is one process, whose own map is the whole truth.
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import select, update

from .auth import TokenSigner
from .clock import Clock
from .db import Database
from .errors import NotFound
from .models import User
from .tasks import reraise_if_cancelling, stop_task

log = logging.getLogger(__name__)

#: revocations kept before those older than a token's lifetime are dropped (see
#: ``_drop_expired``)
PRUNE_AT = 1024


class Revocations:
    def __init__(
        self,
        db: Database,
        tokens: TokenSigner,
        clock: Clock,
        redis: Redis | None = None,
        prefix: str = "ls",
    ) -> None:
        self._db = db
        self._tokens = tokens
        self._clock = clock
        self._redis = redis
        self._channel = f"{prefix}:tokens:revoked"
        self._task: asyncio.Task[None] | None = None
        self._prune_at = PRUNE_AT
        tokens.revocations_known = False  # until ``load`` has run once

    async def revoke(self, user_id: int, *, disable: bool | None = None) -> None:
        """The user's tokens issued until now no longer count, here at once and on
        every worker soon after; ``disable`` also (un)sets the account's ``disabled``."""
        valid_from = self._clock.now_ms() + 1
        values: dict[str, object] = {"tokens_valid_from_ms": valid_from}
        if disable is not None:
            values["disabled"] = disable
        async with self._db.transaction() as tx:
            done = await tx.execute(update(User).where(User.id == user_id).values(**values))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise NotFound("user_not_found", "no such account")
        self._apply(user_id, valid_from)
        if self._redis is not None:
            try:
                await self._redis.publish(self._channel, f"{user_id}:{valid_from}")
            except RedisError as exc:  # the others catch up when they resubscribe
                log.warning("token revocation of user %d not told to the others: %r", user_id, exc)

    async def load(self) -> None:
        """Every revocation still younger than a token's lifetime, from the database."""
        since = self._clock.now_ms() - self._tokens.ttl_s * 1000
        async with self._db.read() as s:
            rows = await s.execute(
                select(User.id, User.tokens_valid_from_ms).where(User.tokens_valid_from_ms > since)
            )
            for user_id, valid_from in rows:
                self._apply(int(user_id), int(valid_from))
        self._tokens.revocations_known = True

    def _apply(self, user_id: int, valid_from: int) -> None:
        known = self._tokens.valid_from_ms
        if valid_from > known.get(user_id, 0):
            known[user_id] = valid_from
            if len(known) >= self._prune_at:
                self._drop_expired()

    def _drop_expired(self) -> None:
        """Forget the revocations older than a token's lifetime: every token issued
        before one of them has expired, so it refuses nothing any more. Then the map
        holds the accounts revoked within ``ttl_s``, and prunes again at twice that
        (at least ``PRUNE_AT``): one entry per such account, at most double."""
        known = self._tokens.valid_from_ms
        oldest = self._clock.now_ms() - self._tokens.ttl_s * 1000
        for user_id in [u for u, valid_from in known.items() if valid_from <= oldest]:
            del known[user_id]
        self._prune_at = max(PRUNE_AT, 2 * len(known))

    # -- lifetime ----------------------------------------------------------------------

    async def start(self) -> None:
        """Load the revocations, then listen for new ones. If the database is down,
        this raises (``live.startup`` retries it); tokens are refused with 503 until
        it has loaded."""
        await self.load()
        if self._redis is not None:
            self._task = asyncio.create_task(self._listen(), name="Revocations")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def _listen(self) -> None:
        assert self._redis is not None
        failures = 0  # in a row: logged at the first, then every 30th (about 30 s)
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self._channel)
                    await self.load()  # what was revoked while we were not listening
                    if failures:
                        log.warning("token revocations heard again after %d retries", failures)
                    failures = 0
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._heard(message.get("data"))
            except Exception as exc:  # Redis or the database away: try again soon
                reraise_if_cancelling()
                if failures % 30 == 0:
                    log.warning("token revocations not heard, subscribing again: %r", exc)
                failures += 1
                await asyncio.sleep(1.0)

    def _heard(self, data: object) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        user_id, _, valid_from = text.partition(":")
        if user_id.isdigit() and valid_from.isdigit():
            self._apply(int(user_id), int(valid_from))
