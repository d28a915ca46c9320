"""Several workers (``media.cluster``): the media home (worker 0) holds the publisher;
another worker forwards WHIP and the downloads to it, serves its own WHEP viewers from
one pull of the session, and media calls reach whichever worker holds what they name.

Both apps run in this test process on their own ports (the ``--workers`` processes,
which share one port, are in tests/integration/test_workers.py), over one PostgreSQL
schema and one Redis prefix, with real aiortc peers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from support import (
    Account,
    Api,
    Posted,
    backend_settings,
    drop_backend_state,
    free_port,
    guest_cookie,
    poster,
)

from app import Settings, create_app, db_key, redis_key
from live.models import WatchInterval
from media.feature import audience_key, media_key
from media.forward import INTERNAL_HEADER, MediaForwarder, internal_token
from media.placement import LoadBoard, WorkerLoad
from media.service import MediaService
from media.viewer_routing import PLACED_HEADER

SDPFRAG = "application/trickle-ice-sdpfrag"


@dataclass
class Pair:
    home: web.Application
    edge_app: web.Application
    home_api: Api
    edge_api: Api
    home_url: str
    edge_url: str
    settings: Settings

    @property
    def media(self) -> MediaService:
        return self.home[media_key]

    @property
    def edge_media(self) -> MediaService:
        return self.edge_app[media_key]

    @property
    def edge(self) -> TestClient[Any, Any]:
        return self.edge_api.client


@pytest.fixture
async def pair(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    """The home and one edge; ``indirect`` parametrization adds that many workers to
    their configuration that nobody runs."""
    # two apps on one database: small pools (each holds 1.75 x db_pool_size connections)
    settings = backend_settings("postgres-redis", tmp_path).model_copy(
        update={
            "audience_sample_s": 0,
            "db_pool_size": 4,
            "media_pull_linger_s": 0.3,
            "media_max_viewers_per_worker": 1,
        }
    )
    ports = free_port(), free_port()
    absent = tuple(free_port() for _ in range(getattr(request, "param", 0)))
    urls = tuple(f"http://127.0.0.1:{port}" for port in (*ports, *absent))
    home = create_app(settings.model_copy(update={"media_workers": urls, "media_worker": 0}))
    edge = create_app(settings.model_copy(update={"media_workers": urls, "media_worker": 1}))
    async with (
        TestClient(TestServer(home, host="127.0.0.1", port=ports[0])) as home_client,
        TestClient(TestServer(edge, host="127.0.0.1", port=ports[1])) as edge_client,
    ):
        yield Pair(home, edge, Api(home_client), Api(edge_client), urls[0], urls[1], settings)
    await drop_backend_state(settings)


async def publish_and_watch(
    edge: TestClient[Any, Any], peers: Any, host: Account, session_id: int
) -> Any:
    """A publisher and a guest viewer, both through ``edge``; returns the viewer once
    its media arrives."""
    async with asyncio.timeout(40):
        pub = peers.publisher()
        await pub.connect(poster(edge, f"/whip/{session_id}", host))
        viewer = peers.viewer()
        await viewer.connect(poster(edge, f"/whep/{session_id}"))
        await viewer.wait_for("video", decoded=30, within_s=15)
        await viewer.wait_for("audio", decoded=10, within_s=5)
    return viewer


async def relayed_by_home(pair: Pair, session_id: int) -> None:
    """Until the home's load report says it holds the session's publisher."""
    board = LoadBoard(pair.home[redis_key], pair.settings.redis_prefix)  # type: ignore[arg-type]
    for _ in range(40):
        loads = await board.loads()
        if 0 in loads and session_id in loads[0].sessions:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the home never reported session {session_id}")


async def published(pair: Pair, peers: Any) -> tuple[Account, int]:
    """A host and their live session, published through the edge (WHIP is forwarded to
    the home)."""
    host = await pair.edge_api.signup("host")
    session_id = int((await pair.edge_api.live_session(host))["id"])
    async with asyncio.timeout(20):
        await peers.publisher().connect(poster(pair.edge, f"/whip/{session_id}", host))
    return host, session_id


async def test_viewers_are_placed_on_the_origin_then_on_a_worker_pulling_from_it(
    pair: Pair, peers: Any
) -> None:
    api, edge = pair.edge_api, pair.edge
    host, session_id = await published(pair, peers)
    async with asyncio.timeout(40):
        await relayed_by_home(pair, session_id)
        # each worker takes one viewer (the cap): the first goes to the origin, which
        # has the stream; the second to the other worker, which pulls it
        first, second = peers.viewer(), peers.viewer()
        cookies = [guest_cookie(), guest_cookie()]  # two people: a guest cookie each
        for viewer, cookie in zip((first, second), cookies, strict=True):
            await viewer.connect(poster(edge, f"/whep/{session_id}", None, cookie))
        for viewer in (first, second):
            await viewer.wait_for("video", decoded=30, within_s=15)
            await viewer.wait_for("audio", decoded=10, within_s=5)
    assert pair.media.is_live(session_id)
    assert pair.media.viewer_count(session_id) == 1
    assert pair.edge_media.viewer_count(session_id) == 1
    assert pair.media.pull_count(session_id) == 1  # counted nowhere as a viewer
    # the stats count two viewers, as one worker holding both would: each worker
    # records its own, and the pull is nobody
    for app in (pair.home, pair.edge_app):
        await app[audience_key].sample()
    stats = await api.call("GET", f"/api/sessions/{session_id}/stats", host, expect=200)
    audience = stats["audience"]
    assert audience["viewers"] == 2
    assert sum(c["joins"] for c in audience["curve"]) == 2
    # the edge passed the guest's cookie on with the offer: the origin's viewer is its
    async with pair.home[db_key].read() as db:
        query = select(WatchInterval.viewer).where(WatchInterval.session_id == session_id)
        people = set(await db.scalars(query))
    assert people == {"g:" + c["Cookie"].split("=", 1)[1].split(".")[0] for c in cookies}
    assert sum(c["media_viewers"] for c in audience["curve"]) == 2  # one sample each
    assert pair.edge_media.is_pulling(session_id)
    locations = [v.resource.location for v in (first, second)]
    assert locations[0].startswith(f"/whep/{session_id}/w0.")
    assert locations[1].startswith(f"/whep/{session_id}/w1.")
    assert first.resource.headers.getall("Access-Control-Allow-Origin") == ["*"]
    assert "ETag" in second.resource.headers["Access-Control-Expose-Headers"]

    # both workers are full: the next viewer is told to come back
    third = peers.viewer()
    res = await edge.post(
        f"/whep/{session_id}",
        data=await third.offer(),
        headers={"Content-Type": "application/sdp"},
    )
    assert res.status == 503
    assert res.headers["Retry-After"] == "2"
    assert res.headers["Access-Control-Allow-Origin"] == "*"
    assert (await res.json())["error"]["code"] == "media_full"

    # trickle ICE and DELETE on the edge's viewer through the *home* reach the edge
    home = pair.home_api.client
    res = await home.patch(
        locations[1], data="a=end-of-candidates\r\n", headers={"Content-Type": SDPFRAG}
    )
    assert res.status == 204, await res.text()
    assert res.headers.getall("Access-Control-Allow-Origin") == ["*"]
    res = await home.delete(locations[1])
    assert res.status == 200
    assert pair.edge_media.viewer_count(session_id) == 0
    res = await home.delete(locations[1])
    assert res.status == 404
    assert (await res.json())["error"]["code"] == "not_found"
    # the edge lets its idle pull go after the linger, and the home forgets it
    for _ in range(50):
        if pair.media.pull_count(session_id) == 0 and not pair.edge_media.is_pulling(session_id):
            break
        await asyncio.sleep(0.1)
    assert pair.media.pull_count(session_id) == 0
    assert not pair.edge_media.is_pulling(session_id)
    assert first.stats["video"].decoded > 30  # the origin's own viewer never noticed


@pytest.mark.parametrize("pair", [1], indirect=True)
async def test_a_worker_that_takes_no_connection_yet_is_passed_over(pair: Pair, peers: Any) -> None:
    """A restarted worker reports its load before it listens: a viewer placed on it is
    placed on the next worker (it was answered 503 media_unavailable)."""
    _host, session_id = await published(pair, peers)
    board = LoadBoard(pair.home[redis_key], pair.settings.redis_prefix)  # type: ignore[arg-type]
    viewers = [peers.viewer(), peers.viewer()]
    async with asyncio.timeout(40):
        await relayed_by_home(pair, session_id)
        for viewer in viewers:
            # worker 2 relays the session and has room, by its record; nothing listens
            absent = WorkerLoad(2, 0, 0, 0.0, "serving", (session_id,), pid=1)
            await board.report(absent)
            await viewer.connect(poster(pair.edge, f"/whep/{session_id}", None, guest_cookie()))
        for viewer in viewers:
            await viewer.wait_for("video", decoded=30, within_s=15)
    owners = sorted(v.resource.location.split("/")[-1].split(".")[0] for v in viewers)
    assert owners == ["w0", "w1"]


async def test_a_worker_serves_its_viewers_from_one_pull_of_the_home(
    pair: Pair, peers: Any
) -> None:
    api, edge = pair.edge_api, pair.edge
    host, session_id = await published(pair, peers)
    async with asyncio.timeout(40):
        # the home is full (a viewer of another session, placed there as a worker
        # would), so viewers go to the edge
        other = int((await api.live_session(host, "Other show"))["id"])
        elsewhere = peers.viewer()
        res = await pair.home_api.client.post(
            f"/whep/{other}",
            data=await elsewhere.offer(),
            headers={
                "Content-Type": "application/sdp",
                PLACED_HEADER: "1",
                INTERNAL_HEADER: internal_token(pair.settings.secret),
            },
        )
        assert res.status == 201, await res.text()
        assert res.headers["Location"].startswith(f"/whep/{other}/w0.")
        viewer = peers.viewer()
        await viewer.connect(poster(edge, f"/whep/{session_id}"))
        await viewer.wait_for("video", decoded=30, within_s=15)
    assert viewer.resource.location.startswith(f"/whep/{session_id}/w1.")
    assert pair.media.pull_count(session_id) == 1

    # the home's refusals come back unchanged: a second publisher
    second = peers.publisher()
    res = await edge.post(
        f"/whip/{session_id}",
        data=await second.offer(),
        headers={"Content-Type": "application/sdp", **host.headers},
    )
    assert res.status == 409
    assert (await res.json())["error"]["code"] == "publisher_exists"

    # the session ends through the worker: the home drops the publisher and the edge
    # its viewer; the viewer deleted before is recorded as deleted, the one still
    # watching as ended (not "lost": the edge's leaves are in before the home closes)
    res = await edge.delete(viewer.resource.location)
    assert res.status == 200
    late = peers.viewer()
    await late.connect(poster(edge, f"/whep/{session_id}"))
    await late.wait_for("video", decoded=5, within_s=15)
    assert late.resource.location.startswith(f"/whep/{session_id}/w1.")
    await api.call("POST", f"/api/sessions/{session_id}/end", host, expect=200)
    assert not pair.media.is_live(session_id)
    assert session_id not in pair.media.session_ids()
    assert session_id not in pair.edge_media.session_ids()
    async with pair.home[db_key].read() as db:
        reasons = sorted(
            (
                await db.execute(
                    select(WatchInterval.reason).where(WatchInterval.session_id == session_id)
                )
            ).scalars()
        )
    assert reasons == ["deleted", "ended"]

    # the finished recording, with a Range request, through the worker
    res = await edge.get(f"/api/sessions/{session_id}/recording")
    assert res.status == 200, await res.text()
    whole = await res.read()
    assert res.content_type == "video/webm" and len(whole) > 1000
    res = await edge.get(f"/api/sessions/{session_id}/recording", headers={"Range": "bytes=10-25"})
    assert res.status == 206
    assert res.headers["Content-Range"] == f"bytes 10-25/{len(whole)}"
    assert await res.read() == whole[10:26]


async def test_media_calls_reach_the_worker_holding_what_they_name(pair: Pair, peers: Any) -> None:
    api, edge = pair.edge_api, pair.edge
    host = await api.signup("host")
    buyer = await api.signup("viewer")
    session_id = int((await api.live_session(host))["id"])
    forwarder = MediaForwarder(pair.home_url, internal_token(pair.settings.secret))
    try:
        assert await forwarder.media_time(session_id) is None  # nothing recorded yet
        viewer = await publish_and_watch(edge, peers, host, session_id)
        media_time = await forwarder.media_time(session_id)  # the home records
        assert media_time is not None and media_time >= 0
        assert pair.edge_media.media_time(session_id) is None  # the edge records nothing
    finally:
        await forwarder.close()

    # the guest viewer (held by the edge) is claimed by a room socket on the home
    posted = viewer.resource
    assert isinstance(posted, Posted)
    resource_id = posted.location.rsplit("/", 1)[1]
    home = pair.home_api.client

    async def identify(token: str, resource: str) -> str:
        headers = {"Authorization": f"Bearer {token}"}
        async with home.ws_connect(f"/api/sessions/{session_id}/ws", headers=headers) as ws:
            assert (await ws.receive_json())["type"] == "hello"
            await ws.send_json({"type": "watch.identify", "resource_id": resource, "ref": 1})
            await ws.send_json({"type": "ping", "ref": 2})
            while True:
                msg = await ws.receive_json(timeout=5)
                if msg["type"] == "error" and msg["ref"] == 1:
                    return str(msg["code"])
                if msg["type"] == "pong":
                    return "accepted"

    assert await identify(buyer.token, "w1.nope") == "not_found"
    assert await identify(buyer.token, resource_id) == "accepted"
    assert await identify(buyer.token, resource_id) == "not_found"  # claimed once


async def test_internal_routes_need_the_workers_token(pair: Pair) -> None:
    client = pair.home_api.client
    for headers in ({}, {INTERNAL_HEADER: "0" * 64}, {INTERNAL_HEADER: pair.settings.secret}):
        res = await client.post("/internal/media/1/end", headers=headers)
        assert res.status == 403
        assert (await res.json())["error"]["code"] == "internal_only"
    token = {INTERNAL_HEADER: internal_token(pair.settings.secret)}
    res = await client.post("/internal/media/1/identify", json={"user_id": 1}, headers=token)
    assert res.status == 422
    res = await client.get("/internal/media/x/time", headers=token)
    assert res.status == 404


async def test_worker_errors_carry_cors_and_a_down_home_is_a_503(
    pair: Pair, tmp_path: Path, peers: Any
) -> None:
    edge = pair.edge
    res = await edge.post(
        "/whep/1", data="v=0", headers={"Authorization": "Bearer nope", "Content-Type": "x"}
    )
    assert res.status == 401  # this worker's own auth check
    assert res.headers["Access-Control-Allow-Origin"] == "*"
    res = await edge.options("/whep/1")
    assert res.status == 204
    assert res.headers["Accept-Post"] == "application/sdp"
    host = await pair.edge_api.signup("host")
    session_id = int((await pair.edge_api.live_session(host))["id"])
    for kind in ("whep", "whip"):  # the edge's own limit, and the home's (streamed to it)
        for size in (30_000, 200_000):
            res = await edge.post(
                f"/{kind}/{session_id}",
                data=b"v" * size,
                headers={"Content-Type": "application/sdp", **host.headers},
            )
            assert res.status == 413
            assert (await res.json())["error"]["code"] == "sdp_too_large"

    settings = backend_settings("postgres-redis", tmp_path / "down").model_copy(
        update={
            "media_workers": (f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"),
            "media_worker": 1,
            "db_pool_size": 4,
        }
    )
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as lonely:
        api = Api(lonely)
        host = await api.signup("host")
        session_id = int((await api.live_session(host))["id"])
        lonely_media = lonely.app[media_key]
        for kind, peer in (("whep", peers.viewer()), ("whip", peers.publisher())):
            headers = {"Content-Type": "application/sdp", **host.headers}
            res = await lonely.post(
                f"/{kind}/{session_id}", data=await peer.offer(), headers=headers
            )
            assert res.status == 503, kind
            assert res.headers["Retry-After"] == "2"
            assert res.headers["Access-Control-Allow-Origin"] == "*"
            assert (await res.json())["error"]["code"] == "media_unavailable"
        # nothing was left behind: no viewer, no pull, no session
        assert lonely_media.viewer_count(session_id) == 0
        assert not lonely_media.is_pulling(session_id)
        # a resource naming the dead worker: 503; naming no worker there is: 404
        res = await lonely.delete(f"/whep/{session_id}/w0.abc")
        assert res.status == 503 and res.headers["Retry-After"] == "2"
        assert (await res.json())["error"]["code"] == "media_unavailable"
        for resource in ("w7.abc", "abc"):
            res = await lonely.delete(f"/whep/{session_id}/{resource}")
            assert res.status == 404, resource
            assert (await res.json())["error"]["code"] == "not_found"
        # the rest of the API does not need the home, ending a session included
        await api.call("POST", f"/api/sessions/{session_id}/end", host, expect=200)
    await drop_backend_state(settings)
