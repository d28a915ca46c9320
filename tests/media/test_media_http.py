"""WHIP/WHEP over HTTP through the real app: aiortc peers on 127.0.0.1 talk to the
server's endpoints, the room log shows live.started / live.paused, recordings are
served with Range requests.

Every test runs on both backends (the media test costs ~2.5 s on each); with
postgres-redis, live.started / live.paused go through the Redis room log.
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import time
from collections.abc import AsyncIterator
from typing import Any

import av
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDictProxy
from support import Account, Api, Posted, poster, room_events

from app import Settings, create_app, room_log_key
from live.errors import (
    InvalidInput,
    LiveshelfError,
    NotAcceptable,
    NotFound,
    PreconditionFailed,
    RateLimited,
    TooLarge,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
)
from live.http import error_response
from media.config import MediaConfig
from media.feature import media_key
from media.handlers import MediaHandlers
from media.protocol import Resource
from media.tokens import MediaTokens

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"
EXPOSED = {"location", "etag", "link", "accept-patch", "liveshelf-recording"}
CUES_ID = b"\x1c\x53\xbb\x6b"  # the Matroska Cues element: the seek index


async def post_sdp(
    client: TestClient[Any, Any],
    path: str,
    body: Any,
    account: Account | None = None,
    content_type: str = SDP,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any] | str, CIMultiDictProxy[str]]:
    all_headers = {"Content-Type": content_type, **(account.headers if account else {})}
    all_headers.update(headers or {})
    res = await client.post(path, data=body, headers=all_headers)
    text = await res.text()
    parsed = orjson.loads(text) if res.content_type == "application/json" else text
    return res.status, parsed, res.headers


async def request(
    client: TestClient[Any, Any],
    method: str,
    path: str,
    account: Account | None = None,
    *,
    body: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str | None, CIMultiDictProxy[str]]:
    """(status, error code or None, headers)."""
    all_headers = dict(account.headers if account else {})
    all_headers.update(headers or {})
    res = await client.request(method, path, data=body, headers=all_headers)
    text = await res.text()
    code = orjson.loads(text)["error"]["code"] if res.content_type == "application/json" else None
    return res.status, code, res.headers


def error_code(body: dict[str, Any] | str) -> str:
    assert isinstance(body, dict), body
    return str(body["error"]["code"])


def trickle_fragment(offer: str, ufrag: str | None = None) -> str:
    own_ufrag = re.search(r"a=ice-ufrag:(\S+)", offer)
    own_pwd = re.search(r"a=ice-pwd:(\S+)", offer)
    assert own_ufrag and own_pwd
    return (
        f"a=ice-ufrag:{ufrag or own_ufrag.group(1)}\r\n"
        f"a=ice-pwd:{own_pwd.group(1)}\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"
        "a=mid:0\r\n"
        "a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host\r\n"
        "a=end-of-candidates\r\n"
    )


async def wait_for_event(
    app: web.Application, session_id: int, type_: str, within_s: float = 5.0
) -> dict[str, Any]:
    async with asyncio.timeout(within_s):
        while True:
            for event in await room_events(app[room_log_key], session_id):
                if event["type"] == type_:
                    return event
            await asyncio.sleep(0.05)


async def recording_status(api: Api, session_id: int) -> dict[str, Any]:
    """The ``recording`` part of the session's details (what hosts and viewers read)."""
    return dict((await api.call("GET", f"/api/sessions/{session_id}", expect=200))["recording"])


def noting_poster(posted: list[Posted], *args: Any) -> Any:
    """``poster(*args)`` that also keeps each answer (to read its headers)."""
    post = poster(*args)

    async def noting(offer: str) -> Posted:
        posted.append(await post(offer))
        return posted[-1]

    return noting


@pytest.fixture
async def host(api: Api) -> Account:
    return await api.signup("host")


@pytest.fixture
async def session_id(api: Api, host: Account) -> int:
    return int((await api.live_session(host))["id"])


# -- the whole path: aiortc publisher -> server -> three aiortc viewers ----------------


async def test_publish_and_three_viewers_over_http(
    api: Api, app: web.Application, host: Account, session_id: int, peers: Any
) -> None:
    client = api.client
    viewer_account = await api.signup("viewer")
    assert await recording_status(api, session_id) == {"state": "none"}  # nothing published
    async with asyncio.timeout(40):
        pub = peers.publisher()
        await pub.connect(poster(client, f"/whip/{session_id}", host))
        assert isinstance(pub.resource, Posted)
        assert "Liveshelf-Recording" not in pub.resource.headers  # recorded: nothing to say
        assert await recording_status(api, session_id) == {"state": "recording"}
        whip_location = pub.resource.location

        # two guests (no token) and a signed-in viewer
        viewers = [peers.viewer() for _ in range(3)]
        for viewer, account in zip(viewers, (None, viewer_account, None), strict=True):
            await viewer.connect(poster(client, f"/whep/{session_id}", account))
        for viewer in viewers:
            await viewer.wait_for("video", decoded=60, within_s=15)
            await viewer.wait_for("audio", decoded=10, within_s=5)
            assert viewer.stats["video"].first_is_keyframe is True
        assert app[media_key].viewer_count(session_id) == 3
        started = await wait_for_event(app, session_id, "live.started")

        status, code, _ = await request(client, "DELETE", whip_location, host)
        assert (status, code) == (200, None)
        paused = await wait_for_event(app, session_id, "live.paused")
        assert paused["data"] == {"reason": "deleted"}
        assert started["seq"] < paused["seq"]
        types = [e["type"] for e in await room_events(app[room_log_key], session_id)]
        assert types.count("live.started") == 1

        # a live session's recording is already readable; ending it finishes the file
        res = await client.get(f"/api/sessions/{session_id}/recording")
        assert res.status == 200
        await api.call("POST", f"/api/sessions/{session_id}/end", host, expect=200)

    assert await recording_status(api, session_id) == {"state": "complete"}
    res = await client.get(f"/api/sessions/{session_id}/recording")
    assert res.status == 200, await res.text()
    assert "Liveshelf-Recording" not in res.headers  # whole
    assert res.headers["Accept-Ranges"] == "bytes"
    assert res.content_type == "video/webm"  # VP8 + Opus: written as WebM
    whole = await res.read()
    res = await client.get(
        f"/api/sessions/{session_id}/recording", headers={"Range": "bytes=100-1123"}
    )
    assert res.status == 206
    assert res.headers["Content-Range"] == f"bytes 100-1123/{len(whole)}"
    assert await res.read() == whole[100:1124]

    with av.open(io.BytesIO(whole)) as container:
        kinds = {s.type: s.codec_context.name for s in container.streams}
        assert kinds == {"video": "vp8", "audio": "opus"}
        assert sum(1 for _ in container.decode(video=0)) >= 60

    res = await client.get(f"/api/sessions/{session_id}/cover.jpg")
    assert res.status == 200 and res.content_type == "image/jpeg"
    with av.open(io.BytesIO(await res.read())) as image:
        assert next(image.decode(video=0)).width == 320

    # the ended session takes no more media
    for kind in ("whip", "whep"):
        status, body, _ = await post_sdp(
            client, f"/{kind}/{session_id}", await peers.publisher().offer(), host
        )
        assert (status, error_code(body)) == (409, "session_ended")


# -- WHIP resource semantics and refusals -----------------------------------------------


async def test_whip_auth_and_bad_bodies(
    api: Api, host: Account, session_id: int, peers: Any
) -> None:
    client = api.client
    other_host = await api.signup("host")
    viewer = await api.signup("viewer")
    offer = await peers.publisher().offer()
    path = f"/whip/{session_id}"

    cases: list[tuple[Account | None, dict[str, str] | None, int, str]] = [
        (None, None, 401, "sign_in_required"),
        (None, {"Authorization": "Bearer not-a-token"}, 401, "invalid_token"),
        (other_host, None, 403, "not_your_session"),
        (viewer, None, 403, "role_not_allowed"),
    ]
    for account, headers, status, code in cases:
        got, body, res_headers = await post_sdp(client, path, offer, account, headers=headers)
        assert (got, error_code(body)) == (status, code)
        assert res_headers["Access-Control-Allow-Origin"] == "*"  # errors carry CORS too
    got, body, _ = await post_sdp(client, "/whip/987654", offer, host)
    assert (got, error_code(body)) == (404, "session_not_found")
    # the router's own refusals on these paths carry CORS too
    for method, wrong, expected in (
        ("GET", path, (405, "method_not_allowed")),
        ("POST", f"{path}/a/b", (404, "not_found")),
    ):
        got_status, got_code, res_headers = await request(client, method, wrong, host)
        assert (got_status, got_code) == expected, wrong
        assert res_headers["Access-Control-Allow-Origin"] == "*"
    listing = await client.get("/api/sessions")
    assert listing.status == 200
    assert "Access-Control-Allow-Origin" not in listing.headers  # only WHIP/WHEP get it

    got, body, headers = await post_sdp(client, path, offer, host, content_type="text/plain")
    assert (got, error_code(body)) == (415, "unsupported_media_type")
    assert headers["Access-Control-Allow-Origin"] == "*"
    got, body, _ = await post_sdp(client, path, "hello, I am not SDP", host)
    assert (got, error_code(body)) == (400, "invalid_sdp")
    got, body, _ = await post_sdp(client, path, b"v=0\r\n\xff\xfe", host)
    assert (got, error_code(body)) == (400, "invalid_sdp")
    oversized = offer + "a=x-padding:" + "x" * 30_000 + "\r\n"
    got, body, _ = await post_sdp(client, path, oversized, host)
    assert (got, error_code(body)) == (413, "sdp_too_large")

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: caught while reading
        for _ in range(40):
            yield b"a=x-padding:" + b"x" * 1000 + b"\r\n"

    got, body, _ = await post_sdp(client, path, chunked(), host)
    assert (got, error_code(body)) == (413, "sdp_too_large")
    # a WHEP-style offer (receive only) is no ingest
    got, body, _ = await post_sdp(client, path, await peers.viewer().offer(), host)
    assert (got, error_code(body)) == (400, "invalid_sdp")


async def test_media_refusals_have_the_api_error_shape(
    settings: Settings, aiohttp_client: Any, peers: Any
) -> None:
    """WHIP/WHEP refusals leave as every API error does (``live.http.error_response``):
    ``{"error": {"code", "message"}}`` and nothing else, the kind's status, the CORS
    headers, ``Retry-After`` on a 503 and not on the other refusals."""
    capped = settings.model_copy(
        update={"limits": True, "media_max_viewers_per_worker": 3, "max_peers_per_user": 1}
    )
    client = await aiohttp_client(create_app(capped))
    api = Api(client)
    host, fan = await api.signup("host"), await api.signup("viewer")
    session_id = int((await api.live_session(host))["id"])
    whep = f"/whep/{session_id}"

    async def refused(res: Any, kind: type[LiveshelfError], code: str) -> None:
        body = orjson.loads(await res.read())
        message = body["error"]["message"]
        assert body == {"error": {"code": code, "message": message}}, body
        assert isinstance(message, str) and message
        expected = error_response(kind(code, message))
        assert (res.status, res.content_type) == (expected.status, "application/json"), code
        assert res.headers.get("Retry-After") == expected.headers.get("Retry-After"), code
        assert ("Retry-After" in res.headers) == (res.status == 503), code
        assert res.headers["Access-Control-Allow-Origin"] == "*", code

    def offer_headers(who: Account | None = None, **more: str) -> dict[str, str]:
        return {"Content-Type": SDP, **(who.headers if who else {}), **more}

    vp8 = peers.viewer(video_codecs=("video/VP8",))
    first = await client.post(whep, data=await vp8.offer(), headers=offer_headers(fan))
    assert first.status == 201  # the session's video codec is VP8 from now on
    resource, etag = first.headers["Location"], first.headers["ETag"]
    fragment = trickle_fragment(await vp8.offer())
    frag_headers = {"Content-Type": SDPFRAG}

    answers: list[tuple[Any, type[LiveshelfError], str]] = [
        (
            await client.post(whep, data=await peers.viewer().offer(), headers=offer_headers(fan)),
            RateLimited,
            "too_many_peers",
        ),
        (
            await client.post(
                whep,
                data=await peers.viewer(video_codecs=("video/H264",)).offer(),
                headers=offer_headers(),
            ),
            NotAcceptable,
            "codec_mismatch",
        ),
        (
            await client.patch(
                resource, data=fragment, headers={**frag_headers, "If-Match": '"stale"'}
            ),
            PreconditionFailed,
            "etag_mismatch",
        ),
        (
            await client.patch(resource, data=fragment, headers={**frag_headers, "If-Match": "*"}),
            Unprocessable,
            "ice_restart_unsupported",
        ),
        (
            await client.patch(f"{whep}/nope", data=fragment, headers=frag_headers),
            NotFound,
            "not_found",
        ),
        (
            await client.post(whep, data="v=0", headers={"Content-Type": "text/plain"}),
            UnsupportedMediaType,
            "unsupported_media_type",
        ),
        (
            await client.post(f"/whip/{session_id}", data="hello", headers=offer_headers(host)),
            InvalidInput,
            "invalid_sdp",
        ),
        (
            await client.post(
                f"/whip/{session_id}", data="v=0\r\n" * 20_000, headers=offer_headers(host)
            ),
            TooLarge,
            "sdp_too_large",
        ),
    ]
    assert etag != '"stale"'
    for res, kind, code in answers:
        await refused(res, kind, code)
    for _ in range(2):  # up to the process's cap of 3 viewers
        more = await client.post(whep, data=await peers.viewer().offer(), headers=offer_headers())
        assert more.status == 201
    full = await client.post(whep, data=await peers.viewer().offer(), headers=offer_headers())
    await refused(full, Unavailable, "media_full")
    assert full.headers["Retry-After"] == "2"


async def test_whip_resource_lifecycle(
    api: Api, app: web.Application, host: Account, session_id: int, peers: Any
) -> None:
    client = api.client
    other_host = await api.signup("host")
    offer = await peers.publisher().offer()
    status, answer, headers = await post_sdp(client, f"/whip/{session_id}", offer, host)
    assert status == 201, answer
    assert isinstance(answer, str) and answer.startswith("v=0")
    assert headers["Content-Type"] == SDP
    assert "a=candidate:" in answer and " 127.0.0.1 " in answer
    location = headers["Location"]
    assert re.fullmatch(rf"/whip/{session_id}/[A-Za-z0-9_-]{{16,}}", location)
    etag = headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert headers["Accept-Patch"] == SDPFRAG
    assert headers.getall("Link", []) == []  # no ICE servers configured
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert {
        h.strip().lower() for h in headers["Access-Control-Expose-Headers"].split(",")
    } >= EXPOSED

    # one publisher per session
    status, body, _ = await post_sdp(
        client, f"/whip/{session_id}", await peers.publisher().offer(), host
    )
    assert (status, error_code(body)) == (409, "publisher_exists")

    fragment = trickle_fragment(offer)
    patch = {"Content-Type": SDPFRAG, "If-Match": etag}
    for account, headers_, expected in [
        (host, {"Content-Type": "application/sdp"}, (415, "unsupported_media_type")),
        (host, {**patch, "If-Match": '"stale"'}, (412, "etag_mismatch")),
        (host, {**patch, "If-Match": "*"}, (422, "ice_restart_unsupported")),
        (None, patch, (401, "sign_in_required")),
        (other_host, patch, (403, "not_your_session")),
    ]:
        got = await request(client, "PATCH", location, account, body=fragment, headers=headers_)
        assert got[:2] == expected
    restart = trickle_fragment(offer, ufrag="brandnewufrag")
    got = await request(client, "PATCH", location, host, body=restart, headers=patch)
    assert got[:2] == (422, "ice_restart_unsupported")
    got = await request(client, "PATCH", location, host, body=fragment, headers=patch)
    assert got[:2] == (204, None)
    got = await request(
        client, "PATCH", location, host, body=fragment, headers={"Content-Type": SDPFRAG}
    )
    assert got[:2] == (204, None)  # If-Match is optional for trickle

    # resources are found only under their own kind and session
    resource_id = location.rsplit("/", 1)[1]
    for path in (
        f"/whip/{session_id}/no-such-resource",
        f"/whep/{session_id}/{resource_id}",
        f"/whip/{int((await api.live_session(host))['id'])}/{resource_id}",
    ):
        got = await request(client, "PATCH", path, host, body=fragment, headers=patch)
        assert got[:2] == (404, "not_found"), path
        assert got[2]["Access-Control-Allow-Origin"] == "*"

    got = await request(client, "DELETE", location, other_host)
    assert got[:2] == (403, "not_your_session")
    got = await request(client, "DELETE", location, host)
    assert got[:2] == (200, None)
    assert not app[media_key].is_live(session_id)
    got = await request(client, "DELETE", location, host)
    assert got[:2] == (404, "not_found")
    got = await request(client, "PATCH", location, host, body=fragment, headers=patch)
    assert got[:2] == (404, "not_found")

    # the slot is free again
    status, body, _ = await post_sdp(
        client, f"/whip/{session_id}", await peers.publisher().offer(), host
    )
    assert status == 201, body


# -- WHEP access ---------------------------------------------------------------------


async def test_whep_access_and_resource(
    api: Api, host: Account, session_id: int, peers: Any
) -> None:
    client = api.client
    viewer = await api.signup("viewer")
    path = f"/whep/{session_id}"

    async def play(account: Account | None = None, **kwargs: Any) -> Any:
        return await post_sdp(
            client, kwargs.pop("path", path), await peers.viewer().offer(), account, **kwargs
        )

    status, answer, headers = await play()  # a guest: no token needed
    assert status == 201, answer
    location = headers["Location"]
    assert re.fullmatch(rf"/whep/{session_id}/[A-Za-z0-9_-]{{16,}}", location)
    assert (await play(viewer))[0] == 201
    status, body, _ = await play(headers={"Authorization": "Bearer forged"})
    assert (status, error_code(body)) == (401, "invalid_token")
    status, body, _ = await play(path="/whep/987654")
    assert (status, error_code(body)) == (404, "session_not_found")
    status, body, _ = await post_sdp(client, path, await peers.publisher().offer())
    assert (status, error_code(body)) == (400, "invalid_sdp")  # sends, receives nothing

    # a scheduled session: only its host may preview
    scheduled = await api.call("POST", "/api/sessions", host, json={"title": "later"}, expect=201)
    status, body, _ = await play(viewer, path=f"/whep/{scheduled['id']}")
    assert (status, error_code(body)) == (409, "session_not_live")
    assert (await play(host, path=f"/whep/{scheduled['id']}"))[0] == 201

    # a guest trickles and leaves; the resource is then gone
    offer = await peers.viewer().offer()
    status, _, headers = await post_sdp(client, path, offer)
    patch = {"Content-Type": SDPFRAG, "If-Match": headers["ETag"]}
    got = await request(
        client, "PATCH", headers["Location"], body=trickle_fragment(offer), headers=patch
    )
    assert got[:2] == (204, None)
    got = await request(
        client,
        "PATCH",
        f"/whip/{session_id}/{headers['Location'].rsplit('/', 1)[1]}",
        host,
        body=trickle_fragment(offer),
        headers=patch,
    )
    assert got[:2] == (404, "not_found")
    assert (await request(client, "DELETE", headers["Location"]))[:2] == (200, None)
    assert (await request(client, "DELETE", headers["Location"]))[:2] == (404, "not_found")

    await api.call("POST", f"/api/sessions/{session_id}/end", host, expect=200)
    # the end listener dropped the session's viewers
    assert (await request(client, "DELETE", location))[:2] == (404, "not_found")
    status, body, _ = await play()
    assert (status, error_code(body)) == (409, "session_ended")


# -- CORS, recordings, Link headers --------------------------------------------------------


async def test_cors_preflight(api: Api, session_id: int) -> None:
    for kind in ("whip", "whep"):
        res = await api.client.options(
            f"/{kind}/{session_id}",
            headers={
                "Origin": "https://studio.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert res.status == 204
        h = res.headers
        assert h["Access-Control-Allow-Origin"] == "*"
        assert "POST" in h["Access-Control-Allow-Methods"]
        assert h["Access-Control-Allow-Headers"] == "Authorization, Content-Type, If-Match"
        assert {x.strip().lower() for x in h["Access-Control-Expose-Headers"].split(",")} == EXPOSED
        assert h["Accept-Post"] == SDP

        res = await api.client.options(f"/{kind}/{session_id}/some-resource")
        assert res.status == 204
        h = res.headers
        assert h["Accept-Patch"] == SDPFRAG
        assert {m.strip() for m in h["Access-Control-Allow-Methods"].split(",")} >= {
            "PATCH",
            "DELETE",
        }
        assert h["Access-Control-Allow-Origin"] == "*"
    # other routes get no CORS headers from the media layer
    res = await api.client.get("/api/sessions")
    assert "Access-Control-Allow-Origin" not in res.headers


async def test_cors_origin_is_configurable(settings: Settings, aiohttp_client: Any) -> None:
    assert Settings.from_env({"LIVESHELF_SECRET": "s" * 32}).cors_origin == "*"
    env = {"LIVESHELF_SECRET": "s" * 32, "LIVESHELF_CORS_ORIGIN": "https://shop.example"}
    assert Settings.from_env(env).cors_origin == "https://shop.example"
    client = await aiohttp_client(
        create_app(settings.model_copy(update={"cors_origin": "https://shop.example"}))
    )
    res = await client.options("/whip/1")
    assert res.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Origin" in res.headers.getall("Vary", [])
    res = await client.post("/whep/1", data="v=0", headers={"Content-Type": SDP})
    assert res.status == 404
    assert res.headers["Access-Control-Allow-Origin"] == "https://shop.example"


async def test_an_ended_h264_show_is_served_as_mp4_even_after_a_crash(
    api: Api, app: web.Application, settings: Settings, host: Account, session_id: int, peers: Any
) -> None:
    client = api.client
    url = f"/api/sessions/{session_id}/recording"

    async def served_as(mime: str) -> bytes:
        async with asyncio.timeout(10):
            while True:
                res = await client.get(url)
                if res.status == 200 and res.content_type == mime:
                    return await res.read()
                await asyncio.sleep(0.05)

    async with asyncio.timeout(30):
        pub = peers.publisher(video_codec="video/H264")
        await pub.connect(poster(client, f"/whip/{session_id}", host))
        await served_as("video/x-matroska")  # live: the Matroska file being written
        await asyncio.sleep(1.5)
        await api.call("POST", f"/api/sessions/{session_id}/end", host, expect=200)
        first = await served_as("video/mp4")
        # A crash between the end and the copy leaves only the Matroska file: the
        # next request gets it, and the copy is made again.
        assert settings.recordings_dir is not None
        mp4 = settings.recordings_dir / f"session-{session_id}.mp4"
        mp4.unlink()
        res = await client.get(url)
        assert (res.status, res.content_type) == (200, "video/x-matroska")
        again = await served_as("video/mp4")
    assert again == first
    with av.open(io.BytesIO(again)) as container:
        kinds = {s.type: s.codec_context.name for s in container.streams}
        assert kinds == {"video": "h264", "audio": "opus"}
        assert sum(1 for _ in container.decode(video=0)) >= 30
    res = await client.get(url, headers={"Range": "bytes=0-99"})
    assert res.status == 206 and await res.read() == again[:100]


async def test_no_recording_or_cover(api: Api, host: Account, session_id: int) -> None:
    for what, code in (("recording", "no_recording"), ("cover.jpg", "no_cover")):
        status, got, _ = await request(api.client, "GET", f"/api/sessions/{session_id}/{what}")
        assert (status, got) == (404, code)
        status, got, _ = await request(api.client, "GET", f"/api/sessions/987654/{what}")
        assert (status, got) == (404, "session_not_found")


def test_link_headers_advertise_ice_servers() -> None:
    config = MediaConfig(ice_servers=("stun:stun.example.net:3478", "turn:turn.example.net"))
    handlers = MediaHandlers(None, None, config, tokens=MediaTokens("s" * 32))  # type: ignore[arg-type]
    response = handlers._created("whip", Resource("abc", "v=0\r\n", '"e"', 5, "publisher"))
    assert response.status == 201
    assert response.headers["Location"] == "/whip/5/abc"
    assert response.headers.getall("Link") == [
        '<stun:stun.example.net:3478>; rel="ice-server"',
        '<turn:turn.example.net>; rel="ice-server"',
    ]


async def test_one_process_takes_viewers_up_to_its_cap(
    settings: Settings, aiohttp_client: Any, peers: Any
) -> None:
    client = await aiohttp_client(
        create_app(settings.model_copy(update={"media_max_viewers_per_worker": 2}))
    )
    api = Api(client)
    host = await api.signup("host")
    session_id = int((await api.live_session(host))["id"])
    async with asyncio.timeout(30):
        first, second = peers.viewer(decode=False), peers.viewer(decode=False)
        await first.connect(poster(client, f"/whep/{session_id}"))
        await second.connect(poster(client, f"/whep/{session_id}"))
        status, body, headers = await post_sdp(
            client, f"/whep/{session_id}", await peers.viewer().offer()
        )
        assert (status, error_code(body)) == (503, "media_full")
        assert headers["Retry-After"] == "2"
        assert headers["Access-Control-Allow-Origin"] == "*"
        media = client.app[media_key]
        assert media.viewer_total() == 2  # the refused one left nothing behind
        # a viewer leaving makes room; a publisher is never counted
        status, _, _ = await request(client, "DELETE", first.resource.location)
        assert status == 200
        again = peers.viewer(decode=False)
        await again.connect(poster(client, f"/whep/{session_id}"))
        publisher = peers.publisher()
        await publisher.connect(poster(client, f"/whip/{session_id}", host))
        assert media.viewer_total() == 2


# -- the media endpoint: where to play from, with a token standing for the viewer ------


async def test_the_media_endpoint_names_this_server_with_a_token_for_the_viewer(
    api: Api, app: web.Application, host: Account, session_id: int, peers: Any
) -> None:
    viewer = await api.signup("viewer")
    media = app[media_key]
    for who, user_id in ((viewer, viewer.id), (None, None)):
        before = time.time()
        got = await api.call("GET", f"/api/sessions/{session_id}/media-endpoint", who, expect=200)
        assert got["node"] == "" and got["url"].startswith(f"/whep/{session_id}?token=")
        assert before + 59 <= got["expires_at"] <= time.time() + 61
        client = peers.viewer(decode=False)
        async with asyncio.timeout(20):
            # no Authorization: the URL's token is the viewer's credential
            await client.connect(poster(api.client, got["url"]))
        resource_id = client.resource.location.rsplit("/", 1)[1]
        assert media._viewers[resource_id].user_id == user_id
        await client.close()


async def test_the_media_endpoint_and_tokens_refuse_what_they_must(
    api: Api, app: web.Application, settings: Settings, host: Account, session_id: int
) -> None:
    viewer = await api.signup("viewer")
    scheduled = await api.call("POST", "/api/sessions", host, json={"title": "later"}, expect=201)
    endpoint = "/api/sessions/{}/media-endpoint"
    for sid, who, status, code in (
        (987654, viewer, 404, "session_not_found"),
        (scheduled["id"], viewer, 409, "session_not_live"),
        (scheduled["id"], None, 409, "session_not_live"),
    ):
        got = await request(api.client, "GET", endpoint.format(sid), who)
        assert got[:2] == (status, code), (sid, who)
    # the host may preview a scheduled show, and the token lets them in
    preview = await api.call("GET", endpoint.format(scheduled["id"]), host, expect=200)
    status, body, _ = await post_sdp(api.client, preview["url"], "v=0\r\n")
    assert (status, error_code(body)) == (400, "invalid_sdp")  # past the session checks

    tokens = MediaTokens(settings.secret)
    good, _ = tokens.issue(session_id, "", viewer.id)
    expired = MediaTokens(settings.secret, now=lambda: 0.0).issue(session_id, "", None)[0]
    for token, code in (
        (good[:-1] + ("A" if good[-1] != "A" else "B"), "invalid_media_token"),
        (tokens.issue(session_id + 1, "", None)[0], "invalid_media_token"),
        (tokens.issue(session_id, "b", None)[0], "invalid_media_token"),
        (expired, "media_token_expired"),
        ("nonsense", "invalid_media_token"),
    ):
        status, body, headers = await post_sdp(api.client, f"/whep/{session_id}?token={token}", "")
        assert (status, error_code(body)) == (401, code), token
        assert headers["Access-Control-Allow-Origin"] == "*"
    assert app[media_key].viewer_total() == 0  # nothing left behind

    await api.call("POST", f"/api/sessions/{session_id}/end", host, expect=200)
    status, code, _ = await request(api.client, "GET", endpoint.format(session_id), viewer)
    assert (status, code) == (409, "session_ended")
    status, body, _ = await post_sdp(api.client, f"/whep/{session_id}?token={good}", "v=0\r\n")
    assert (status, error_code(body)) == (409, "session_ended")


async def test_a_url_with_a_token_is_open_to_any_origin(
    settings: Settings, aiohttp_client: Any
) -> None:
    """After a cross-origin redirect the browser's Origin is "null": the token, not the
    origin, is what lets the request in."""
    client = await aiohttp_client(
        create_app(settings.model_copy(update={"cors_origin": "https://shop.example"}))
    )
    res = await client.options("/whep/1?token=x", headers={"Origin": "null"})
    assert res.status == 204 and res.headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in res.headers
    res = await client.options("/whep/1")
    assert res.headers["Access-Control-Allow-Origin"] == "https://shop.example"


async def test_a_show_that_cannot_be_recorded_goes_live_and_says_why(
    settings: Settings, aiohttp_client: Any, tmp_path: Any, peers: Any
) -> None:
    """Issue 18: a recordings folder that cannot be made (here its parent is a file)
    used to answer WHIP 500 and keep the show off the air."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the recordings' parent folder should be")
    app = create_app(settings.model_copy(update={"recordings_dir": blocker / "recordings"}))
    api = Api(await aiohttp_client(app))
    host = await api.signup("host")
    session_id = int((await api.live_session(host))["id"])
    seen: list[Posted] = []
    async with asyncio.timeout(30):
        pub = peers.publisher()
        await pub.connect(noting_poster(seen, api.client, f"/whip/{session_id}", host))
        started = await wait_for_event(app, session_id, "live.started")
    assert started["type"] == "live.started"
    recording = seen[0].headers["Liveshelf-Recording"]
    assert recording.startswith("off; reason=NotADirectoryError"), recording
    assert "Liveshelf-Recording" in seen[0].headers["Access-Control-Expose-Headers"]
    assert await recording_status(api, session_id) == {
        "state": "off",
        "reason": recording.removeprefix("off; reason="),
    }
    status, code, _ = await request(api.client, "GET", f"/api/sessions/{session_id}/recording")
    assert (status, code) == (404, "no_recording")


async def test_a_read_only_recordings_folder_the_show_goes_live_not_recorded(
    settings: Settings, aiohttp_client: Any, tmpfs: Any, peers: Any
) -> None:
    """Issue 18 item 7: the recordings folder exists but is read-only (a read-only
    mount: root writes through file permissions). The recorder used to start, its writer
    failed at the first frame and left neither a file nor a reason anywhere; now the show
    goes live, WHIP says it is not recorded and why, and so do the session's details."""
    app = create_app(settings.model_copy(update={"recordings_dir": tmpfs("1m", read_only=True)}))
    api = Api(await aiohttp_client(app))
    host = await api.signup("host")
    session_id = int((await api.live_session(host))["id"])
    seen: list[Posted] = []
    async with asyncio.timeout(30):
        pub = peers.publisher()
        await pub.connect(noting_poster(seen, api.client, f"/whip/{session_id}", host))
        await wait_for_event(app, session_id, "live.started")
        viewer = peers.viewer()
        await viewer.connect(poster(api.client, f"/whep/{session_id}"))
        await viewer.wait_for("video", decoded=30, within_s=15)  # the show is on the air
    recording = seen[0].headers["Liveshelf-Recording"]
    assert recording == "off; reason=OSError: Read-only file system", recording
    assert await recording_status(api, session_id) == {
        "state": "off",
        "reason": "OSError: Read-only file system",
    }
    status, code, _ = await request(api.client, "GET", f"/api/sessions/{session_id}/recording")
    assert (status, code) == (404, "no_recording")
    await api.call("POST", f"/api/sessions/{session_id}/end", host, expect=200)
    assert await recording_status(api, session_id) == {"state": "none"}  # there is none


#: what the full disk of the next test has free above the 64 MiB the writer keeps (the
#: muxer writes in pieces of ~256 KiB: the first one crosses the line, a few seconds in)
HEADROOM = 64 * 1024


async def test_a_recording_cut_short_by_a_full_disk_is_served_finished_and_marked(
    settings: Settings, aiohttp_client: Any, tmpfs: Any, peers: Any
) -> None:
    """Issue 18 item 7 through the real server (which keeps 64 MiB free on the
    recordings' disk): the disk fills up mid-show; the show goes on, the session's
    details say the recording is incomplete and why, and the recording is served with
    ``Liveshelf-Recording: incomplete; reason=disk_full...``, finished: it decodes and
    seeks up to the cut."""
    disk = tmpfs("66m")
    kept = MediaConfig().recording_min_free_bytes
    (disk / "filler").write_bytes(bytes(shutil.disk_usage(disk).free - kept - HEADROOM))
    assert kept < shutil.disk_usage(disk).free <= kept + HEADROOM
    app = create_app(settings.model_copy(update={"recordings_dir": disk}))
    api = Api(await aiohttp_client(app))
    host = await api.signup("host")
    session_id = int((await api.live_session(host))["id"])
    url = f"/api/sessions/{session_id}/recording"
    seen: list[Posted] = []
    async with asyncio.timeout(40):
        pub = peers.publisher(width=640, height=480)  # more bytes a second: cut sooner
        await pub.connect(noting_poster(seen, api.client, f"/whip/{session_id}", host))
        assert "Liveshelf-Recording" not in seen[0].headers  # recorded, so far
        assert await recording_status(api, session_id) == {"state": "recording"}
        viewer = peers.viewer(decode=False)
        await viewer.connect(poster(api.client, f"/whep/{session_id}"))
        await viewer.wait_for("video", encoded=5, within_s=10)
        started = time.monotonic()
        live = await recording_status(api, session_id)
        while live["state"] == "recording":  # polled, as a studio page would
            await asyncio.sleep(0.1)
            live = await recording_status(api, session_id)
        print(f"recording cut short {time.monotonic() - started:.1f} s into the show")
        assert live["state"] == "incomplete" and live["reason"].startswith("disk_full: "), live
        assert (disk / f"session-{session_id}.incomplete").read_text() == live["reason"]
        # the show goes on without its recording
        await viewer.wait_for("video", encoded=viewer.stats["video"].encoded + 60, within_s=10)
        res = await api.client.get(url)  # live: what was written, already marked
        assert res.status == 200
        assert res.headers["Liveshelf-Recording"] == f"incomplete; reason={live['reason']}"
        await api.call("POST", f"/api/sessions/{session_id}/end", host, expect=200)

    assert await recording_status(api, session_id) == live  # the ended show says so too
    res = await api.client.get(url)
    assert res.status == 200, await res.text()
    assert res.headers["Liveshelf-Recording"].startswith("incomplete; reason=disk_full")
    assert res.headers["Liveshelf-Recording"] == f"incomplete; reason={live['reason']}"
    assert res.content_type == "video/webm"
    whole = await res.read()
    assert CUES_ID in whole  # finished: its seek index was written
    with av.open(io.BytesIO(whole)) as container:
        assert container.duration is not None and container.duration > 0
        container.seek(container.duration // 2)  # what a player does with the cues
        assert next(container.decode(video=0)).width == 640
        container.seek(0)
        frames = sum(1 for _ in container.decode(video=0))
        print(f"served: {len(whole)} bytes, {container.duration / 1e6:.1f} s, {frames} frames")
        assert frames > 5  # plays up to the cut
    res = await api.client.get(url, headers={"Range": "bytes=100-1123"})
    assert res.status == 206 and await res.read() == whole[100:1124]
    assert res.headers["Liveshelf-Recording"] == f"incomplete; reason={live['reason']}"
