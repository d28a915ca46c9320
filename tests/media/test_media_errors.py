"""Refusals: bad offers, codec mismatch, unknown resources, PATCH rules; a refusal
relayed from another worker."""

from __future__ import annotations

import ast
import asyncio
from functools import partial
from pathlib import Path

import pytest

import media.service
from live.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidInput,
    LiveshelfError,
    NotAcceptable,
    NotFound,
    PreconditionFailed,
    RateLimited,
    TimedOut,
    TooLarge,
    Unavailable,
    Unprocessable,
)
from live.http import error_from_answer, error_response, status_of
from media.config import MediaConfig
from media.forward import MEDIA_REFUSALS, _refusal
from media.service import MediaService

STATUS = {"invalid_sdp": 400, "sdp_too_large": 413}


@pytest.fixture
def no_peer_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(config: MediaConfig) -> None:
        raise AssertionError("a peer connection was created for a refused offer")

    monkeypatch.setattr(media.service, "create_peer_connection", refuse)


@pytest.mark.parametrize(
    ("sdp", "code"),
    [
        ("", "invalid_sdp"),
        ("hello", "invalid_sdp"),
        ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n", "invalid_sdp"),
        ("v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n", "invalid_sdp"),
        ("v=0\r\n" + "a=x-padding:" + "x" * 20_000 + "\r\n", "sdp_too_large"),
    ],
)
async def test_bad_offers_are_refused_before_any_peer_connection(
    service: MediaService, no_peer_connections: None, sdp: str, code: str
) -> None:
    for call in (service.publish, service.play):
        with pytest.raises(LiveshelfError) as err:
            await call(1, sdp)
        assert (err.value.code, status_of(err.value)) == (code, STATUS[code])


async def test_viewer_offer_to_publish_is_refused(
    service: MediaService, peers, no_peer_connections
) -> None:
    offer = await peers.viewer().offer()  # recvonly sections
    with pytest.raises(InvalidInput) as err:
        await service.publish(1, offer)
    assert err.value.code == "invalid_sdp"


async def test_codec_mismatch_for_viewer(service: MediaService, peers) -> None:
    async with asyncio.timeout(20):
        pub = peers.publisher(video_codec="video/VP8")
        await pub.connect(partial(service.publish, 1))
        h264_only = peers.viewer(video_codecs=("video/H264",))
        with pytest.raises(NotAcceptable) as err:
            await service.play(1, await h264_only.offer())
        assert err.value.code == "codec_mismatch"
        assert status_of(err.value) == 406
        assert service.viewer_stats(1) == []


async def test_no_publisher_when_viewers_may_not_wait(
    media_config: MediaConfig, lifecycle, peers
) -> None:
    from dataclasses import replace

    svc = MediaService(replace(media_config, viewers_wait_for_publisher=False), lifecycle)
    try:
        with pytest.raises(Conflict) as err:
            await svc.play(1, await peers.viewer().offer())
        assert err.value.code == "no_publisher"
    finally:
        await svc.close()


async def test_delete_and_unknown_resources(service: MediaService, peers) -> None:
    async with asyncio.timeout(20):
        pub = peers.publisher()
        await pub.connect(partial(service.publish, 1))
        viewer = peers.viewer(decode=False)
        await viewer.connect(partial(service.play, 1))
        await viewer.wait_for("video", encoded=5)
        assert service.viewer_count(1) == 1
        rid = viewer.resource.id  # type: ignore[union-attr]
        await service.delete(rid)
        assert service.viewer_count(1) == 0
        assert service.viewer_stats(1) == []
        for call in (
            service.delete(rid),
            service.delete("nope"),
            service.patch("nope", "a=end-of-candidates\r\n", None),
        ):
            with pytest.raises(NotFound) as err:
                await call
            assert err.value.code == "not_found" and status_of(err.value) == 404
        # the viewer's transport was closed by us
        for _ in range(100):
            if viewer.pc.connectionState == "closed":
                break
            await asyncio.sleep(0.05)
        assert viewer.pc.connectionState in ("closed", "failed")


async def test_patch_rules(service: MediaService, peers) -> None:
    async with asyncio.timeout(20):
        pub = peers.publisher()
        await pub.connect(partial(service.publish, 1))
        res = pub.resource
        with pytest.raises(PreconditionFailed) as err:
            await service.patch(res.id, "a=end-of-candidates\r\n", '"stale"')  # type: ignore[union-attr]
        assert err.value.code == "etag_mismatch" and status_of(err.value) == 412
        restart = (
            "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
            "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
        )
        for if_match in (res.etag, "*"):  # type: ignore[union-attr]
            with pytest.raises(Unprocessable) as err:
                await service.patch(res.id, restart, if_match)  # type: ignore[union-attr]
            assert err.value.code == "ice_restart_unsupported"
        with pytest.raises(InvalidInput) as err:
            await service.patch(res.id, "a=candidate:1 1 udp\r\n", res.etag)  # type: ignore[union-attr]
        assert err.value.code == "invalid_sdp"
        # a foreign candidate is ignored, not an error
        frag = "a=mid:0\r\na=candidate:1 1 udp 2130706431 192.0.2.7 5000 typ host\r\n"
        assert await service.patch(res.id, frag, res.etag) is None  # type: ignore[union-attr]


async def test_trickled_candidates_connect_a_viewer(service: MediaService, peers) -> None:
    """The offer carries no candidates; they arrive by PATCH (RFC 9725 trickle)."""
    async with asyncio.timeout(20):
        pub = peers.publisher()
        await pub.connect(partial(service.publish, 1))
        viewer = peers.viewer(decode=False)
        offer = await viewer.offer()
        lines = offer.splitlines()
        candidates = [x for x in lines if x.startswith("a=candidate:")]
        assert candidates
        bare = (
            "\r\n".join(
                x for x in lines if not x.startswith(("a=candidate:", "a=end-of-candidates"))
            )
            + "\r\n"
        )
        res = await service.play(1, bare)
        from aiortc import RTCSessionDescription

        await viewer.pc.setRemoteDescription(RTCSessionDescription(res.answer_sdp, "answer"))
        mid = next(x.split(":", 1)[1] for x in lines if x.startswith("a=mid:"))
        frag = "".join(f"{c}\r\n" for c in [f"a=mid:{mid}", *candidates, "a=end-of-candidates"])
        assert await service.patch(res.id, frag, res.etag) is None
        server_pc = service._viewers[res.id].pc
        ice = server_pc.getTransceivers()[0].receiver.transport.transport
        ports = {c.port for c in ice.getRemoteCandidates()}
        assert {int(c.split()[5]) for c in candidates} <= ports
        await viewer.wait_for("video", encoded=10, within_s=10)


async def test_answers_only_advertise_configured_addresses(service: MediaService, peers) -> None:
    async with asyncio.timeout(20):
        pub = peers.publisher()
        await pub.connect(partial(service.publish, 1))
        answer = pub.resource.answer_sdp  # type: ignore[union-attr]
        candidates = [x for x in answer.splitlines() if x.startswith("a=candidate:")]
        assert candidates
        assert all(x.split()[4] == "127.0.0.1" for x in candidates)
        assert "a=setup:passive" in answer  # WHIP: we are the DTLS server


async def test_close_closes_every_peer_connection(
    media_config: MediaConfig, lifecycle, peers
) -> None:
    svc = MediaService(media_config, lifecycle)
    async with asyncio.timeout(20):
        pub = peers.publisher()
        await pub.connect(partial(svc.publish, 1))
        viewer = peers.viewer(decode=False)
        await viewer.connect(partial(svc.play, 1))
        await viewer.wait_for("video", encoded=5)
        pcs = [p.pc for p in svc._publishers.values()] + [v.pc for v in svc._viewers.values()]
        await svc.close()
        assert all(pc.connectionState == "closed" for pc in pcs)
        assert not svc._tasks
        await asyncio.sleep(0.2)
        assert lifecycle.events[-1] == ("stopped", 1, "shutdown")
        with pytest.raises(Unavailable) as err:
            await svc.publish(1, await peers.publisher().offer())
        assert err.value.code == "closed"


async def test_a_viewer_that_never_connects_is_dropped(
    media_config: MediaConfig, lifecycle: object, peers: object
) -> None:
    """An answered offer whose client never completes ICE holds a socket and a slot
    only until ``viewer_connect_timeout_s``."""
    from dataclasses import replace

    config = replace(media_config, viewer_connect_timeout_s=1.0)
    service = MediaService(config, lifecycle)  # type: ignore[arg-type]
    try:
        client = peers.viewer()  # type: ignore[attr-defined]
        resource = await service.play(1, await client.offer())  # the answer is never applied
        assert service.viewer_total() == 1
        async with asyncio.timeout(5):
            while service.viewer_total():  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        with pytest.raises(NotFound) as err:
            await service.delete(resource.id)
        assert err.value.code == "not_found"
    finally:
        await service.close()


async def test_an_offer_answered_across_the_session_end_leaves_nothing(
    service: MediaService, peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A viewer's offer that was being answered when the session ended is refused
    ``session_ended`` and leaves no viewer or session behind (it used to be attached
    to the ended session, or to a new one nobody would end); later offers are refused
    the same way instead of making the session anew."""
    async with asyncio.timeout(30):
        pub = peers.publisher()
        await pub.connect(partial(service.publish, 1))
        negotiating, go_on = asyncio.Event(), asyncio.Event()
        set_remote = service._set_remote

        async def slow_set_remote(*args) -> None:
            negotiating.set()
            await go_on.wait()
            await set_remote(*args)

        monkeypatch.setattr(service, "_set_remote", slow_set_remote)
        viewer = peers.viewer(decode=False)
        playing = asyncio.create_task(viewer.connect(partial(service.play, 1)))
        await negotiating.wait()
        await service.end_session(1)
        go_on.set()
        with pytest.raises(Conflict) as err:
            await playing
        assert err.value.code == "session_ended"
        assert service._viewers == {} and service.session_ids() == []
        monkeypatch.setattr(service, "_set_remote", set_remote)
        late = peers.viewer(decode=False)  # viewers may wait for a publisher: not here
        with pytest.raises(Conflict) as err:
            await late.connect(partial(service.play, 1))
        assert err.value.code == "session_ended"
        assert service.session_ids() == []


#: every refusal of the media service, as its kind raises it
REFUSALS: list[LiveshelfError] = [
    InvalidInput("invalid_sdp", "SDP must start with v=0"),
    TooLarge("sdp_too_large", "SDP is larger than 20000 bytes"),
    NotAcceptable("codec_mismatch", "viewer cannot receive H.264 video"),
    Conflict("publisher_exists", "session 1 already has a publisher"),
    NotFound("not_found", "no such media resource"),
    Conflict("no_publisher", "session 1 is not live"),
    PreconditionFailed("etag_mismatch", "If-Match does not match the ICE session"),
    Unprocessable("ice_restart_unsupported", "ICE restart is not supported"),
    Unavailable("closed", "media service is closing"),
    Unavailable("media_unavailable", "the session's origin: ..."),
    Unavailable("media_full", "every media worker is full; try again soon"),
    Unavailable("media_full", "full for a while", retry_after_ms=7_500),
    RateLimited("too_many_peers", "you hold as many video connections as you may"),
    Conflict("session_ended", "session 1 has ended"),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda e: e.code)
def test_a_pull_refused_at_the_origin_reaches_the_viewer_as_it_was(
    refusal: LiveshelfError,
) -> None:
    """The origin answers a refused pull with ``error_response``; the edge raises
    ``_refusal`` of that answer, which its own ``error_response`` renders: the viewer
    gets the origin's status, body and ``Retry-After``."""
    at_origin = error_response(refusal)
    assert at_origin.body is not None
    relayed = _refusal(at_origin.status, bytes(at_origin.body))  # type: ignore[arg-type]
    assert type(relayed) is type(refusal)
    at_edge = error_response(relayed)
    assert (at_edge.status, at_edge.body) == (at_origin.status, at_origin.body)
    assert at_edge.headers.get("Retry-After") == at_origin.headers.get("Retry-After")
    assert refusal.code in MEDIA_REFUSALS


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, b'{"error": {"code": "internal_only", "message": "for our workers"}}'),
        (503, b'{"error": {"code": "redis_unavailable", "message": "retry shortly"}}'),
        (500, b'{"error": {"code": "internal_error", "message": "oops"}}'),
        (502, b"<html>bad gateway</html>"),
        (404, b'{"error": "not_found"}'),
    ],
)
def test_any_other_answer_to_a_pull_is_media_unavailable(status: int, body: bytes) -> None:
    """Not the media service's refusal (our worker was refused, or the origin failed):
    no fault of the viewer's, who may retry."""
    relayed = _refusal(status, body)
    assert isinstance(relayed, Unavailable) and relayed.code == "media_unavailable"
    assert error_response(relayed).headers["Retry-After"] == "2"


def test_error_from_answer_reads_back_what_error_response_wrote() -> None:
    for refusal in (*REFUSALS, TimedOut("body_timeout"), Gone(), Forbidden(reason="x")):
        answer = error_response(refusal)
        assert answer.body is not None
        back = error_from_answer(answer.status, bytes(answer.body))  # type: ignore[arg-type]
        assert back is not None and type(back) is type(refusal)
        assert (back.code, back.message, back.details) == (
            refusal.code,
            refusal.message,
            refusal.details,
        )
    assert error_from_answer(500, b'{"error": {"code": "internal_error", "message": "x"}}') is None
    assert error_from_answer(400, b"[]") is None


def test_every_code_the_media_service_raises_is_relayed_as_it_is() -> None:
    """A code missing from ``MEDIA_REFUSALS`` would reach a viewer of another worker
    as ``media_unavailable``."""
    raised = set()
    for module in ("service", "resources", "tables", "negotiation", "edge", "offer"):
        tree = ast.parse((Path(media.service.__file__).parent / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                first = node.exc.args[0] if node.exc.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    raised.add(first.value)
    assert raised and raised <= MEDIA_REFUSALS
