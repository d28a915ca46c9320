"""Scheduling a show: a time in the future (stored UTC), edited (``PATCH
/api/sessions/{id}``) until the show starts, then ``409 session_started``; a past or
malformed time is refused with a code and changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from support import Api


def _in(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def test_schedule_edit_then_start_freezes_it(api: Api) -> None:
    host = await api.signup("host")
    created = await api.call(
        "POST",
        "/api/sessions",
        host,
        json={"title": "Knitwear", "scheduled_at": "2099-05-01T20:00:00+09:00"},
        expect=201,
    )
    sid = created["id"]
    assert created["scheduled_at"] == "2099-05-01T11:00:00.000Z"  # stored in UTC

    moved = await api.call(
        "PATCH", f"/api/sessions/{sid}", host, json={"scheduled_at": "2099-05-02T18:30:00Z"}
    )
    assert (moved["title"], moved["scheduled_at"]) == ("Knitwear", "2099-05-02T18:30:00.000Z")
    renamed = await api.call(
        "PATCH", f"/api/sessions/{sid}", host, json={"title": "  Knitwear,   live "}, expect=200
    )
    assert (renamed["title"], renamed["scheduled_at"]) == (
        "Knitwear, live",
        "2099-05-02T18:30:00.000Z",
    )
    cleared = await api.call(
        "PATCH", f"/api/sessions/{sid}", host, json={"scheduled_at": None}, expect=200
    )
    assert cleared["scheduled_at"] is None
    await api.call("PATCH", f"/api/sessions/{sid}", host, json={"scheduled_at": _in(3)}, expect=200)

    await api.call("POST", f"/api/sessions/{sid}/start", host, expect=200)
    before = await api.call("GET", f"/api/sessions/{sid}", expect=200)
    for body in ({"title": "Too late"}, {"scheduled_at": _in(1)}):
        res = await api.call("PATCH", f"/api/sessions/{sid}", host, json=body, expect=409)
        assert res["error"]["code"] == "session_started"
        assert res["error"]["details"]["status"] == "live"
    await api.call("POST", f"/api/sessions/{sid}/end", host, expect=200)
    res = await api.call("PATCH", f"/api/sessions/{sid}", host, json={"title": "x"}, expect=409)
    assert (res["error"]["code"], res["error"]["details"]["status"]) == ("session_started", "ended")
    after = await api.call("GET", f"/api/sessions/{sid}", expect=200)
    assert (after["title"], after["scheduled_at"]) == (before["title"], before["scheduled_at"])


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"scheduled_at": "2020-01-01T10:00:00Z"}, "scheduled_in_past"),
        ({"scheduled_at": "2099-13-01T10:00:00Z"}, "invalid_input"),
        ({"scheduled_at": "2099-05-01T25:00:00Z"}, "invalid_input"),
        ({"scheduled_at": "2099-05-01T10:00:00"}, "invalid_input"),  # no zone
        ({"scheduled_at": "next friday"}, "invalid_input"),
        ({"scheduled_at": 4102444800}, "invalid_input"),
        ({"title": ""}, "invalid_input"),
        ({"title": None}, "invalid_input"),
        ({}, "invalid_input"),
        ({"status": "live"}, "invalid_input"),
    ],
)
async def test_bad_edits_change_nothing(api: Api, body: dict[str, object], code: str) -> None:
    host = await api.signup("host")
    created = await api.call(
        "POST",
        "/api/sessions",
        host,
        json={"title": "Teapots", "scheduled_at": "2099-05-01T11:00:00Z"},
        expect=201,
    )
    res = await api.call("PATCH", f"/api/sessions/{created['id']}", host, json=body, expect=422)
    assert res["error"]["code"] == code
    now = await api.call("GET", f"/api/sessions/{created['id']}", expect=200)
    assert {key: now[key] for key in created} == created


async def test_a_past_time_is_refused_when_scheduling(api: Api) -> None:
    host = await api.signup("host")
    res = await api.call(
        "POST",
        "/api/sessions",
        host,
        json={"title": "Yesterday's show", "scheduled_at": _in(-1)},
        expect=422,
    )
    assert res["error"]["code"] == "scheduled_in_past"
    assert (await api.call("GET", f"/api/sessions?host_id={host.id}"))["sessions"] == []


async def test_only_the_host_edits(api: Api) -> None:
    owner, other = await api.signup("host"), await api.signup("host")
    viewer = await api.signup("viewer")
    sid = (await api.call("POST", "/api/sessions", owner, json={"title": "t"}, expect=201))["id"]
    patch = f"/api/sessions/{sid}"
    res = await api.call("PATCH", patch, other, json={"title": "mine"}, expect=403)
    assert res["error"]["code"] == "not_your_session"
    res = await api.call("PATCH", patch, viewer, json={"title": "mine"}, expect=403)
    assert res["error"]["code"] == "role_not_allowed"
    await api.call("PATCH", patch, json={"title": "mine"}, expect=401)
    res = await api.call("PATCH", "/api/sessions/999999", owner, json={"title": "x"}, expect=404)
    assert res["error"]["code"] == "session_not_found"
    assert (await api.call("GET", patch))["title"] == "t"


async def test_an_edit_racing_the_start_either_lands_first_or_is_refused(api: Api) -> None:
    host = await api.signup("host")
    sid = (await api.call("POST", "/api/sessions", host, json={"title": "t"}, expect=201))["id"]
    edit, start = await asyncio.gather(
        api.client.patch(f"/api/sessions/{sid}", json={"title": "new"}, headers=host.headers),
        api.client.post(f"/api/sessions/{sid}/start", headers=host.headers),
    )
    assert start.status == 200
    assert edit.status in (200, 409)
    final = await api.call("GET", f"/api/sessions/{sid}")
    assert final["title"] == ("new" if edit.status == 200 else "t")
