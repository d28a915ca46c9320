"""Packet-forwarding relay: one publisher's encoded frames fanned out to viewers.

Per session there is one ``SessionRelay`` with a ``TrackFanout`` per kind. The
publisher's receive path (see ``aiortc_hooks.tap_receiver``) calls
``TrackFanout.push`` with each reassembled encoded frame. The fanout packetizes it
once into RTP payloads (``PacketizedFrame``, kept in a shared ``PacketHistory``) and
offers it to every viewer's ``ForwardedTrack``, which writes it at once through the
viewer's ``RtpWriter`` (``media/rtpwriter.py``): per viewer only the RTP header is
written, the packet protected and sent. Nothing is decoded, encoded or packetized per
viewer, and no per-viewer task runs per frame.

Contracts:

- A video viewer starts on a keyframe: until one arrives its delta frames are
  skipped and the publisher is asked for one (PLI, coalesced by
  ``KeyframeRequester``; repeated every interval while anyone waits).
- Nothing queues per connected viewer in the relay. A viewer whose socket cannot
  take more (its write buffer is over ``backlog_limit`` bytes) skips frames: video up
  to the next keyframe after its socket drained, audio frame by frame. A viewer not
  connected yet holds at most ``HELD_FRAMES`` frames (from a keyframe on) for when it
  is. Memory per viewer is therefore bounded by the socket's buffer and those frames.
- Timestamps are continuous across publishers: a new publisher's first frame
  is placed after the previous one's last frame by the wall-clock gap, so a
  viewer's RTP timestamps (and sequence numbers and SSRC, owned by its writer)
  never jump back and its decoder recovers on the keyframe it waits for.
- A viewer whose negotiated codec differs from a new publisher's codec cannot
  continue without renegotiation; it is handed to ``on_incompatible``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

import av
from aiortc import MediaStreamTrack, RTCRtpCodecParameters
from aiortc.clock import current_ntp_time
from aiortc.codecs import get_encoder
from aiortc.codecs.base import Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError

from .keyframes import KeyframeRequester, is_keyframe
from .rtpwriter import PacketHistory, PacketizedFrame

logger = logging.getLogger(__name__)

#: frames held for a viewer whose transport is not up yet (one second of video)
HELD_FRAMES = 30


@dataclass(frozen=True, slots=True)
class RelayedFrame:
    """One encoded frame as the relay forwards it (also given to observers)."""

    kind: str
    mime_type: str
    data: bytes
    #: continuous across publishers, in units of 1 / ``clock_rate``
    pts: int
    clock_rate: int
    keyframe: bool
    #: ``time.monotonic()`` when the frame was reassembled
    received_at: float


FrameObserver = Callable[[RelayedFrame], None]


class FrameWriter(Protocol):
    """Where a viewer's frames go once its transport is up (``RtpWriter``)."""

    def write(self, frame: PacketizedFrame) -> bool: ...

    def backlog(self) -> int: ...


@dataclass
class RelayTotals:
    """What every relay of this process did since it started (``live.metrics``)."""

    #: video viewers that fell behind and restarted on a keyframe
    resets: int = 0
    #: frames not sent to a viewer (behind, or waiting for a keyframe)
    frames_skipped: int = 0
    #: keyframe requests (PLI) sent to publishers, after coalescing
    keyframe_requests: int = 0


class ForwardedTrack(MediaStreamTrack):
    """A viewer's outgoing track of one kind.

    aiortc's ``RTCRtpSender`` holds it for negotiation and RTCP but never gets a
    frame from it (``recv`` returns only when the track stops). Once the viewer's
    transport is up, ``attach`` gives it a writer, and the fanout's ``offer`` writes
    each frame straight through it.
    """

    def __init__(
        self,
        kind: str,
        backlog_limit: int,
        request_keyframe: Callable[[], None],
        name: str,
        totals: RelayTotals | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self._totals = totals or RelayTotals()
        self.name = name
        self.mime_type: str | None = None  # negotiated codec, set after the answer
        self._backlog_limit = backlog_limit
        self._writer: FrameWriter | None = None
        #: frames kept until the transport is up: at most ``HELD_FRAMES``
        self._held: list[PacketizedFrame] = []
        self._behind = False  # its socket was over the backlog limit at the last frame
        self._ended: asyncio.Event | None = None
        self._request_keyframe = request_keyframe
        self.waiting_for_keyframe = kind == "video"
        self.frames_sent = 0
        self.frames_skipped = 0
        self.resets = 0
        #: monotonic time a frame was last sent (None: never): "receiving media"
        self.last_sent_at: float | None = None

    @property
    def wants_keyframe(self) -> bool:
        """Connected, able to take more, and skipping video until a keyframe."""
        return self.waiting_for_keyframe and self._writer is not None and not self._behind

    def attach(self, writer: FrameWriter) -> None:
        """The viewer's transport is up: what was held for it goes out now (from a
        keyframe on), and every frame after goes to ``writer`` as it comes."""
        if self.readyState != "live":
            return
        self._writer = writer
        held, self._held = self._held, []
        for frame in held:
            self._send(writer, frame, time.monotonic())
        if self.waiting_for_keyframe:
            self._request_keyframe()

    def backlog(self) -> int:
        return 0 if self._writer is None else self._writer.backlog()

    def offer(self, frame: PacketizedFrame, now: float) -> None:
        """Send a frame to this viewer, applying the backlog and keyframe rules."""
        writer = self._writer
        if writer is None:
            self._hold(frame)
            return
        if writer.backlog() > self._backlog_limit:
            # its socket is behind: skip (video up to the next keyframe after it
            # drains) rather than pile up seconds-old media
            self.frames_skipped += 1
            self._totals.frames_skipped += 1
            if not self._behind:
                self._behind = True
                if self.kind == "video":
                    self.resets += 1
                    self._totals.resets += 1
                    self.waiting_for_keyframe = True
                    logger.info("ForwardedTrack(%s) fell behind, waits for a keyframe", self.name)
            return
        self._behind = False
        if self.waiting_for_keyframe:
            if not frame.keyframe:
                self.frames_skipped += 1
                self._totals.frames_skipped += 1
                return
            self.waiting_for_keyframe = False
        self._send(writer, frame, now)

    def _send(self, writer: FrameWriter, frame: PacketizedFrame, now: float) -> None:
        if writer.write(frame):
            self.frames_sent += 1
            self.last_sent_at = now

    def _hold(self, frame: PacketizedFrame) -> None:
        """Not connected yet (answered, ICE and DTLS under way): keep the frames from
        a keyframe on (the one its join asked for), up to ``HELD_FRAMES``; past that,
        start again from the next keyframe."""
        if self.waiting_for_keyframe:
            if not frame.keyframe:
                return
            self.waiting_for_keyframe = False
        if len(self._held) >= HELD_FRAMES:
            self._held.clear()
            if self.kind == "video" and not frame.keyframe:
                self.waiting_for_keyframe = True
                return
        self._held.append(frame)

    def restart(self) -> None:
        """Wait for a keyframe (publisher changed)."""
        self._held.clear()
        if self.kind == "video":
            self.waiting_for_keyframe = True

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        """Returns only by raising ``MediaStreamError`` once the track stops: the
        sender's own RTP loop idles here while the writer does the sending."""
        if self.readyState == "live":
            self._ended = self._ended or asyncio.Event()
            await self._ended.wait()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._writer = None
        self._held.clear()
        if self._ended is not None:
            self._ended.set()


class Packetizer:
    """Turns one source codec's frames into RTP payloads, once for every viewer."""

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self._encoder: Encoder = get_encoder(codec)
        self._time_base = Fraction(1, codec.clockRate)

    def payloads(self, data: bytes, pts: int) -> list[bytes]:
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self._time_base
        payloads, _ = self._encoder.pack(packet)
        return payloads


class TrackFanout:
    """Fans one kind (audio or video) of one session out to its viewers."""

    def __init__(
        self,
        kind: str,
        keyframes: KeyframeRequester,
        on_incompatible: Callable[[ForwardedTrack], None],
        name: str,
    ) -> None:
        self.kind = kind
        self.name = name
        #: one per viewer of this kind, removed when the viewer goes (``discard``)
        self.tracks: set[ForwardedTrack] = set()
        #: the session's recorder, if any
        self.observers: list[FrameObserver] = []
        self.mime_type: str | None = None  # codec of the current source
        self.frames_in = 0
        self._keyframes = keyframes
        self._on_incompatible = on_incompatible
        self.history = PacketHistory()
        self._packetizer: Packetizer | None = None
        self._live = False
        self._offset = 0  # added to the source's timestamps
        self._needs_anchor = True
        self._last_pts: int | None = None
        self._last_clock_rate = 0
        self._last_at = 0.0

    @property
    def live(self) -> bool:
        return self._live

    def add(self, track: ForwardedTrack) -> None:
        self.tracks.add(track)
        if self.kind == "video" and self._live:
            self._keyframes.request()

    def discard(self, track: ForwardedTrack) -> None:
        self.tracks.discard(track)

    def start_source(self) -> None:
        """A new publisher starts sending this kind; re-anchor timestamps."""
        self._live = True
        self._needs_anchor = True
        self.mime_type = None

    def stop_source(self) -> None:
        self._live = False

    def push(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        """Forward one reassembled frame from the publisher (event loop only)."""
        if not self._live:
            return
        now = time.monotonic()
        mime = codec.mimeType
        if self.mime_type != mime or self._packetizer is None:
            self._switch_codec(codec)
        assert self._packetizer is not None
        if self._needs_anchor:
            self._anchor(frame.timestamp, codec.clockRate, now)
        pts = self._offset + frame.timestamp
        data = frame.data
        keyframe = is_keyframe(mime, data)
        self.frames_in += 1
        self._last_pts, self._last_clock_rate, self._last_at = pts, codec.clockRate, now

        if self.tracks:
            payloads = self._packetizer.payloads(data, pts)
            ntp = current_ntp_time()
            abs_send_time = (ntp >> 14) & 0xFFFFFF
            packetized = PacketizedFrame(
                first_index=self.history.add(payloads, pts, abs_send_time),
                payloads=payloads,
                timestamp=pts,
                keyframe=keyframe,
                abs_send_time=abs_send_time,
                ntp_time=ntp,
            )
            waiting = False
            for track in self.tracks:
                track.offer(packetized, now)
                waiting = waiting or track.wants_keyframe
            if waiting:
                self._keyframes.request()
        if self.observers:
            relayed = RelayedFrame(self.kind, mime, data, pts, codec.clockRate, keyframe, now)
            for observer in self.observers:
                observer(relayed)

    def _switch_codec(self, codec: RTCRtpCodecParameters) -> None:
        mime = codec.mimeType
        logger.info("TrackFanout(%s) source codec %s -> %s", self.name, self.mime_type, mime)
        self.mime_type = mime
        self._packetizer = Packetizer(codec)
        for track in list(self.tracks):
            if track.mime_type is not None and track.mime_type.lower() != mime.lower():
                self.tracks.discard(track)
                self._on_incompatible(track)
            else:
                track.restart()

    def _anchor(self, timestamp: int, clock_rate: int, now: float) -> None:
        self._needs_anchor = False
        if self._last_pts is None:
            self._offset = -timestamp
        else:
            gap = max(1, round((now - self._last_at) * clock_rate))
            self._offset = self._last_pts + gap - timestamp
        for track in self.tracks:
            track.restart()


class SessionRelay:
    """The relay of one live session: a video and an audio fanout.

    ``send_pli`` is how the relay reaches the current publisher; it returns
    False when there is nobody to ask.
    """

    def __init__(
        self,
        session_id: int,
        pli_interval_s: float,
        backlog_limit: int,
        on_incompatible: Callable[[ForwardedTrack], None],
        totals: RelayTotals | None = None,
    ) -> None:
        self.session_id = session_id
        self.backlog_limit = backlog_limit
        self.totals = totals or RelayTotals()
        self.send_pli: Callable[[], bool] = lambda: False
        name = f"session={session_id}"
        self.keyframes = KeyframeRequester(self._counted_pli, pli_interval_s, name)
        self.video = TrackFanout("video", self.keyframes, on_incompatible, name + "/video")
        self.audio = TrackFanout("audio", self.keyframes, on_incompatible, name + "/audio")

    def fanout(self, kind: str) -> TrackFanout:
        return self.video if kind == "video" else self.audio

    def _counted_pli(self) -> bool:
        sent = self.send_pli()
        if sent:
            self.totals.keyframe_requests += 1
        return sent

    def new_track(self, kind: str, name: str) -> ForwardedTrack:
        """A viewer track bound to this session's keyframe requests."""
        return ForwardedTrack(kind, self.backlog_limit, self.keyframes.request, name, self.totals)

    def close(self) -> None:
        self.keyframes.close()
        for fanout in (self.video, self.audio):
            fanout.stop_source()
            for track in list(fanout.tracks):
                track.stop()
            fanout.tracks.clear()
            fanout.observers.clear()
