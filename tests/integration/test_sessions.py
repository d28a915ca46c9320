"""Live sessions: creation, listing and the scheduled -> live -> ended state machine."""

from __future__ import annotations

import asyncio

import pytest
from support import Api


async def test_create_list_get(api: Api) -> None:
    host = await api.signup("host")
    created = await api.call(
        "POST",
        "/api/sessions",
        host,
        json={"title": "  Winter coats  ", "scheduled_at": "2099-12-01T19:00:00+01:00"},
        expect=201,
    )
    assert created["title"] == "Winter coats"
    assert created["status"] == "scheduled"
    assert created["scheduled_at"] == "2099-12-01T18:00:00.000Z"
    assert created["host"]["id"] == host.id
    one = await api.call("GET", f"/api/sessions/{created['id']}", expect=200)
    assert {key: one[key] for key in created} == created  # features add keys (e.g. shelf)
    listed = await api.call("GET", "/api/sessions?status=scheduled", expect=200)
    assert [s["id"] for s in listed["sessions"]] == [created["id"]]
    assert (await api.call("GET", "/api/sessions?status=live", expect=200))["sessions"] == []


@pytest.mark.parametrize("role", ["viewer", "brand", "agency"])
async def test_only_hosts_create_sessions(api: Api, role: str) -> None:
    account = await api.signup(role)
    res = await api.call("POST", "/api/sessions", account, json={"title": "mine"}, expect=403)
    assert res["error"]["code"] == "role_not_allowed"


async def test_state_machine(api: Api) -> None:
    host = await api.signup("host")
    sid = (await api.call("POST", "/api/sessions", host, json={"title": "t"}, expect=201))["id"]
    res = await api.call("POST", f"/api/sessions/{sid}/end", host, expect=409)
    assert res["error"]["code"] == "illegal_transition"
    live = await api.call("POST", f"/api/sessions/{sid}/start", host, expect=200)
    assert live["status"] == "live"
    assert live["started_at"] is not None
    await api.call("POST", f"/api/sessions/{sid}/start", host, expect=409)
    ended = await api.call("POST", f"/api/sessions/{sid}/end", host, expect=200)
    assert ended["status"] == "ended"
    for action in ("start", "end"):
        res = await api.call("POST", f"/api/sessions/{sid}/{action}", host, expect=409)
        assert res["error"]["details"]["status"] == "ended"


async def test_concurrent_starts_move_once(api: Api) -> None:
    host = await api.signup("host")
    sid = (await api.call("POST", "/api/sessions", host, json={"title": "t"}, expect=201))["id"]
    results = await asyncio.gather(
        *(api.client.post(f"/api/sessions/{sid}/start", headers=host.headers) for _ in range(8))
    )
    assert sorted(r.status for r in results) == [200] + [409] * 7


async def test_another_hosts_session_is_forbidden(api: Api) -> None:
    owner = await api.signup("host")
    other = await api.signup("host")
    viewer = await api.signup("viewer")
    sid = (await api.call("POST", "/api/sessions", owner, json={"title": "t"}, expect=201))["id"]
    res = await api.call("POST", f"/api/sessions/{sid}/start", other, expect=403)
    assert res["error"]["code"] == "not_your_session"
    res = await api.call("POST", f"/api/sessions/{sid}/start", viewer, expect=403)
    assert res["error"]["code"] == "role_not_allowed"
    await api.call("POST", f"/api/sessions/{sid}/start", expect=401)
    still = await api.call("GET", f"/api/sessions/{sid}", expect=200)
    assert still["status"] == "scheduled"


async def test_unknown_and_malformed_ids(api: Api) -> None:
    host = await api.signup("host")
    res = await api.call("GET", "/api/sessions/999999", expect=404)
    assert res["error"]["code"] == "session_not_found"
    await api.call("GET", "/api/sessions/abc", expect=404)
    await api.call("POST", "/api/sessions/999999/start", host, expect=404)
    res = await api.call("GET", "/api/sessions?status=bogus", expect=400)
    assert res["error"]["code"] == "invalid_query"
    await api.call("GET", "/api/sessions?limit=0", expect=400)


async def test_bad_session_bodies(api: Api) -> None:
    host = await api.signup("host")
    for body in (
        {"title": ""},
        {"title": "x" * 201},
        {"title": "t", "scheduled_at": "tomorrow"},
        {"title": "t", "scheduled_at": "2026-12-01T19:00:00"},
        {},
    ):
        res = await api.call("POST", "/api/sessions", host, json=body, expect=422)
        assert res["error"]["code"] == "invalid_input"
    assert (await api.call("GET", "/api/sessions", expect=200))["sessions"] == []


@pytest.mark.parametrize(
    "when",
    ["9999-12-31T23:59:59-05:00", "1969-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00"],
)
async def test_a_time_past_what_the_columns_hold_is_refused(api: Api, when: str) -> None:
    """Found by the schema fuzzing: a zone that pushed year 9999 past 9999 in UTC was
    a 500 (an overflow converting it); times before 1970 have no millisecond stamp."""
    host = await api.signup("host")
    body = await api.call(
        "POST", "/api/sessions", host, json={"title": "x", "scheduled_at": when}, expect=422
    )
    assert body["error"]["code"] == "invalid_input"
    assert "between 1970 and 9999" in body["error"]["message"]
    assert (await api.call("GET", f"/api/sessions?host_id={host.id}"))["sessions"] == []
