"""Keyframe detection on encoded frames, and coalesced keyframe requests."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

H264_NAL_IDR = 5


def is_keyframe(mime_type: str, data: bytes) -> bool:
    """Whether an encoded frame (as reassembled by aiortc) decodes on its own.

    VP8: bit 0 of the frame tag is 0 for a key frame (RFC 6386 section 9.1).
    H.264: aiortc hands over Annex B; a frame holding an IDR slice is a keyframe
    (encoders send SPS/PPS in the same access unit).
    """
    mime = mime_type.lower()
    if mime == "video/vp8":
        return len(data) > 0 and (data[0] & 0x01) == 0
    if mime == "video/h264":
        pos = data.find(b"\x00\x00\x01")
        while pos != -1 and pos + 3 < len(data):
            if data[pos + 3] & 0x1F == H264_NAL_IDR:
                return True
            pos = data.find(b"\x00\x00\x01", pos + 3)
        return False
    return True  # audio: every frame stands alone


class KeyframeRequester:
    """Sends keyframe requests through ``send``, at most one per ``interval_s``.

    A request made inside the interval is not lost: one deferred request is
    sent when the interval ends. ``close`` cancels a pending deferred request.
    """

    def __init__(self, send: Callable[[], bool], interval_s: float, name: str) -> None:
        self._send = send
        self._interval = interval_s
        self._name = name
        self._last_sent = -float("inf")
        self._deferred: asyncio.TimerHandle | None = None
        self.requests = 0
        self.sent = 0

    def request(self) -> None:
        """Ask for a keyframe; cheap to call on every frame."""
        self.requests += 1
        if self._deferred is not None:
            return
        wait = self._last_sent + self._interval - time.monotonic()
        if wait <= 0:
            self._fire()
        else:
            self._deferred = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        self._deferred = None
        self._last_sent = time.monotonic()
        if self._send():
            self.sent += 1
            logger.debug("KeyframeRequester(%s) sent PLI #%d", self._name, self.sent)

    def close(self) -> None:
        """No more requests: drop the timer, and ``send`` (which usually holds the
        requester's owner: a cycle)."""
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None
        self._send = _nobody


def _nobody() -> bool:
    return False
