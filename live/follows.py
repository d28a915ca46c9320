"""Viewers following hosts, and how a host's following grew.

A follow is a row from ``created_ms`` until ``removed_ms``; following again after
unfollowing adds a new row, so "followers at time t" stays answerable for any t.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select, update

from live.auth import Principal
from live.clock import Clock, iso
from live.db import Database, upsert
from live.errors import Forbidden, NotFound
from live.models import Follow, Role, User

DAY_MS = 86_400_000


class FollowService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def follow(self, caller: Principal, host_id: int) -> dict[str, Any]:
        """Idempotent: following a host you follow changes nothing."""
        if caller.role is not Role.VIEWER:
            raise Forbidden("role_not_allowed", "only viewers follow hosts")
        async with self._db.transaction() as tx:
            await self._host(tx, host_id)
            # At most one open follow per (follower, host) (a partial unique index):
            # of two requests at once, the second waits for the first and adds nothing.
            await tx.execute(
                upsert(tx, Follow)
                .values(
                    follower_id=caller.user_id, host_id=host_id, created_ms=self._clock.now_ms()
                )
                .on_conflict_do_nothing(
                    index_elements=["follower_id", "host_id"],
                    index_where=Follow.removed_ms.is_(None),
                )
            )
            return await self._status(tx, caller.user_id, host_id)

    async def unfollow(self, caller: Principal, host_id: int) -> dict[str, Any]:
        async with self._db.transaction() as tx:
            await self._host(tx, host_id)
            await tx.execute(
                update(Follow)
                .where(
                    Follow.follower_id == caller.user_id,
                    Follow.host_id == host_id,
                    Follow.removed_ms.is_(None),
                )
                .values(removed_ms=self._clock.now_ms())
            )
            return await self._status(tx, caller.user_id, host_id)

    async def status(self, caller: Principal | None, host_id: int) -> dict[str, Any]:
        """``{host_id, followers, following}`` (``following``: the caller, if signed in)."""
        async with self._db.read() as s:
            await self._host(s, host_id)
            return await self._status(s, caller.user_id if caller is not None else None, host_id)

    async def over_time(self, host_id: int) -> list[dict[str, Any]]:
        """Followers at the end of each UTC day from the first follow until today."""
        async with self._db.read() as s:
            rows = (
                await s.execute(
                    select(Follow.created_ms, Follow.removed_ms).where(Follow.host_id == host_id)
                )
            ).all()
        if not rows:
            return []
        # +1 on the day a follow starts, -1 on the day it ends; the running sum is the
        # count at the end of each day.
        change: Counter[int] = Counter()
        for created, removed in rows:
            change[created // DAY_MS] += 1
            if removed is not None:
                change[removed // DAY_MS] -= 1
        out, count = [], 0
        for day in range(min(change), self._clock.now_ms() // DAY_MS + 1):
            count += change[day]
            out.append({"date": (iso(day * DAY_MS) or "")[:10], "followers": count})
        return out

    async def followers_at(self, host_id: int, at_ms: int) -> set[int]:
        async with self._db.read() as s:
            rows = (
                await s.execute(
                    select(Follow.follower_id).where(
                        Follow.host_id == host_id,
                        Follow.created_ms <= at_ms,
                        (Follow.removed_ms.is_(None)) | (Follow.removed_ms > at_ms),
                    )
                )
            ).all()
        return {r[0] for r in rows}

    @staticmethod
    async def _host(s: Any, host_id: int) -> None:
        user = await s.get(User, host_id)
        if user is None or user.role != Role.HOST.value:
            raise NotFound("host_not_found", f"no host {host_id}")

    @staticmethod
    async def _status(s: Any, user_id: int | None, host_id: int) -> dict[str, Any]:
        """``status`` on an open session (the host already checked)."""
        followers = await s.scalar(
            select(func.count())
            .select_from(Follow)
            .where(Follow.host_id == host_id, Follow.removed_ms.is_(None))
        )
        following = user_id is not None and await FollowService._following(s, user_id, host_id)
        return {"host_id": host_id, "followers": int(followers or 0), "following": following}

    @staticmethod
    async def _following(s: Any, user_id: int, host_id: int) -> bool:
        """Whether ``user_id`` follows ``host_id`` now."""
        found = await s.scalar(
            select(Follow.id)
            .where(
                Follow.follower_id == user_id,
                Follow.host_id == host_id,
                Follow.removed_ms.is_(None),
            )
            .limit(1)
        )
        return found is not None
