"""WHIP ingest interoperates with a GStreamer-based encoder, not only with aiortc.

``interop/gst_whip_publisher.c`` is a publisher on GStreamer's own WebRTC stack:
webrtcbin with libnice ICE and its default self-signed RSA DTLS certificate,
encoding videotestsrc/audiotestsrc with vp8enc/opusenc. The test compiles it, does
the WHIP HTTP exchange for it (POST with the host's token, then DELETE the
Location), and an aiortc WHEP viewer decodes what the server forwards.

A stock client is not usable here: Debian 12's ``simple-whip-client`` links libsoup2
while libnice pulls in libsoup3 (through gupnp-igd), and it aborts at start ("libsoup2
symbols detected"); ``whipsink``/``whipclientsink`` are in gst-plugins-rs, which
Debian 12 does not ship. What matters for interop (ICE, DTLS, SRTP, RTP payloads,
RTCP feedback) is all GStreamer's here; only the HTTP is the test's.

libnice sends ICE checks from every interface it has, so the encoder and the server
run in a loopback-only network namespace (tests/netns.py) and therefore on SQLite and
the in-memory room log (about 1.2 s, plus about 0.6 s to compile the C once).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from support import Api, poster
from test_media_http import request, wait_for_event

SOURCE = Path(__file__).parent / "interop" / "gst_whip_publisher.c"
PKG_CONFIG_MODULES = ("gstreamer-1.0", "gstreamer-sdp-1.0", "gstreamer-webrtc-1.0")
#: every element the pipeline below and webrtcbin's ICE/DTLS/SRTP need
ELEMENTS = (
    "webrtcbin", "nicesrc", "dtlssrtpenc", "srtpenc", "rtpbin",
    "videotestsrc", "videoconvert", "vp8enc", "rtpvp8pay",
    "audiotestsrc", "audioconvert", "audioresample", "opusenc", "rtpopuspay",
)  # fmt: skip
#: what .ci/run installs; named in the skip message
APT_PACKAGES = (
    "gcc pkg-config gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-bad gstreamer1.0-nice libgstreamer-plugins-bad1.0-dev"
)
#: VP8 at 320x240/30 with a keyframe every second (late viewers start quickly),
#: Opus; max-bundle, as browsers offer it (one transport, audio bundle-only).
PIPELINE = (
    "webrtcbin name=webrtc bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=ball "
    "! video/x-raw,width=320,height=240,framerate=30/1 ! videoconvert "
    "! vp8enc deadline=1 keyframe-max-dist=30 ! rtpvp8pay pt=96 "
    "! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! webrtc. "
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc "
    "! rtpopuspay pt=111 "
    "! application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! webrtc."
)


def _missing_toolchain() -> list[str]:
    missing = [tool for tool in ("gcc", "pkg-config", "gst-inspect-1.0") if not shutil.which(tool)]
    if missing:
        return missing
    missing += [
        f"pkg-config:{module}"
        for module in PKG_CONFIG_MODULES
        if subprocess.run(["pkg-config", "--exists", module], check=False).returncode != 0
    ]
    missing += [
        f"element:{element}"
        for element in ELEMENTS
        # --atleast-version: plain --exists wants the GStreamer version, which
        # libnice's own plugin (0.1.x) does not have
        if subprocess.run(
            ["gst-inspect-1.0", "--exists", "--atleast-version=0.1", element],
            check=False,
            capture_output=True,
        ).returncode
        != 0
    ]
    return missing


@pytest.fixture(scope="module")
def publisher_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = _missing_toolchain()
    if missing:
        pytest.skip(
            f"GStreamer WHIP interop needs {', '.join(missing)} "
            f"(apt-get install {APT_PACKAGES}; .ci/run does)"
        )
    flags = subprocess.run(
        ["pkg-config", "--cflags", "--libs", *PKG_CONFIG_MODULES],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    binary = tmp_path_factory.mktemp("gst") / "gst_whip_publisher"
    # GST_USE_UNSTABLE_API: the webrtc library headers warn without it
    built = subprocess.run(
        ["gcc", "-Wall", "-Wextra", "-Werror", "-DGST_USE_UNSTABLE_API", "-O1",
         "-o", str(binary), str(SOURCE), *flags],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    return binary


class GstPublisher:
    """The compiled publisher as a subprocess: offer on stdout, answer on stdin."""

    def __init__(self, binary: Path) -> None:
        self._binary = binary
        self._proc: asyncio.subprocess.Process | None = None

    async def offer(self, within_s: float = 10.0) -> str:
        self._proc = await asyncio.create_subprocess_exec(
            str(self._binary),
            PIPELINE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        lines: list[str] = []
        async with asyncio.timeout(within_s):
            while (line := await self._proc.stdout.readline()) != b"END\n":
                if not line:  # stdout closed: the publisher failed and is exiting
                    await self._proc.wait()
                    raise AssertionError(f"publisher exited: {await self.stderr()}")
                lines.append(line.decode().rstrip("\r\n"))
        return "\r\n".join(lines) + "\r\n"

    async def answer(self, sdp: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(sdp.encode() + b"\n")  # an empty line ends the answer
        await self._proc.stdin.drain()

    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def stderr(self) -> str:
        assert self._proc is not None and self._proc.stderr is not None
        if self.running():
            return "(still running)"
        return (await self._proc.stderr.read()).decode(errors="replace")

    async def stop(self, within_s: float = 5.0) -> int | None:
        """Close stdin (the publisher then stops its pipeline); kill it if it lingers."""
        if self._proc is None:
            return None
        if self._proc.stdin is not None and not self._proc.stdin.is_closing():
            self._proc.stdin.close()
        try:
            async with asyncio.timeout(within_s):
                return await self._proc.wait()
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
            return None


@pytest.fixture(autouse=True)
def _loopback_only(loopback_only: None) -> None:
    """The server and the encoder share a namespace with nothing but ``lo``."""


@pytest.fixture
def backend() -> str:
    return "sqlite-memory"


async def test_gstreamer_webrtcbin_publishes_over_whip(
    api: Api, app: web.Application, publisher_binary: Path, peers: Any
) -> None:
    client = api.client
    host = await api.signup("host")
    session_id = int((await api.live_session(host))["id"])
    gst = GstPublisher(publisher_binary)
    try:
        async with asyncio.timeout(30):
            offer = await gst.offer()
            # what makes this an interop test rather than aiortc talking to itself
            assert "a=setup:actpass" in offer
            assert re.search(r"a=candidate:\S+ 1 UDP \d+ 127\.0\.0\.1 \d+ typ host", offer)
            # max-bundle: audio rides video's transport, offered as port 0 + bundle-only
            assert "m=audio 0 " in offer and "a=bundle-only" in offer

            posted = await poster(client, f"/whip/{session_id}", host)(offer)
            # the server is the DTLS server: webrtcbin's RSA certificate has no
            # cipher suite in common with aiortc's ECDSA-only client hello
            assert "a=setup:passive" in posted.answer_sdp
            await gst.answer(posted.answer_sdp)

            viewer = peers.viewer()
            await viewer.connect(poster(client, f"/whep/{session_id}"))
            await viewer.wait_for("video", decoded=30, within_s=15)
            await viewer.wait_for("audio", decoded=10, within_s=5)
            assert viewer.stats["video"].first_is_keyframe is True
            started = await wait_for_event(app, session_id, "live.started")
            assert gst.running(), await gst.stderr()

            status, code, _ = await request(client, "DELETE", posted.location, host)
            assert (status, code) == (200, None)
            paused = await wait_for_event(app, session_id, "live.paused")
            assert paused["data"] == {"reason": "deleted"}
            assert started["seq"] < paused["seq"]
            # no pipeline, DTLS or negotiation error was reported at any point
            assert await gst.stop() == 0, await gst.stderr()
    finally:
        await gst.stop()
