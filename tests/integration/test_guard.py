"""Limits against abuse (live/guard.py) through the real app, on both backends: login
and signup rates, a login flood that leaves static files answering, WHEP offers and
room sockets per client address and per user. The client's address comes from
``X-Forwarded-For`` (127.0.0.1 is a trusted proxy here), so one test client can be
several addresses."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from support import Account, Api

from app import Settings, create_app, guard_key
from live.clock import ManualClock
from live.ratelimit import Rate
from media.clients import ViewerClient
from media.config import MediaConfig
from media.feature import media_key

PASSWORD = "correct horse"


def guarded(settings: Settings, **more: Any) -> Settings:
    return settings.model_copy(
        update={"limits": True, "trusted_proxies": ("127.0.0.1/32",), **more}
    )


def at(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def login(api: Api, username: str, password: str, address: str) -> aiohttp.ClientResponse:
    return await api.client.post(
        "/api/auth/login",
        json={"username": username, "password": password},
        headers=at(address),
    )


async def test_wrong_passwords_hit_429_and_the_right_one_then_waits(
    settings: Settings, aiohttp_client: Any
) -> None:
    clock = ManualClock()
    api = Api(await aiohttp_client(create_app(guarded(settings), clock=clock)))
    ana = await api.signup("viewer")
    statuses = []
    retry_after = []
    for _ in range(30):
        res = await login(api, ana.username, "wrong password", "203.0.113.7")
        statuses.append(res.status)
        if res.status == 429:
            body = await res.json()
            assert body["error"]["code"] == "too_many_attempts"
            retry_after.append(int(res.headers["Retry-After"]))
    assert statuses == [401] * 5 + [429] * 25
    # 10 s a try for this account from there; past 20 tries from there, 2 s a try
    assert retry_after[:15] == [10] * 15 and set(retry_after[15:]) == {2}
    # the right password from there waits too; another address is not locked out
    assert (await login(api, ana.username, PASSWORD, "203.0.113.7")).status == 429
    assert (await login(api, ana.username, PASSWORD, "198.51.100.9")).status == 200
    clock.advance(10_000)
    assert (await login(api, ana.username, PASSWORD, "203.0.113.7")).status == 200


async def test_signups_per_address(settings: Settings, aiohttp_client: Any) -> None:
    api = Api(await aiohttp_client(create_app(guarded(settings))))
    statuses = []
    for n in range(11):
        res = await api.client.post(
            "/api/auth/signup",
            json={"username": f"flood{n}x", "password": PASSWORD, "role": "viewer"},
            headers=at("203.0.113.8"),
        )
        statuses.append(res.status)
    assert statuses == [201] * 10 + [429]
    res = await api.client.post(
        "/api/auth/signup",
        json={"username": "elsewhere", "password": PASSWORD, "role": "viewer"},
        headers=at("198.51.100.10"),
    )
    assert res.status == 201


@pytest.mark.parametrize("backend", ["postgres-redis"])
async def test_login_limits_hold_across_workers(settings: Settings, aiohttp_client: Any) -> None:
    """Two app instances on one Redis count the same attempts."""
    one = Api(await aiohttp_client(create_app(guarded(settings))))
    two = Api(await aiohttp_client(create_app(guarded(settings))))
    ana = await one.signup("viewer")
    statuses = [
        (await login(api, ana.username, "wrong password", "203.0.113.9")).status
        for api in (one, two, one, two, one, two)
    ]
    assert statuses == [401] * 5 + [429]


async def test_a_login_flood_leaves_static_files_answering(
    settings: Settings, aiohttp_client: Any
) -> None:
    """36 logins at once with the real Argon2id cost (64 MiB): they queue in the
    hasher's two threads (past its queue: 503), and static files keep answering."""
    real_cost = settings.model_copy(update={"password_time_cost": 3, "password_memory_kib": 65536})
    api = Api(await aiohttp_client(create_app(real_cost)))
    ana = await api.signup("viewer")
    flood = [
        asyncio.ensure_future(login(api, ana.username, "wrong password", "203.0.113.10"))
        for _ in range(36)
    ]
    await asyncio.sleep(0.05)
    slowest = 0.0
    for _ in range(5):
        started = time.monotonic()
        res = await api.client.get("/static/js/api.js")
        assert res.status == 200
        await res.read()
        slowest = max(slowest, time.monotonic() - started)
        await asyncio.sleep(0.1)
    answers = [(await r).status for r in flood]
    print(f"slowest static file during the flood: {slowest * 1000:.0f} ms; answers {answers}")
    assert slowest < 0.2
    assert set(answers) <= {401, 503} and answers.count(503) == 2  # 2 threads + 32 waiting


async def test_whep_peers_per_address_and_per_user(settings: Settings, aiohttp_client: Any) -> None:
    app = create_app(guarded(settings, max_peers_per_address=3, max_peers_per_user=2))
    client = await aiohttp_client(app)
    api = Api(client)
    host = await api.signup("host")
    sid = int((await api.live_session(host))["id"])
    viewer = await api.signup("viewer")

    clients: list[ViewerClient] = []

    async def offer(address: str, who: Account | None = None) -> aiohttp.ClientResponse:
        headers = {"Content-Type": "application/sdp", **at(address)}
        if who is not None:
            headers.update(who.headers)
        clients.append(ViewerClient(MediaConfig(ice_addresses=("127.0.0.1",)), decode=False))
        return await client.post(f"/whep/{sid}", data=await clients[-1].offer(), headers=headers)

    async with asyncio.timeout(30):
        for _ in range(3):
            assert (await offer("203.0.113.11")).status == 201
        refused = await offer("203.0.113.11")
        assert refused.status == 429
        assert (await refused.json())["error"]["code"] == "too_many_peers"
        assert (await offer("198.51.100.11")).status == 201  # another address gets in
        for n in range(2):  # one person, two addresses (phone and laptop)
            assert (await offer(f"198.51.100.{20 + n}", viewer)).status == 201
        assert (await offer("198.51.100.30", viewer)).status == 429
    assert app[media_key].viewer_total() == 6  # nothing left of the refused ones
    for viewer_client in clients:
        await viewer_client.close()


async def test_whep_offers_per_address_are_rate_limited(
    settings: Settings, aiohttp_client: Any
) -> None:
    api = Api(await aiohttp_client(create_app(guarded(settings))))
    host = await api.signup("host")
    sid = int((await api.live_session(host))["id"])
    statuses = []
    for _ in range(31):  # not even an offer: counted all the same
        res = await api.client.post(
            f"/whep/{sid}",
            data="v=0\r\n",
            headers={"Content-Type": "application/sdp", **at("203.0.113.12")},
        )
        statuses.append(res.status)
    assert statuses == [400] * 30 + [429]
    assert res.headers["Retry-After"] == "1"
    assert res.headers["Access-Control-Allow-Origin"] == "*"


async def test_room_sockets_per_address_and_per_user(
    settings: Settings, aiohttp_client: Any
) -> None:
    app = create_app(guarded(settings, max_sockets_per_address=3, max_sockets_per_user=2))
    api = Api(await aiohttp_client(app))
    host = await api.signup("host")
    sid = int((await api.live_session(host))["id"])
    viewer = await api.signup("viewer")
    path = f"/api/sessions/{sid}/ws"
    held = []
    try:
        for _ in range(3):
            held.append(await api.client.ws_connect(path, headers=at("203.0.113.13")))
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await api.client.ws_connect(path, headers=at("203.0.113.13"))
        assert refused.value.status == 429
        held.append(await api.client.ws_connect(path, headers=at("198.51.100.13")))
        for n in range(2):
            headers = {**at(f"198.51.100.{40 + n}"), **viewer.headers}
            held.append(await api.client.ws_connect(path, headers=headers))
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await api.client.ws_connect(path, headers={**at("198.51.100.50"), **viewer.headers})
        assert refused.value.status == 429
        # one closes: room for the next
        await held.pop(0).close()
        await asyncio.sleep(0.1)
        held.append(await api.client.ws_connect(path, headers=at("203.0.113.13")))
    finally:
        for ws in held:
            await ws.close()


async def test_room_sockets_per_address_are_rate_limited(
    settings: Settings, aiohttp_client: Any
) -> None:
    app = create_app(guarded(settings, max_sockets_per_address=0))
    api = Api(await aiohttp_client(app))
    host = await api.signup("host")
    sid = int((await api.live_session(host))["id"])
    path = f"/api/sessions/{sid}/ws"
    held = []
    started = time.monotonic()
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            for _ in range(100):
                held.append(await api.client.ws_connect(path, headers=at("203.0.113.14")))
        assert refused.value.status == 429
        # 60 at once, then 5 a second for as long as the opening took
        elapsed = time.monotonic() - started
        assert 60 <= len(held) <= 60 + 5 * elapsed + 1, (len(held), elapsed)
    finally:
        for ws in held:
            await ws.close()


async def test_limits_off_lets_everything_through(api: Api, settings: Settings) -> None:
    """The test suite's default (``limits=False``), as benchmarks run."""
    assert settings.limits is False
    ana = await api.signup("viewer")
    for _ in range(8):
        res = await login(api, ana.username, "wrong password", "203.0.113.15")
        assert res.status == 401


async def test_pages_and_files_carry_the_security_headers(api: Api) -> None:
    for path in ("/", "/watch/1", "/static/js/api.js", "/vendor/plotly.min.js"):
        res = await api.client.get(path)
        assert res.status == 200, path
        assert res.headers["X-Frame-Options"] == "DENY", path
        assert res.headers["X-Content-Type-Options"] == "nosniff"
        assert res.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        policy = res.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-eval" not in policy
        assert "frame-ancestors 'none'" in policy
    for path in ("/api/sessions", "/api/nothing", "/static/nothing.js"):  # JSON answers
        res = await api.client.get(path)
        assert res.headers["X-Content-Type-Options"] == "nosniff", path
    res = await api.client.options("/whep/1")
    assert res.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("backend", ["postgres-redis"])  # two processes share Redis
async def test_caps_hold_across_processes(
    settings: Settings, aiohttp_client: Any, backend: str
) -> None:
    """The caps count what a client holds in every worker: sockets and WHEP peers
    spread over two processes (as SO_REUSEPORT spreads them) stop at the cap, and one
    given back in one process makes room in the other."""
    capped = guarded(settings, max_sockets_per_address=3, max_peers_per_address=2)
    one = Api(await aiohttp_client(create_app(capped)))
    two = Api(await aiohttp_client(create_app(capped)))
    host = await one.signup("host")
    sid = int((await one.live_session(host))["id"])
    path, here = f"/api/sessions/{sid}/ws", at("203.0.113.14")
    held = []
    clients: list[ViewerClient] = []

    async def offer(api: Api) -> aiohttp.ClientResponse:
        clients.append(ViewerClient(MediaConfig(ice_addresses=("127.0.0.1",)), decode=False))
        headers = {"Content-Type": "application/sdp", **here}
        return await api.client.post(
            f"/whep/{sid}", data=await clients[-1].offer(), headers=headers
        )

    try:
        held.append(await one.client.ws_connect(path, headers=here))
        held.append(await one.client.ws_connect(path, headers=here))
        held.append(await two.client.ws_connect(path, headers=here))
        for api in (one, two):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await api.client.ws_connect(path, headers=here)
            assert refused.value.status == 429
        held.append(await two.client.ws_connect(path, headers=at("198.51.100.14")))
        await held.pop(0).close()  # given back in process one ...
        async with asyncio.timeout(5):  # ... makes room in process two
            while True:
                try:
                    held.append(await two.client.ws_connect(path, headers=here))
                    break
                except aiohttp.WSServerHandshakeError as exc:
                    assert exc.status == 429
                    await asyncio.sleep(0.05)

        async with asyncio.timeout(30):
            assert (await offer(one)).status == 201
            assert (await offer(two)).status == 201
            for api in (one, two):
                res = await offer(api)
                assert res.status == 429
                assert (await res.json())["error"]["code"] == "too_many_peers"
    finally:
        for ws in held:
            await ws.close()
        for viewer_client in clients:
            await viewer_client.close()


async def test_pages_hand_out_guest_ids_at_a_bounded_rate(
    settings: Settings, aiohttp_client: Any
) -> None:
    """A script loading pages in a loop to mint guest ids (each would count as one more
    viewer) gets 30, then pages without one (it counts by its address); another
    address still gets its id, and a browser that has one keeps it."""
    client = await aiohttp_client(create_app(guarded(settings)))
    cookies = []
    for _ in range(31):
        res = await client.get("/", headers=at("203.0.113.15"))
        assert res.status == 200
        cookies.append(res.cookies.get("ls_guest"))
        client.session.cookie_jar.clear()  # a fresh "browser" every time
    assert all(c is not None for c in cookies[:30]) and cookies[30] is None
    assert len({c.value for c in cookies[:30] if c is not None}) == 30
    other = await client.get("/watch/1", headers=at("198.51.100.15"))
    assert other.cookies.get("ls_guest") is not None
    res = await client.post("/api/auth/guest", headers=at("203.0.113.15"))
    assert res.status == 204 and res.cookies.get("ls_guest") is None


async def test_the_default_caps_refuse_the_61st_peer_and_the_301st_socket(
    settings: Settings, aiohttp_client: Any
) -> None:
    """The review's numbers with the default caps (60 WHEP peers, 300 room sockets per
    address in a show): the next one from that address is refused, another address
    still gets in. The rates are loosened so the burst is not refused by them first."""
    app = create_app(guarded(settings))
    guard = app[guard_key]
    loose = Rate(1000.0, 1000)
    guard.rates = replace(guard.rates, offers_per_address=loose, sockets_per_address=loose)
    client = await aiohttp_client(app)
    api = Api(client)
    host = await api.signup("host")
    sid = int((await api.live_session(host))["id"])
    flood, other = at("203.0.113.16"), at("198.51.100.16")
    held = []
    clients: list[ViewerClient] = []

    async def offer(headers: dict[str, str]) -> aiohttp.ClientResponse:
        clients.append(ViewerClient(MediaConfig(ice_addresses=("127.0.0.1",)), decode=False))
        sdp = await clients[-1].offer()
        return await client.post(
            f"/whep/{sid}", data=sdp, headers={"Content-Type": "application/sdp", **headers}
        )

    # a session of its own: the test client's holds at most 100 connections
    sockets = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    url = client.make_url(f"/api/sessions/{sid}/ws")
    try:
        async with asyncio.timeout(120):
            for _ in range(300):
                held.append(await sockets.ws_connect(url, headers=flood))
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await sockets.ws_connect(url, headers=flood)
            assert refused.value.status == 429
            held.append(await sockets.ws_connect(url, headers=other))

            statuses = [(await offer(flood)).status for _ in range(61)]
            assert statuses == [201] * 60 + [429]
            assert (await offer(other)).status == 201
    finally:
        for ws in held:
            await ws.close()
        await sockets.close()
        for viewer_client in clients:
            await viewer_client.close()
