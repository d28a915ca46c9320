"""Cooperations: propose, accept/decline (host or its agency), withdraw, end, listings."""

from __future__ import annotations

from shelf_support import cooperate, make_product
from support import Api


async def test_lifecycle_and_listings(api: Api) -> None:
    brand = await api.signup("brand")
    host = await api.signup("host")
    p1, p2 = (await make_product(api, brand))["id"], (await make_product(api, brand))["id"]
    proposal = await api.call(
        "POST",
        "/api/cooperations",
        brand,
        json={
            "host_id": host.id,
            "product_ids": [p2, p1],
            "commission_bps": 1800,
            "flat_fee_minor": 5000,
            "flat_fee_currency": "EUR",
            "note": "autumn range",
        },
        expect=201,
    )
    assert proposal["status"] == "proposed"
    assert proposal["product_ids"] == [p1, p2]
    cid = proposal["id"]
    to_me = await api.call("GET", "/api/cooperations?status=proposed", host, expect=200)
    assert [c["id"] for c in to_me["cooperations"]] == [cid]
    mine = await api.call("GET", "/api/cooperations", brand, expect=200)
    assert [c["id"] for c in mine["cooperations"]] == [cid]
    accepted = await api.call("POST", f"/api/cooperations/{cid}/accept", host, expect=200)
    assert accepted["status"] == "accepted" and accepted["decided_by"] == host.id
    res = await api.call("POST", f"/api/cooperations/{cid}/decline", host, expect=409)
    assert res["error"]["code"] == "illegal_transition"
    res = await api.call("POST", f"/api/cooperations/{cid}/withdraw", brand, expect=409)
    assert res["error"]["code"] == "illegal_transition"
    agreements = await api.call("GET", "/api/cooperations?status=accepted", host, expect=200)
    assert agreements["cooperations"][0]["commission_bps"] == 1800
    # One accepted agreement per (host, product): a second proposal is refused.
    res = await api.call(
        "POST",
        "/api/cooperations",
        brand,
        json={"host_id": host.id, "product_ids": [p1], "commission_bps": 100},
        expect=409,
    )
    assert res["error"]["code"] == "already_cooperating"
    assert res["error"]["details"]["product_ids"] == [p1]
    ended = await api.call("POST", f"/api/cooperations/{cid}/end", host, expect=200)
    assert ended["status"] == "ended" and ended["ended_at"] is not None
    await api.call("POST", f"/api/cooperations/{cid}/end", brand, expect=409)
    # After the end, a new agreement (new rate) is possible.
    again = await cooperate(api, brand, host, [p1], bps=900)
    assert again["status"] == "accepted"
    res = await api.call("GET", "/api/cooperations?status=bogus", host, expect=400)
    assert res["error"]["code"] == "invalid_query"


async def test_decline_and_withdraw(api: Api) -> None:
    brand = await api.signup("brand")
    host = await api.signup("host")
    pid = (await make_product(api, brand))["id"]
    body = {"host_id": host.id, "product_ids": [pid], "commission_bps": 500}
    first = await api.call("POST", "/api/cooperations", brand, json=body, expect=201)
    declined = await api.call("POST", f"/api/cooperations/{first['id']}/decline", host, expect=200)
    assert declined["status"] == "declined"
    second = await api.call("POST", "/api/cooperations", brand, json=body, expect=201)
    res = await api.call("POST", f"/api/cooperations/{second['id']}/withdraw", host, expect=403)
    assert res["error"]["code"] == "role_not_allowed"
    withdrawn = await api.call(
        "POST", f"/api/cooperations/{second['id']}/withdraw", brand, expect=200
    )
    assert withdrawn["status"] == "withdrawn"
    await api.call("POST", f"/api/cooperations/{second['id']}/accept", host, expect=409)


async def test_who_may_decide(api: Api) -> None:
    brand = await api.signup("brand")
    other_brand = await api.signup("brand")
    host = await api.signup("host")
    other_host = await api.signup("host")
    agency = await api.signup("agency")
    other_agency = await api.signup("agency")
    viewer = await api.signup("viewer")
    pid = (await make_product(api, brand))["id"]
    body = {"host_id": host.id, "product_ids": [pid], "commission_bps": 500}
    cid = (await api.call("POST", "/api/cooperations", brand, json=body, expect=201))["id"]
    url = f"/api/cooperations/{cid}/accept"
    # the host's side answers a proposal first (tests/shelf/test_cooperation_counter.py)
    res = await api.call("POST", url, brand, expect=409)
    assert res["error"]["code"] == "not_your_turn"
    for account, code in (
        (viewer, "role_not_allowed"),
        (other_host, "not_your_cooperation"),
        (agency, "not_your_host"),  # the host has not named it yet
    ):
        res = await api.call("POST", url, account, expect=403)
        assert res["error"]["code"] == code
    await api.call("POST", url, expect=401)
    res = await api.call("GET", f"/api/cooperations/{cid}", other_brand, expect=403)
    assert res["error"]["code"] == "not_your_cooperation"

    # The host names its agency; the agency now acts for that host and no other.
    await api.call("PUT", "/api/me/agency", host, json={"agency_id": agency.id}, expect=200)
    assert (await api.call("GET", "/api/me/agency", host, expect=200))["agency_id"] == agency.id
    assert (await api.call("GET", "/api/me/hosts", agency, expect=200))["host_ids"] == [host.id]
    res = await api.call("POST", url, other_agency, expect=403)
    assert res["error"]["code"] == "not_your_host"
    listed = await api.call("GET", "/api/cooperations?status=proposed", agency, expect=200)
    assert [c["id"] for c in listed["cooperations"]] == [cid]
    assert (await api.call("GET", "/api/cooperations", other_agency, expect=200))[
        "cooperations"
    ] == []
    accepted = await api.call("POST", url, agency, expect=200)
    assert accepted["status"] == "accepted" and accepted["decided_by"] == agency.id

    other_pid = (await make_product(api, brand))["id"]
    to_other = {"host_id": other_host.id, "product_ids": [other_pid], "commission_bps": 1}
    ocid = (await api.call("POST", "/api/cooperations", brand, json=to_other, expect=201))["id"]
    res = await api.call("POST", f"/api/cooperations/{ocid}/accept", agency, expect=403)
    assert res["error"]["code"] == "not_your_host"

    # Unnamed: the agency loses the power.
    await api.call("DELETE", "/api/me/agency", host, expect=200)
    res = await api.call("POST", f"/api/cooperations/{cid}/end", agency, expect=403)
    assert res["error"]["code"] == "not_your_host"
    res = await api.call(
        "PUT", "/api/me/agency", host, json={"agency_id": other_host.id}, expect=404
    )
    assert res["error"]["code"] == "agency_not_found"
    res = await api.call("PUT", "/api/me/agency", agency, json={"agency_id": agency.id}, expect=403)
    assert res["error"]["code"] == "role_not_allowed"


async def test_proposal_rules_and_bad_bodies(api: Api) -> None:
    brand = await api.signup("brand")
    other_brand = await api.signup("brand")
    host = await api.signup("host")
    viewer = await api.signup("viewer")
    pid = (await make_product(api, brand))["id"]
    foreign = (await make_product(api, other_brand))["id"]
    archived = (await make_product(api, brand))["id"]
    await api.call("POST", f"/api/products/{archived}/archive", brand, expect=200)
    ok = {"host_id": host.id, "product_ids": [pid], "commission_bps": 500}
    for body, status, code in (
        ({**ok, "product_ids": [pid, foreign]}, 403, "not_your_product"),
        ({**ok, "product_ids": [archived]}, 409, "product_archived"),
        ({**ok, "product_ids": [999999]}, 404, "product_not_found"),
        ({**ok, "host_id": viewer.id}, 404, "host_not_found"),
        ({**ok, "product_ids": []}, 422, "invalid_input"),
        ({**ok, "product_ids": [pid, pid]}, 422, "invalid_input"),
        ({**ok, "commission_bps": 10001}, 422, "invalid_input"),
        ({**ok, "commission_bps": -1}, 422, "invalid_input"),
        ({**ok, "flat_fee_minor": 100}, 422, "invalid_input"),
        ({**ok, "flat_fee_minor": -5, "flat_fee_currency": "EUR"}, 422, "invalid_input"),
        ({**ok, "flat_fee_minor": 5, "flat_fee_currency": "ZZZ"}, 422, "invalid_input"),
        ({**ok, "status": "accepted"}, 422, "invalid_input"),
        ({**ok, "note": "n" * 501}, 422, "invalid_input"),
    ):
        res = await api.call("POST", "/api/cooperations", brand, json=body, expect=status)
        assert res["error"]["code"] == code, body
    res = await api.call("POST", "/api/cooperations", host, json=ok, expect=403)
    assert res["error"]["code"] == "role_not_allowed"
    assert (await api.call("GET", "/api/cooperations", brand, expect=200))["cooperations"] == []
    await api.call("POST", "/api/cooperations/999999/accept", host, expect=404)
    await api.call("POST", "/api/cooperations/1/frobnicate", host, expect=404)
    res = await api.call("GET", "/api/cooperations", viewer, expect=403)
    assert res["error"]["code"] == "role_not_allowed"
