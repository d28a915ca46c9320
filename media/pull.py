"""An edge's copy of a session: pulled once from the session's origin over WHEP.

A process that serves viewers of a session whose publisher is elsewhere (its origin,
the process holding the WHIP publisher) pulls the session like a viewer would: an aiortc
peer offers to receive video and audio, ``Upstream.pull`` carries the offer to the
origin (which does not count it as a viewer) and returns the answer, and the pulled
frames are pushed into this process's ``SessionRelay`` exactly as a local publisher's
would be, so the edge's own viewers are fed by the same fan-out. One pull per session
and process, however many viewers the process has.

Keyframe requests travel edge -> origin -> publisher: the edge relay's coalesced
requests become a PLI from the pull's receiver, which the origin's relay coalesces
again before asking the publisher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from aiortc import RTCRtpReceiver, RTCRtpSender, RTCSessionDescription

from live.errors import Unavailable

from . import aiortc_hooks
from .config import MediaConfig
from .ice import create_peer_connection, set_local_description
from .offer import parse_offer
from .relay import SessionRelay

logger = logging.getLogger(__name__)


class MediaProcess(NamedTuple):
    """A media worker process: its node ("" with one node), its index there, its pid
    (a restarted worker has another: its peers died with it)."""

    node: str
    worker: int
    pid: int

    def header(self) -> str:
        """As the ``X-Liveshelf-Worker`` header carries it: ``NODE:INDEX:PID``."""
        return f"{self.node}:{self.worker}:{self.pid}"

    @classmethod
    def from_header(cls, value: str) -> MediaProcess | None:
        """The process a header names, or None if it is malformed."""
        parts = value.split(":")
        if len(parts) != 3 or len(value) > 80:
            return None
        node, index, pid = parts
        if not (index.isdigit() and pid.isdigit()):
            return None
        return cls(node, int(index), int(pid))


@dataclass(frozen=True, slots=True)
class Pulled:
    """The origin's answer to a pull: the WHEP resource it made and its SDP."""

    resource_id: str
    answer_sdp: str
    #: the origin's process, when known
    origin: MediaProcess | None = None


class Upstream(Protocol):
    """The way to a session's origin (``media.cluster`` implements it over HTTP)."""

    async def remote(self, session_id: int) -> bool:
        """Whether the session's stream comes from another process now (always, on an
        edge worker; on a node's relay worker, when another node holds the publisher)."""
        ...

    async def may_publish(self, session_id: int) -> None:
        """Raise ``Conflict("publisher_exists")`` if another node holds a connected
        publisher of the session (a host publishes to one node at a time)."""
        ...

    async def claimed(self, session_id: int) -> None:
        """This process now holds the session's publisher: it is the origin."""
        ...

    async def pull(self, session_id: int, offer_sdp: str) -> Pulled:
        """Offer to receive the session; raise the origin's refusal as the
        ``live.errors`` kind it was (``media_unavailable`` when it cannot be reached)."""
        ...

    async def release(self, session_id: int, resource_id: str) -> None:
        """End the pull at the origin (best effort)."""
        ...


class SessionPull:
    """One pulled session; ``connect`` once, then ``close``."""

    def __init__(
        self,
        session_id: int,
        config: MediaConfig,
        relay: SessionRelay,
        upstream: Upstream,
        video_mimes: tuple[str, ...],
        on_lost: Callable[[SessionPull], None],
    ) -> None:
        self.session_id = session_id
        self.video_mime: str | None = None
        self.resource_id: str | None = None
        self.origin: MediaProcess | None = None
        self._config = config
        self._relay = relay
        self._upstream = upstream
        self._on_lost = on_lost
        self._closed = False
        self._video: RTCRtpReceiver | None = None
        self._video_ssrc: int | None = None
        self.pc = create_peer_connection(config)
        for kind in ("video", "audio"):
            t = self.pc.addTransceiver(kind, direction="recvonly")
            if kind == "video":
                caps = RTCRtpSender.getCapabilities("video").codecs
                t.setCodecPreferences(
                    [c for mime in video_mimes for c in caps if c.mimeType == mime]
                    + [c for c in caps if c.mimeType == "video/rtx"]
                )
                self._video = t.receiver
            aiortc_hooks.tap_receiver(t.receiver, relay.fanout(kind).push)
        self.pc.on("connectionstatechange", self._state_changed)
        self._name = f"SessionPull(session={session_id}, {id(self):#x})"

    async def connect(self) -> None:
        """Offer, get the origin's answer, start receiving; raises the origin's refusal."""
        await set_local_description(self.pc, self._config.ice_addresses)
        pulled = await self._upstream.pull(self.session_id, self.pc.localDescription.sdp)
        self.resource_id = pulled.resource_id
        self.origin = pulled.origin
        answer = parse_offer(pulled.answer_sdp, self._config.max_sdp_bytes)
        video = answer.kind("video")
        if video is not None:
            self._video_ssrc = video.ssrc
            self.video_mime = video.codecs[0].mimeType if video.codecs else None
        await self.pc.setRemoteDescription(
            RTCSessionDescription(sdp=pulled.answer_sdp, type="answer")
        )
        for fanout in (self._relay.video, self._relay.audio):
            fanout.start_source()
        self._relay.send_pli = self.send_pli
        logger.info("%s pulling as %s (video %s)", self._name, pulled.resource_id, self.video_mime)

    def send_pli(self) -> bool:
        """Ask the origin for a keyframe; False if there is nothing to ask yet."""
        if self._closed or self._video is None or self._video_ssrc is None:
            return False
        task = asyncio.ensure_future(aiortc_hooks.send_pli(self._video, self._video_ssrc))
        task.add_done_callback(_log_failure)
        return True

    def _state_changed(self) -> None:
        if self.pc.connectionState in ("failed", "closed") and not self._closed:
            logger.warning("%s lost (%s)", self._name, self.pc.connectionState)
            self._on_lost(self)

    async def close(self) -> None:
        """Stop receiving and end the pull at the origin."""
        if self._closed:
            return
        self._closed = True
        if self._relay.send_pli == self.send_pli:  # not yet replaced by a newer pull
            for fanout in (self._relay.video, self._relay.audio):
                fanout.stop_source()
            self._relay.send_pli = lambda: False
        await aiortc_hooks.close_peer(self.pc)
        if self.resource_id is not None:
            try:
                await self._upstream.release(self.session_id, self.resource_id)
            except Unavailable as exc:
                logger.info("%s not released at the origin: %s", self._name, exc)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.info("keyframe request to the origin failed: %r", task.exception())
