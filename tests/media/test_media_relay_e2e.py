"""End to end through MediaService with real aiortc peers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from live.errors import Conflict, NotAcceptable
from live.http import status_of
from media import aiortc_hooks
from media.service import MediaService


async def wait_until(predicate: Callable[[], bool], within_s: float = 5.0) -> None:
    async with asyncio.timeout(within_s):
        while not predicate():  # noqa: ASYNC110 - polling state that has no event
            await asyncio.sleep(0.02)


async def test_three_viewers_receive_forwarded_video_and_audio(
    service: MediaService, peers, lifecycle, monkeypatch: pytest.MonkeyPatch
) -> None:
    protections: list[str] = []
    chosen = aiortc_hooks.rtp_protector

    def spy(transport: Any) -> tuple[aiortc_hooks.ProtectRtp, str]:
        protect, kind = chosen(transport)
        protections.append(kind)
        return protect, kind

    monkeypatch.setattr(aiortc_hooks, "rtp_protector", spy)
    async with asyncio.timeout(30):
        pub = peers.publisher()
        await pub.connect(partial(service.publish, 1))
        viewers = [peers.viewer() for _ in range(3)]
        for v in viewers:
            await v.connect(partial(service.play, 1))
        for v in viewers:
            await v.wait_for("video", decoded=60, within_s=15)
            await v.wait_for("audio", decoded=10, within_s=5)
            assert v.stats["video"].first_is_keyframe is True
        assert service.viewer_count(1) == 3
        assert all(s.connected for s in service.viewer_stats(1))
        # aiortc negotiates AES-GCM first: our own SRTP protects (media/srtp.py) each
        # viewer's audio and video, and the viewers decode it
        assert protections == ["gcm"] * 6
        assert ("started", 1, None) in lifecycle.events
        relay = service.relay(1)
        assert relay is not None
        # forwarded, not re-encoded: the publisher's encoder made every frame
        assert pub.video is not None and pub.video.frames >= 60


async def test_late_viewer_starts_on_keyframe_requested_from_publisher(
    service: MediaService, peers
) -> None:
    async with asyncio.timeout(30):
        pub = peers.publisher()
        await pub.connect(partial(service.publish, 1))
        first = peers.viewer(decode=False)
        await first.connect(partial(service.play, 1))
        await first.wait_for("video", encoded=45, within_s=10)
        requests_before = pub.keyframe_requests
        late = peers.viewer()
        await late.connect(partial(service.play, 1))
        await late.wait_for("video", decoded=20, within_s=10)
        assert late.stats["video"].first_is_keyframe is True
        # aiortc's VP8 encoder makes a keyframe every 3000 frames unless asked:
        # the late viewer got one because the relay sent the publisher a PLI.
        assert pub.keyframe_requests > requests_before
        assert late.stats["video"].keyframes >= 1


async def test_viewer_pli_reaches_publisher(service: MediaService, peers) -> None:
    async with asyncio.timeout(30):
        pub = peers.publisher()
        await pub.connect(partial(service.publish, 1))
        viewer = peers.viewer(decode=False)
        await viewer.connect(partial(service.play, 1))
        await viewer.wait_for("video", encoded=30, within_s=10)
        await asyncio.sleep(0.5)  # past the PLI coalescing window of the join
        before_pub, before_kf = pub.keyframe_requests, viewer.stats["video"].keyframes
        assert viewer.send_pli()
        await wait_until(lambda: pub.keyframe_requests > before_pub, within_s=3)
        await wait_until(lambda: viewer.stats["video"].keyframes > before_kf, within_s=3)


async def test_republish_resumes_existing_viewers_without_renegotiation(
    service: MediaService, peers, lifecycle
) -> None:
    async with asyncio.timeout(40):
        first = peers.publisher()
        await first.connect(partial(service.publish, 7))
        viewer = peers.viewer()
        await viewer.connect(partial(service.play, 7))
        await viewer.wait_for("video", decoded=30, within_s=10)
        offer_count_pc = viewer.pc
        assert first.resource is not None

        await service.delete(first.resource.id)  # type: ignore[union-attr]
        assert not service.is_live(7)
        await wait_until(lambda: ("stopped", 7, "deleted") in lifecycle.events)
        await first.close()

        keyframes = viewer.stats["video"].keyframes
        decoded = viewer.stats["video"].decoded
        second = peers.publisher()
        await second.connect(partial(service.publish, 7))
        await viewer.wait_for("video", decoded=decoded + 45, within_s=10)
        await viewer.wait_for("audio", decoded=viewer.stats["audio"].decoded + 10, within_s=5)
        assert viewer.pc is offer_count_pc and viewer.pc.connectionState == "connected"
        assert viewer.stats["video"].keyframes > keyframes  # resumed on a keyframe
        await wait_until(lambda: len(lifecycle.events) == 3)
        assert [e[0] for e in lifecycle.events] == ["started", "stopped", "started"]


async def test_publisher_that_went_away_can_be_replaced(
    service: MediaService, peers, lifecycle
) -> None:
    async with asyncio.timeout(30):
        first = peers.publisher()
        await first.connect(partial(service.publish, 3))
        viewer = peers.viewer(decode=False)
        await viewer.connect(partial(service.play, 3))
        await viewer.wait_for("video", encoded=10, within_s=10)
        with pytest.raises(Conflict) as err:
            await service.publish(3, await peers.publisher().offer())
        assert err.value.code == "publisher_exists" and status_of(err.value) == 409

        await first.close()  # no DELETE: the transport closes
        await wait_until(lambda: not service.is_live(3), within_s=10)
        second = peers.publisher()
        await second.connect(partial(service.publish, 3))
        await viewer.wait_for("video", encoded=viewer.stats["video"].encoded + 20, within_s=10)
        await wait_until(lambda: len(lifecycle.events) >= 2)
        assert lifecycle.events[1][0:2] == ("stopped", 3)


async def test_viewer_joining_before_publisher_waits_for_media(
    service: MediaService, peers
) -> None:
    async with asyncio.timeout(30):
        viewer = peers.viewer()
        await viewer.connect(partial(service.play, 4))
        await asyncio.sleep(0.3)
        assert viewer.stats["video"].encoded == 0
        pub = peers.publisher()
        await pub.connect(partial(service.publish, 4))
        await viewer.wait_for("video", decoded=20, within_s=10)
        assert viewer.stats["video"].first_is_keyframe is True


async def test_h264_forwarding(service: MediaService, peers) -> None:
    async with asyncio.timeout(30):
        pub = peers.publisher(video_codec="video/H264")
        await pub.connect(partial(service.publish, 5))
        viewers = [peers.viewer(), peers.viewer(decode=False)]
        for v in viewers:
            await v.connect(partial(service.play, 5))
        await viewers[0].wait_for("video", decoded=45, within_s=15)
        await viewers[1].wait_for("video", encoded=45, within_s=10)
        assert viewers[0].stats["video"].first_is_keyframe is True
        assert "H264" in viewers[0].resource.answer_sdp  # type: ignore[union-attr]

        vp8_only = peers.viewer(video_codecs=("video/VP8",))
        with pytest.raises(NotAcceptable) as err:
            await service.play(5, await vp8_only.offer())
        assert err.value.code == "codec_mismatch"


async def test_viewer_whose_socket_is_behind_skips_to_a_keyframe(
    service: MediaService, peers, media_config
) -> None:
    async with asyncio.timeout(30):
        pub = peers.publisher()
        await pub.connect(partial(service.publish, 6))
        slow = peers.viewer(decode=False)
        await slow.connect(partial(service.play, 6))
        await slow.wait_for("video", encoded=10, within_s=10)
        session_track = next(
            t
            for t in service.relay(6).video.tracks  # type: ignore[union-attr]
        )
        writer = session_track._writer
        assert writer is not None
        # A loopback socket never backs up, so the viewer's socket reports a
        # backlog over the limit for a while, as a congested uplink would.
        real_backlog = writer.backlog
        writer.backlog = lambda: media_config.viewer_backlog_bytes + 1  # type: ignore[method-assign]
        before = slow.stats["video"].encoded
        await asyncio.sleep(1.0)
        stalled = slow.stats["video"].encoded
        stats = service.viewer_stats(6)[0]
        assert stats.keyframe_resets == 1  # one reset, then it waits for a keyframe
        assert stats.frames_skipped >= 20
        assert stalled - before <= 2  # nothing piled up for it meanwhile
        keyframes = service.relay(6).keyframes  # type: ignore[union-attr]
        asked, got = keyframes.sent, slow.stats["video"].keyframes
        writer.backlog = real_backlog  # type: ignore[method-assign]
        # it resumes on a keyframe, which it asked the publisher for once drained
        await slow.wait_for("video", encoded=stalled + 20, within_s=5)
        assert keyframes.sent == asked + 1
        assert slow.stats["video"].keyframes == got + 1
        assert service.viewer_stats(6)[0].keyframe_resets == 1
