"""``PeerKeeper``: each publisher and viewer of a ``MediaService``, from its admission
to its drop.

It shares the service's tables (``MediaTables``: sessions, publishers and viewers by
resource id) and is the one place that adds a peer to the publishers' or viewers' table
and takes it out again.

- Admission, once the peer's answer is ready: a publisher becomes its session's source
  (the fanouts start, the relay's keyframe requests reach it); a viewer's tracks join
  its session's fanouts (each track's ``RtpWriter`` is attached when aiortc starts its
  sender) and an edge's lingering pull of the session is kept.
- Watching: a publisher whose ICE fails or closes, or that sends no media for
  ``publisher_timeout_s`` (counted from its offer, then from its last frame), is
  dropped; so is a viewer whose transport fails or closes, that has not connected
  ``viewer_connect_timeout_s`` after its offer, or whose codec the session's next
  publisher cannot send. The audience listener hears of a viewer once its transport
  connects (pulls are no viewers to it).
- A drop happens once (the peer's ``closed``) and frees all the peer held: its table
  entry, its caps (``live.holdings``), its tracks or its session's source, its
  watchdog, its peer connection. A joined viewer's leave reaches the audience listener;
  a started publisher's stop reaches the lifecycle (not when it moved to another node);
  the last viewer of a pulled session starts the pull's linger (``EdgePulls``).
- Lifecycle calls (``MediaLifecycle``): started on a publisher's first frame, stopped
  after its drop; delivered one at a time, in order, by one task, a failing call logged.
  ``close`` delivers what is queued and ends that task.

The frame sink it makes for a publisher's receivers (``frame_sink``) runs for every
frame: a closed check, a timestamp, a push to the fanout; the first frame alone does
more.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from functools import partial
from typing import Any

from aiortc import RTCRtpCodecParameters, RTCRtpSender, RTCRtpTransceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpSendParameters

from live.guests import user_person
from live.holdings import Holdings

from . import aiortc_hooks
from .config import MediaConfig
from .edge import EdgePulls
from .negotiation import negotiated_mime
from .peers import Publisher, SessionMedia, Viewer
from .protocol import AudienceListener, MediaLifecycle, PublisherStopReason
from .relay import ForwardedTrack, TrackFanout
from .rtpwriter import RtpWriter

logger = logging.getLogger(__name__)


class PeerKeeper:
    """Lets one service's peers in, watches them, and drops them."""

    def __init__(
        self,
        config: MediaConfig,
        sessions: dict[int, SessionMedia],
        publishers: dict[str, Publisher],
        viewers: dict[str, Viewer],
        *,
        lifecycle: MediaLifecycle,
        audience: AudienceListener | None,
        holdings: Holdings,
        pulls: EdgePulls,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        name: str,
    ) -> None:
        """The three tables are the service's; ``spawn`` starts a task the service
        waits for on close; ``name`` is the service's, for the log."""
        self._config = config
        self._sessions = sessions
        self._publishers = publishers
        self._viewers = viewers
        self._lifecycle = lifecycle
        self._audience = audience
        self._holdings = holdings
        self._pulls = pulls
        self._spawn = spawn
        self._name = name
        self._events: asyncio.Queue[tuple[int, str | None] | None] | None = None
        self._events_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ publishers

    def frame_sink(self, pub: Publisher, fanout: TrackFanout) -> aiortc_hooks.FrameSink:
        """What the publisher's receiver calls with each reassembled frame."""

        def sink(codec: RTCRtpCodecParameters, frame: JitterFrame) -> None:
            if pub.closed:
                return
            pub.last_media_at = time.monotonic()
            if not pub.started:
                pub.started = True
                self._emit(pub.session_id, None)
            fanout.push(codec, frame)

        return sink

    def admit_publisher(self, pub: Publisher, session: SessionMedia, kinds: Iterable[str]) -> None:
        """The publisher is answered: it is the session's source (of ``kinds``)."""
        self._publishers[pub.resource_id] = pub
        for kind in kinds:
            session.relay.fanout(kind).start_source()
        session.relay.send_pli = lambda: self._send_pli(pub)

    def watch_publisher(self, pub: Publisher) -> None:
        """Drop the publisher when its ICE fails or closes, or its media stops."""
        pub.pc.on("connectionstatechange", lambda: self._on_publisher_state(pub))
        pub.watchdog = self._spawn(self._watch_publisher(pub))

    def _send_pli(self, pub: Publisher) -> bool:
        receiver = pub.video_receiver
        if pub.closed or receiver is None:
            return False
        ssrc = pub.video_ssrc
        if ssrc is None:
            sources = receiver.getSynchronizationSources()
            if not sources:
                return False
            ssrc = max(sources, key=lambda s: s.timestamp).source
        self._spawn(aiortc_hooks.send_pli(receiver, ssrc))
        return True

    def _on_publisher_state(self, pub: Publisher) -> None:
        if pub.pc.connectionState in ("failed", "closed") and not pub.closed:
            self._spawn(self.drop_publisher(pub, "ice_failed"))

    async def _watch_publisher(self, pub: Publisher) -> None:
        timeout = self._config.publisher_timeout_s
        while not pub.closed:
            await asyncio.sleep(min(1.0, timeout / 4))
            since = pub.last_media_at if pub.last_media_at is not None else pub.created_at
            if time.monotonic() - since > timeout:
                logger.info("%s publisher %s timed out", self._name, pub.resource_id)
                self._spawn(self.drop_publisher(pub, "timeout"))
                return

    async def drop_publisher(self, pub: Publisher, reason: PublisherStopReason) -> None:
        if pub.closed:
            return
        pub.closed = True
        self._publishers.pop(pub.resource_id, None)
        session = self._sessions.get(pub.session_id)
        if session is not None and session.publisher is pub:
            session.publisher = None
            session.relay.send_pli = lambda: False
            session.relay.video.stop_source()
            session.relay.audio.stop_source()
        if pub.watchdog is not None and pub.watchdog is not asyncio.current_task():
            pub.watchdog.cancel()
        pub.watchdog = None  # a cancelled task's traceback holds the publisher
        await aiortc_hooks.close_peer(pub.pc)
        logger.info("%s publisher %s gone: %s", self._name, pub.resource_id, reason)
        if pub.started and reason != "moved":
            self._emit(pub.session_id, reason)

    # --------------------------------------------------------------- viewers

    def admit_viewer(
        self,
        viewer: Viewer,
        session: SessionMedia,
        transceivers: dict[str, RTCRtpTransceiver],
        answer: str,
    ) -> None:
        """The viewer is answered (``answer``): its tracks join the session's fanouts,
        and it is watched from now on."""
        for kind, t in transceivers.items():
            track = viewer.tracks[kind]
            track.mime_type = negotiated_mime(answer, kind)
            if kind == "video":
                if session.video_mime is None and track.mime_type is not None:
                    session.video_mime = track.mime_type
                aiortc_hooks.on_keyframe_request(t.sender, session.relay.keyframes.request)
            fanout = session.relay.fanout(kind)
            aiortc_hooks.on_send_parameters(t.sender, _writer_for(track, t.sender, fanout))
            fanout.add(track)
        self._viewers[viewer.resource_id] = viewer
        session.viewers.add(viewer)
        self._pulls.viewer_joined(session)
        viewer.pc.on("connectionstatechange", lambda: self._on_viewer_state(viewer))
        viewer.watchdog = self._spawn(self._watch_viewer(viewer))

    def identify_viewer(self, session_id: int, resource_id: str, user_id: int) -> bool:
        """``MediaService.identify_viewer``."""
        viewer = self._viewers.get(resource_id)
        if (
            viewer is None
            or viewer.closed
            or viewer.session_id != session_id
            or viewer.user_id is not None
        ):
            return False
        viewer.user_id = user_id
        viewer.person = user_person(user_id)
        if self._audience is not None:
            self._audience.viewer_identified(session_id, resource_id, user_id)
        return True

    def on_incompatible(self, track: ForwardedTrack) -> None:
        """A session's relay: the viewer of ``track`` cannot take the new publisher's
        codec."""
        for viewer in self._viewers.values():
            if track in viewer.tracks.values():
                logger.info("%s viewer %s: publisher changed codec", self._name, viewer.resource_id)
                self._spawn(self.drop_viewer(viewer, "codec_changed"))
                return

    def _on_viewer_state(self, viewer: Viewer) -> None:
        if viewer.connected and not viewer.joined and not viewer.closed:
            viewer.joined = True
            if self._audience is not None and not viewer.pull:
                self._audience.viewer_joined(
                    viewer.session_id, viewer.resource_id, viewer.user_id, viewer.person
                )
        if viewer.pc.connectionState in ("failed", "closed") and not viewer.closed:
            self._spawn(self.drop_viewer(viewer, viewer.pc.connectionState))

    async def _watch_viewer(self, viewer: Viewer) -> None:
        timeout = self._config.viewer_connect_timeout_s
        while not viewer.closed and not viewer.connected:
            if time.monotonic() - viewer.created_at > timeout:
                self._spawn(self.drop_viewer(viewer, "timeout"))
                return
            await asyncio.sleep(min(1.0, timeout / 4))

    async def drop_viewer(self, viewer: Viewer, reason: str) -> None:
        if viewer.closed:
            return
        viewer.closed = True
        self._viewers.pop(viewer.resource_id, None)
        if viewer.holding is not None:
            self._holdings.give_back(viewer.session_id, *viewer.holding)
            viewer.holding = None
        session = self._sessions.get(viewer.session_id)
        if session is not None:
            session.viewers.discard(viewer)
            for kind, track in viewer.tracks.items():
                session.relay.fanout(kind).discard(track)
            self._pulls.viewer_left(viewer.session_id, session)
        for track in viewer.tracks.values():
            track.stop()
        if viewer.joined and self._audience is not None and not viewer.pull:
            self._audience.viewer_left(viewer.session_id, viewer.resource_id, reason)
        if viewer.watchdog is not None and viewer.watchdog is not asyncio.current_task():
            viewer.watchdog.cancel()
        viewer.watchdog = None  # a cancelled task's traceback holds the viewer
        await aiortc_hooks.close_peer(viewer.pc)
        logger.info("%s viewer %s gone: %s", self._name, viewer.resource_id, reason)

    # ------------------------------------------------------------- lifecycle

    def _emit(self, session_id: int, stop_reason: str | None) -> None:
        """Queue a lifecycle call (None = started); delivered in order."""
        if self._events is None:
            self._events = asyncio.Queue()
            self._events_task = asyncio.get_running_loop().create_task(self._deliver_events())
        self._events.put_nowait((session_id, stop_reason))

    async def _deliver_events(self) -> None:
        assert self._events is not None
        while (event := await self._events.get()) is not None:
            session_id, reason = event
            try:
                if reason is None:
                    await self._lifecycle.on_publisher_started(session_id)
                else:
                    await self._lifecycle.on_publisher_stopped(session_id, reason)
            except Exception:
                logger.exception("%s lifecycle callback failed", self._name)

    async def close(self) -> None:
        """Deliver the lifecycle calls queued so far, then end their task."""
        if self._events is not None and self._events_task is not None:
            self._events.put_nowait(None)
            await self._events_task


def _writer_for(
    track: ForwardedTrack, sender: RTCRtpSender, fanout: TrackFanout
) -> Callable[[RTCRtpSendParameters], None]:
    """What attaches a viewer's ``RtpWriter`` to its track once the sender starts."""

    def attach(parameters: RTCRtpSendParameters) -> None:
        ssrc, rtx_ssrc = aiortc_hooks.sender_ssrcs(sender)
        writer = RtpWriter(
            ssrc,
            rtx_ssrc,
            parameters,
            fanout.history,
            aiortc_hooks.SrtpSink(sender.transport),
            partial(aiortc_hooks.note_sent, sender),
        )
        aiortc_hooks.on_retransmit_request(sender, writer.retransmit)
        track.attach(writer)

    return attach
