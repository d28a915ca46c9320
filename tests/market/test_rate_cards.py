"""Rate cards: published in versions that never change; the host or the agency it
named publishes; every bad card is refused with its code and writes nothing. Creator
profiles: the host's own words."""

from __future__ import annotations

import asyncio
from typing import Any

from market_support import publish, service
from support import Api, admin


async def test_versions_are_kept_unchanged_after_a_new_one(api: Api) -> None:
    host = await api.signup("host")
    path = f"/api/hosts/{host.id}/rate-card"
    await api.call("GET", path, None, expect=404)
    first = await publish(
        api,
        host,
        [service("live_segment", 12_000, description="Pinned 10 min"), service("shelf_slot")],
    )
    assert (first["version"], first["current"], first["published_by"]) == (1, True, host.id)
    assert [s["kind"] for s in first["services"]] == ["live_segment", "shelf_slot"]
    assert first["services"][0]["minutes"] == 10
    assert first["services"][1]["minutes"] is None
    assert await api.call("GET", path, None, expect=200) == first

    second = await publish(api, host, [service("shelf_slot", 7_500, currency="USD")])
    assert (second["version"], second["current"]) == (2, True)
    assert await api.call("GET", path, None, expect=200) == second
    # the first version, as it was published (only no longer the current one)
    old = await api.call("GET", f"{path}/versions/1", None, expect=200)
    assert old == {**first, "current": False}
    assert {s["id"] for s in old["services"]}.isdisjoint(s["id"] for s in second["services"])
    await api.call("GET", f"{path}/versions/3", None, expect=404)

    listed = await api.call("GET", f"{path}/versions?limit=1", None, expect=200)
    assert [v["version"] for v in listed["versions"]] == [2]
    assert listed["versions"][0]["services"] == 1
    rest = await api.call(
        "GET", f"{path}/versions?limit=1&before_id={listed['next_before_id']}", None, expect=200
    )
    assert ([v["version"] for v in rest["versions"]], rest["next_before_id"]) == ([1], None)
    assert rest["versions"][0]["services"] == 2


async def test_every_bad_card_is_refused_with_its_code_and_writes_nothing(api: Api) -> None:
    host = await api.signup("host")
    path = f"/api/hosts/{host.id}/rate-card"
    first = await publish(api, host, [service()])
    ok = service()
    cases: list[tuple[Any, int, str]] = [
        ({"services": [service("note")]}, 422, "notes_unavailable"),
        ({"services": [ok, {**service("live_segment"), "minutes": None}]}, 422, "minutes_required"),
        ({"services": [service("shelf_slot", minutes=5)]}, 422, "minutes_not_allowed"),
        ({"services": [service("live_segment", minutes=0)]}, 422, "invalid_input"),
        ({"services": [service("live_segment", minutes=241)]}, 422, "invalid_input"),
        ({"services": [service(price=0)]}, 422, "invalid_input"),
        ({"services": [service(price=-5)]}, 422, "invalid_input"),
        ({"services": [service(price=10**12 + 1)]}, 422, "invalid_input"),
        ({"services": [service(price="100")]}, 422, "invalid_input"),
        ({"services": [service(currency="eur")]}, 422, "invalid_input"),
        ({"services": [service(currency="XYZ")]}, 422, "invalid_input"),
        ({"services": [service(currency="EURO")]}, 422, "invalid_input"),
        ({"services": [service(turnaround_days=0)]}, 422, "invalid_input"),
        ({"services": [service(turnaround_days=91)]}, 422, "invalid_input"),
        ({"services": [service(description="x" * 501)]}, 422, "invalid_input"),
        ({"services": [service(description="a\x00b")]}, 422, "invalid_input"),
        ({"services": [service(kind="banner")]}, 422, "invalid_input"),
        ({"services": [service(extra=1)]}, 422, "invalid_input"),
        ({"services": [ok] * 21}, 422, "invalid_input"),
        ({"services": []}, 422, "invalid_input"),
        ({}, 422, "invalid_input"),
        ({"services": [ok], "base_version": 0}, 409, "stale_version"),
        ({"services": [ok], "base_version": 7}, 409, "stale_version"),
    ]
    for body, status, code in cases:
        answer = await api.call("PUT", path, host, json=body, expect=status)
        assert answer["error"]["code"] == code, (body, answer)
    headers = {**host.headers, "Content-Type": "application/json"}
    res = await api.client.put(path, data=b"{not json", headers=headers)
    assert res.status == 400
    assert (await res.json())["error"]["code"] == "invalid_json"

    assert await api.call("GET", path, None, expect=200) == first
    versions = await api.call("GET", f"{path}/versions", None, expect=200)
    assert [v["version"] for v in versions["versions"]] == [1]
    # and a right base_version is taken
    body = {"services": [ok, service("live_segment")], "base_version": 1}
    assert (await api.call("PUT", path, host, json=body, expect=201))["version"] == 2


async def test_the_host_or_the_agency_it_named_publishes(api: Api) -> None:
    host, other = await api.signup("host"), await api.signup("host")
    agency, stranger = await api.signup("agency"), await api.signup("agency")
    brand, viewer = await api.signup("brand"), await api.signup("viewer")
    path = f"/api/hosts/{host.id}/rate-card"
    body = {"services": [service()]}
    refusals = [
        (other, 403, "not_your_card"),
        (brand, 403, "role_not_allowed"),
        (viewer, 403, "role_not_allowed"),
        (agency, 403, "not_your_host"),
        (None, 401, "sign_in_required"),
    ]
    for who, status, code in refusals:
        answer = await api.call("PUT", path, who, json=body, expect=status)
        assert answer["error"]["code"] == code
    await api.call("GET", path, None, expect=404)  # nothing was published
    missing = await api.call("PUT", f"/api/hosts/{brand.id}/rate-card", brand, json=body)
    assert missing["error"]["code"] == "role_not_allowed"
    not_host = await api.call("PUT", f"/api/hosts/{brand.id}/rate-card", agency, json=body)
    assert not_host["error"]["code"] == "host_not_found"

    await api.call("PUT", "/api/me/agency", host, json={"agency_id": agency.id}, expect=200)
    card = await publish(api, host, [service()], by=agency)
    assert (card["version"], card["published_by"]) == (1, agency.id)
    refused = await api.call("PUT", path, stranger, json=body, expect=403)
    assert refused["error"]["code"] == "not_your_host"
    other_host = await api.call(
        "PUT", f"/api/hosts/{other.id}/rate-card", agency, json=body, expect=403
    )
    assert other_host["error"]["code"] == "not_your_host"

    await api.call("DELETE", "/api/me/agency", host, expect=200)
    refused = await api.call("PUT", path, agency, json=body, expect=403)
    assert refused["error"]["code"] == "not_your_host"  # at once
    assert (await api.call("GET", path, None, expect=200))["version"] == 1
    operator = await admin(api)
    assert (await publish(api, host, [service()], by=operator))["version"] == 2


async def test_a_host_writes_its_profile_and_nothing_else_does(api: Api) -> None:
    host, brand = await api.signup("host"), await api.signup("brand")
    path = "/api/me/creator-profile"
    empty = await api.call("GET", path, host, expect=200)
    assert empty == {
        "host_id": host.id,
        "profile": {"tags": [], "region": None, "bio": "", "updated_at": None},
    }
    body = {"tags": ["beauty", "k-beauty"], "region": "FR", "bio": "Skincare, live."}
    written = await api.call("PUT", path, host, json=body, expect=200)
    assert {k: written["profile"][k] for k in ("tags", "region", "bio")} == body
    assert written["profile"]["updated_at"] is not None
    bad = [
        {"tags": ["Beauty"]},
        {"tags": ["beauty", "beauty"]},
        {"tags": [f"t{i}" for i in range(11)]},
        {"tags": ["x" * 33]},
        {"region": "fr"},
        {"region": "FRA"},
        {"bio": "x" * 1001},
        {"verified": True},
    ]
    for case in bad:
        answer = await api.call("PUT", path, host, json=case, expect=422)
        assert answer["error"]["code"] == "invalid_input", case
    for who, status, code in ((brand, 403, "role_not_allowed"), (None, 401, "sign_in_required")):
        answer = await api.call("PUT", path, who, json=body, expect=status)
        assert answer["error"]["code"] == code
    assert await api.call("GET", path, host, expect=200) == written
    cleared = await api.call("PUT", path, host, json={}, expect=200)
    assert cleared["profile"]["tags"] == [] and cleared["profile"]["region"] is None


async def test_publishes_at_once_make_consecutive_versions(api: Api) -> None:
    host = await api.signup("host")
    path = f"/api/hosts/{host.id}/rate-card"

    async def attempt(price: int) -> tuple[int, Any]:
        res = await api.client.put(
            path, json={"services": [service(price=price)]}, headers=host.headers
        )
        return res.status, await res.json()

    answers = await asyncio.gather(*(attempt(1_000 + i) for i in range(8)))
    won = sorted(body["version"] for status, body in answers if status == 201)
    lost = [body["error"]["code"] for status, body in answers if status != 201]
    assert set(lost) <= {"rate_card_busy"}
    assert won == list(range(1, len(won) + 1))
    versions = await api.call("GET", f"{path}/versions", None, expect=200)
    assert [v["version"] for v in versions["versions"]] == won[::-1]
    for version in won:  # each its own single service, as published
        card = await api.call("GET", f"{path}/versions/{version}", None, expect=200)
        assert len(card["services"]) == 1
