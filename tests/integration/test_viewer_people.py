"""Viewer counts count people, not sockets (``live.guests``): a signed-in user once, a
guest with a signed guest cookie once, and guests without a valid cookie once per
address; pages and ``POST /api/auth/guest`` hand out the cookie."""

from __future__ import annotations

import asyncio
from http.cookies import SimpleCookie
from typing import Any

import aiohttp
from aiohttp import WSMsgType
from support import TEST_SECRET, Account, Api
from test_room_channel import connect, receive

from app import hub_key
from live.guests import GUEST_COOKIE, GuestIds

#: no viewers.updated for this long: the count has settled (presence ticks every 0.2 s
#: in the tests' settings)
QUIET_S = 0.8
FLOOD = 300


async def settled_count(ws: aiohttp.ClientWebSocketResponse, seen: list[int]) -> int:
    """Read ``viewers.updated`` events (into ``seen``) until none came for ``QUIET_S``;
    the last count."""
    while True:
        try:
            msg = await ws.receive(timeout=QUIET_S)
        except TimeoutError:
            assert seen, "no viewers.updated at all"
            return seen[-1]
        assert msg.type is WSMsgType.TEXT, msg
        message = msg.json()
        if message["type"] == "viewers.updated":
            seen.append(message["data"]["count"])


async def host_watching(api: Api) -> tuple[int, aiohttp.ClientWebSocketResponse]:
    """A live session and its host's socket (the host is no viewer)."""
    host = await api.signup("host")
    sid = int((await api.live_session(host))["id"])
    watcher, hello = await connect(api.client, sid, host)
    assert hello["snapshot"]["viewers"] == 0
    return sid, watcher


async def guest_socket(
    session: aiohttp.ClientSession,
    url: str,
    cookie: str | None = None,
    account: Account | None = None,
) -> aiohttp.ClientWebSocketResponse:
    """A room socket from a browser with ``cookie`` (signed in as ``account``)."""
    headers = {} if account is None else dict(account.headers)
    if cookie is not None:
        headers["Cookie"] = f"{GUEST_COOKIE}={cookie}"
    ws = await session.ws_connect(url, headers=headers)
    assert (await receive(ws))["type"] == "hello"
    return ws


async def test_a_flood_of_cookieless_guest_sockets_from_one_address_is_one_viewer(
    api: Api,
) -> None:
    sid, watcher = await host_watching(api)
    url = str(api.client.make_url(f"/api/sessions/{sid}/ws"))
    # A session of its own: no cookie jar to share, and no cap on its connections.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as flood:
        sockets = await asyncio.gather(*(guest_socket(flood, url) for _ in range(FLOOD)))
        hub = api.client.app[hub_key]
        assert hub.local_sockets(sid) == FLOOD + 1
        seen: list[int] = []
        assert await settled_count(watcher, seen) == 1
        assert max(seen) == 1, seen  # never more than one viewer on the way
        assert hub.local_viewers(sid) == 1

        viewer = await api.signup("viewer")
        ws, _ = await connect(api.client, sid, viewer)
        assert await settled_count(watcher, seen) == 2
        for guest in sockets[:-1]:
            await guest.close()
        await asyncio.sleep(QUIET_S)
        assert seen[-1] == 2  # the address still holds a socket
        await sockets[-1].close()
        assert await settled_count(watcher, seen) == 1
        await ws.close()
    assert await settled_count(watcher, seen) == 0
    await watcher.close()


async def test_guests_count_by_their_signed_cookie_and_a_forged_one_by_address(
    api: Api,
) -> None:
    sid, watcher = await host_watching(api)
    url = str(api.client.make_url(f"/api/sessions/{sid}/ws"))
    guests = GuestIds(TEST_SECRET)
    first, second = guests.issue(), guests.issue()
    first_id = first.split(".")[0]
    forged = [
        f"{first_id}.{second.split('.')[1]}",  # someone's id with another's signature
        GuestIds(TEST_SECRET + "-elsewhere").issue(),  # not signed by this server
        "not-a-guest-id",
    ]
    viewer = await api.signup("viewer")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets = [
            await guest_socket(http, url, first),
            await guest_socket(http, url, first),  # the same browser's second tab
            await guest_socket(http, url, second),
            *[await guest_socket(http, url, cookie) for cookie in forged],
            await guest_socket(http, url),
        ]
        seen: list[int] = []
        # two guests by their cookies; the forged cookies and none: the address, once
        assert await settled_count(watcher, seen) == 3

        # Signed in, the account is the person: the browser's guest cookie is ignored,
        # so an account and a guest tab of the same browser are two viewers (tabs of one
        # browser share the sign-in; this lasts only until a page's socket reconnects
        # after signing in), and the account's sockets with different cookies are one.
        sockets.append(await guest_socket(http, url, first, viewer))
        sockets.append(await guest_socket(http, url, second, viewer))
        assert await settled_count(watcher, seen) == 4
        people = {conn.member for conn in api.client.app[hub_key].connections(sid)}
        assert {p[:2] for p in people} == {"u:", "g:", "a:"}
        assert f"g:{first_id}" in people and f"u:{viewer.id}" in people
        for ws in sockets:
            await ws.close()
    assert await settled_count(watcher, seen) == 0
    await watcher.close()


def _guest_cookie(res: aiohttp.ClientResponse) -> SimpleCookie | None:
    values = res.headers.getall("Set-Cookie", [])
    cookies = [SimpleCookie(v) for v in values if v.startswith(f"{GUEST_COOKIE}=")]
    assert len(cookies) <= 1
    return cookies[0] if cookies else None


async def test_pages_hand_out_the_guest_cookie_that_room_sockets_then_carry(api: Api) -> None:
    """A browser loading the watch page gets its signed guest id as an HttpOnly cookie,
    once, and sends it on the room socket's upgrade (same origin)."""
    host: Account = await api.signup("host")
    sid = int((await api.live_session(host))["id"])
    client, guests = api.client, GuestIds(TEST_SECRET)
    res = await client.get(f"/watch/{sid}")
    assert res.status == 200
    cookie = _guest_cookie(res)
    assert cookie is not None
    morsel = cookie[GUEST_COOKIE]
    guest_id = guests.verify(morsel.value)
    assert guest_id is not None
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    assert int(morsel["max-age"]) >= 30 * 86400
    assert not morsel["secure"]  # plain HTTP here; HTTPS gets Secure
    # the browser keeps it: the next page load does not hand out another
    again = await client.get("/")
    assert again.status == 200 and _guest_cookie(again) is None

    ws, _ = await connect(client, sid)  # the test client's cookie jar sends it
    (conn,) = client.app[hub_key].connections(sid)
    assert conn.member == f"g:{guest_id}"
    await ws.close()


async def test_the_guest_endpoint_gives_a_cookie_unless_a_valid_one_came(api: Api) -> None:
    guests = GuestIds(TEST_SECRET)
    async with aiohttp.ClientSession() as http:  # no cookie jar shared with anyone
        url = api.client.make_url("/api/auth/guest")
        cases: list[tuple[dict[str, Any] | None, bool]] = [
            (None, True),
            ({"Cookie": f"{GUEST_COOKIE}=forged.value"}, True),
            ({"Cookie": f"{GUEST_COOKIE}={guests.issue()}"}, False),
        ]
        for headers, gets_one in cases:
            async with http.post(url, headers=headers) as res:
                assert res.status == 204
                cookie = _guest_cookie(res)
                assert (cookie is not None) == gets_one, headers
                if cookie is not None:
                    assert guests.verify(cookie[GUEST_COOKIE].value) is not None


async def test_brands_and_agencies_following_a_show_are_not_its_viewers(api: Api) -> None:
    """The brand console follows the rooms of the shows that carry its products (their
    stock events): those sockets are not the show's audience; a viewer's is."""
    sid, watcher = await host_watching(api)
    hub = api.client.app[hub_key]
    brand, agency = await api.signup("brand"), await api.signup("agency")
    followers = [(await connect(api.client, sid, who))[0] for who in (brand, agency)]
    assert hub.local_sockets(sid) == 3
    assert hub.local_viewers(sid) == 0
    viewer = await api.signup("viewer")
    ws, _ = await connect(api.client, sid, viewer)
    seen: list[int] = []
    assert await settled_count(watcher, seen) == 1
    assert hub.local_viewers(sid) == 1
    for socket in (*followers, ws, watcher):
        await socket.close()
