"""Counter-offers (``POST /api/cooperations/{id}/counter``): rounds back and forth, whose
turn it is, refusals that change nothing, the history of every step, and an agency
acting for its host; on both backends."""

from __future__ import annotations

import asyncio
from typing import Any

from shelf_support import make_product
from support import Account, Api

from shelf.feature import ShelfFeature


async def _propose(api: Api, brand: Account, host: Account, **terms: Any) -> dict[str, Any]:
    pid = (await make_product(api, brand))["id"]
    body = {"host_id": host.id, "product_ids": [pid], "commission_bps": 1000, **terms}
    return dict(await api.call("POST", "/api/cooperations", brand, json=body, expect=201))


def _url(coop: dict[str, Any], action: str) -> str:
    return f"/api/cooperations/{coop['id']}/{action}"


async def _state(api: Api, who: Account, coop: dict[str, Any]) -> tuple[Any, Any]:
    """The agreement and its history as ``who`` reads them."""
    now = await api.call("GET", f"/api/cooperations/{coop['id']}", who, expect=200)
    history = await api.call("GET", _url(coop, "rounds"), who, expect=200)
    return now, history


async def test_rounds_back_and_forth_until_accepted(api: Api, feature: ShelfFeature) -> None:
    brand = await api.signup("brand")
    host = await api.signup("host")
    coop = await _propose(api, brand, host, note="spring range")
    assert (coop["status"], coop["turn"], coop["round"]) == ("proposed", "host", 1)

    # the host counters: new commission and a flat fee, with a message
    countered = await api.call(
        "POST",
        _url(coop, "counter"),
        host,
        json={
            "round": 1,
            "commission_bps": 2000,
            "flat_fee_minor": 15000,
            "flat_fee_currency": "EUR",
            "message": "20 % and 150 EUR per show",
        },
        expect=200,
    )
    assert (countered["status"], countered["turn"], countered["round"]) == ("proposed", "brand", 2)
    assert (countered["commission_bps"], countered["flat_fee_minor"]) == (2000, 15000)
    assert countered["flat_fee_currency"] == "EUR"
    assert countered["note"] == "spring range"  # the proposal's note stays

    # now it is the brand's turn: the host can neither accept nor counter again
    for action, body in (("accept", None), ("decline", None), ("counter", {"commission_bps": 1})):
        res = await api.call("POST", _url(coop, action), host, json=body, expect=409)
        assert res["error"]["code"] == "not_your_turn"
        assert res["error"]["details"] == {"turn": "brand", "round": 2}

    # the brand counters back: keeps the fee, meets in the middle, removes nothing
    back = await api.call(
        "POST",
        _url(coop, "counter"),
        brand,
        json={"commission_bps": 1500, "message": "15 % then"},
        expect=200,
    )
    assert (back["turn"], back["round"], back["commission_bps"], back["flat_fee_minor"]) == (
        "host",
        3,
        1500,
        15000,
    )
    # the brand cannot accept its own offer
    res = await api.call("POST", _url(coop, "accept"), brand, expect=409)
    assert res["error"]["code"] == "not_your_turn"

    accepted = await api.call("POST", _url(coop, "accept"), host, json={"round": 3}, expect=200)
    assert accepted["status"] == "accepted" and accepted["decided_by"] == host.id
    assert (accepted["commission_bps"], accepted["flat_fee_minor"]) == (1500, 15000)
    # the rate the orders use is the accepted round's
    rate = await feature.cooperations.rate_for(host.id, coop["product_ids"][0])
    assert rate is not None and (rate.commission_bps, rate.flat_fee_minor) == (1500, 15000)
    # decided: nothing more to counter
    res = await api.call(
        "POST", _url(coop, "counter"), brand, json={"commission_bps": 100}, expect=409
    )
    assert res["error"]["code"] == "illegal_transition"

    history = await api.call("GET", _url(coop, "rounds"), brand, expect=200)
    assert history["cooperation_id"] == coop["id"]
    assert (history["brand"]["id"], history["host"]["id"]) == (brand.id, host.id)
    assert history["host"]["display_name"] == host.username  # the default display name
    steps = [
        (r["step"], r["round"], r["action"], r["party"], r["by_user"], r["commission_bps"])
        for r in history["rounds"]
    ]
    assert steps == [
        (1, 1, "proposed", "brand", brand.id, 1000),
        (2, 2, "countered", "host", host.id, 2000),
        (3, 3, "countered", "brand", brand.id, 1500),
        (4, 3, "accepted", "host", host.id, 1500),
    ]
    messages = [r["message"] for r in history["rounds"]]
    assert messages == ["spring range", "20 % and 150 EUR per show", "15 % then", None]
    assert [r["flat_fee_minor"] for r in history["rounds"]] == [None, 15000, 15000, 15000]
    assert history == await api.call("GET", _url(coop, "rounds"), host, expect=200)

    # ending it is a step too
    await api.call("POST", _url(coop, "end"), brand, expect=200)
    history = await api.call("GET", _url(coop, "rounds"), host, expect=200)
    assert [(r["action"], r["party"]) for r in history["rounds"]][-1] == ("ended", "brand")


async def test_refusals_change_nothing(api: Api) -> None:
    brand = await api.signup("brand")
    other_brand = await api.signup("brand")
    host = await api.signup("host")
    other_host = await api.signup("host")
    agency = await api.signup("agency")
    viewer = await api.signup("viewer")
    coop = await _propose(api, brand, host)
    before = await _state(api, brand, coop)
    counter = _url(coop, "counter")

    refusals: list[tuple[Account | None, Any, int, str]] = [
        # not a party
        (None, {"commission_bps": 5}, 401, "sign_in_required"),
        (viewer, {"commission_bps": 5}, 403, "role_not_allowed"),
        (other_brand, {"commission_bps": 5}, 403, "not_your_cooperation"),
        (other_host, {"commission_bps": 5}, 403, "not_your_cooperation"),
        (agency, {"commission_bps": 5}, 403, "not_your_host"),
        # a party, out of turn
        (brand, {"commission_bps": 5}, 409, "not_your_turn"),
        # stale: the round the host saw is not the current one
        (host, {"round": 2, "commission_bps": 5}, 409, "stale_round"),
        # bad terms
        (host, {"commission_bps": 10_001}, 422, "invalid_input"),
        (host, {"commission_bps": -1}, 422, "invalid_input"),
        (host, {"commission_bps": None}, 422, "invalid_input"),
        (host, {"flat_fee_minor": -5, "flat_fee_currency": "EUR"}, 422, "invalid_input"),
        (host, {"flat_fee_minor": 10**13, "flat_fee_currency": "EUR"}, 422, "invalid_input"),
        (host, {"flat_fee_minor": 500, "flat_fee_currency": "ZZZ"}, 422, "invalid_input"),
        (host, {"commission_bps": "12"}, 422, "invalid_input"),
        (host, {"message": "only words"}, 422, "invalid_input"),
        (host, {}, 422, "invalid_input"),
        (host, {"commission_bps": 5, "status": "accepted"}, 422, "invalid_input"),
        (host, {"commission_bps": 5, "message": "m" * 501}, 422, "invalid_input"),
        (host, {"round": 0, "commission_bps": 5}, 422, "invalid_input"),
        (host, {"flat_fee_minor": 500}, 422, "fee_needs_currency"),
        (host, {"flat_fee_currency": "EUR"}, 422, "fee_needs_currency"),
        (host, {"commission_bps": 1000}, 422, "terms_unchanged"),
        (host, {"flat_fee_minor": None}, 422, "terms_unchanged"),
    ]
    for who, body, status, code in refusals:
        res = await api.call("POST", counter, who, json=body, expect=status)
        assert res["error"]["code"] == code, (body, res)
    for who, action, status, code in (
        (brand, "accept", 409, "not_your_turn"),
        (brand, "decline", 409, "not_your_turn"),
        (other_host, "accept", 403, "not_your_cooperation"),
        (other_brand, "withdraw", 403, "not_your_cooperation"),
    ):
        res = await api.call("POST", _url(coop, action), who, expect=status)
        assert res["error"]["code"] == code
    res = await api.call("POST", _url(coop, "accept"), host, json={"round": 7}, expect=409)
    assert res["error"]["code"] == "stale_round" and res["error"]["details"]["round"] == 1
    res = await api.call("POST", _url(coop, "accept"), host, json={"round": "1"}, expect=422)
    res = await api.call("GET", _url(coop, "rounds"), other_brand, expect=403)
    assert res["error"]["code"] == "not_your_cooperation"
    await api.call("GET", "/api/cooperations/999999/rounds", brand, expect=404)
    await api.call(
        "POST", "/api/cooperations/999999/counter", host, json={"commission_bps": 1}, expect=404
    )
    assert await _state(api, brand, coop) == before

    # a counter the host saw as round 1 while the brand... cannot act: still round 1;
    # after a real counter, the stale round is refused and nothing changes
    await api.call("POST", counter, host, json={"round": 1, "commission_bps": 1200}, expect=200)
    after_counter = await _state(api, host, coop)
    res = await api.call("POST", _url(coop, "accept"), brand, json={"round": 1}, expect=409)
    assert res["error"]["code"] == "stale_round"
    assert res["error"]["details"] == {"round": 2, "turn": "brand"}
    res = await api.call("POST", counter, brand, json={"round": 1, "commission_bps": 3}, expect=409)
    assert res["error"]["code"] == "stale_round"
    assert await _state(api, host, coop) == after_counter


async def test_decline_and_withdraw_after_a_counter(api: Api) -> None:
    brand = await api.signup("brand")
    host = await api.signup("host")
    first = await _propose(api, brand, host, flat_fee_minor=900, flat_fee_currency="USD")
    # the host removes the flat fee (its currency goes with it)
    removed = await api.call(
        "POST", _url(first, "counter"), host, json={"flat_fee_minor": None}, expect=200
    )
    assert (removed["flat_fee_minor"], removed["flat_fee_currency"]) == (None, None)
    declined = await api.call("POST", _url(first, "decline"), brand, json={"round": 2}, expect=200)
    assert declined["status"] == "declined" and declined["decided_by"] == brand.id
    await api.call("POST", _url(first, "accept"), host, expect=409)

    second = await _propose(api, brand, host)
    await api.call("POST", _url(second, "counter"), host, json={"commission_bps": 3000}, expect=200)
    # the brand may withdraw whoever's turn it is
    withdrawn = await api.call("POST", _url(second, "withdraw"), brand, expect=200)
    assert withdrawn["status"] == "withdrawn"
    history = await api.call("GET", _url(second, "rounds"), host, expect=200)
    assert [(r["action"], r["party"], r["round"]) for r in history["rounds"]] == [
        ("proposed", "brand", 1),
        ("countered", "host", 2),
        ("withdrawn", "brand", 2),
    ]


async def test_an_agency_negotiates_for_its_host(api: Api) -> None:
    brand = await api.signup("brand")
    host = await api.signup("host")
    agency = await api.signup("agency")
    other_agency = await api.signup("agency")
    await api.call("PUT", "/api/me/agency", host, json={"agency_id": agency.id}, expect=200)
    coop = await _propose(api, brand, host)
    inbox = await api.call("GET", "/api/cooperations?status=proposed", agency, expect=200)
    assert [(c["id"], c["turn"]) for c in inbox["cooperations"]] == [(coop["id"], "host")]

    res = await api.call(
        "POST", _url(coop, "counter"), other_agency, json={"commission_bps": 1}, expect=403
    )
    assert res["error"]["code"] == "not_your_host"
    await api.call(
        "POST",
        _url(coop, "counter"),
        agency,
        json={"commission_bps": 1800, "message": "for my host"},
        expect=200,
    )
    # the host's side has had its say: neither the host nor the agency may act now
    for who in (host, agency):
        res = await api.call("POST", _url(coop, "accept"), who, expect=409)
        assert res["error"]["code"] == "not_your_turn"
    await api.call("POST", _url(coop, "counter"), brand, json={"commission_bps": 1600}, expect=200)
    accepted = await api.call("POST", _url(coop, "accept"), agency, json={"round": 3}, expect=200)
    assert accepted["status"] == "accepted" and accepted["decided_by"] == agency.id
    history = await api.call("GET", _url(coop, "rounds"), agency, expect=200)
    assert [(r["action"], r["party"], r["by_user"]) for r in history["rounds"]] == [
        ("proposed", "brand", brand.id),
        ("countered", "host", agency.id),
        ("countered", "brand", brand.id),
        ("accepted", "host", agency.id),
    ]
    res = await api.call("GET", _url(coop, "rounds"), other_agency, expect=403)
    assert res["error"]["code"] == "not_your_host"


async def test_concurrent_steps_one_wins(api: Api) -> None:
    """The host's counter-offer and acceptance race (two tabs): exactly one happens."""
    brand = await api.signup("brand")
    host = await api.signup("host")
    for _ in range(3):
        coop = await _propose(api, brand, host)
        results = await asyncio.gather(
            api.call("POST", _url(coop, "counter"), host, json={"commission_bps": 2500}),
            api.call("POST", _url(coop, "accept"), host),
        )
        errors = [r["error"]["code"] for r in results if "error" in r]
        assert len(errors) == 1, results
        assert errors[0] in ("illegal_transition", "not_your_turn", "stale_round")
        now, history = await _state(api, brand, coop)
        actions = [r["action"] for r in history["rounds"]]
        if now["status"] == "accepted":
            assert actions == ["proposed", "accepted"] and now["commission_bps"] == 1000
        else:
            assert actions == ["proposed", "countered"] and now["turn"] == "brand"
