"""The demo's built-in publisher (``python app.py --demo``; off with ``--no-publisher``
or ``LIVESHELF_DEMO_PUBLISHER=off``): a test picture and a tone, published to the demo
show through the server's own WHIP endpoint, as an external encoder would.

The picture is 640x480 VP8 at 15 fps: colour bars over a band with a running clock
(``HH:MM:SS.f`` in seven-segment digits). It is built with PyAV alone (no numpy, which
is only a test extra): the planes are computed once, and each frame redraws the clock's
glyphs into the luma plane. The sound is Opus: a short 440 Hz beep at every second of
the clock, silence between.

``DemoPublisher.lifetime`` is a cleanup context: it publishes, publishes again with
backoff whenever the server is not answering yet, refuses (another publisher, no live
show) or the connection ends, and at shutdown closes its peer and stops its task.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from array import array
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import aiohttp
import av
from aiohttp import web
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from live.tasks import reraise_if_cancelling, stop_task

from . import aiortc_hooks
from .config import MediaConfig
from .ice import create_peer_connection, set_local_description

log = logging.getLogger(__name__)

WIDTH, HEIGHT, FPS = 640, 480, 15
SAMPLE_RATE, AUDIO_FRAMES_PER_S = 48_000, 50  # 20 ms Opus frames
#: the demo show to publish to: its id and a bearer token of its host (None: no show)
DemoShow = Callable[[], Awaitable[tuple[int, str] | None]]
#: backoff between attempts: doubling from the first to the last
RETRY_FIRST_S, RETRY_MAX_S = 0.25, 5.0
#: an answered offer whose connection is not up this long later is given up
CONNECT_TIMEOUT_S = 10.0


class PublisherSettings(Protocol):
    """What the publisher reads (``live.settings.Settings`` has them)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def tls_cert(self) -> Path | None: ...
    @property
    def ice_addresses(self) -> tuple[str, ...]: ...


# -- the picture --------------------------------------------------------------------

#: 75 % colour bars in BT.601 limited-range YUV: white, yellow, cyan, green, magenta,
#: red, blue
BARS = (
    (180, 128, 128),
    (162, 44, 142),
    (131, 156, 44),
    (112, 72, 58),
    (84, 184, 198),
    (65, 100, 212),
    (35, 212, 114),
)
BARS_HEIGHT = 320  # the clock's band below: dark grey, neutral chroma
BAND_Y, INK_Y = 40, 235
DIGIT_W, DIGIT_H, STROKE, NARROW_W, GAP = 44, 80, 10, 16, 10
#: seven segments (a..g) as rectangles x0, y0, x1, y1 within a digit
_HALF = DIGIT_H // 2
SEGMENTS = {
    "a": (0, 0, DIGIT_W, STROKE),
    "b": (DIGIT_W - STROKE, 0, DIGIT_W, _HALF + STROKE // 2),
    "c": (DIGIT_W - STROKE, _HALF - STROKE // 2, DIGIT_W, DIGIT_H),
    "d": (0, DIGIT_H - STROKE, DIGIT_W, DIGIT_H),
    "e": (0, _HALF - STROKE // 2, STROKE, DIGIT_H),
    "f": (0, 0, STROKE, _HALF + STROKE // 2),
    "g": (0, _HALF - STROKE // 2, DIGIT_W, _HALF + STROKE // 2),
}
DIGITS = ("abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg", "abcdfg")


def _dot(top: int) -> tuple[int, int, int, int]:
    """A square dot at ``top`` in a narrow glyph."""
    return (3, top, 3 + STROKE, top + STROKE)


NARROW = {
    ":": [_dot(DIGIT_H // 3 - STROKE // 2), _dot(2 * DIGIT_H // 3 - STROKE // 2)],
    ".": [_dot(DIGIT_H - STROKE)],
}


@dataclass(frozen=True)
class Glyph:
    width: int
    rows: tuple[bytes, ...]  # DIGIT_H rows of ``width`` luma bytes


def _glyph(width: int, rectangles: Iterable[tuple[int, int, int, int]]) -> Glyph:
    pixels = bytearray([BAND_Y]) * (width * DIGIT_H)
    for x0, y0, x1, y1 in rectangles:
        for y in range(y0, y1):
            pixels[y * width + x0 : y * width + x1] = bytes([INK_Y]) * (x1 - x0)
    return Glyph(width, tuple(bytes(pixels[y * width : (y + 1) * width]) for y in range(DIGIT_H)))


GLYPHS = {str(n): _glyph(DIGIT_W, (SEGMENTS[s] for s in segs)) for n, segs in enumerate(DIGITS)}
GLYPHS |= {mark: _glyph(NARROW_W, rects) for mark, rects in NARROW.items()}


def clock_text(now: datetime) -> str:
    """``HH:MM:SS.f``: the time of day to a tenth of a second."""
    return f"{now:%H:%M:%S}.{now.microsecond // 100_000}"


CLOCK_W = sum(GLYPHS[ch].width + GAP for ch in clock_text(datetime(2000, 1, 1))) - GAP
CLOCK_X, CLOCK_Y = (WIDTH - CLOCK_W) // 2, BARS_HEIGHT + (HEIGHT - BARS_HEIGHT - DIGIT_H) // 2


class Pattern:
    """The planes of the picture; ``frame`` redraws only the clock."""

    def __init__(self) -> None:
        bar_w = -(-WIDTH // len(BARS))

        def plane(index: int, width: int, height: int, band: int) -> bytearray:
            bars = bytes(
                BARS[min(x * WIDTH // width // bar_w, len(BARS) - 1)][index] for x in range(width)
            )
            split = BARS_HEIGHT * height // HEIGHT
            return bytearray(bars * split + bytes([band]) * (width * (height - split)))

        self.luma = plane(0, WIDTH, HEIGHT, BAND_Y)
        self.chroma = [bytes(plane(i, WIDTH // 2, HEIGHT // 2, 128)) for i in (1, 2)]
        self.shown = ""

    def draw(self, text: str) -> None:
        if text == self.shown:
            return
        x = CLOCK_X
        for ch in text:
            glyph = GLYPHS[ch]
            for row, pixels in enumerate(glyph.rows):
                start = (CLOCK_Y + row) * WIDTH + x
                self.luma[start : start + glyph.width] = pixels
            x += glyph.width + GAP
        self.shown = text

    def frame(self, now: datetime) -> av.VideoFrame:
        self.draw(clock_text(now))
        frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
        frame.planes[0].update(bytes(self.luma))
        frame.planes[1].update(self.chroma[0])
        frame.planes[2].update(self.chroma[1])
        return frame


# -- the sound ----------------------------------------------------------------------


def beep_second(frequency: float = 440.0, length_s: float = 0.2, level: float = 0.2) -> list[bytes]:
    """One second of 20 ms mono s16 frames: a beep with soft edges, then silence."""
    total, beep, edge = SAMPLE_RATE, int(SAMPLE_RATE * length_s), SAMPLE_RATE // 200
    samples = array("h", bytes(2 * total))
    for i in range(beep):
        envelope = min(1.0, i / edge, (beep - i) / edge)
        samples[i] = int(
            32767 * level * envelope * math.sin(2 * math.pi * frequency * i / SAMPLE_RATE)
        )
    data, size = samples.tobytes(), 2 * SAMPLE_RATE // AUDIO_FRAMES_PER_S
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- the tracks ---------------------------------------------------------------------


class _PacedTrack(MediaStreamTrack):
    """A track handing out ``rate`` frames a second on the monotonic clock."""

    def __init__(self, rate: int, clock_rate: int) -> None:
        super().__init__()
        self._rate, self._step = rate, clock_rate // rate
        self.time_base = Fraction(1, clock_rate)
        self._start: float | None = None
        self.count = 0

    async def next_pts(self) -> int:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self.count / self._rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.count += 1
        return (self.count - 1) * self._step


class PatternTrack(_PacedTrack):
    kind = "video"

    def __init__(self) -> None:
        super().__init__(FPS, 90_000)
        self._picture = Pattern()

    async def recv(self) -> av.VideoFrame:
        pts = await self.next_pts()
        frame = self._picture.frame(datetime.now())
        frame.pts, frame.time_base = pts, self.time_base
        return frame


class ToneTrack(_PacedTrack):
    kind = "audio"

    def __init__(self) -> None:
        super().__init__(AUDIO_FRAMES_PER_S, SAMPLE_RATE)
        self._second = beep_second()

    async def recv(self) -> av.AudioFrame:
        pts = await self.next_pts()
        # the beep starts as the clock's second turns
        part = int(time.time() * AUDIO_FRAMES_PER_S) % AUDIO_FRAMES_PER_S
        frame = av.AudioFrame(
            format="s16", layout="mono", samples=SAMPLE_RATE // AUDIO_FRAMES_PER_S
        )
        frame.planes[0].update(self._second[part])
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, pts, self.time_base
        return frame


# -- publishing ---------------------------------------------------------------------


class Refused(Exception):
    """The server (or the demo) said no; try again later."""


def local_base_url(settings: PublisherSettings) -> str:
    """This server as seen from itself."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.host, settings.host)
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if settings.tls_cert else 'http'}://{host}:{settings.port}"


def _error_code(status: int, body: str) -> str:
    try:
        return f"{status} {json.loads(body)['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return f"{status} {body[:80]!r}"


class DemoPublisher:
    """Publishes the test picture and tone to the demo show over WHIP, again and again."""

    def __init__(self, settings: PublisherSettings, show: DemoShow) -> None:
        self.base_url = local_base_url(settings)
        # its own server on this machine, whose certificate may not name the address
        self._ssl = not settings.tls_cert
        self._config = MediaConfig(ice_addresses=settings.ice_addresses)  # no STUN/TURN
        self._show = show
        self.pc: RTCPeerConnection | None = None
        #: how many times it was answered and connected (tests)
        self.connections = 0

    async def lifetime(self, _app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(self.run(), name="demo-publisher")
        yield
        await stop_task(task)

    async def run(self) -> None:
        delay, warned = RETRY_FIRST_S, ""
        timeout = aiohttp.ClientTimeout(total=CONNECT_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                try:
                    await self.publish_once(http)
                    delay = RETRY_FIRST_S  # it was up: the next attempt starts afresh
                except Exception as exc:
                    reraise_if_cancelling()
                    reason = str(exc) or type(exc).__name__
                    log.debug("demo publisher: %s; again in %.2f s", reason, delay)
                    if delay >= RETRY_MAX_S and reason != warned:  # failing for ~10 s
                        log.warning("demo publisher: cannot publish: %s; retrying", reason)
                        warned = reason
                await asyncio.sleep(delay)
                delay = min(2 * delay, RETRY_MAX_S)

    async def publish_once(self, http: aiohttp.ClientSession) -> None:
        """Publish until the connection ends (``Refused`` and others if it never began)."""
        show = await self._show()
        if show is None:
            raise Refused("the demo host has no live show")
        session_id, token = show
        url = f"{self.base_url}/whip/{session_id}"
        pc = self.pc = create_peer_connection(self._config)
        tracks = (PatternTrack(), ToneTrack())
        connected, ended = asyncio.Event(), asyncio.Event()

        @pc.on("connectionstatechange")
        def changed() -> None:
            if pc.connectionState == "connected":
                connected.set()
            elif pc.connectionState in ("failed", "closed"):
                ended.set()

        try:
            video = pc.addTransceiver(tracks[0], direction="sendonly")
            codecs = RTCRtpSender.getCapabilities("video").codecs
            video.setCodecPreferences([c for c in codecs if c.mimeType == "video/VP8"])
            pc.addTransceiver(tracks[1], direction="sendonly")
            await set_local_description(pc, self._config.ice_addresses)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/sdp"}
            async with http.post(
                url, data=pc.localDescription.sdp, headers=headers, ssl=self._ssl
            ) as res:
                answer = await res.text()
                if res.status != 201:
                    raise Refused(f"POST {url}: {_error_code(res.status, answer)}")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await connected.wait()
            self.connections += 1
            log.info(
                "demo publisher: publishing a test picture and tone to %s (watch: %s/watch/%d)",
                url,
                self.base_url,
                session_id,
            )
            await ended.wait()
            log.info(
                "demo publisher: the connection to %s %s; publishing again", url, pc.connectionState
            )
        finally:
            self.pc = None
            for track in tracks:
                track.stop()
            await aiortc_hooks.close_peer(pc)
