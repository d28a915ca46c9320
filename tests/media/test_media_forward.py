"""Several workers, one media home (``media.forward``): a worker without peers forwards
WHIP/WHEP, downloads and media calls to the home, and the media flows to the home.

Both apps run in this test process on their own ports (the ``--workers`` processes,
which share one port, are in tests/integration/test_workers.py), over one PostgreSQL
schema and one Redis prefix, with real aiortc peers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from support import Account, Api, Posted, backend_settings, drop_backend_state, free_port, poster

from app import create_app, db_key, media_key
from live.models import WatchInterval
from media.forward import INTERNAL_HEADER, MediaForwarder, internal_token
from media.service import MediaService

SDPFRAG = "application/trickle-ice-sdpfrag"


@dataclass
class Pair:
    home: web.Application
    home_api: Api
    edge_api: Api
    home_url: str
    secret: str

    @property
    def media(self) -> MediaService:
        return self.home[media_key]

    @property
    def edge(self) -> TestClient[Any, Any]:
        return self.edge_api.client


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    # two apps on one database: small pools (each holds 1.75 x db_pool_size connections)
    settings = replace(
        backend_settings("postgres-redis", tmp_path), audience_sample_s=0, db_pool_size=4
    )
    home = create_app(settings)
    async with TestClient(TestServer(home, host="127.0.0.1")) as home_client:
        home_url = str(home_client.make_url("")).rstrip("/")
        edge = create_app(replace(settings, media_home=home_url))
        assert media_key not in edge  # the edge holds no peers
        async with TestClient(TestServer(edge, host="127.0.0.1")) as edge_client:
            yield Pair(home, Api(home_client), Api(edge_client), home_url, settings.secret)
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


async def test_whip_and_whep_through_a_worker_reach_the_home(pair: Pair, peers: Any) -> None:
    api, edge = pair.edge_api, pair.edge
    host = await api.signup("host")
    session_id = int((await api.live_session(host))["id"])
    viewer = await publish_and_watch(edge, peers, host, session_id)
    assert pair.media.is_live(session_id)
    assert pair.media.viewer_count(session_id) == 1

    # the 201 as the home gave it, CORS headers once
    posted = viewer.resource
    assert isinstance(posted, Posted)
    assert posted.location.startswith(f"/whep/{session_id}/")
    assert posted.headers.getall("Access-Control-Allow-Origin") == ["*"]
    assert "ETag" in posted.headers["Access-Control-Expose-Headers"]

    # trickle ICE and DELETE on the resource, through the worker
    res = await edge.patch(
        posted.location, data="a=end-of-candidates\r\n", headers={"Content-Type": SDPFRAG}
    )
    assert res.status == 204, await res.text()
    res = await edge.delete(posted.location)
    assert res.status == 200
    assert pair.media.viewer_count(session_id) == 0
    res = await edge.delete(posted.location)
    assert res.status == 404
    assert (await res.json())["error"]["code"] == "not_found"

    # the home's refusals come back unchanged: a second publisher
    second = peers.publisher()
    res = await edge.post(
        f"/whip/{session_id}",
        data=await second.offer(),
        headers={"Content-Type": "application/sdp", **host.headers},
    )
    assert res.status == 409
    assert (await res.json())["error"]["code"] == "publisher_exists"

    # the session ends through the worker: the home drops the publisher and the viewer
    # left before is recorded as deleted, the one still watching as ended (not "lost")
    late = peers.viewer()
    await late.connect(poster(edge, f"/whep/{session_id}"))
    await late.wait_for("video", decoded=5, within_s=15)
    await api.call("POST", f"/api/sessions/{session_id}/end", host, expect=200)
    assert not pair.media.is_live(session_id)
    assert pair.media.session_ids() == []
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


async def test_media_control_calls_reach_the_home(pair: Pair, peers: Any) -> None:
    api, edge = pair.edge_api, pair.edge
    host = await api.signup("host")
    buyer = await api.signup("viewer")
    session_id = int((await api.live_session(host))["id"])
    forwarder = MediaForwarder(pair.home_url, internal_token(pair.secret))
    try:
        assert await forwarder.media_time(session_id) is None  # nothing recorded yet
        viewer = await publish_and_watch(edge, peers, host, session_id)
        media_time = await forwarder.media_time(session_id)
        assert media_time is not None and media_time >= 0

        posted = viewer.resource
        assert isinstance(posted, Posted)
        resource_id = posted.location.rsplit("/", 1)[1]
        assert await forwarder.identify_viewer(session_id, resource_id, buyer.id)
        assert not await forwarder.identify_viewer(session_id, resource_id, buyer.id)
        assert not await forwarder.identify_viewer(session_id + 1, resource_id, buyer.id)
    finally:
        await forwarder.close()


async def test_internal_routes_need_the_workers_token(pair: Pair) -> None:
    client = pair.home_api.client
    for headers in ({}, {INTERNAL_HEADER: "0" * 64}, {INTERNAL_HEADER: pair.secret}):
        res = await client.post("/internal/media/1/end", headers=headers)
        assert res.status == 403
        assert (await res.json())["error"]["code"] == "internal_only"
    token = {INTERNAL_HEADER: internal_token(pair.secret)}
    res = await client.post("/internal/media/1/identify", json={"user_id": 1}, headers=token)
    assert res.status == 422
    res = await client.get("/internal/media/x/time", headers=token)
    assert res.status == 404


async def test_worker_errors_carry_cors_and_a_down_home_is_a_503(
    pair: Pair, tmp_path: Path
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
    for size in (30_000, 200_000):  # the body streams through: the home's limit applies
        res = await edge.post(
            f"/whep/{session_id}", data=b"v" * size, headers={"Content-Type": "application/sdp"}
        )
        assert res.status == 413
        assert (await res.json())["error"]["code"] == "sdp_too_large"

    settings = replace(
        backend_settings("postgres-redis", tmp_path / "down"),
        media_home=f"http://127.0.0.1:{free_port()}",  # nobody listens there
        db_pool_size=4,
    )
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as lonely:
        res = await lonely.post("/whep/1", data="v=0", headers={"Content-Type": "application/sdp"})
        assert res.status == 503
        assert res.headers["Retry-After"] == "2"
        assert res.headers["Access-Control-Allow-Origin"] == "*"
        assert (await res.json())["error"]["code"] == "media_unavailable"
        # the rest of the API does not need the home, ending a session included
        api = Api(lonely)
        host = await api.signup("host")
        session_id = int((await api.live_session(host))["id"])
        await api.call("POST", f"/api/sessions/{session_id}/end", host, expect=200)
    await drop_backend_state(settings)
