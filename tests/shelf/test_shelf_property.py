"""Property: any sequence of shelf operations keeps the snapshot equal to the replay of
the room events (hypothesis drives the operations through the HTTP API)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from roomclient import comparable, connect, fold
from shelf_support import World, cooperate, make_product
from support import Api

from app import room_log_key

N_PRODUCTS = 4

operation = st.one_of(
    st.tuples(st.just("add"), st.integers(0, N_PRODUCTS - 1)),
    st.tuples(st.just("remove"), st.integers(0, N_PRODUCTS - 1)),
    st.tuples(st.just("pin"), st.integers(0, N_PRODUCTS - 1)),
    st.tuples(st.just("unpin"), st.just(0)),
    st.tuples(st.just("reorder"), st.randoms(use_true_random=False)),
)


async def apply(api: Api, world: World, sid: int, op: tuple[str, Any]) -> None:
    kind, arg = op
    url = f"/api/sessions/{sid}"
    host = world.host
    if kind == "add":
        await api.call("POST", f"{url}/shelf", host, json={"product_id": world.pids[arg]})
    elif kind == "remove":
        await api.call("DELETE", f"{url}/shelf/{world.pids[arg]}", host)
    elif kind == "pin":
        await api.call("POST", f"{url}/pin", host, json={"product_id": world.pids[arg]})
    elif kind == "unpin":
        await api.call("DELETE", f"{url}/pin", host)
    else:
        state = await api.call("GET", f"{url}/shelf")
        ids = [item["product_id"] for item in state["shelf"]]
        arg.shuffle(ids)
        await api.call("PUT", f"{url}/shelf/order", host, json={"product_ids": ids}, expect=200)


@pytest.fixture
async def prop_world(api: Api) -> World:
    """One brand, host and cooperation per test; every example gets a fresh session."""
    brand = await api.signup("brand")
    host = await api.signup("host")
    products = [await make_product(api, brand, title=f"p{i}") for i in range(N_PRODUCTS)]
    coop = await cooperate(api, brand, host, [p["id"] for p in products])
    return World(brand, host, host, products, coop, 0)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(operation, max_size=12))
async def test_snapshot_equals_replayed_events(
    api: Api,
    client: TestClient[Any, Any],
    app: web.Application,
    prop_world: World,
    ops: list[tuple[str, Any]],
) -> None:
    room_log = app[room_log_key]
    sid = (await api.live_session(prop_world.host))["id"]
    first, start = await connect(client, sid)
    await first.close()
    for op in ops:
        await apply(api, prop_world, sid, op)
    position = await room_log.position(sid)
    raw = await room_log.read_since(sid, start["seq"], start["epoch"])
    assert raw is not None and len(raw) == position.seq - start["seq"]
    events = [orjson.loads(r) for r in raw]
    state = await api.call("GET", f"/api/sessions/{sid}/shelf", expect=200)
    assert comparable(fold(start["snapshot"], events)) == comparable(state)
    second, hello = await connect(client, sid)
    await second.close()
    assert comparable(hello["snapshot"]) == comparable(state)
