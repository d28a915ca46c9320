"""Following hosts: idempotent, viewers only, counted over time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from aiohttp import web
from sqlalchemy import func, select, text
from support import Api, checked, database_at

from app import Settings, create_app, db_key
from live.clock import ManualClock
from live.db import Database
from live.models import Follow

DAY = 86_400_000


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_764_000_000_000)


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Iterator[web.Application]:
    yield from checked(create_app(settings, clock=clock))


async def test_follow_unfollow_and_the_count_over_time(api: Api, clock: ManualClock) -> None:
    host = await api.signup("host")
    fans = [await api.signup("viewer") for _ in range(3)]
    path = f"/api/hosts/{host.id}"
    for fan in fans:
        body = await api.call("POST", f"{path}/follow", fan, expect=200)
    assert body == {"host_id": host.id, "followers": 3, "following": True}
    again = await api.call("POST", f"{path}/follow", fans[0], expect=200)
    assert again["followers"] == 3  # following twice changes nothing

    clock.advance(DAY)
    left = await api.call("DELETE", f"{path}/follow", fans[0], expect=200)
    assert (left["followers"], left["following"]) == (2, False)
    clock.advance(DAY)
    await api.call("POST", f"{path}/follow", fans[0], expect=200)  # back again

    public = await api.call("GET", f"{path}/followers", None, expect=200)
    assert public == {"host_id": host.id, "followers": 3, "following": False}
    assert "over_time" not in public
    own = await api.call("GET", f"{path}/followers", host, expect=200)
    assert [d["followers"] for d in own["over_time"]] == [3, 2, 3]
    assert own["over_time"][0]["date"] == "2025-11-24"


async def test_follow_refusals_change_nothing(api: Api) -> None:
    host, brand, viewer = (
        await api.signup("host"),
        await api.signup("brand"),
        await api.signup("viewer"),
    )
    cases = [
        ("POST", f"/api/hosts/{host.id}/follow", brand, 403, "role_not_allowed"),
        ("POST", f"/api/hosts/{host.id}/follow", None, 401, "sign_in_required"),
        ("POST", f"/api/hosts/{brand.id}/follow", viewer, 404, "host_not_found"),
        ("POST", "/api/hosts/999999/follow", viewer, 404, "host_not_found"),
        ("GET", "/api/hosts/999999/followers", None, 404, "host_not_found"),
    ]
    for method, path, who, status, code in cases:
        body = await api.call(method, path, who, expect=status)
        assert body["error"]["code"] == code
    count = await api.call("GET", f"/api/hosts/{host.id}/followers", None, expect=200)
    assert count["followers"] == 0


async def test_follows_at_once_leave_one_open_follow(api: Api, app: web.Application) -> None:
    host = await api.signup("host")
    fan = await api.signup("viewer")
    path = f"/api/hosts/{host.id}/follow"
    answers = await asyncio.gather(*(api.call("POST", path, fan, expect=200) for _ in range(20)))
    assert {(a["followers"], a["following"]) for a in answers} == {(1, True)}
    assert await _open_follows(app[db_key], fan.id, host.id) == 1
    left = await api.call("DELETE", path, fan, expect=200)
    assert (left["followers"], left["following"]) == (0, False)
    await api.call("POST", path, fan, expect=200)  # following again opens a new row
    assert await _open_follows(app[db_key], fan.id, host.id) == 1


async def test_the_migration_closes_duplicate_open_follows(settings: Settings) -> None:
    db = await database_at(settings, "0006")
    try:
        async with db.transaction() as tx:
            # raw SQL: the User model describes today's table, not 0006's
            for uid, name, role in ((1, "h", "host"), (2, "v", "viewer")):
                await tx.execute(
                    text(
                        "INSERT INTO users (id, username, display_name, role, password_hash, "
                        "created_ms, disabled) VALUES (:id, :name, :name, :role, '-', 0, false)"
                    ),
                    {"id": uid, "name": name, "role": role},
                )
            host, fan = 1, 2
            tx.add_all(
                Follow(follower_id=fan, host_id=host, created_ms=ms, removed_ms=removed)
                for ms, removed in ((10, 20), (30, None), (40, None), (50, None))
            )
        await db.migrate()
        async with db.read() as s:
            rows = (await s.execute(select(Follow.created_ms, Follow.removed_ms))).all()
        # the first open follow stays open; the duplicates become empty intervals
        assert sorted(map(tuple, rows)) == [(10, 20), (30, None), (40, 40), (50, 50)]
    finally:
        await db.dispose()


async def _open_follows(db: Database, fan: int, host: int) -> int:
    async with db.read() as s:
        count = await s.scalar(
            select(func.count())
            .select_from(Follow)
            .where(Follow.follower_id == fan, Follow.host_id == host, Follow.removed_ms.is_(None))
        )
    return int(count or 0)
