"""Relay, keyframe and ICE policy units (no network)."""

from __future__ import annotations

import asyncio

import aioice.ice
import pytest
from aiortc import RTCRtpCodecParameters
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError

from media.config import MediaConfig
from media.ice import candidate_allowed, filter_sdp_candidates, gathering_on
from media.keyframes import KeyframeRequester, is_keyframe
from media.relay import HELD_FRAMES, ForwardedTrack, SessionRelay
from media.rtpwriter import PacketizedFrame

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=99)
KEY = b"\x10\x02\x00\x9d\x01\x2a"  # VP8 frame tag with the key-frame bit clear
DELTA = b"\x31\x02\x00"


def frame(ts: int, key: bool) -> JitterFrame:
    return JitterFrame(data=KEY if key else DELTA, timestamp=ts)


def test_keyframe_detection() -> None:
    assert is_keyframe("video/VP8", KEY)
    assert not is_keyframe("video/VP8", DELTA)
    idr = b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x00\x01\x68\xce" + b"\x00\x00\x01\x65\x88"
    assert is_keyframe("video/H264", idr)
    assert not is_keyframe("video/H264", b"\x00\x00\x00\x01\x41\x9a")
    assert is_keyframe("audio/opus", b"\x01")


async def test_keyframe_requests_are_coalesced() -> None:
    sent: list[float] = []
    requester = KeyframeRequester(lambda: sent.append(1) is None, 0.1, "t")
    for _ in range(50):
        requester.request()
    assert len(sent) == 1  # the first goes out at once
    await asyncio.sleep(0.15)
    assert len(sent) == 2  # one deferred request for the 49 others
    await asyncio.sleep(0.15)
    assert len(sent) == 2
    requester.close()


class RecordingWriter:
    """A viewer's writer that keeps what it was given; its backlog is settable."""

    def __init__(self) -> None:
        self.frames: list[PacketizedFrame] = []
        self.behind = 0

    def write(self, frame: PacketizedFrame) -> bool:
        self.frames.append(frame)
        return True

    def backlog(self) -> int:
        return self.behind


def attached(relay: SessionRelay, kind: str = "video") -> tuple[ForwardedTrack, RecordingWriter]:
    track = relay.new_track(kind, kind)
    track.mime_type = "video/VP8" if kind == "video" else "audio/opus"
    relay.fanout(kind).add(track)
    writer = RecordingWriter()
    track.attach(writer)
    return track, writer


async def test_viewer_behind_skips_to_a_keyframe_once_its_socket_drains() -> None:
    plis: list[int] = []
    relay = SessionRelay(1, pli_interval_s=0.01, backlog_limit=1000, on_incompatible=print)
    relay.send_pli = lambda: plis.append(1) is None
    relay.video.start_source()
    (fast, fast_out), (slow, slow_out) = attached(relay), attached(relay)
    for i in range(100):  # keyframe every 25 frames
        if i == 30:
            slow_out.behind = 1001
        if i == 80:
            slow_out.behind = 0
        relay.video.push(VP8, frame(i * 3000, key=i % 25 == 0))
    assert len(fast_out.frames) == 100 and fast.resets == 0
    assert slow.resets == 1  # one fall behind, not one per keyframe it had to skip
    sent = [f.timestamp // 3000 for f in slow_out.frames]
    assert sent == list(range(30))  # behind from 30; no keyframe between 80 and 99
    assert slow.waiting_for_keyframe  # drained at 80, a delta: waits for the keyframe
    plis.clear()
    await asyncio.sleep(0.02)
    relay.video.push(VP8, frame(100 * 3000, key=True))
    relay.video.push(VP8, frame(101 * 3000, key=False))
    assert [f.timestamp // 3000 for f in slow_out.frames][-2:] == [100, 101]
    assert slow_out.frames[-2].keyframe and not slow.waiting_for_keyframe
    relay.close()


async def test_frames_are_packetized_once_for_every_viewer() -> None:
    relay = SessionRelay(1, 0.5, 1000, on_incompatible=print)
    relay.video.start_source()
    outs = [attached(relay)[1] for _ in range(3)]
    big = KEY + bytes(5000)  # more than one packet's worth
    relay.video.push(VP8, JitterFrame(big, 0))
    relay.video.push(VP8, frame(3000, key=False))
    first = outs[0].frames
    assert all(out.frames == first for out in outs)  # the very same objects
    assert len(first[0].payloads) == 4 and first[1].first_index == first[0].last_index + 1
    relay.close()


async def test_a_viewer_not_connected_yet_gets_what_came_from_a_keyframe_on() -> None:
    plis: list[int] = []
    relay = SessionRelay(1, pli_interval_s=0.01, backlog_limit=1000, on_incompatible=print)
    relay.send_pli = lambda: plis.append(1) is None
    relay.video.start_source()
    track = relay.new_track("video", "late")
    track.mime_type = "video/VP8"
    relay.video.add(track)
    assert plis == [1]  # the join asks for a keyframe (the session is live)
    relay.video.push(VP8, frame(0, key=False))  # before the keyframe: of no use
    relay.video.push(VP8, frame(3000, key=True))  # the keyframe its join asked for
    relay.video.push(VP8, frame(6000, key=False))
    writer = RecordingWriter()
    track.attach(writer)  # its transport is up: the held frames go out at once
    assert [f.timestamp for f in writer.frames] == [3000, 6000]
    relay.video.push(VP8, frame(9000, key=False))
    assert [f.timestamp for f in writer.frames] == [3000, 6000, 9000]
    assert plis == [1]  # nothing more to ask for
    relay.close()


async def test_what_is_held_for_a_slow_connect_is_bounded() -> None:
    relay = SessionRelay(1, pli_interval_s=0.01, backlog_limit=1000, on_incompatible=print)
    relay.video.start_source()
    track = relay.new_track("video", "slow")
    track.mime_type = "video/VP8"
    relay.video.add(track)
    for i in range(HELD_FRAMES + 5):  # a keyframe, then more deltas than it may hold
        relay.video.push(VP8, frame(i * 3000, key=i == 0))
    relay.video.push(VP8, frame(100 * 3000, key=True))
    relay.video.push(VP8, frame(101 * 3000, key=False))
    writer = RecordingWriter()
    track.attach(writer)  # it starts at the latest keyframe it could hold from
    assert [f.timestamp // 3000 for f in writer.frames] == [100, 101]
    relay.close()


async def test_timestamps_continue_across_publishers() -> None:
    relay = SessionRelay(1, 0.5, 1000, on_incompatible=print)
    relay.video.start_source()
    _, out = attached(relay)
    for i in range(10):
        relay.video.push(VP8, frame(i * 3000, key=i == 0))
    last = out.frames[-1].timestamp
    relay.video.stop_source()
    relay.video.start_source()  # a new publisher; its timestamps restart at 0
    relay.video.push(VP8, frame(0, key=False))  # skipped: not a keyframe
    relay.video.push(VP8, frame(3000, key=True))
    assert len(out.frames) == 11
    assert out.frames[-1].timestamp > last
    relay.close()


async def test_viewer_of_other_codec_is_handed_back() -> None:
    dropped: list[object] = []
    relay = SessionRelay(1, 0.5, 1000, on_incompatible=dropped.append)
    relay.video.start_source()
    track = relay.new_track("video", "v")
    track.mime_type = "video/VP8"
    relay.video.add(track)
    relay.video.push(H264, JitterFrame(b"\x00\x00\x00\x01\x65", 0))
    assert dropped == [track] and track not in relay.video.tracks
    relay.close()


async def test_stopped_track_ends_recv() -> None:
    relay = SessionRelay(1, 0.5, 1000, on_incompatible=print)
    track = relay.new_track("audio", "a")
    waiter = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(waiter, 1)


def test_candidate_policy() -> None:
    loopback = MediaConfig().remote_networks()
    assert candidate_allowed("candidate:1 1 udp 1 127.0.0.1 5000 typ host", loopback)
    assert not candidate_allowed("candidate:1 1 udp 1 192.0.2.1 5000 typ host", loopback)
    assert not candidate_allowed("candidate:1 1 udp 1 abc.local 5000 typ host", loopback)
    assert not candidate_allowed(
        "candidate:1 1 tcp 1 127.0.0.1 9 typ host tcptype active", loopback
    )
    public = MediaConfig(ice_addresses=("192.0.2.10",)).remote_networks()
    assert public is None
    assert candidate_allowed("candidate:1 1 udp 1 198.51.100.1 5000 typ host", public)
    sdp = (
        "v=0\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n"
        "a=candidate:2 1 udp 1 10.0.0.1 5000 typ host\r\n"
    )
    assert (
        filter_sdp_candidates(sdp, loopback)
        == "v=0\r\na=candidate:1 1 udp 1 127.0.0.1 5000 typ host\r\n"
    )


def test_gathering_scope_only_applies_inside() -> None:
    with gathering_on(("127.0.0.1",)):
        assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
    assert "127.0.0.1" not in aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False)


def test_config_refuses_public_stun_typos() -> None:
    with pytest.raises(ValueError):
        MediaConfig(ice_servers=("stun.l.google.com:19302",))
    with pytest.raises(ValueError):
        MediaConfig(ice_addresses=())


def test_draining_jitter_buffer_releases_backlog_after_a_loss() -> None:
    from aiortc.rtp import RtpPacket

    from media.aiortc_hooks import _DrainingJitterBuffer

    buffer = _DrainingJitterBuffer(capacity=128, is_video=True)
    out: list[int] = []

    def add(seq: int) -> None:
        packet = RtpPacket(sequence_number=seq, timestamp=seq * 3000)
        packet._data = b"x"  # type: ignore[attr-defined]
        _, frame = buffer.add(packet)
        if frame is not None:
            out.append(frame.timestamp)
            out.extend(f.timestamp for f in buffer.extra)
            buffer.extra.clear()

    for seq in [*range(0, 5), *range(6, 20)]:  # packet 5 is late
        add(seq)
    assert out == [i * 3000 for i in range(4)]  # stalled behind the hole
    add(5)  # the retransmission arrives: everything complete leaves at once
    add(20)
    assert out == [i * 3000 for i in range(20)]


class MarkedFrames:
    """Feeds RTP packets of known frames to a draining jitter buffer and records what
    leaves, and after which packet."""

    def __init__(self, is_video: bool = True) -> None:
        from media.aiortc_hooks import _DrainingJitterBuffer

        self.buffer = _DrainingJitterBuffer(capacity=128, is_video=is_video)
        self.out: list[tuple[int, bytes]] = []

    def add(self, seq: int, ts: int, data: bytes, marker: bool) -> list[tuple[int, bytes]]:
        from aiortc.rtp import RtpPacket

        packet = RtpPacket(sequence_number=seq & 0xFFFF, timestamp=ts, marker=int(marker))
        packet._data = data  # type: ignore[attr-defined]
        _, frame = self.buffer.add(packet)
        left = [] if frame is None else [(frame.timestamp, frame.data)]
        left += [(f.timestamp, f.data) for f in self.buffer.extra]
        self.buffer.extra.clear()
        self.out += left
        return left


def test_video_frame_leaves_on_its_marker_bit_not_on_the_next_frame() -> None:
    frames = MarkedFrames()
    assert frames.add(100, 3000, b"a1", marker=False) == []
    assert frames.add(101, 3000, b"a2", marker=False) == []
    assert frames.add(102, 3000, b"a3", marker=True) == [(3000, b"a1a2a3")]
    assert frames.add(103, 6000, b"b1", marker=True) == [(6000, b"b1")]


def test_frame_with_a_lost_middle_packet_waits_for_the_retransmission() -> None:
    frames = MarkedFrames()
    frames.add(10, 0, b"a", marker=True)
    assert frames.add(11, 3000, b"b1", marker=False) == []
    # 12 (b2) is lost; the marker packet and the whole next frame arrive
    assert frames.add(13, 3000, b"b3", marker=True) == []
    assert frames.add(14, 6000, b"c1", marker=False) == []
    assert frames.add(15, 6000, b"c2", marker=True) == []
    # the retransmission completes b, and c (complete behind it) leaves right after
    assert frames.add(12, 3000, b"b2", marker=False) == [(3000, b"b1b2b3"), (6000, b"c1c2")]
    assert frames.out == [(0, b"a"), (3000, b"b1b2b3"), (6000, b"c1c2")]


def test_lost_marker_packet_holds_the_frame() -> None:
    frames = MarkedFrames()
    frames.add(0, 0, b"a1", marker=False)
    # a2 (the marker packet, seq 1) is lost: b's packets do not complete a
    assert frames.add(2, 3000, b"b1", marker=True) == []
    assert frames.add(1, 0, b"a2", marker=True) == [(0, b"a1a2"), (3000, b"b1")]


def test_frames_without_marker_bits_leave_when_the_next_frame_begins() -> None:
    frames = MarkedFrames()
    assert frames.add(65534, 0, b"a1", marker=False) == []
    assert frames.add(65535, 0, b"a2", marker=False) == []
    assert frames.add(65536, 3000, b"b1", marker=False) == [(0, b"a1a2")]  # seq wrapped


def test_audio_packets_leave_on_arrival_and_late_ones_are_dropped() -> None:
    frames = MarkedFrames(is_video=False)
    assert frames.add(7, 960, b"o1", marker=True) == [(960, b"o1")]  # talkspurt start
    assert frames.add(8, 1920, b"o2", marker=False) == [(1920, b"o2")]
    assert frames.add(10, 3840, b"o4", marker=False) == [(3840, b"o4")]  # 9 lost: no wait
    assert frames.add(9, 2880, b"o3", marker=False) == []  # late
    assert frames.add(10, 3840, b"o4", marker=False) == []  # duplicate
    assert frames.add(11, 4800, b"o5", marker=False) == [(4800, b"o5")]
