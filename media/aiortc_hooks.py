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
   releases a frame on its marker bit (audio on arrival), drains every complete
   frame at once and does not prefetch (see ``_DrainingJitterBuffer``: the stock
   one holds each frame until the next begins and lets latency grow after a
   loss). It overrides ``JitterBuffer._remove_frame`` and reads ``_origin``,
   ``_packets``, ``_capacity``, ``_is_video`` and the depayloaded ``RtpPacket._data``.
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

7. Sending a viewer's RTP ourselves (``media/rtpwriter.py``): the negotiated
   ``RTCRtpSendParameters`` by wrapping ``RTCRtpSender.send`` per instance; the
   sender's ``_ssrc`` and ``_rtx_ssrc``; NACKs by shadowing ``_retransmit`` per
   instance; the sender-report counters ``__ntp_timestamp``, ``__rtp_timestamp``,
   ``__packet_count`` and ``__octet_count`` that its RTCP loop reads; the DTLS
   transport's ``_tx_srtp`` session (``protect``), or for AES-GCM profiles our own
   protection (``media.srtp``) keyed from ``_ssl`` (pyOpenSSL's
   ``get_selected_srtp_profile`` and ``export_keying_material``), ``_role`` and
   ``_srtp_profiles`` (``SRTPProtectionProfile.get_key_and_salt``), as aiortc's
   ``_setup_srtp`` keys libsrtp; and the nominated ICE pair,
   ``RTCIceTransport._connection._nominated[1]`` (aioice ``Connection``), whose
   ``protocol.transport`` is the asyncio datagram transport. The ``_nominated`` dict
   is read through a reference kept from the start (aioice fills and clears that one
   dict; it never replaces it).

8. Freeing a closed peer at once (``release``): a closed ``RTCPeerConnection`` stays
   in reference cycles that only the cyclic collector frees (what each held:
   bench/RESULTS.md, "Soak"; most of it the REMB estimator's ``RateBucket``s): each DTLS
   and ICE transport keeps the peer's state-change listeners (``pyee``
   ``remove_all_listeners``), aioice's ``Connection._check_list`` holds pairs whose
   ``StunProtocol`` points back at the connection, our per-instance shadows of
   ``RTCRtpSender.send``/``_send_keyframe``/``_retransmit`` hold the sender, the
   receiver's frame tap (1.) holds a sink that holds the receiver's owner, and
   pyOpenSSL's ``_VerifyHelper`` (``Context._verify_helper``, reached through
   ``RTCDtlsTransport._ssl``) holds the callback that holds it.

9. A viewer's receivers never get RTP (its transceivers only send), yet each video
   ``RTCRtpReceiver`` builds a REMB estimator whose rate counter is 1,000
   ``RateBucket`` objects in a list, all tracked by the cyclic collector, and a NACK
   generator. ``send_only`` sets ``__remote_bitrate_estimator`` and
   ``__nack_generator`` to None, as aiortc has them for audio (its receive path
   checks for None).

If aiortc renames any of these, ``tap_receiver`` and ``check_compatible`` fail
loudly at the first publish instead of silently decoding or dropping PLIs.

Longer than ~400 lines because it is the one place that reaches into aiortc's
internals, each reach listed above with its reason and all of them checked together
by ``check_compatible``; split, an aiortc upgrade would have to be checked against
several modules, and a new reach could land where the check does not look.
"""

from __future__ import annotations

import inspect
import logging
import queue
from collections.abc import Callable, Coroutine
from typing import Any

import aioice
from aiortc import (
    RTCDtlsTransport,
    RTCIceTransport,
    RTCPeerConnection,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
)
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcdtlstransport import SRTP_AEAD_AES_128_GCM
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import RtpPacket
from OpenSSL import SSL

from .srtp import GCM_PROFILES, GcmProtector

logger = logging.getLogger(__name__)

FrameSink = Callable[[RTCRtpCodecParameters, JitterFrame], None]

_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_RECEIVE_STATE = ("_RTCRtpReceiver__remote_bitrate_estimator", "_RTCRtpReceiver__nack_generator")
_SR_FIELDS = tuple(
    f"_RTCRtpSender__{name}"
    for name in ("ntp_timestamp", "rtp_timestamp", "packet_count", "octet_count")
)


def check_compatible() -> None:
    """Raise RuntimeError if aiortc no longer has the members we rely on."""
    missing = [
        name
        for cls, name in (
            (RTCRtpReceiver, "_send_rtcp_pli"),
            (RTCRtpReceiver, "_handle_rtp_packet"),
            (RTCRtpSender, "_send_keyframe"),
            (RTCRtpSender, "_handle_rtcp_packet"),
            (RTCRtpSender, "_retransmit"),
            (RTCRtpSender, "send"),
        )
        if not hasattr(cls, name)
    ]
    probe = JitterBuffer(capacity=2)
    missing += [
        f"JitterBuffer.{name}"
        for name in ("_remove_frame", "_origin", "_packets", "_capacity", "_is_video")
        if not hasattr(probe, name)
    ]
    # attributes of instances, as the classes' methods name them (no instance needed)
    missing += [
        f"{cls.__name__}.{name}"
        for cls, names in (
            (RTCRtpSender, ("_ssrc", "_rtx_ssrc", *_SR_FIELDS)),
            (RTCRtpReceiver, _RECEIVE_STATE),
            (RTCIceTransport, ("_connection",)),
            (RTCDtlsTransport, ("_tx_srtp", "_ssl", "_role", "_srtp_profiles")),
            (aioice.Connection, ("_nominated", "_check_list")),
            (aioice.ice.CandidatePair, ("protocol", "remote_addr")),
        )
        for name in names
        if not _named_by(cls, name)
    ]
    missing += [
        f"SRTPProtectionProfile.{name}"
        for name in ("openssl_profile", "get_key_and_salt")
        if not hasattr(SRTP_AEAD_AES_128_GCM, name)
    ]
    missing += [
        f"OpenSSL.SSL.Connection.{name}"
        for name in ("get_selected_srtp_profile", "export_keying_material")
        if not hasattr(SSL.Connection, name)
    ]
    set_verify = getattr(SSL.Context, "set_verify", None)
    if set_verify is None or "_verify_helper" not in _names(inspect.unwrap(set_verify)):
        missing.append("OpenSSL.SSL.Context._verify_helper")
    if missing:
        raise RuntimeError(f"unsupported aiortc version, missing: {missing}")


def _names(function: Any) -> tuple[str, ...]:
    return tuple(getattr(function, "__code__").co_names)  # noqa: B009


def _named_by(cls: type, name: str) -> bool:
    """Whether ``cls`` has ``name``, or one of its methods names it (``self.name = ...``)."""
    if hasattr(cls, name):
        return True
    return any(
        name in getattr(member, "__code__").co_names  # noqa: B009
        for member in vars(cls).values()
        if hasattr(member, "__code__")
    )


class _DrainingJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, but every frame leaves as soon as it is complete.

    - **On the marker bit.** aiortc only knows a frame is complete when the next
      frame's first packet arrives: one frame time (33 ms at 30 fps) at every hop.
      A video frame is complete when its packets from the buffer's head on are all
      there and the last one has the RTP marker bit (set on a frame's last packet:
      RFC 7741 for VP8, RFC 6184 for H.264); a packet of another frame after it
      still completes it, for senders that never set the marker. A frame with a
      hole is never released: the scan stops at the first missing packet.
    - **Audio at once.** An audio packet is a whole frame (for Opus the marker
      means the start of a talkspurt, not an end), so it leaves on arrival; a
      packet older than the newest one released (late or duplicate) is dropped
      (the viewer's decoder conceals the gap, as an SFU forwarding audio would).
    - **Backlog drains.** ``JitterBuffer.add`` returns at most one frame per packet,
      so after a stall (a lost packet awaiting retransmission) the backlog never
      drains when frames are one packet long: latency grows for good (aiortc issue
      #543). Here the extra complete frames are kept in ``extra`` for the tap to
      deliver right after the returned one. No prefetch: the relay has no playout
      clock.
    """

    def __init__(self, capacity: int, is_video: bool) -> None:
        super().__init__(capacity=capacity, prefetch=0, is_video=is_video)
        self.returned_timestamp = 0
        self.extra: list[JitterFrame] = []

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        if not self._is_video:
            frame = self._audio_frame(packet)
            if frame is not None:
                self.returned_timestamp = frame.timestamp
            return False, frame
        pli_flag, frame = super().add(packet)
        if frame is not None:
            self.returned_timestamp = frame.timestamp
            while (more := self._remove_frame(packet.sequence_number)) is not None:
                self.extra.append(more)
        return pli_flag, frame

    def _audio_frame(self, packet: RtpPacket) -> JitterFrame | None:
        seq = packet.sequence_number
        if self._origin is not None and (seq - self._origin) & 0xFFFF >= 0x8000:
            return None  # older than what already left
        self._origin = (seq + 1) & 0xFFFF
        return JitterFrame(data=packet._data, timestamp=packet.timestamp)  # type: ignore[attr-defined]

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        """Remove and return the complete frame at the head, if there is one."""
        origin, packets, capacity = self._origin, self._packets, self._capacity
        if origin is None:
            return None
        head = packets[origin % capacity]
        if head is None:
            return None
        timestamp = head.timestamp
        for count in range(capacity):
            packet = packets[(origin + count) % capacity]
            if packet is None:
                return None  # a hole: never release a frame with one
            if packet.timestamp != timestamp:
                return self._take(count, timestamp)  # the next frame has begun
            if packet.marker:
                return self._take(count + 1, timestamp)
        return None

    def _take(self, count: int, timestamp: int) -> JitterFrame:
        origin, packets, capacity = self._origin, self._packets, self._capacity
        assert origin is not None
        data = b"".join(
            packets[(origin + i) % capacity]._data  # type: ignore[union-attr]
            for i in range(count)
        )
        self.remove(count)
        return JitterFrame(data=data, timestamp=timestamp)


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

    def drop_sink(self) -> None:
        """The receiver is closed: let go of the sink (it usually holds the receiver's
        owner, which holds the receiver: a cycle)."""
        self._sink = _no_sink


def _no_sink(_codec: RTCRtpCodecParameters, _frame: JitterFrame) -> None:
    pass


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


def send_only(receiver: RTCRtpReceiver) -> None:
    """The receiver of a transceiver that only sends: let go of what only receiving
    needs (9. above; ~1,000 objects the collector would scan for each video viewer)."""
    for name in _RECEIVE_STATE:
        if not hasattr(receiver, name):
            raise RuntimeError(f"unsupported aiortc version: receiver has no {name}")
        setattr(receiver, name, None)


def mute_receiver(receiver: RTCRtpReceiver) -> None:
    """Drop incoming RTP right after decryption (load-generating viewers only)."""
    receiver._enabled = False


def on_send_parameters(
    sender: RTCRtpSender, callback: Callable[[RTCRtpSendParameters], None]
) -> None:
    """Call ``callback`` with the negotiated parameters once the sender starts (its
    DTLS transport is connected by then)."""
    original = sender.send

    async def send(parameters: RTCRtpSendParameters) -> None:
        await original(parameters)
        callback(parameters)

    sender.send = send  # type: ignore[method-assign]


def on_retransmit_request(
    sender: RTCRtpSender, callback: Callable[[int], Coroutine[Any, Any, None]]
) -> None:
    """NACKed sequence numbers go to ``callback`` instead of the sender's history."""
    setattr(sender, "_retransmit", callback)  # noqa: B010 (shadows a method per instance)


def note_sent(
    sender: RTCRtpSender, ntp_time: int, rtp_timestamp: int, packets: int, octets: int
) -> None:
    """What the sender's next RTCP sender report says (RFC 3550 s6.4.1)."""
    ntp, rtp, count, size = _SR_FIELDS
    setattr(sender, ntp, ntp_time)
    setattr(sender, rtp, rtp_timestamp)
    setattr(sender, count, packets)
    setattr(sender, size, octets)


def sender_ssrcs(sender: RTCRtpSender) -> tuple[int, int]:
    """The SSRCs the sender announced for its media and its retransmissions (RTX)."""
    return sender._ssrc, sender._rtx_ssrc


ProtectRtp = Callable[[bytes, bytes], bytes]


def rtp_protector(transport: RTCDtlsTransport) -> tuple[ProtectRtp, str]:
    """How to SRTP-protect RTP (header, payload) on a connected DTLS transport, and
    which implementation does it: ``media.srtp.GcmProtector`` when an AES-GCM profile
    was negotiated (the keys exported again from the DTLS session and split as aiortc
    splits them), else the transport's libsrtp session. Ours is checked against
    libsrtp's on a probe packet first (an SSRC and sequence number never sent); on a
    mismatch, libsrtp it is."""
    libsrtp = transport._tx_srtp.protect

    def by_libsrtp(header: bytes, payload: bytes) -> bytes:
        return libsrtp(header + payload)

    ssl = transport._ssl
    if ssl is None:
        return by_libsrtp, "libsrtp"
    name = ssl.get_selected_srtp_profile()
    lengths = GCM_PROFILES.get(name)
    profile = next((p for p in transport._srtp_profiles if p.openssl_profile == name), None)
    if lengths is None or profile is None:
        return by_libsrtp, "libsrtp"
    key_length, salt_length = lengths
    view = ssl.export_keying_material(b"EXTRACTOR-dtls_srtp", 2 * (key_length + salt_length))
    ours = GcmProtector.from_key_and_salt(
        profile.get_key_and_salt(view, 1 if transport._role == "server" else 0), name
    )
    probe = bytes([0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])  # SSRC 0, sequence 0
    if ours.protect(probe, b"probe") != libsrtp(probe + b"probe"):
        logger.warning("AES-GCM SRTP of our own differs from libsrtp's: libsrtp it is")
        return by_libsrtp, "libsrtp"
    return ours.protect, "gcm"


class SrtpSink:
    """A viewer's DTLS transport as an ``rtpwriter.PacketSink``: SRTP-protects each
    packet (``rtp_protector``) and sends it on the nominated ICE pair.

    What ``sending`` returns, and the socket's buffer size, are found once per
    nominated pair (checked each frame by identity, one dict lookup), not per frame;
    the protector once per transport."""

    def __init__(self, transport: RTCDtlsTransport) -> None:
        self._transport = transport
        self._nominated: dict[int, Any] = transport.transport._connection._nominated
        self._pair: Any = None
        self._send: Callable[[bytes, bytes], None] | None = None
        self._buffered: Callable[[], int] | None = None
        self._protect: ProtectRtp | None = None
        #: which implementation protects ("gcm" or "libsrtp"), once connected
        self.protection = ""

    def _current(self) -> Callable[[bytes, bytes], None] | None:
        pair = self._nominated.get(1)
        if pair is self._pair and self._send is not None:
            return self._send
        self._pair, self._send, self._buffered = pair, None, None
        socket = None if pair is None else pair.protocol.transport
        if pair is not None and socket is not None and self._transport.state == "connected":
            protect = self._protect
            if protect is None:
                protect, self.protection = rtp_protector(self._transport)
                self._protect = protect
            sendto, address = socket.sendto, pair.remote_addr

            def send(header: bytes, payload: bytes) -> None:
                sendto(protect(header, payload), address)

            self._send = send
            self._buffered = getattr(socket, "get_write_buffer_size", None)
        return self._send

    def sending(self) -> Callable[[bytes, bytes], None] | None:
        return self._current()

    def backlog(self) -> int:
        self._current()
        buffered = self._buffered
        return 0 if buffered is None else buffered()


def release(pc: RTCPeerConnection) -> None:
    """Break the reference cycles a closed peer connection is left in (8. above), so
    reference counting frees it, its transports, tasks and buffers now instead of at
    the next full collection. Call after ``await pc.close()``; a peer in use must not
    be released."""
    transports: set[RTCDtlsTransport] = set()
    for transceiver in pc.getTransceivers():
        sender, receiver = transceiver.sender, transceiver.receiver
        for shadow in ("send", "_send_keyframe", "_retransmit"):
            sender.__dict__.pop(shadow, None)
        tap = getattr(receiver, _DECODER_QUEUE, None)
        if isinstance(tap, _EncodedFrameTap):
            tap.drop_sink()
        transports.update(t for t in (sender.transport, receiver.transport) if t is not None)
    sctp = pc.sctp
    if sctp is not None:
        transports.add(sctp.transport)
    for dtls in transports:
        dtls.remove_all_listeners()
        ssl = getattr(dtls, "_ssl", None)
        helper = getattr(getattr(ssl, "_context", None), "_verify_helper", None)
        if helper is not None:
            # the C side holds the context's own reference (_verify_callback) until the
            # context is freed; the helper's is the one that closes the cycle
            helper.callback = None
        ice = dtls.transport
        ice.remove_all_listeners()
        ice._connection._check_list.clear()


async def close_peer(pc: RTCPeerConnection) -> None:
    """Close ``pc`` and free it at once: reference counting, not the cyclic collector,
    then frees its transports, tasks and buffers (``release``)."""
    await pc.close()
    release(pc)
