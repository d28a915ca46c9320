"""aiortc WHIP/WHEP client peers: for tests, benchmarks and (later) edges that
pull a session from its origin like a viewer.

The clients never speak HTTP: they take an ``exchange`` coroutine that turns an
offer into an answer (``MediaService.publish`` / ``play`` directly, or an HTTP
POST). They gather ICE candidates only on ``addresses`` and use only the
configured STUN/TURN servers (none by default).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack

from . import aiortc_hooks
from .config import MediaConfig
from .ice import create_peer_connection, set_local_description
from .keyframes import is_keyframe


class HasAnswer(Protocol):
    @property
    def answer_sdp(self) -> str: ...


#: offer SDP -> answer SDP, or a ``Resource`` (kept as ``client.resource``)
Exchange = Callable[[str], Awaitable[str | HasAnswer]]

STAMP_BITS = 40
STAMP_BLOCK = 16


class SyntheticVideoTrack(VideoStreamTrack):
    """Moving test picture at 30 fps with the capture time drawn into it.

    The top row holds ``STAMP_BITS`` black/white 16x16 blocks: the wall-clock
    time in milliseconds (``read_stamp`` reads it back from a decoded frame), so
    a decoding viewer can measure publish-to-display latency.
    """

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width, self.height = width, height
        y = np.tile(np.arange(width, dtype=np.uint8), (height, 1))
        self._base = np.concatenate([y, np.full((height // 2, width), 128, dtype=np.uint8)], axis=0)
        self.frames = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        image = np.roll(self._base[: self.height], self.frames * 4, axis=1)
        stamp = int(time.time() * 1000)
        for bit in range(STAMP_BITS):
            x = bit * STAMP_BLOCK
            if x + STAMP_BLOCK > self.width:
                break
            value = 255 if stamp >> bit & 1 else 0
            image[0 : 2 * STAMP_BLOCK, x : x + STAMP_BLOCK] = value  # two rows: checked copy
        data = np.concatenate([image, self._base[self.height :]], axis=0)
        frame = av.VideoFrame.from_ndarray(data, format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        self.frames += 1
        return frame


def read_stamp(frame: av.VideoFrame) -> int | None:
    """The capture time drawn by ``SyntheticVideoTrack``: wall-clock ms modulo
    ``2**STAMP_BITS``, or None if the picture is too small to hold it."""
    y = frame.to_ndarray(format="gray")
    if frame.width < STAMP_BITS * STAMP_BLOCK or y.shape[0] < 2 * STAMP_BLOCK:
        return None
    rows = []
    for top in (0, STAMP_BLOCK):
        value = 0
        for bit in range(STAMP_BITS):
            block = y[
                top + 4 : top + STAMP_BLOCK - 4, bit * STAMP_BLOCK + 4 : (bit + 1) * STAMP_BLOCK - 4
            ]
            if float(block.mean()) > 128:
                value |= 1 << bit
        rows.append(value)
    return rows[0] if rows[0] == rows[1] else None  # a misread row is not a time


class _OfferingPeer:
    """A peer that makes the offer and posts it to a WHIP/WHEP endpoint (``exchange``)."""

    def __init__(self, config: MediaConfig) -> None:
        self.pc: RTCPeerConnection = create_peer_connection(config)
        self._addresses = config.ice_addresses
        self.resource: str | HasAnswer | None = None

    async def connect(self, exchange: Exchange) -> None:
        await set_local_description(self.pc, self._addresses)
        result = await exchange(self.pc.localDescription.sdp)
        self.resource = result
        answer = result if isinstance(result, str) else result.answer_sdp
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def offer(self) -> str:
        """Only create the offer (for tests that expect it to be refused)."""
        await set_local_description(self.pc, self._addresses)
        return str(self.pc.localDescription.sdp)

    async def close(self) -> None:
        await aiortc_hooks.close_peer(self.pc)


class PublisherClient(_OfferingPeer):
    """A WHIP publisher sending a synthetic picture and silence."""

    def __init__(
        self,
        config: MediaConfig,
        video_codec: str | None = "video/VP8",
        audio: bool = True,
        width: int = 320,
        height: int = 240,
    ) -> None:
        super().__init__(config)
        self.video: SyntheticVideoTrack | None = None
        self.video_sender: RTCRtpSender | None = None
        self.keyframe_requests = 0
        if video_codec is not None:
            self.video = SyntheticVideoTrack(width, height)
            t = self.pc.addTransceiver(self.video, direction="sendonly")
            caps = RTCRtpSender.getCapabilities("video").codecs
            t.setCodecPreferences([c for c in caps if c.mimeType == video_codec])
            self.video_sender = t.sender
            original = t.sender._send_keyframe

            def counted() -> None:
                self.keyframe_requests += 1
                original()

            aiortc_hooks.on_keyframe_request(t.sender, counted)
        if audio:
            self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")


@dataclass
class ReceivedFrames:
    """What a viewer saw, per kind."""

    encoded: int = 0
    keyframes: int = 0
    first_is_keyframe: bool | None = None
    decoded: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    #: arrival of the encoded frame -> decoded frame handed to the application
    decode_delays_ms: list[float] = field(default_factory=list)
    first_at: float | None = None
    #: the first frames' RTP timestamps (for gap checks), from the first keyframe on
    timestamps: list[int] = field(default_factory=list)
    last_timestamp: int | None = None


#: how many timestamps ``ReceivedFrames`` keeps
KEPT_TIMESTAMPS = 600


class ViewerClient(_OfferingPeer):
    """A WHEP viewer. ``decode`` False makes a cheap receiver (counts encoded
    frames only); True also decodes, and measures latency from the stamps."""

    def __init__(
        self,
        config: MediaConfig,
        video: bool = True,
        audio: bool = True,
        decode: bool = True,
        video_codecs: tuple[str, ...] | None = None,
        measure_latency: bool = False,
    ) -> None:
        super().__init__(config)
        self._decode = decode
        self._measure = measure_latency
        self.stats: dict[str, ReceivedFrames] = {}
        self.receivers: dict[str, RTCRtpReceiver] = {}
        self._tasks: list[asyncio.Future[None]] = []
        self._changed = asyncio.Event()
        self._arrivals: dict[int, float] = {}
        for kind, wanted in (("video", video), ("audio", audio)):
            if not wanted:
                continue
            t = self.pc.addTransceiver(kind, direction="recvonly")
            if kind == "video" and video_codecs is not None:
                caps = RTCRtpSender.getCapabilities("video").codecs
                t.setCodecPreferences(
                    [c for m in video_codecs for c in caps if c.mimeType == m]
                    + [c for c in caps if c.mimeType == "video/rtx"]
                )
            self.stats[kind] = ReceivedFrames()
            self.receivers[kind] = t.receiver
            aiortc_hooks.tap_receiver(t.receiver, self._encoded_sink(kind), decode=decode)
        self.pc.on("track", self._on_track)

    def _encoded_sink(self, kind: str) -> aiortc_hooks.FrameSink:
        s = self.stats[kind]

        def sink(codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
            key = is_keyframe(codec.mimeType, frame.data)
            if s.first_is_keyframe is None:
                s.first_is_keyframe = key
                s.first_at = time.monotonic()
            s.encoded += 1
            s.keyframes += key
            s.last_timestamp = frame.timestamp
            if (s.keyframes or key) and len(s.timestamps) < KEPT_TIMESTAMPS:
                s.timestamps.append(frame.timestamp)
            if self._measure and kind == "video":
                self._arrivals[frame.timestamp] = time.time()
                if len(self._arrivals) > 300:
                    self._arrivals.pop(next(iter(self._arrivals)))
            self._changed.set()

        return sink

    def _on_track(self, track: MediaStreamTrack) -> None:
        if self._decode:
            self._tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        s = self.stats[track.kind]
        try:
            while True:
                frame = await track.recv()
                s.decoded += 1
                self._changed.set()
                if self._measure and isinstance(frame, av.VideoFrame):
                    arrived = self._arrivals.get(frame.pts or 0)
                    if arrived is not None:
                        s.decode_delays_ms.append(1000 * (time.time() - arrived))
                    stamp = read_stamp(frame)
                    if stamp is not None:
                        age = (int(time.time() * 1000) - stamp) % (1 << STAMP_BITS)
                        if age < 60_000:
                            s.latencies_ms.append(float(age))
        except MediaStreamError:
            pass

    def mute(self) -> None:
        """Stop processing received media (frame counts freeze); load tests."""
        for receiver in self.receivers.values():
            aiortc_hooks.mute_receiver(receiver)

    def send_pli(self) -> bool:
        """Send a PLI for the video we receive, as a browser would."""
        receiver = self.receivers.get("video")
        if receiver is None:
            return False
        sources = receiver.getSynchronizationSources()
        if not sources:
            return False
        self._tasks.append(
            asyncio.ensure_future(aiortc_hooks.send_pli(receiver, sources[0].source))
        )
        return True

    async def wait_for(
        self, kind: str, decoded: int = 0, encoded: int = 0, within_s: float = 10.0
    ) -> None:
        """Wait until this many frames of ``kind`` arrived (TimeoutError if not)."""
        s = self.stats[kind]
        async with asyncio.timeout(within_s):
            while s.decoded < decoded or s.encoded < encoded:
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        await super().close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
