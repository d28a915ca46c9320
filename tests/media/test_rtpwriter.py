"""RtpWriter: one viewer's RTP from frames packetized once (no network; the packets are
read back with aiortc's own RTP parser)."""

from __future__ import annotations

import asyncio

from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSendParameters,
)
from aiortc.rtp import HeaderExtensionsMap, RtpPacket

from media.rtpwriter import URI_ABS_SEND_TIME, URI_MID, PacketHistory, PacketizedFrame, RtpWriter

SSRC, RTX_SSRC = 0x11111111, 0x22222222
VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
RTX = RTCRtpCodecParameters(
    mimeType="video/rtx", clockRate=90000, payloadType=97, parameters={"apt": 96}
)
EXTENSIONS = [
    RTCRtpHeaderExtensionParameters(id=4, uri=URI_MID),
    RTCRtpHeaderExtensionParameters(id=2, uri=URI_ABS_SEND_TIME),
]


class Sink:
    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self.connected = True

    def sending(self):  # type: ignore[no-untyped-def]
        return self.send if self.connected else None

    def send(self, header: bytes, payload: bytes) -> None:
        self.packets.append(header + payload)

    def backlog(self) -> int:
        return 0


def parameters(rtx: bool = True) -> RTCRtpSendParameters:
    return RTCRtpSendParameters(
        codecs=[VP8, RTX] if rtx else [VP8], headerExtensions=EXTENSIONS, muxId="1"
    )


def parse(data: bytes) -> RtpPacket:
    extensions = HeaderExtensionsMap()
    extensions.configure(parameters())
    return RtpPacket.parse(data, extensions)


class Track:
    """The shared side: frames packetized once into one history."""

    def __init__(self) -> None:
        self.history = PacketHistory()

    def frame(
        self, timestamp: int, packets: int, keyframe: bool = False, ntp: int = 1 << 40
    ) -> PacketizedFrame:
        payloads = [bytes([timestamp // 3000 % 256, i]) * 50 for i in range(packets)]
        return PacketizedFrame(
            first_index=self.history.add(payloads, timestamp, 0x123456),
            payloads=payloads,
            timestamp=timestamp,
            keyframe=keyframe,
            abs_send_time=0x123456,
            ntp_time=ntp,
        )


def writer(track: Track, sink: Sink, rtx: bool = True) -> tuple[RtpWriter, list[tuple[int, ...]]]:
    reports: list[tuple[int, ...]] = []
    made = RtpWriter(
        SSRC,
        RTX_SSRC,
        parameters(rtx),
        track.history,
        sink,
        lambda *report: reports.append(report),
    )
    return made, reports


def test_headers_carry_the_viewers_ssrc_payload_type_marker_and_extensions() -> None:
    track, sink = Track(), Sink()
    out, reports = writer(track, sink)
    assert out.write(track.frame(0, 3, keyframe=True))
    assert out.write(track.frame(3000, 1))
    packets = [parse(p) for p in sink.packets]
    assert [p.ssrc for p in packets] == [SSRC] * 4
    assert [p.payload_type for p in packets] == [96] * 4
    assert [p.marker for p in packets] == [0, 0, 1, 1]
    seqs = [p.sequence_number for p in packets]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(4)]
    assert packets[3].timestamp == (packets[0].timestamp + 3000) & 0xFFFFFFFF
    assert [p.extensions.mid for p in packets] == ["1"] * 4
    assert {p.extensions.abs_send_time for p in packets} == {0x123456}
    assert packets[1].payload == bytes([0, 1]) * 50
    # what the sender's next report says: a frame's two clocks and the totals so far,
    # refreshed at most every half second (reports go out about once a second)
    assert reports == [(1 << 40, packets[0].timestamp, 3, 3 * 100)]
    half_a_second_later = (1 << 40) + (1 << 31)
    out.write(track.frame(6000, 1, ntp=half_a_second_later))
    last = parse(sink.packets[-1]).timestamp
    assert reports[-1] == (half_a_second_later, last, 5, 5 * 100)


def test_skipped_frames_leave_no_gap_in_the_viewers_sequence_numbers() -> None:
    track, sink = Track(), Sink()
    out, _ = writer(track, sink)
    out.write(track.frame(0, 2, keyframe=True))
    track.frame(3000, 2)  # skipped by this viewer (another one got it)
    track.frame(6000, 3)
    out.write(track.frame(9000, 2, keyframe=True))
    seqs = [parse(p).sequence_number for p in sink.packets]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(4)]


def test_nack_is_answered_from_the_shared_history_as_rtx() -> None:
    track, sink = Track(), Sink()
    out, _ = writer(track, sink)
    out.write(track.frame(0, 3, keyframe=True))
    out.write(track.frame(3000, 2))
    lost = parse(sink.packets[1])
    sink.packets.clear()
    asyncio.run(out.retransmit(lost.sequence_number))
    (rtx,) = (parse(p) for p in sink.packets)
    assert (rtx.payload_type, rtx.ssrc, rtx.timestamp) == (97, RTX_SSRC, lost.timestamp)
    assert rtx.payload[:2] == lost.sequence_number.to_bytes(2, "big")
    assert rtx.payload[2:] == lost.payload
    assert rtx.extensions.mid == "1"


def test_nack_without_rtx_resends_the_packet_itself() -> None:
    track, sink = Track(), Sink()
    out, _ = writer(track, sink, rtx=False)
    out.write(track.frame(0, 3, keyframe=True))
    sent = sink.packets[2]
    lost = parse(sent)
    sink.packets.clear()
    asyncio.run(out.retransmit(lost.sequence_number))
    (again,) = (parse(p) for p in sink.packets)
    assert (again.payload_type, again.ssrc) == (96, SSRC)
    assert (again.sequence_number, again.marker) == (lost.sequence_number, 1)
    assert again.payload == lost.payload
    # byte for byte, extensions included: under SRTP with AES-GCM a sequence number
    # protecting two different packets would repeat the nonce
    assert sink.packets[0] == sent


def test_nack_for_what_this_viewer_never_got_or_history_lost_sends_nothing() -> None:
    track, sink = Track(), Sink()
    out, _ = writer(track, sink)
    track.frame(0, 2)  # in the history, but from before this viewer joined
    out.write(track.frame(3000, 2, keyframe=True))
    first = parse(sink.packets[0]).sequence_number
    asyncio.run(out.retransmit((first - 1) & 0xFFFF))  # before its first packet
    asyncio.run(out.retransmit((first + 2) & 0xFFFF))  # not sent yet
    assert len(sink.packets) == 2
    for i in range(400):  # the shared history (512 packets) moves on
        out.write(track.frame(3000 * (i + 1), 2))
    sink.packets.clear()
    asyncio.run(out.retransmit(first))
    assert sink.packets == []


def test_nothing_is_written_while_the_transport_is_not_connected() -> None:
    track, sink = Track(), Sink()
    out, reports = writer(track, sink)
    sink.connected = False
    assert not out.write(track.frame(0, 2, keyframe=True))
    assert sink.packets == [] and reports == []
