"""What the brand console reads: hosts to propose to, and the sessions showing a
brand's products (``GET /api/hosts``, ``GET /api/brands/{id}/sessions``)."""

from __future__ import annotations

from shelf_support import cooperate, make_product
from sqlalchemy import update
from support import Api

from app import db_key
from live.models import User


async def test_find_hosts(api: Api) -> None:
    brand = await api.signup("brand")
    tag = brand.username[-6:]
    ada = await api.signup("host", f"ada-{tag}")
    bob = await api.signup("host", f"bob_{tag}")
    await api.signup("viewer", f"ada-viewer-{tag}")
    found = await api.call("GET", f"/api/hosts?q=ADA-{tag}", brand, expect=200)
    assert found == {"hosts": [{"id": ada.id, "display_name": ada.username}]}
    # Only hosts, by display name; '_' and '%' are literal, not wildcards.
    everyone = await api.call("GET", f"/api/hosts?q={tag}", brand, expect=200)
    assert [h["id"] for h in everyone["hosts"]] == [ada.id, bob.id]
    literal = await api.call("GET", f"/api/hosts?q=b_{tag}", brand, expect=200)
    assert [h["id"] for h in literal["hosts"]] == [bob.id]
    assert (await api.call("GET", "/api/hosts?q=%25", brand, expect=200))["hosts"] == []
    limited = await api.call("GET", "/api/hosts?limit=1", brand, expect=200)
    assert len(limited["hosts"]) == 1
    # A disabled host is not offered.
    async with api.client.app[db_key].transaction() as tx:
        await tx.execute(update(User).where(User.id == bob.id).values(disabled=True))
    again = await api.call("GET", f"/api/hosts?q={tag}", brand, expect=200)
    assert [h["id"] for h in again["hosts"]] == [ada.id]
    # By id (disabled ones too: they name existing agreements); non-hosts left out.
    named = await api.call(
        "GET", f"/api/hosts?ids={bob.id},{brand.id},{ada.id},{bob.id}", brand, expect=200
    )
    assert named["hosts"] == [
        {"id": ada.id, "display_name": ada.username},
        {"id": bob.id, "display_name": bob.username},
    ]


async def test_find_hosts_refusals(api: Api) -> None:
    brand = await api.signup("brand")
    res = await api.call("GET", "/api/hosts", expect=401)
    assert res["error"]["code"] == "sign_in_required"
    for role in ("host", "viewer", "agency"):
        other = await api.signup(role)
        res = await api.call("GET", "/api/hosts", other, expect=403)
        assert res["error"]["code"] == "role_not_allowed"
    res = await api.call("GET", "/api/hosts?q=" + "x" * 65, brand, expect=400)
    assert res["error"]["code"] == "invalid_query"
    for bad in ("0", "51", "x"):
        res = await api.call("GET", f"/api/hosts?limit={bad}", brand, expect=400)
        assert res["error"]["code"] == "invalid_query"
    too_many = ",".join(str(i) for i in range(1, 102))
    for bad in ("", "1,x", "1,,2", "-1", too_many):
        res = await api.call("GET", f"/api/hosts?ids={bad}", brand, expect=400)
        assert res["error"]["code"] == "invalid_query"
    res = await api.call("GET", "/api/hosts?ids=1", await api.signup("host"), expect=403)
    assert res["error"]["code"] == "role_not_allowed"


async def test_brand_sessions(api: Api) -> None:
    brand = await api.signup("brand")
    rival = await api.signup("brand")
    host = await api.signup("host")
    mine = [(await make_product(api, brand, title=f"Mine {i}"))["id"] for i in range(2)]
    theirs = (await make_product(api, rival))["id"]
    await cooperate(api, brand, host, mine)
    await cooperate(api, rival, host, [theirs])

    async def session(title: str, products: list[int], *, start: bool) -> int:
        created = await api.call("POST", "/api/sessions", host, json={"title": title}, expect=201)
        sid = int(created["id"])
        for pid in products:
            body = {"product_id": pid}
            await api.call("POST", f"/api/sessions/{sid}/shelf", host, json=body, expect=201)
        if start:
            await api.call("POST", f"/api/sessions/{sid}/start", host, expect=200)
        return sid

    live = await session("Live with mine", [theirs, mine[1], mine[0]], start=True)
    scheduled = await session("Soon with mine", [mine[0]], start=False)
    await session("Only theirs", [theirs], start=True)
    await session("Empty shelf", [], start=True)
    ended = await session("Over", [mine[1]], start=True)
    await api.call("POST", f"/api/sessions/{ended}/end", host, expect=200)

    res = await api.call("GET", f"/api/brands/{brand.id}/sessions", brand, expect=200)
    assert [s["id"] for s in res["sessions"]] == [scheduled, live]
    by_id = {s["id"]: s for s in res["sessions"]}
    assert by_id[live]["status"] == "live" and by_id[live]["title"] == "Live with mine"
    assert by_id[live]["product_ids"] == [mine[1], mine[0]]  # shelf order, not theirs
    assert by_id[live]["host"] == {"id": host.id, "display_name": host.username}
    assert by_id[scheduled]["status"] == "scheduled"
    only_live = await api.call(
        "GET", f"/api/brands/{brand.id}/sessions?status=live", brand, expect=200
    )
    assert [s["id"] for s in only_live["sessions"]] == [live]
    with_ended = await api.call(
        "GET", f"/api/brands/{brand.id}/sessions?status=ended,live", brand, expect=200
    )
    assert [s["id"] for s in with_ended["sessions"]] == [ended, live]
    lonely = await api.signup("brand")
    res = await api.call("GET", f"/api/brands/{lonely.id}/sessions", lonely, expect=200)
    assert res == {"sessions": [], "next_before_id": None}


async def test_brand_sessions_refusals(api: Api) -> None:
    brand = await api.signup("brand")
    rival = await api.signup("brand")
    host = await api.signup("host")
    path = f"/api/brands/{brand.id}/sessions"
    res = await api.call("GET", path, expect=401)
    assert res["error"]["code"] == "sign_in_required"
    res = await api.call("GET", path, rival, expect=403)
    assert res["error"]["code"] == "not_your_brand"
    res = await api.call("GET", path, host, expect=403)
    assert res["error"]["code"] == "role_not_allowed"
    for bad in ("bogus", "live,bogus", ","):
        res = await api.call("GET", f"{path}?status={bad}", brand, expect=400)
        assert res["error"]["code"] == "invalid_query"
