"""One viewer's RTP for one track, written from frames packetized once per track.

The relay packetizes each frame once (``relay.Packetizer``) into payloads numbered by
a per-track packet index and kept in a short shared ``PacketHistory``. Per viewer,
``RtpWriter.write`` then only writes an RTP header (its SSRC, payload type, sequence
number, timestamp offset and header extensions), protects the packet with the viewer's
SRTP session and sends it on the viewer's selected ICE pair: no ``RtpPacket`` objects,
no per-viewer packetization and no per-viewer task.

Sequence numbers stay contiguous for the viewer even when it skips frames (waiting for
a keyframe): a viewer's number for packet index ``i`` is ``i + offset``, and the
offset moves back by the packets it skipped. A NACK names the viewer's numbers; they
map back to indexes sent under the current offset and are retransmitted from the
shared history (as RTX when the viewer negotiated it).

aiortc's ``RTCRtpSender`` stays in place for negotiation and RTCP: it sends sender
reports from the counters this writer keeps up to date, and hands NACKs and keyframe
requests over (``aiortc_hooks``). Its own RTP loop idles on a track that never yields.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiortc.rtcrtpparameters import RTCRtpSendParameters

HISTORY_SIZE = 512  # packets per track, ~2 s of 500 kbps video: NACKs come within an RTT
_HEADER = struct.Struct("!BBHII")
_RTX_SEQ = struct.Struct("!H")
_REPORT_EVERY_NTP = 1 << 31  # half a second in 32.32 fixed-point NTP time
URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


@dataclass(slots=True, eq=False)
class PacketizedFrame:
    """One frame of one track as every viewer sends it: payloads and shared values."""

    #: the track-wide index of the first payload (the others follow without gaps)
    first_index: int
    payloads: Sequence[bytes]
    #: continuous across publishers, in units of the codec's clock rate
    timestamp: int
    keyframe: bool
    #: 24-bit abs-send-time (6.18 fixed-point seconds of the NTP clock)
    abs_send_time: int
    #: 64-bit NTP time the frame was sent at (for sender reports)
    ntp_time: int
    _extensions: dict[tuple[int, int, bytes], bytes] = field(default_factory=dict)

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.payloads) - 1

    def extension_block(self, mid_id: int, abs_id: int, mid: bytes) -> bytes:
        """The RFC 8285 one-byte header extension block for these ids (built once per
        frame for all viewers that negotiated the same ids and mid)."""
        key = (mid_id, abs_id, mid)
        block = self._extensions.get(key)
        if block is None:
            block = self._extensions[key] = _extension_block(
                mid_id, mid, abs_id, self.abs_send_time
            )
        return block


def _extension_block(mid_id: int, mid: bytes, abs_id: int, abs_send_time: int) -> bytes:
    body = b""
    if mid_id and mid:
        body += bytes([(mid_id << 4) | (len(mid) - 1)]) + mid
    if abs_id:
        body += bytes([(abs_id << 4) | 2]) + abs_send_time.to_bytes(3, "big")
    if not body:
        return b""
    body += b"\x00" * (-len(body) % 4)
    return b"\xbe\xde" + (len(body) // 4).to_bytes(2, "big") + body


def _first_byte(extensions: bytes) -> int:
    """RTP version 2, with the X bit when there is an extension block."""
    return 0x90 if extensions else 0x80


class PacketHistory:
    """The last ``HISTORY_SIZE`` payloads of a track, by packet index (for NACKs)."""

    def __init__(self) -> None:
        self._index = [-1] * HISTORY_SIZE
        self._payload: list[bytes] = [b""] * HISTORY_SIZE
        self._marker = [False] * HISTORY_SIZE
        self._timestamp = [0] * HISTORY_SIZE
        self._abs_send_time = [0] * HISTORY_SIZE
        self.next_index = 0

    def add(self, payloads: Sequence[bytes], timestamp: int, abs_send_time: int = 0) -> int:
        """Store a frame's payloads; returns the index of the first one."""
        first = self.next_index
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            slot = (first + i) % HISTORY_SIZE
            self._index[slot] = first + i
            self._payload[slot] = payload
            self._marker[slot] = i == last
            self._timestamp[slot] = timestamp
            self._abs_send_time[slot] = abs_send_time
        self.next_index = first + len(payloads)
        return first

    def get(self, index: int) -> tuple[bytes, bool, int, int] | None:
        """(payload, marker, timestamp, abs-send-time) of packet ``index``, if kept."""
        slot = index % HISTORY_SIZE
        if index < 0 or self._index[slot] != index:
            return None
        return (
            self._payload[slot],
            self._marker[slot],
            self._timestamp[slot],
            self._abs_send_time[slot],
        )


#: sends one packet: its RTP header (extension block included), then its payload
SendPacket = Callable[[bytes, bytes], None]


class PacketSink(Protocol):
    """A viewer's secured transport: protects (SRTP) and sends plain RTP packets."""

    def sending(self) -> SendPacket | None:
        """What sends one packet now, or None while the transport is not connected."""
        ...

    def backlog(self) -> int:
        """Bytes accepted but not yet sent (0 when the socket keeps up)."""
        ...


#: (NTP time, RTP timestamp, packets sent, octets sent) for the next sender report
SentReport = Callable[[int, int, int, int], None]


class RtpWriter:
    """Writes one viewer's RTP stream of one track (see the module docstring)."""

    def __init__(
        self,
        ssrc: int,
        rtx_ssrc: int | None,
        parameters: RTCRtpSendParameters,
        history: PacketHistory,
        sink: PacketSink,
        report: SentReport,
    ) -> None:
        codec = parameters.codecs[0]
        if codec.payloadType is None:
            raise ValueError("the negotiated codec has no payload type")
        self._sink = sink
        self._report = report
        self._history = history
        self._ssrc = ssrc
        self._payload_type: int = codec.payloadType
        self._rtx_payload_type: int | None = next(
            (
                c.payloadType
                for c in parameters.codecs
                if c.mimeType.lower().endswith("/rtx")
                and c.parameters.get("apt") == codec.payloadType
            ),
            None,
        )
        self._rtx_ssrc = rtx_ssrc
        self._rtx_sequence = random.randint(0, 0xFFFF)
        ids = {ext.uri: ext.id for ext in parameters.headerExtensions}
        self._mid_id = ids.get(URI_MID, 0)
        self._abs_id = ids.get(URI_ABS_SEND_TIME, 0)
        self._mid = (parameters.muxId or "").encode()
        self._timestamp_origin = random.getrandbits(32)
        #: viewer sequence number = (packet index + offset) mod 2**16
        self._offset = random.randint(0, 0xFFFF)
        self._next_index: int | None = None  # the index after the last one sent (None: none)
        self._sent_from = 0  # the first index sent under the current offset
        self.packets_sent = 0
        self.octets_sent = 0
        self._reported_at = 0  # NTP time of the last figures handed to the sender

    def backlog(self) -> int:
        """Bytes waiting in this viewer's socket buffer (0 when it keeps up)."""
        return self._sink.backlog()

    def write(self, frame: PacketizedFrame) -> bool:
        """Send the frame's packets now; False if the transport is not connected."""
        send = self._sink.sending()
        if send is None:
            return False
        if self._next_index is None:
            self._sent_from = frame.first_index
        elif frame.first_index != self._next_index:
            # skipped packets: keep the viewer's sequence numbers contiguous
            self._offset -= frame.first_index - self._next_index
            self._sent_from = frame.first_index
        self._next_index = frame.last_index + 1
        ext = frame.extension_block(self._mid_id, self._abs_id, self._mid)
        timestamp = (self._timestamp_origin + frame.timestamp) & 0xFFFFFFFF
        first_byte = _first_byte(ext)
        pt, ssrc = self._payload_type, self._ssrc
        seq = frame.first_index + self._offset
        last = len(frame.payloads) - 1
        octets = 0
        for i, payload in enumerate(frame.payloads):
            header = _HEADER.pack(
                first_byte, pt | 0x80 if i == last else pt, (seq + i) & 0xFFFF, timestamp, ssrc
            )
            send(header + ext, payload)
            octets += len(payload)
        self.packets_sent += len(frame.payloads)
        self.octets_sent += octets
        if frame.ntp_time - self._reported_at >= _REPORT_EVERY_NTP:
            # sender reports go out about once a second; their figures need not be
            # fresher than half of that
            self._reported_at = frame.ntp_time
            self._report(frame.ntp_time, timestamp, self.packets_sent, self.octets_sent)
        return True

    async def retransmit(self, sequence_number: int) -> None:
        """Answer a NACK for one of this viewer's sequence numbers."""
        if self._next_index is None:
            return
        last = self._next_index - 1
        behind = (last + self._offset - sequence_number) & 0xFFFF
        index = last - behind
        if index < self._sent_from:
            return  # never sent to this viewer (skipped), or before the offset moved
        found = self._history.get(index)
        send = self._sink.sending()
        if found is None or send is None:
            return
        payload, marker, ts, abs_send_time = found
        timestamp = (self._timestamp_origin + ts) & 0xFFFFFFFF
        rtx_pt, rtx_ssrc = self._rtx_payload_type, self._rtx_ssrc
        if rtx_pt is not None and rtx_ssrc is not None:
            ext = _extension_block(self._mid_id, self._mid, 0, 0)
            pt, seq, ssrc = rtx_pt, self._rtx_sequence, rtx_ssrc
            self._rtx_sequence = (self._rtx_sequence + 1) & 0xFFFF
            payload = _RTX_SEQ.pack(sequence_number) + payload
        else:
            # the very packet sent the first time, header included: under SRTP with
            # AES-GCM one sequence number must never protect two different packets
            ext = _extension_block(self._mid_id, self._mid, self._abs_id, abs_send_time)
            pt, seq, ssrc = self._payload_type, sequence_number, self._ssrc
        first_byte = _first_byte(ext)
        header = _HEADER.pack(first_byte, pt | 0x80 if marker else pt, seq, timestamp, ssrc)
        send(header + ext, payload)
