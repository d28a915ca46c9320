"""Every place liveshelf reaches into aiortc internals (checked against aiortc 1.16).

1. Encoded frames out of the receive path. ``RTCRtpReceiver._handle_rtp_packet``
   depayloads each RTP packet, reassembles frames in its ``JitterBuffer`` and puts
   ``(codec, JitterFrame)`` on ``self.__decoder_queue`` (a ``queue.Queue``) which a
   decoder thread drains. ``tap_receiver`` swaps that queue, before the receiver
   starts, for a queue whose ``put`` hands each frame to our sink on the event
   loop and only lets the end-of-stream ``None`` through. The decoder thread still
   starts but blocks idle in ``get()`` until the receiver stops: no decoding.
   We keep aiortc's NACKs, RTCP receiver reports and REMB, and its jitter
   buffer's reassembly, but swap ``self.__jitter_buffer`` for a subclass that
   releases every complete frame at once and does not prefetch (see
   ``_DrainingJitterBuffer``: the stock one lets latency grow after a loss).
   ``JitterFrame.timestamp`` is already unwrapped and starts at 0 per receiver.
2. Keyframe requests to a publisher: ``RTCRtpReceiver._send_rtcp_pli(ssrc)``.
3. Keyframe requests from a viewer: ``RTCRtpSender._handle_rtcp_packet`` calls
   ``self._send_keyframe()`` on PLI or FIR, which only matters to an encoder. We
   shadow it per sender instance with our callback.
4. (ICE, in ``media/ice.py``) ``aioice.ice.get_host_addresses``.
5. (benchmarks) ``RTCRtpReceiver._enabled = False`` makes a receiver drop packets
   right after SRTP: a cheap stand-in for many viewers (``mute_receiver``).
6. (DTLS role, in ``media/service.py``) ``RTCDtlsTransport._set_role("server")``
   to answer a WHIP offer with ``a=setup:passive``.

If aiortc renames any of these, ``tap_receiver`` and ``check_compatible`` fail
loudly at the first publish instead of silently decoding or dropping PLIs.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCRtpCodecParameters, RTCRtpReceiver, RTCRtpSender
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

FrameSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]

_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"


def check_compatible() -> None:
    """Raise RuntimeError if aiortc no longer has the members we rely on."""
    missing = [
        name
        for cls, name in (
            (RTCRtpReceiver, "_send_rtcp_pli"),
            (RTCRtpReceiver, "_handle_rtp_packet"),
            (RTCRtpSender, "_send_keyframe"),
            (RTCRtpSender, "_handle_rtcp_packet"),
        )
        if not hasattr(cls, name)
    ]
    if missing:
        raise RuntimeError(f"unsupported aiortc version, missing: {missing}")


class _DrainingJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, but every complete frame leaves at once.

    ``JitterBuffer.add`` returns at most one frame per packet, so after a stall
    (a lost packet awaiting retransmission) the backlog never drains when
    frames are one packet long: latency grows for good (aiortc issue #543).
    Here the extra complete frames are kept in ``extra`` for the tap to deliver
    right after the returned one. No prefetch: the relay has no playout clock.
    """

    def __init__(self, capacity: int, is_video: bool) -> None:
        super().__init__(capacity=capacity, prefetch=0, is_video=is_video)
        self.returned_timestamp = 0
        self.extra: list[JitterFrame] = []

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli_flag, frame = super().add(packet)
        if frame is not None:
            self.returned_timestamp = frame.timestamp
            while (more := self._remove_frame(packet.sequence_number)) is not None:
                self.extra.append(more)
        return pli_flag, frame


class _EncodedFrameTap(queue.Queue[Any]):
    """Stands in for the receiver's decoder queue; see the module docstring."""

    def __init__(self, sink: FrameSink, decode: bool, buffer: _DrainingJitterBuffer) -> None:
        super().__init__()
        self._sink = sink
        self._decode = decode
        self._buffer = buffer

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # end of stream: let the idle decoder thread exit
            super().put(None, block, timeout)
            return
        codec, frame = item
        self._deliver(codec, frame)
        extra, self._buffer.extra = self._buffer.extra, []
        for more in extra:
            # aiortc mapped the returned frame's timestamp; map ours the same way
            delta = (more.timestamp - self._buffer.returned_timestamp) & 0xFFFFFFFF
            more.timestamp = frame.timestamp + (delta if delta < 1 << 31 else delta - (1 << 32))
            self._deliver(codec, more)

    def _deliver(self, codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
        self._sink(codec, frame)
        if self._decode:
            super().put((codec, frame))


def tap_receiver(receiver: RTCRtpReceiver, sink: FrameSink, decode: bool = False) -> None:
    """Route the receiver's reassembled encoded frames to ``sink``.

    With ``decode`` False (the relay) nothing is decoded; with True (test and
    benchmark probes) frames are also decoded onto the receiver's track as usual.
    Must be called before the receiver starts (after ``setRemoteDescription``,
    before the transport connects). ``sink`` runs on the event loop, in the
    packet receive path: it must not block.
    """
    if not all(hasattr(receiver, a) for a in (_DECODER_QUEUE, _DECODER_THREAD, _JITTER_BUFFER)):
        raise RuntimeError("unsupported aiortc version: receiver has no decoder queue")
    if getattr(receiver, _DECODER_THREAD) is not None:
        raise RuntimeError("tap_receiver called after the receiver started")
    old: JitterBuffer = getattr(receiver, _JITTER_BUFFER)
    buffer = _DrainingJitterBuffer(old.capacity, is_video=old._is_video)
    setattr(receiver, _JITTER_BUFFER, buffer)
    setattr(receiver, _DECODER_QUEUE, _EncodedFrameTap(sink, decode, buffer))


def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> Coroutine[Any, Any, None]:
    """A coroutine sending one Picture Loss Indication for ``media_ssrc``."""
    return receiver._send_rtcp_pli(media_ssrc)


def on_keyframe_request(sender: RTCRtpSender, callback: Callable[[], None]) -> None:
    """Call ``callback`` whenever the remote receiver sends PLI or FIR."""
    sender._send_keyframe = callback  # type: ignore[method-assign]


def mute_receiver(receiver: RTCRtpReceiver) -> None:
    """Drop incoming RTP right after decryption (load-generating viewers only)."""
    receiver._enabled = False
