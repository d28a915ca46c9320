"""Every list answers a page at a time (``live/paging.py``, issue 17): ``limit`` up to a
documented maximum (past it: 422 ``page_too_large``), keyset cursors that walk the whole
list exactly once in order, and pages a guest can read whose size is bounded."""

from __future__ import annotations

from typing import Any

import orjson
from shelf_support import World, cooperate, make_product, shelve
from support import Account, Api

from live.clock import ManualClock, iso


async def walk(
    api: Api, path: str, key: str, who: Account | None = None, *, limit: int | None = None
) -> tuple[list[Any], int]:
    """Every item of a paged list and the number of pages it took; each page is
    checked to hold at most ``limit`` items and, when more follow, exactly ``limit``."""
    sep = "&" if "?" in path else "?"
    first = f"{path}{sep}limit={limit}" if limit else path
    items: list[Any] = []
    pages, url = 0, first
    while True:
        body = await api.call("GET", url, who, expect=200)
        pages += 1
        cursor = "before_id" if "next_before_id" in body else "after_id"
        assert set(body) == {key, f"next_{cursor}"}, body.keys()
        page, following = body[key], body[f"next_{cursor}"]
        assert len(page) <= (limit or 50)
        items += page
        if following is None:
            return items, pages
        assert len(page) == (limit or 50)  # a short page is the last one
        url = f"{first}{'&' if '?' in first else '?'}{cursor}={following}"
        assert pages < 1000


async def test_paging_through_450_products(api: Api) -> None:
    brand = await api.signup("brand")
    created = [(await make_product(api, brand, title=f"Item {i}"))["id"] for i in range(450)]
    archived = created[100:110]
    for pid in archived:
        await api.call("POST", f"/api/products/{pid}/archive", brand, expect=200)
    path = f"/api/brands/{brand.id}/products"

    # The brand, archived ones included, in pages of the largest size: all 450 exactly
    # once, newest first.
    everything, pages = await walk(api, f"{path}?include_archived=1", "products", brand, limit=50)
    assert [p["id"] for p in everything] == sorted(created, reverse=True)
    assert pages == 9
    # A guest: the others, in pages of an odd size, without the commission.
    shown, pages = await walk(api, path, "products", limit=37)
    expected = sorted(set(created) - set(archived), reverse=True)
    assert [p["id"] for p in shown] == expected and pages == 12
    assert all("commission_bps" not in p for p in shown)
    # No limit: the default page (50), with the cursor to the next one.
    first = await api.call("GET", path, expect=200)
    assert [p["id"] for p in first["products"]] == expected[:50]
    assert first["next_before_id"] == expected[49]
    # A product made while someone pages lands on the first page, never in the middle.
    second = await api.call("GET", f"{path}?before_id={expected[49]}", expect=200)
    newest = (await make_product(api, brand))["id"]
    third = await api.call("GET", f"{path}?before_id={second['next_before_id']}", expect=200)
    assert [p["id"] for p in second["products"] + third["products"]] == expected[50:150]
    assert newest not in [p["id"] for p in second["products"] + third["products"]]


async def test_a_page_over_the_max_is_422(api: Api, world: World) -> None:
    agency, viewer = await api.signup("agency"), world.viewer
    sid, host, brand = world.session_id, world.host, world.brand
    routes: list[tuple[str, Account | None, int]] = [
        ("/api/sessions", None, 200),
        (f"/api/brands/{brand.id}/products", None, 50),
        (f"/api/brands/{brand.id}/sessions", brand, 100),
        ("/api/cooperations", brand, 100),
        ("/api/me/hosts", agency, 200),
        (f"/api/sessions/{sid}/pins", None, 200),
        (f"/api/sessions/{sid}/flash-sales", None, 200),
        ("/api/me/orders", viewer, 200),
        (f"/api/sessions/{sid}/moderators", host, 200),
        (f"/api/hosts/{host.id}/moderators", host, 200),
        (f"/api/sessions/{sid}/chat/moderation-log", host, 1000),
    ]
    for path, who, most in routes:
        sep = "&" if "?" in path else "?"
        for too_many in (str(most + 1), str(10**30), "9" * 5000):
            res = await api.call("GET", f"{path}{sep}limit={too_many}", who, expect=422)
            assert res["error"]["code"] == "page_too_large", path
            assert res["error"]["details"] == {"max_limit": most}, path
        await api.call("GET", f"{path}{sep}limit={most}", who, expect=200)
        for bad in ("0", "-1", "x", "1.5", "²", "--5"):
            res = await api.call("GET", f"{path}{sep}limit={bad}", who, expect=400)
            assert res["error"]["code"] == "invalid_query", (path, bad)
        listed = await api.call("GET", path, who, expect=200)
        cursor = "before_id" if "next_before_id" in listed else "after_id"
        for bad in ("-1", "x", str(2**31), "9" * 5000):
            res = await api.call("GET", f"{path}{sep}{cursor}={bad}", who, expect=400)
            assert res["error"]["code"] == "invalid_query", (path, bad)


def _longest_product(n: int) -> dict[str, Any]:
    """A product with every text field at its longest."""
    return {
        "title": f"{n:04d}" + "T" * 196,
        "description": "D" * 4000,
        "image_url": "https://img.example/" + "p" * 2028,
    }


async def test_a_guest_get_of_any_list_is_bounded(
    api: Api, world: World, clock: ManualClock
) -> None:
    brand, host, sid = world.brand, world.host, world.session_id
    for n in range(51):
        await make_product(api, brand, **_longest_product(n))
    a, b, _ = world.pids
    await shelve(api, world, a, b)
    for n in range(201):
        body = {"product_id": (a, b)[n % 2]}
        await api.call("POST", f"/api/sessions/{sid}/pin", host, json=body, expect=200)
    now = clock.now_ms()
    for n in range(3):
        sale = {
            "product_id": a,
            "price_minor": 500,
            "quantity": 1,
            "per_buyer_limit": 1,
            "starts_at": iso(now + 60_000 * (n + 1)),
            "ends_at": iso(now + 60_000 * (n + 1) + 30_000),
        }
        await api.call("POST", f"/api/sessions/{sid}/flash-sales", host, json=sale, expect=201)

    async def guest_get(path: str) -> tuple[dict[str, Any], int]:
        res = await api.client.get(path)
        assert res.status == 200, path
        raw = await res.read()
        return orjson.loads(raw), len(raw)

    # Products: 54 in the catalogue, the default and the largest page hold 50; a
    # page of the longest products stays under 50 x 7 KB.
    for path in (f"/api/brands/{brand.id}/products", f"/api/brands/{brand.id}/products?limit=50"):
        body, size = await guest_get(path)
        assert len(body["products"]) == 50 and body["next_before_id"] is not None
        assert size < 50 * 7_000, size
    # Pins: 201 windows; the default page holds 50, the largest 200.
    body, size = await guest_get(f"/api/sessions/{sid}/pins")
    assert len(body["pins"]) == 50 and body["next_after_id"] == body["pins"][-1]["id"]
    body, size = await guest_get(f"/api/sessions/{sid}/pins?limit=200")
    assert len(body["pins"]) == 200 and size < 200 * 250, size
    pins, _ = await walk(api, f"/api/sessions/{sid}/pins", "pins", limit=200)
    assert [p["id"] for p in pins] == sorted(p["id"] for p in pins) and len(pins) == 201
    # Flash sales, sessions: pages too; the shelf is capped instead (at most 100
    # products: 409 shelf_full, tests/shelf/test_shelf.py).
    body, _ = await guest_get(f"/api/sessions/{sid}/flash-sales?limit=2")
    assert len(body["flash_sales"]) == 2 and body["next_after_id"] is not None
    body, _ = await guest_get("/api/sessions?limit=1")
    assert len(body["sessions"]) == 1


async def test_every_list_walks_each_item_once(api: Api, world: World, clock: ManualClock) -> None:
    """Pages of 2 over lists of 3 to 5: every item once, in the list's order."""
    brand, host, sid, viewer = world.brand, world.host, world.session_id, world.viewer
    # Sessions, and a brand's sessions: the world's live one and three more.
    sids = [sid]
    for n in range(3):
        created = await api.call("POST", "/api/sessions", host, json={"title": f"S{n}"}, expect=201)
        sids.append(int(created["id"]))
        body = {"product_id": world.pids[0]}
        await api.call("POST", f"/api/sessions/{created['id']}/shelf", host, json=body, expect=201)
    await shelve(api, world, world.pids[0])
    listed, _ = await walk(api, f"/api/sessions?host_id={host.id}", "sessions", limit=2)
    assert [s["id"] for s in listed] == sorted(sids, reverse=True)
    path = f"/api/brands/{brand.id}/sessions?status=live,scheduled"
    listed, _ = await walk(api, path, "sessions", brand, limit=2)
    assert [s["id"] for s in listed] == sorted(sids, reverse=True)
    # Cooperations: the world's and three more, each with its products.
    coops = [world.cooperation["id"]]
    for _ in range(3):
        other_host = await api.signup("host")
        coops.append((await cooperate(api, brand, other_host, world.pids[:2]))["id"])
    listed, _ = await walk(api, "/api/cooperations", "cooperations", brand, limit=2)
    assert [c["id"] for c in listed] == sorted(coops, reverse=True)
    assert all(c["product_ids"] == sorted(world.pids[:2]) for c in listed[:3])
    assert listed[-1]["product_ids"] == sorted(world.pids)
    # An agency's hosts, by id.
    agency = await api.signup("agency")
    named = []
    for _ in range(3):
        named_host = await api.signup("host")
        body = {"agency_id": agency.id}
        await api.call("PUT", "/api/me/agency", named_host, json=body, expect=200)
        named.append(named_host.id)
    listed, _ = await walk(api, "/api/me/hosts", "host_ids", agency, limit=2)
    assert listed == sorted(named)
    # A buyer's orders, newest first.
    orders = []
    for n in range(5):
        res = await api.call(
            "POST",
            f"/api/sessions/{sid}/orders",
            viewer,
            json={"product_id": world.pids[0], "quantity": 1},
            headers={"Idempotency-Key": f"paging-{n}"},
            expect=201,
        )
        orders.append(res["id"])
    listed, _ = await walk(api, "/api/me/orders", "orders", viewer, limit=2)
    assert [o["id"] for o in listed] == sorted(orders, reverse=True)
    # Flash sales, in the order they were created.
    now, sales = clock.now_ms(), []
    for n in range(5):
        sale = {
            "product_id": world.pids[0],
            "price_minor": 500,
            "quantity": 1,
            "per_buyer_limit": 1,
            "starts_at": iso(now + 600_000 * (5 - n)),  # later ones start earlier
            "ends_at": iso(now + 600_000 * (5 - n) + 60_000),
        }
        url = f"/api/sessions/{sid}/flash-sales"
        sales.append((await api.call("POST", url, host, json=sale, expect=201))["id"])
    listed, _ = await walk(api, f"/api/sessions/{sid}/flash-sales", "flash_sales", limit=2)
    assert [s["id"] for s in listed] == sales
    # Moderators, in the order they were appointed, and the moderation log, newest first.
    moderators = []
    for _ in range(3):
        moderator = await api.signup("viewer")
        body = {"user_id": moderator.id}
        await api.call("POST", f"/api/sessions/{sid}/moderators", host, json=body, expect=201)
        moderators.append(moderator.id)
    path = f"/api/sessions/{sid}/moderators"
    listed, _ = await walk(api, path, "moderators", host, limit=2)
    assert [m["user_id"] for m in listed] == moderators
    path = f"/api/sessions/{sid}/chat/moderation-log"
    listed, _ = await walk(api, path, "actions", host, limit=2)
    assert [a["target_user_id"] for a in listed] == moderators[::-1]
