"""Packet-forwarding relay: one publisher's encoded frames fanned out to viewers.

Per session there is one ``SessionRelay`` with a ``TrackFanout`` per kind. The
publisher's receive path (see ``aiortc_hooks.tap_receiver``) calls
``SessionRelay.push`` with each reassembled encoded frame. The fanout turns it
into one ``av.Packet`` (shared, read-only) and offers it to every viewer's
``ForwardedTrack``; each viewer's ``RTCRtpSender`` reads its track and only
packetizes, encrypts and sends. Nothing is decoded or encoded per viewer.

Contracts:

- A video viewer starts on a keyframe: until one arrives its delta frames are
  skipped and the publisher is asked for one (PLI, coalesced by
  ``KeyframeRequester``; repeated every interval while anyone waits).
- Each track queue is bounded. A video viewer whose queue is full is emptied and
  waits for the next keyframe; audio drops its oldest frame. Memory per viewer
  is therefore at most ``bound`` frames per track.
- Timestamps are continuous across publishers: a new publisher's first frame
  is placed after the previous one's last frame by the wall-clock gap, so a
  viewer's RTP timestamps (and sequence numbers and SSRC, owned by its sender)
  never jump back and its decoder recovers on the keyframe it waits for.
- A viewer whose negotiated codec differs from a new publisher's codec cannot
  continue without renegotiation; it is handed to ``on_incompatible``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from aiortc import MediaStreamTrack, RTCRtpCodecParameters
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError

from .keyframes import KeyframeRequester, is_keyframe

logger = logging.getLogger(__name__)


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


class ForwardedTrack(MediaStreamTrack):
    """A viewer's outgoing track: a bounded queue of already-encoded packets.

    ``RTCRtpSender`` calls ``recv`` and, getting an ``av.Packet`` rather than a
    frame, packetizes it without encoding.
    """

    def __init__(
        self, kind: str, bound: int, request_keyframe: Callable[[], None], name: str
    ) -> None:
        super().__init__()
        self.kind = kind
        self.name = name
        self.mime_type: str | None = None  # negotiated codec, set after the answer
        self._bound = bound
        self._queue: deque[av.Packet[Any]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._request_keyframe = request_keyframe
        self.waiting_for_keyframe = kind == "video"
        self.frames_queued = 0
        self.frames_skipped = 0
        self.resets = 0
        #: monotonic time the sender last took a frame (None: never): "receiving media"
        self.last_sent_at: float | None = None

    @property
    def queued(self) -> int:
        return len(self._queue)

    def offer(self, packet: av.Packet[Any], keyframe: bool) -> None:
        """Queue a frame for this viewer, applying the keyframe and bound rules."""
        if self.waiting_for_keyframe:
            if not keyframe:
                self.frames_skipped += 1
                return
            self.waiting_for_keyframe = False
        if len(self._queue) >= self._bound:
            if self.kind == "video":
                # Behind by a whole queue: skip to the next keyframe rather than
                # send seconds-old video; keep this frame if it is one.
                self.frames_skipped += len(self._queue)
                self._queue.clear()
                self.resets += 1
                if not keyframe:
                    self.frames_skipped += 1
                    self.waiting_for_keyframe = True
                    logger.info("ForwardedTrack(%s) fell behind, waiting for keyframe", self.name)
                    self._request_keyframe()
                    return
            else:
                self._queue.popleft()
                self.frames_skipped += 1
        self._queue.append(packet)
        self.frames_queued += 1
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def restart(self) -> None:
        """Forget queued frames and wait for a keyframe (publisher changed)."""
        self._queue.clear()
        if self.kind == "video":
            self.waiting_for_keyframe = True

    async def recv(self) -> av.Packet[Any]:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        self.last_sent_at = time.monotonic()
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)  # recv sees readyState "ended"


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
        self.tracks: set[ForwardedTrack] = set()
        self.observers: list[FrameObserver] = []
        self.mime_type: str | None = None  # codec of the current source
        self.frames_in = 0
        self._keyframes = keyframes
        self._on_incompatible = on_incompatible
        self._time_bases: dict[int, Fraction] = {}
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
        if self.mime_type != mime:
            self._switch_codec(mime)
        if self._needs_anchor:
            self._anchor(frame.timestamp, codec.clockRate, now)
        pts = self._offset + frame.timestamp
        data = frame.data
        keyframe = is_keyframe(mime, data)
        self.frames_in += 1
        self._last_pts, self._last_clock_rate, self._last_at = pts, codec.clockRate, now

        if self.tracks:
            packet = av.Packet(data)
            packet.pts = pts
            packet.time_base = self._time_base(codec.clockRate)
            waiting = False
            for track in self.tracks:
                track.offer(packet, keyframe)
                waiting = waiting or track.waiting_for_keyframe
            if waiting:
                self._keyframes.request()
        if self.observers:
            relayed = RelayedFrame(self.kind, mime, data, pts, codec.clockRate, keyframe, now)
            for observer in self.observers:
                observer(relayed)

    def _switch_codec(self, mime: str) -> None:
        logger.info("TrackFanout(%s) source codec %s -> %s", self.name, self.mime_type, mime)
        self.mime_type = mime
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

    def _time_base(self, clock_rate: int) -> Fraction:
        tb = self._time_bases.get(clock_rate)
        if tb is None:
            tb = self._time_bases[clock_rate] = Fraction(1, clock_rate)
        return tb


class SessionRelay:
    """The relay of one live session: a video and an audio fanout.

    ``send_pli`` is how the relay reaches the current publisher; it returns
    False when there is nobody to ask.
    """

    def __init__(
        self,
        session_id: int,
        pli_interval_s: float,
        queue_bound: int,
        on_incompatible: Callable[[ForwardedTrack], None],
    ) -> None:
        self.session_id = session_id
        self.queue_bound = queue_bound
        self.send_pli: Callable[[], bool] = lambda: False
        name = f"session={session_id}"
        self.keyframes = KeyframeRequester(lambda: self.send_pli(), pli_interval_s, name)
        self.video = TrackFanout("video", self.keyframes, on_incompatible, name + "/video")
        self.audio = TrackFanout("audio", self.keyframes, on_incompatible, name + "/audio")

    def fanout(self, kind: str) -> TrackFanout:
        return self.video if kind == "video" else self.audio

    def new_track(self, kind: str, name: str) -> ForwardedTrack:
        """A viewer track bound to this session's keyframe requests."""
        return ForwardedTrack(kind, self.queue_bound, self.keyframes.request, name)

    def close(self) -> None:
        self.keyframes.close()
        for fanout in (self.video, self.audio):
            fanout.stop_source()
            for track in list(fanout.tracks):
                track.stop()
            fanout.tracks.clear()
            fanout.observers.clear()
