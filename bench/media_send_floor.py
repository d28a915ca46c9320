"""The floor under the relay's cost per viewer: what one RTP packet costs to protect and
send on this machine, and what the relay's own per-viewer path adds, in a tight loop.

    python bench/media_send_floor.py [--packets 20000] [--viewers 64] [--frames 300]

One process pinned to CPU 0, everything on 127.0.0.1; CPU is ``time.process_time()``,
best of 3. Prints, per 1,200-byte packet: a loopback ``sendto`` (the receiving socket is
drained in the same process every 200 packets, which is counted); an SRTP ``protect``
through pylibsrtp with AES-128-CM + HMAC-SHA1-80 and with AEAD AES-128-GCM (what aiortc
and Chromium negotiate first), and with ours for AES-GCM (``media.srtp``); protect and
sendto together; then, per viewer and one-packet frame, ``ForwardedTrack.offer`` ->
``RtpWriter.write`` -> protect -> sendto for ``--viewers`` viewers, with libsrtp's and
with our AES-GCM (the relay's whole per-viewer path without an event loop, aiortc's
sender or another process receiving). Compare with ``bench/media_relay.py``'s CPU per
viewer divided by the packets a viewer receives.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiortc.rtcrtpparameters import (  # noqa: E402
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpSendParameters,
)
from pylibsrtp import Policy, Session  # noqa: E402

from media.relay import ForwardedTrack  # noqa: E402
from media.rtpwriter import (  # noqa: E402
    URI_ABS_SEND_TIME,
    URI_MID,
    PacketHistory,
    PacketizedFrame,
    RtpWriter,
)
from media.srtp import GcmProtector  # noqa: E402

PACKET = 1200
Protect = Callable[[bytes, bytes], bytes]


def libsrtp(profile: int = Policy.SRTP_PROFILE_AES128_CM_SHA1_80) -> Protect:
    gcm = profile == Policy.SRTP_PROFILE_AEAD_AES_128_GCM
    policy = Policy(
        key=bytes(28 if gcm else 30), ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile
    )
    protect = Session(policy=policy).protect

    def by_libsrtp(header: bytes, payload: bytes) -> bytes:
        return protect(header + payload)

    return by_libsrtp


def ours() -> Protect:
    return GcmProtector(bytes(16), bytes(12)).protect


PROTECTORS: dict[str, Callable[[], Protect]] = {
    "libsrtp AES-128-CM-SHA1-80": libsrtp,
    "libsrtp AEAD AES-128-GCM": lambda: libsrtp(Policy.SRTP_PROFILE_AEAD_AES_128_GCM),
    "ours AEAD AES-128-GCM": ours,
}


class Receiver:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.address = self.sock.getsockname()

    def drain(self) -> None:
        try:
            while True:
                self.sock.recv(2048)
        except BlockingIOError:
            pass


def sender() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def best_of_3(run: Callable[[], float]) -> float:
    return min(run() for _ in range(3))


def floor(packets: int, rx: Receiver) -> None:
    tx = sender()
    body = bytes(PACKET - 12)

    def loop(make: Callable[[], Protect] | None, send: bool) -> float:
        protect = None if make is None else make()  # sequence numbers start again
        started = time.process_time()
        for i in range(packets):
            header = b"\x80\x60" + (i & 0xFFFF).to_bytes(2, "big") + bytes(8)
            packet = header + body if protect is None else protect(header, body)
            if send:
                tx.sendto(packet, rx.address)
                if i % 200 == 0:
                    rx.drain()
        rx.drain()
        return (time.process_time() - started) / packets * 1e6

    print(f"sendto (+ receive): {best_of_3(lambda: loop(None, True)):.1f} us per packet")
    for name, make in PROTECTORS.items():
        for label, send in (("SRTP protect", False), ("protect + sendto (+ receive)", True)):
            cost = best_of_3(lambda m=make, s=send: loop(m, s))  # type: ignore[misc]
            print(f"{label}, {name}: {cost:.1f} us per packet")


class Sink:
    """``PacketSink`` on a plain socket and an SRTP session of its own."""

    def __init__(self, rx: Receiver, make: Callable[[], Protect]) -> None:
        tx, protect = sender(), make()
        sendto, address = tx.sendto, rx.address
        self._tx = tx  # kept alive with the sink

        def send(header: bytes, payload: bytes) -> None:
            sendto(protect(header, payload), address)

        self._send = send

    def sending(self) -> Callable[[bytes, bytes], None]:
        return self._send

    def backlog(self) -> int:
        return 0


def path(viewers: int, frames: int, rx: Receiver) -> None:
    parameters = RTCRtpSendParameters(
        codecs=[RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)],
        headerExtensions=[
            RTCRtpHeaderExtensionParameters(id=4, uri=URI_MID),
            RTCRtpHeaderExtensionParameters(id=2, uri=URI_ABS_SEND_TIME),
        ],
        muxId="0",
    )
    for name in ("libsrtp AEAD AES-128-GCM", "ours AEAD AES-128-GCM"):
        history = PacketHistory()
        tracks = []
        for _ in range(viewers):
            track = ForwardedTrack("video", 1 << 20, lambda: None, "bench")
            sink = Sink(rx, PROTECTORS[name])
            track.attach(RtpWriter(1, 2, parameters, history, sink, lambda *_: None))
            track.waiting_for_keyframe = False
            tracks.append(track)
        for size, label in ((3, "an audio-like 3-byte frame"), (1100, "a 1,100-byte video frame")):
            cost = best_of_3(lambda n=size, h=history, t=tracks: relay_path(n, frames, h, t, rx))  # type: ignore[misc]
            print(f"relay path, {label}, {name}: {cost:.1f} us per viewer and frame")


def relay_path(
    size: int, frames: int, history: PacketHistory, tracks: list[ForwardedTrack], rx: Receiver
) -> float:
    started = time.process_time()
    for f in range(frames):
        payloads = [bytes(size)]
        ts = f * 960
        frame = PacketizedFrame(history.add(payloads, ts), payloads, ts, False, 0, f << 27)
        for track in tracks:
            track.offer(frame, 0.0)
        rx.drain()
    return (time.process_time() - started) / (frames * len(tracks)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=20_000)
    parser.add_argument("--viewers", type=int, default=64)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    print(f"machine: {os.cpu_count()} CPUs; pinned to CPU 0; best of 3")
    rx = Receiver()
    floor(args.packets, rx)
    path(args.viewers, args.frames, rx)


if __name__ == "__main__":
    main()
