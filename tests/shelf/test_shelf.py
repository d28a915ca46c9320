"""The live shelf and pins: edits, role checks, limits, pin windows."""

from __future__ import annotations

from shelf_support import World, cooperate, make_product
from support import Api

from live.clock import ManualClock
from shelf.feature import ShelfFeature


def shelf_ids(state: dict[str, object]) -> list[int]:
    return [item["product_id"] for item in state["shelf"]]  # type: ignore[attr-defined,index]


async def test_add_reorder_remove(api: Api, world: World) -> None:
    sid, host = world.session_id, world.host
    a, b, c = world.pids
    for pid in (a, b, c):
        data = await api.call(
            "POST", f"/api/sessions/{sid}/shelf", host, json={"product_id": pid}, expect=201
        )
    assert [i["product_id"] for i in data["shelf"]] == [a, b, c]
    assert data["version"] == 3
    res = await api.call(
        "POST", f"/api/sessions/{sid}/shelf", host, json={"product_id": a}, expect=409
    )
    assert res["error"]["code"] == "already_on_shelf"
    data = await api.call(
        "PUT", f"/api/sessions/{sid}/shelf/order", host, json={"product_ids": [c, a, b]}, expect=200
    )
    assert [i["product_id"] for i in data["shelf"]] == [c, a, b]
    for bad in ([c, a], [c, a, b, b], [c, a, 999999], [a, a, b]):
        res = await api.call(
            "PUT", f"/api/sessions/{sid}/shelf/order", host, json={"product_ids": bad}, expect=409
        )
        assert res["error"]["code"] == "not_a_permutation"
    data = await api.call("DELETE", f"/api/sessions/{sid}/shelf/{a}", host, expect=200)
    assert [i["product_id"] for i in data["shelf"]] == [c, b]
    res = await api.call("DELETE", f"/api/sessions/{sid}/shelf/{a}", host, expect=404)
    assert res["error"]["code"] == "not_on_shelf"
    state = await api.call("GET", f"/api/sessions/{sid}/shelf", expect=200)
    assert shelf_ids(state) == [c, b] and state["shelf_version"] == 5
    assert set(state["stock"]) == {str(c), str(b)}
    session = await api.call("GET", f"/api/sessions/{sid}", expect=200)
    assert [i["product_id"] for i in session["shelf"]] == [c, b]
    assert "commission_bps" not in session["shelf"][0]


async def test_shelf_role_checks(api: Api, world: World) -> None:
    sid, pid = world.session_id, world.pids[0]
    other_host = await api.signup("host")
    agency = await api.signup("agency")
    url = f"/api/sessions/{sid}/shelf"
    for account, code in (
        (world.brand, "role_not_allowed"),
        (world.viewer, "role_not_allowed"),
        (agency, "role_not_allowed"),
        (other_host, "not_your_session"),
    ):
        res = await api.call("POST", url, account, json={"product_id": pid}, expect=403)
        assert res["error"]["code"] == code
        res = await api.call("PUT", f"{url}/order", account, json={"product_ids": []}, expect=403)
        assert res["error"]["code"] == code
        res = await api.call("DELETE", f"{url}/{pid}", account, expect=403)
        assert res["error"]["code"] == code
    await api.call("POST", url, json={"product_id": pid}, expect=401)
    assert (await api.call("GET", url, expect=200))["shelf"] == []
    await api.call("GET", "/api/sessions/999999/shelf", expect=404)


async def test_shelving_needs_an_accepted_cooperation(api: Api, world: World) -> None:
    sid, host, brand = world.session_id, world.host, world.brand
    url = f"/api/sessions/{sid}/shelf"
    loose = (await make_product(api, brand))["id"]
    res = await api.call("POST", url, host, json={"product_id": loose}, expect=409)
    assert res["error"]["code"] == "no_cooperation"
    # Proposed but not accepted: still no.
    await api.call(
        "POST",
        "/api/cooperations",
        brand,
        json={"host_id": host.id, "product_ids": [loose], "commission_bps": 1},
        expect=201,
    )
    res = await api.call("POST", url, host, json={"product_id": loose}, expect=409)
    assert res["error"]["code"] == "no_cooperation"
    # Another host's agreement does not count.
    other_host = await api.signup("host")
    mine = (await make_product(api, brand))["id"]
    await cooperate(api, brand, other_host, [mine])
    res = await api.call("POST", url, host, json={"product_id": mine}, expect=409)
    assert res["error"]["code"] == "no_cooperation"
    # Archived products are never shelved, even under an agreement.
    pid = world.pids[0]
    await api.call("POST", f"/api/products/{pid}/archive", brand, expect=200)
    res = await api.call("POST", url, host, json={"product_id": pid}, expect=409)
    assert res["error"]["code"] == "product_archived"
    # An ended agreement stops new shelving.
    await api.call("POST", f"/api/cooperations/{world.cooperation['id']}/end", brand, expect=200)
    res = await api.call("POST", url, host, json={"product_id": world.pids[1]}, expect=409)
    assert res["error"]["code"] == "no_cooperation"
    res = await api.call("POST", url, host, json={"product_id": 999999}, expect=404)
    assert res["error"]["code"] == "product_not_found"
    assert (await api.call("GET", url, expect=200))["shelf"] == []


async def test_agreed_rate_is_frozen_on_the_shelf(
    api: Api, world: World, feature: ShelfFeature
) -> None:
    sid, pid = world.session_id, world.pids[0]
    await api.call(
        "POST", f"/api/sessions/{sid}/shelf", world.host, json={"product_id": pid}, expect=201
    )
    terms = await feature.shelf.terms(sid, pid)
    assert terms.rate.commission_bps == 1200  # the agreed rate, not the default 1500
    assert terms.host_id == world.host.id and terms.rate.brand_id == world.brand.id
    rate = await feature.cooperations.rate_for(world.host.id, pid)
    assert rate is not None and rate.cooperation_id == world.cooperation["id"]
    await api.call(
        "POST", f"/api/cooperations/{world.cooperation['id']}/end", world.brand, expect=200
    )
    assert await feature.cooperations.rate_for(world.host.id, pid) is None
    assert (await feature.shelf.terms(sid, pid)).rate.commission_bps == 1200


async def test_shelf_holds_at_most_100(api: Api) -> None:
    brand = await api.signup("brand")
    host = await api.signup("host")
    pids = [(await make_product(api, brand, title=f"p{i}"))["id"] for i in range(101)]
    await cooperate(api, brand, host, pids[:100])
    await cooperate(api, brand, host, pids[100:])
    sid = (await api.live_session(host))["id"]
    for pid in pids[:100]:
        await api.call(
            "POST", f"/api/sessions/{sid}/shelf", host, json={"product_id": pid}, expect=201
        )
    res = await api.call(
        "POST", f"/api/sessions/{sid}/shelf", host, json={"product_id": pids[100]}, expect=409
    )
    assert res["error"]["code"] == "shelf_full"
    res = await api.call(
        "PUT", f"/api/sessions/{sid}/shelf/order", host, json={"product_ids": pids}, expect=422
    )
    assert res["error"]["code"] == "invalid_input"


async def test_bad_shelf_bodies_change_nothing(api: Api, world: World) -> None:
    sid, host = world.session_id, world.host
    for body in (
        {},
        {"product_id": "1"},
        {"product_id": 0},
        {"product_id": -1},
        {"product_id": 1.0},
        {"product_id": 1, "x": 1},
        {"product_id": None},
    ):
        for path in ("shelf", "pin"):
            res = await api.call("POST", f"/api/sessions/{sid}/{path}", host, json=body, expect=422)
            assert res["error"]["code"] == "invalid_input"
    for body in ({}, {"product_ids": "1,2"}, {"product_ids": [1, "2"]}):
        res = await api.call("PUT", f"/api/sessions/{sid}/shelf/order", host, json=body, expect=422)
        assert res["error"]["code"] == "invalid_input"
    await api.call("DELETE", f"/api/sessions/{sid}/shelf/abc", host, expect=404)
    state = await api.call("GET", f"/api/sessions/{sid}/shelf", expect=200)
    assert state["shelf"] == [] and state["shelf_version"] == 0 and state["pinned"] is None


async def test_pins_and_windows(
    api: Api, world: World, clock: ManualClock, feature: ShelfFeature
) -> None:
    sid, host = world.session_id, world.host
    a, b, c = world.pids
    for pid in (a, b):
        await api.call(
            "POST", f"/api/sessions/{sid}/shelf", host, json={"product_id": pid}, expect=201
        )
    res = await api.call(
        "POST", f"/api/sessions/{sid}/pin", host, json={"product_id": c}, expect=409
    )
    assert res["error"]["code"] == "not_on_shelf"
    for account, code in (
        (world.viewer, "role_not_allowed"),
        (world.brand, "role_not_allowed"),
        (await api.signup("host"), "not_your_session"),
    ):
        res = await api.call(
            "POST", f"/api/sessions/{sid}/pin", account, json={"product_id": a}, expect=403
        )
        assert res["error"]["code"] == code
        res = await api.call("DELETE", f"/api/sessions/{sid}/pin", account, expect=403)
        assert res["error"]["code"] == code
    card = await api.call(
        "POST", f"/api/sessions/{sid}/pin", host, json={"product_id": a}, expect=200
    )
    assert card["product_id"] == a and card["price_minor"] == 1000 and card["stock"] == 50
    assert card["flash"] is None
    same = await api.call(
        "POST", f"/api/sessions/{sid}/pin", host, json={"product_id": a}, expect=200
    )
    assert same["pin_id"] == card["pin_id"]
    t0 = clock.now_ms()
    clock.advance(5000)
    card_b = await api.call(
        "POST", f"/api/sessions/{sid}/pin", host, json={"product_id": b}, expect=200
    )
    clock.advance(3000)
    # Removing the pinned product from the shelf unpins it.
    await api.call("DELETE", f"/api/sessions/{sid}/shelf/{b}", host, expect=200)
    assert (await api.call("GET", f"/api/sessions/{sid}/shelf", expect=200))["pinned"] is None
    await api.call("POST", f"/api/sessions/{sid}/pin", host, json={"product_id": a}, expect=200)
    clock.advance(1000)
    assert (await api.call("DELETE", f"/api/sessions/{sid}/pin", host, expect=200))["unpinned"] == a
    assert (await api.call("DELETE", f"/api/sessions/{sid}/pin", host, expect=200))[
        "unpinned"
    ] is None
    pins = (await api.call("GET", f"/api/sessions/{sid}/pins", expect=200))["pins"]
    # Whole seconds: the test clock also ticks 1 ms per reading.
    assert [
        (p["product_id"], round((p["start_ms"] - t0) / 1000), round((p["end_ms"] - t0) / 1000))
        for p in pins
    ] == [(a, 0, 5), (b, 5, 8), (a, 8, 9)]
    assert pins[0]["media_start_s"] is None  # no recorder wired in these tests
    window = await feature.pins.pin_at(sid, t0 + 6000)
    assert window is not None and window.pin_id == card_b["pin_id"]
    assert await feature.pins.pin_at(sid, t0 + 9500) is None


async def test_pins_need_a_live_session_and_close_when_it_ends(api: Api, world: World) -> None:
    sid, host, pid = world.session_id, world.host, world.pids[0]
    await api.call("POST", f"/api/sessions/{sid}/shelf", host, json={"product_id": pid}, expect=201)
    await api.call("POST", f"/api/sessions/{sid}/pin", host, json={"product_id": pid}, expect=200)
    await api.call("POST", f"/api/sessions/{sid}/end", host, expect=200)
    pins = (await api.call("GET", f"/api/sessions/{sid}/pins", expect=200))["pins"]
    assert pins[0]["end_ms"] is not None
    res = await api.call(
        "POST", f"/api/sessions/{sid}/pin", host, json={"product_id": pid}, expect=409
    )
    assert res["error"]["code"] == "session_not_live"
    res = await api.call(
        "POST", f"/api/sessions/{sid}/shelf", host, json={"product_id": world.pids[1]}, expect=409
    )
    assert res["error"]["code"] == "session_ended"
