"""A room's chat state in this process: moderation as last loaded, plus local counters."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from live.limits import Bucket, KeyedBuckets
from live.settings import ChatSettings

#: Roles a chat message can carry (the author's role in that room).
HOST, MODERATOR, ADMIN, VIEWER = "host", "moderator", "admin", "viewer"


@dataclass(frozen=True, slots=True)
class Moderation:
    """What the database says about a room's chat, as of one load. Replaced, never changed."""

    session_id: int
    host_id: int
    status: str
    moderators: frozenset[int]
    bans: frozenset[int]
    mutes: Mapping[int, int]  # user id -> muted until (ms)
    slow_mode_s: int
    keywords: tuple[str, ...]


class Room:
    """One room's chat in this process.

    ``mod`` is reloaded from the database every ``state_refresh_s`` and replaced at once
    when this process changes it; ``version`` counts local changes so a reload that
    started before one does not overwrite it. Rate buckets and slow-mode stamps are
    per process.
    """

    def __init__(self, mod: Moderation, config: ChatSettings, now_ms: int) -> None:
        self.mod = mod
        self.version = 0
        #: user -> when they last posted; every refresh (``ChatRooms.refresh``) drops
        #: those outside the slow-mode window
        self.last_post_ms: dict[int, int] = {}
        #: user -> bucket; every refresh drops the full ones (a user idle for burst /
        #: rate seconds): only the users who posted or liked just now are kept
        self.message_buckets = KeyedBuckets(config.message_rate, config.message_burst)
        self.like_buckets = KeyedBuckets(config.like_rate, config.like_burst)
        self.room_bucket = Bucket(config.room_message_rate, config.room_message_burst, now_ms)
        self.used = time.monotonic()
        # Snapshot reads are coalesced: see ``ChatService.snapshot``.
        self.snapshot_lock = asyncio.Lock()
        self.snapshot_started = 0
        self.snapshot_done = 0
        self.snapshot: dict[str, Any] = {}

    @property
    def id(self) -> int:
        return self.mod.session_id

    def change(self, **changes: Any) -> None:
        self.mod = dataclasses.replace(self.mod, **changes)
        self.version += 1

    def role_of(self, user_id: int, account_role: str) -> str:
        if user_id == self.mod.host_id:
            return HOST
        if account_role == ADMIN:
            return ADMIN
        if user_id in self.mod.moderators:
            return MODERATOR
        return VIEWER

    def is_staff(self, user_id: int | None, account_role: str) -> bool:
        """Host, appointed moderator or admin: may moderate, exempt from slow mode etc."""
        if user_id is None:
            return False
        return self.role_of(user_id, account_role) != VIEWER

    def muted_until(self, user_id: int, now_ms: int) -> int | None:
        until = self.mod.mutes.get(user_id)
        return until if until is not None and until > now_ms else None
