"""``CreatorProfiles``: what a host says of itself (tags, region, bio), shown under
``profile`` and never as verified. Only the host writes its own
(``PUT /api/me/creator-profile``); anyone reads it in the directory."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert

from live.auth import Principal
from live.clock import Clock
from live.db import Database, upsert
from live.errors import Forbidden
from live.models import Role
from market.models import CreatorProfile, CreatorTag
from market.schemas import ProfileBody
from market.views import profile_dict


class CreatorProfiles:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def put(self, caller: Principal, body: ProfileBody) -> dict[str, Any]:
        """Replace the caller's profile (a host's) with ``body``."""
        _require_host(caller)
        host_id = caller.user_id
        values = {
            "tags": ",".join(body.tags),
            "region": body.region,
            "bio": body.bio,
            "updated_ms": self._clock.now_ms(),
        }
        async with self._db.transaction() as tx:
            # the profile row first: a second write of the same host waits for this one
            # before it replaces the tags
            stmt = upsert(tx, CreatorProfile).values(host_id=host_id, **values)
            await tx.execute(stmt.on_conflict_do_update(index_elements=["host_id"], set_=values))
            await tx.execute(delete(CreatorTag).where(CreatorTag.host_id == host_id))
            if body.tags:
                await tx.execute(
                    insert(CreatorTag), [{"host_id": host_id, "tag": tag} for tag in body.tags]
                )
            profile = await tx.get(CreatorProfile, host_id, populate_existing=True)
        return {"host_id": host_id, "profile": profile_dict(profile)}

    async def own(self, caller: Principal) -> dict[str, Any]:
        _require_host(caller)
        async with self._db.read() as s:
            profile = await s.get(CreatorProfile, caller.user_id)
        return {"host_id": caller.user_id, "profile": profile_dict(profile)}


def _require_host(caller: Principal) -> None:
    if caller.role is not Role.HOST:  # admins too: a profile is a host's own words
        raise Forbidden("role_not_allowed", "only hosts have a creator profile")
