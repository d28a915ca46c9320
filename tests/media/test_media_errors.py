"""Refusals: bad offers, codec mismatch, unknown resources, PATCH rules."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest

import media.service
from media.config import MediaConfig
from media.errors import MediaError
from media.service import MediaService


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
        with pytest.raises(MediaError) as err:
            await call(1, sdp)
        assert err.value.code == code


async def test_viewer_offer_to_publish_is_refused(
    service: MediaService, peers, no_peer_connections
) -> None:
    offer = await peers.viewer().offer()  # recvonly sections
    with pytest.raises(MediaError) as err:
        await service.publish(1, offer)
    assert err.value.code == "invalid_sdp"


async def test_codec_mismatch_for_viewer(service: MediaService, peers) -> None:
    async with asyncio.timeout(20):
        pub = peers.publisher(video_codec="video/VP8")
        await pub.connect(partial(service.publish, 1))
        h264_only = peers.viewer(video_codecs=("video/H264",))
        with pytest.raises(MediaError) as err:
            await service.play(1, await h264_only.offer())
        assert err.value.code == "codec_mismatch"
        assert err.value.http_status == 406
        assert service.viewer_stats(1) == []


async def test_no_publisher_when_viewers_may_not_wait(
    media_config: MediaConfig, lifecycle, peers
) -> None:
    from dataclasses import replace

    svc = MediaService(replace(media_config, viewers_wait_for_publisher=False), lifecycle)
    try:
        with pytest.raises(MediaError) as err:
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
            with pytest.raises(MediaError) as err:
                await call
            assert err.value.code == "not_found" and err.value.http_status == 404
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
        with pytest.raises(MediaError) as err:
            await service.patch(res.id, "a=end-of-candidates\r\n", '"stale"')  # type: ignore[union-attr]
        assert err.value.code == "etag_mismatch" and err.value.http_status == 412
        restart = (
            "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n"
            "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n"
        )
        for if_match in (res.etag, "*"):  # type: ignore[union-attr]
            with pytest.raises(MediaError) as err:
                await service.patch(res.id, restart, if_match)  # type: ignore[union-attr]
            assert err.value.code == "ice_restart_unsupported"
        with pytest.raises(MediaError) as err:
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
        with pytest.raises(MediaError) as err:
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
        with pytest.raises(MediaError) as err:
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
        with pytest.raises(MediaError) as err:
            await playing
        assert err.value.code == "session_ended"
        assert service._viewers == {} and service.session_ids() == []
        monkeypatch.setattr(service, "_set_remote", set_remote)
        late = peers.viewer(decode=False)  # viewers may wait for a publisher: not here
        with pytest.raises(MediaError) as err:
            await late.connect(partial(service.play, 1))
        assert err.value.code == "session_ended"
        assert service.session_ids() == []
