"""Following hosts: idempotent, viewers only, counted over time."""

from __future__ import annotations

import pytest
from aiohttp import web
from support import Api

from app import Settings, create_app
from live.clock import ManualClock

DAY = 86_400_000


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_764_000_000_000)


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> web.Application:
    return create_app(settings, clock=clock)


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
