"""MediaService: WHIP ingest and WHEP playback as a service layer (no HTTP).

Contracts (the WHIP/WHEP handlers rely on these):

- ``publish`` / ``play`` validate the offer (size, syntax, codecs) before any
  peer connection exists and raise a ``live.errors`` kind; on success they return a
  ``Resource`` with the complete answer (all our candidates are in it; aiortc
  gathers before answering, so we never trickle towards the client).
- One publisher per session. A second ``publish`` while the first is connected
  or connecting raises ``publisher_exists``. A publisher that is gone (deleted,
  ICE failed or closed, no media for ``publisher_timeout_s``) frees the slot.
- A viewer whose transport has not connected ``viewer_connect_timeout_s`` after its
  offer is dropped; a client holding the configured most peers of a session is
  refused (``too_many_peers``), counted over every worker and node when the
  ``holdings`` are Redis's (``live.holdings``), offers being answered included.
- Viewers may join before the publisher is live (unless
  ``viewers_wait_for_publisher`` is False: then ``no_publisher``); they get
  media as soon as a publisher sends a keyframe. When a publisher drops and a
  new one publishes, existing viewers resume on its first keyframe without
  renegotiating. A session keeps the video codec it first negotiated: new
  publishers and early viewers are steered to it. A viewer whose codec a new
  publisher cannot send is closed.
- ``patch`` supports trickle ICE (candidates and end-of-candidates, RFC 8840
  fragments). aiortc cannot restart ICE: a fragment with new ICE credentials or
  ``If-Match: *`` raises ``ice_restart_unsupported``; a stale ``If-Match``
  raises ``etag_mismatch``.
- ``delete`` closes the resource's peer connection; ``close`` closes all of them
  and waits for every task the service started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

from aiortc import (
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpCodecParameters,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import CODECS
from aiortc.exceptions import OperationError
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcpeerconnection import is_codec_compatible
from aiortc.rtcrtpparameters import RTCRtpSendParameters

from live.errors import (
    Conflict,
    InvalidInput,
    LiveshelfError,
    NotAcceptable,
    NotFound,
    PreconditionFailed,
    RateLimited,
    Unavailable,
    Unprocessable,
)
from live.guests import user_person
from live.holdings import Holdings, MemoryHoldings, caps_for

from . import aiortc_hooks
from .config import MediaConfig
from .ice import (
    candidate_allowed,
    create_peer_connection,
    filter_sdp_candidates,
    set_local_description,
)
from .offer import Offer, OfferedMedia, parse_offer, parse_sdpfrag
from .protocol import (
    AudienceListener,
    MediaLifecycle,
    PublisherStopReason,
    Resource,
    ViewerStats,
)
from .pull import MediaProcess, SessionPull, Upstream
from .recording import SessionRecorder, remux_to_mp4
from .relay import ForwardedTrack, RelayTotals, SessionRelay, TrackFanout
from .rtpwriter import RtpWriter

logger = logging.getLogger(__name__)

AUDIO_MIME = "audio/opus"
SEND_DIRECTIONS = ("sendonly", "sendrecv")
RECV_DIRECTIONS = ("recvonly", "sendrecv")


@dataclass(eq=False)
class _Peer:
    """What publishers and viewers share: a peer connection behind a resource."""

    resource_id: str
    session_id: int
    pc: RTCPeerConnection
    etag: str
    ice_ufrag: str
    ice_pwd: str
    first_mid: str | None
    created_at: float = field(default_factory=time.monotonic)
    closed: bool = False

    @property
    def connected(self) -> bool:
        return self.pc.connectionState == "connected"


@dataclass(eq=False)
class _Publisher(_Peer):
    video_receiver: RTCRtpReceiver | None = None
    video_ssrc: int | None = None
    started: bool = False
    last_media_at: float | None = None
    watchdog: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Viewer(_Peer):
    tracks: dict[str, ForwardedTrack] = field(default_factory=dict)
    watchdog: asyncio.Task[None] | None = None
    user_id: int | None = None
    #: its transport connected and the audience listener was told
    joined: bool = False
    #: set for another process's pull of the session (an edge, or another node's
    #: relay worker), not a person watching: which process pulls
    puller: MediaProcess | None = None
    #: who watches, for counting people (``live.guests``); "" counts this viewer alone
    person: str = ""
    #: what it holds against the caps (``live.holdings``): the keys and its token
    holding: tuple[tuple[str, ...], str] | None = None

    @property
    def pull(self) -> bool:
        return self.puller is not None


@dataclass(eq=False)
class _Session:
    relay: SessionRelay
    publisher: _Publisher | None = None
    viewers: set[_Viewer] = field(default_factory=set)
    recorder: SessionRecorder | None = None
    #: why the session is not recorded (no recording could be started in its folder)
    recording_problem: str | None = None
    #: the video codec this session settled on (sticky across publishers)
    video_mime: str | None = None
    #: on an edge: the session pulled from its origin, and how it is being made
    pull: SessionPull | None = None
    pulling: asyncio.Task[SessionPull] | None = None
    #: on an edge: ends the pull once the last viewer has been gone a while
    linger: asyncio.TimerHandle | None = None
    #: on an edge: a loop pulling again (with backoff) is running
    repulling: bool = False


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


#: ended sessions remembered (``MediaService._ended``); an offer is answered in
#: seconds, long before this many more sessions end in one process
ENDED_KEPT = 10_000


class MediaService:
    """Publishers and viewers of every live session in this process."""

    def __init__(
        self,
        config: MediaConfig,
        lifecycle: MediaLifecycle,
        audience: AudienceListener | None = None,
        *,
        upstream: Upstream | None = None,
        resource_prefix: str = "",
        holdings: Holdings | None = None,
    ) -> None:
        """``upstream`` makes this process an edge for the sessions it says are
        remote: it pulls each one it has viewers of from the session's origin (an
        edge worker holds no publishers; a node's relay worker is the origin of the
        sessions published to it and pulls those of other nodes). Resource ids start
        with ``resource_prefix`` (which worker holds them). ``holdings`` counts the
        caps per client address and per user (``live.holdings``; shared with every
        worker and node in Redis; default: this process's memory)."""
        aiortc_hooks.check_compatible()
        self._upstream = upstream
        self._prefix = resource_prefix
        self._config = config
        self._lifecycle = lifecycle
        self._audience = audience
        self._networks = config.remote_networks()
        self._sessions: dict[int, _Session] = {}
        #: sessions that ended here, so an offer answered across the end cannot make
        #: them anew (a session nobody would end again); the last ``ENDED_KEPT``
        self._ended: dict[int, None] = {}
        self._publishers: dict[str, _Publisher] = {}
        self._viewers: dict[str, _Viewer] = {}
        #: what every session's relay did (``live.metrics``)
        self.totals = RelayTotals()
        self._answering = 0  # play() calls under way (pulls aside)
        self._holdings: Holdings = holdings or MemoryHoldings()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: recordings being closed, being copied to MP4, and those whose copy failed
        self._finishing: set[Path] = set()
        self._mp4_copies: set[Path] = set()
        self._mp4_failed: set[Path] = set()
        self._events: asyncio.Queue[tuple[int, str | None] | None] | None = None
        self._events_task: asyncio.Task[None] | None = None
        self._closed = False
        self._name = f"MediaService({id(self):#x})"

    # ----------------------------------------------------------------- WHIP

    async def publish(self, session_id: int, offer_sdp: str) -> Resource:
        """Accept a WHIP offer for ``session_id`` and return the answer."""
        self._check_open()
        offer = parse_offer(offer_sdp, self._config.max_sdp_bytes)
        if not any(m.direction in SEND_DIRECTIONS for m in offer.media):
            raise InvalidInput("invalid_sdp", "a WHIP offer must send audio or video")
        session = self._session(session_id)
        current = session.publisher
        if current is not None and not current.closed:
            raise Conflict("publisher_exists", f"session {session_id} already has a publisher")
        video = offer.kind("video")
        audio = offer.kind("audio")
        if video is not None and self._pick_video_mime(video, session.video_mime) is None:
            raise NotAcceptable("codec_mismatch", "offer has no VP8 or H.264 video")
        if audio is not None and not _offers(audio, AUDIO_MIME):
            raise NotAcceptable("codec_mismatch", "offer has no Opus audio")

        pc = create_peer_connection(self._config)
        pub = _Publisher(**self._peer_fields(session_id, pc, offer))
        session.publisher = pub  # reserve the slot before the first await
        try:
            if self._upstream is not None:
                await self._upstream.may_publish(session_id)
            # the session moved here from another node: its stream comes from here now
            await self._stop_pulling(session)
            transceivers: dict[str, RTCRtpTransceiver] = {}
            for m in offer.media:
                t = pc.addTransceiver(m.kind, direction="recvonly")
                t.setCodecPreferences(self._preferences(m.kind, session.video_mime))
                transceivers[m.kind] = t
            await self._set_remote(pc, offer)
            for kind, t in transceivers.items():
                aiortc_hooks.tap_receiver(
                    t.receiver, self._frame_sink(pub, session.relay.fanout(kind))
                )
                section = offer.kind(kind)
                if self._config.publisher_dtls_server and section and section.dtls_role == "auto":
                    t.receiver.transport._set_role("server")
            if video is not None and "video" in transceivers:
                pub.video_receiver = transceivers["video"].receiver
                pub.video_ssrc = video.ssrc
            await set_local_description(pc, self._config.ice_addresses)
        except BaseException:
            session.publisher = None
            await aiortc_hooks.close_peer(pc)
            raise
        if self._closed:  # close() ran while we negotiated
            session.publisher = None
            await aiortc_hooks.close_peer(pc)
            raise Unavailable("closed", "media service is closing")

        answer = pc.localDescription.sdp
        negotiated = _negotiated_mime(answer, "video")
        if negotiated is not None:
            session.video_mime = negotiated
        self._publishers[pub.resource_id] = pub
        for kind in transceivers:
            session.relay.fanout(kind).start_source()
        session.relay.send_pli = lambda: self._send_pli(pub)
        if self._config.recordings_dir is not None and session.recorder is None:
            try:
                session.recorder = self._new_recorder(session_id, self._config.recordings_dir)
            except OSError as exc:  # the show goes live all the same, not recorded
                session.recording_problem = f"{type(exc).__name__}: {exc.strerror or exc}"
                logger.warning(
                    "%s session %d is not recorded: %s",
                    self._name,
                    session_id,
                    session.recording_problem,
                )
            else:
                session.recording_problem = None
                session.relay.video.observers.append(session.recorder.observe)
                session.relay.audio.observers.append(session.recorder.observe)
        pc.on("connectionstatechange", lambda: self._on_publisher_state(pub))
        pub.watchdog = self._spawn(self._watch_publisher(pub))
        if self._upstream is not None:
            await self._upstream.claimed(session_id)
        logger.info(
            "%s publisher %s for session %d (video=%s)",
            self._name,
            pub.resource_id,
            session_id,
            negotiated,
        )
        return Resource(
            pub.resource_id,
            answer,
            pub.etag,
            session_id,
            "publisher",
            recording_problem=session.recording_problem,
        )

    # ----------------------------------------------------------------- WHEP

    async def play(
        self,
        session_id: int,
        offer_sdp: str,
        user_id: int | None = None,
        *,
        puller: MediaProcess | None = None,
        address: str = "",
        person: str = "",
    ) -> Resource:
        """Accept a WHEP offer for ``session_id`` and return the answer.

        ``user_id`` is the signed-in viewer (None for a guest), for analytics;
        ``person`` who watches (``live.guests``: viewers with one person count once in
        the audience; "" counts this viewer alone); ``address`` the client's; a client
        holding as many of the session's peers as the caps allow is refused
        (``too_many_peers``).
        ``puller`` marks another process's pull: it is fed like a viewer but counted
        nowhere (analytics, viewer counts). On an edge, the first viewer of a remote
        session starts its pull (raises ``media_unavailable`` if the origin cannot be
        reached).
        """
        self._check_open()
        # counted from here on, with no await before: placement sees every viewer
        # that is being answered as well as those that were
        watcher = puller is None
        self._answering += watcher
        try:
            return await self._play(session_id, offer_sdp, user_id, puller, address, person)
        finally:
            self._answering -= watcher

    async def _play(
        self,
        session_id: int,
        offer_sdp: str,
        user_id: int | None,
        puller: MediaProcess | None,
        address: str = "",
        person: str = "",
    ) -> Resource:
        offer = parse_offer(offer_sdp, self._config.max_sdp_bytes)
        if puller is not None:
            return await self._answer(session_id, offer, user_id, puller)
        # Counted from the offer on (offers being answered included), in every process.
        config = self._config
        caps = caps_for(
            "whep", address, user_id, config.max_peers_per_address, config.max_peers_per_user
        )
        token = "whep:" + secrets.token_urlsafe(12)
        if caps and not await self._holdings.take(session_id, caps, token):
            raise RateLimited(
                "too_many_peers", "you hold as many video connections to this show as you may"
            )
        try:
            resource = await self._answer(session_id, offer, user_id, puller, person)
        except BaseException:
            self._holdings.give_back(session_id, caps, token)
            raise
        viewer = self._viewers.get(resource.id)
        if viewer is None or viewer.closed:
            self._holdings.give_back(session_id, caps, token)
        else:
            viewer.holding = (tuple(caps), token)  # ``_drop_viewer`` gives it back
        return resource

    async def _answer(
        self,
        session_id: int,
        offer: Offer,
        user_id: int | None,
        puller: MediaProcess | None,
        person: str = "",
    ) -> Resource:
        wanted = [m for m in offer.media if m.direction in RECV_DIRECTIONS]
        if not wanted:
            raise InvalidInput("invalid_sdp", "a WHEP offer must receive audio or video")
        session = self._sessions.get(session_id)
        live = (
            session is not None and session.publisher is not None and not session.publisher.closed
        )
        if not live and not self._config.viewers_wait_for_publisher and self._upstream is None:
            raise Conflict("no_publisher", f"session {session_id} is not live")
        session = self._session(session_id)
        if self._upstream is not None and not live and await self._is_remote(session_id, session):
            await self._pulled(session_id, session)
        for m in wanted:
            if m.kind == "video":
                required = session.relay.video.mime_type or session.video_mime
                if self._pick_video_mime(m, required) is None:
                    raise NotAcceptable(
                        "codec_mismatch",
                        f"viewer cannot receive {required or 'VP8 or H.264'} video",
                    )
            elif not _offers(m, AUDIO_MIME):
                raise NotAcceptable("codec_mismatch", "viewer cannot receive Opus audio")

        pc = create_peer_connection(self._config)
        viewer = _Viewer(
            **self._peer_fields(session_id, pc, offer),
            user_id=user_id,
            puller=puller,
            person=person,
        )
        try:
            transceivers: dict[str, RTCRtpTransceiver] = {}
            for m in wanted:
                track = session.relay.new_track(m.kind, f"{viewer.resource_id}/{m.kind}")
                t = pc.addTransceiver(track, direction="sendonly")
                required = session.relay.video.mime_type or session.video_mime
                t.setCodecPreferences(self._preferences(m.kind, required))
                transceivers[m.kind] = t
                viewer.tracks[m.kind] = track
            await self._set_remote(pc, offer)
            await set_local_description(pc, self._config.ice_addresses)
        except BaseException:
            for track in viewer.tracks.values():
                track.stop()
            await aiortc_hooks.close_peer(pc)
            raise
        if self._closed:
            await aiortc_hooks.close_peer(pc)
            raise Unavailable("closed", "media service is closing")
        if self._sessions.get(session_id) is not session:  # it ended meanwhile
            for track in viewer.tracks.values():
                track.stop()
            await aiortc_hooks.close_peer(pc)
            raise Conflict("session_ended", f"session {session_id} has ended")

        answer = pc.localDescription.sdp
        for kind, t in transceivers.items():
            track = viewer.tracks[kind]
            track.mime_type = _negotiated_mime(answer, kind)
            if kind == "video":
                if session.video_mime is None and track.mime_type is not None:
                    session.video_mime = track.mime_type
                aiortc_hooks.on_keyframe_request(t.sender, session.relay.keyframes.request)
            fanout = session.relay.fanout(kind)
            aiortc_hooks.on_send_parameters(t.sender, _writer_for(track, t.sender, fanout))
            fanout.add(track)
        self._viewers[viewer.resource_id] = viewer
        session.viewers.add(viewer)
        if session.linger is not None:
            session.linger.cancel()
            session.linger = None
        pc.on("connectionstatechange", lambda: self._on_viewer_state(viewer))
        viewer.watchdog = self._spawn(self._watch_viewer(viewer))
        logger.info("%s viewer %s for session %d", self._name, viewer.resource_id, session_id)
        return Resource(viewer.resource_id, answer, viewer.etag, session_id, "viewer")

    # ------------------------------------------------------- PATCH / DELETE

    async def patch(self, resource_id: str, sdpfrag: str, if_match: str | None) -> str | None:
        """Apply a trickle-ICE fragment; returns None (HTTP 204).

        Raises ``not_found``, ``etag_mismatch``, ``invalid_sdp`` or
        ``ice_restart_unsupported``. Candidates outside the allowed networks
        are ignored, as are candidates after end-of-candidates.
        """
        peer = self._peer(resource_id)
        # RFC 9725 s4.3.1: an endpoint that takes trickle ICE but not ICE restarts
        # answers a restart with 422
        if if_match == "*":
            raise Unprocessable("ice_restart_unsupported", "ICE restart is not supported")
        if if_match is not None and if_match != peer.etag:
            raise PreconditionFailed("etag_mismatch", "If-Match does not match the ICE session")
        frag = parse_sdpfrag(sdpfrag, self._config.max_sdp_bytes)
        if (frag.ice_ufrag is not None and frag.ice_ufrag != peer.ice_ufrag) or (
            frag.ice_pwd is not None and frag.ice_pwd != peer.ice_pwd
        ):
            raise Unprocessable("ice_restart_unsupported", "ICE restart is not supported")
        for _mid, _index, value in frag.candidates:
            if not candidate_allowed(value, self._networks):
                logger.debug("%s %s ignores candidate %s", self._name, resource_id, value)
                continue
            candidate = aiortc_sdp.candidate_from_sdp(value.split(":", 1)[1])
            # Everything is BUNDLEd on the first media section's transport;
            # aiortc ignores candidates addressed to the others.
            candidate.sdpMid = peer.first_mid
            candidate.sdpMLineIndex = 0
            try:
                await peer.pc.addIceCandidate(candidate)
            except ValueError as exc:  # after end-of-candidates
                logger.debug("%s %s candidate refused: %s", self._name, resource_id, exc)
        if frag.end_of_candidates:
            with contextlib.suppress(ValueError):
                await peer.pc.addIceCandidate(None)
        return None

    async def delete(self, resource_id: str) -> None:
        """End a publisher or viewer; ``not_found`` for unknown ids."""
        peer = self._peer(resource_id)
        if isinstance(peer, _Publisher):
            await self._drop_publisher(peer, "deleted")
        else:
            await self._drop_viewer(peer, "deleted")

    async def end_session(
        self, session_id: int, reason: Literal["ended", "shutdown"] = "ended"
    ) -> None:
        """Session ended: drop its publisher and viewers, finish its recording."""
        if reason == "ended":
            self._ended[session_id] = None
            if len(self._ended) > ENDED_KEPT:
                del self._ended[next(iter(self._ended))]
        session = self._sessions.pop(session_id, None)
        if session is None:
            return
        recorder = session.recorder
        # From here until the file is closed, nothing may copy it to MP4 (the handler
        # no longer finds the session, but the file is still being written).
        if recorder is not None:
            self._finishing.add(recorder.path)
        try:
            if session.publisher is not None:
                await self._drop_publisher(session.publisher, reason)
            for viewer in list(session.viewers):
                await self._drop_viewer(viewer, reason)
            await self._stop_pulling(session)
            session.relay.close()
            if recorder is not None:
                await recorder.close()
        finally:
            if recorder is not None:
                self._finishing.discard(recorder.path)
        if recorder is not None and recorder.needs_mp4 and recorder.path.is_file():
            self.copy_to_mp4(recorder.path)

    async def close(self) -> None:
        """Close every peer connection and wait for every task we started."""
        if self._closed:
            return
        self._closed = True
        for session_id in list(self._sessions):
            await self.end_session(session_id, "shutdown")
        if self._events is not None and self._events_task is not None:
            self._events.put_nowait(None)
            await self._events_task
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        logger.info("%s closed", self._name)

    # ---------------------------------------------------------------- stats

    def viewer_count(self, session_id: int) -> int:
        """Viewers of the session whose transport is connected (edges' pulls excluded)."""
        session = self._sessions.get(session_id)
        return (
            0 if session is None else sum(1 for v in session.viewers if v.connected and not v.pull)
        )

    def viewer_total(self) -> int:
        """Viewers of every session here, connecting ones and offers being answered
        included (pulls excluded)."""
        held = sum(1 for v in self._viewers.values() if not v.pull and not v.closed)
        return held + self._answering

    def connected_viewers(self) -> int:
        """Viewers of every session here whose transport is connected (pulls excluded)."""
        return sum(1 for v in self._viewers.values() if v.connected and not v.pull)

    def publisher_total(self) -> int:
        """Publishers this process holds (connected or still connecting)."""
        return len(self._publishers)

    def peer_count(self) -> int:
        """Peer connections this process holds: viewers and other processes' pulls,
        publishers, its own pulls, and viewers' offers being answered."""
        return (
            sum(not v.closed for v in self._viewers.values())
            + sum(not p.closed for p in self._publishers.values())
            + sum(s.pull is not None for s in self._sessions.values())
            + self._answering
        )

    def published_sessions(self) -> list[int]:
        """Sessions whose WHIP publisher is connected (or connecting) here."""
        return [
            sid
            for sid, s in self._sessions.items()
            if s.publisher is not None and not s.publisher.closed
        ]

    async def publisher_moved(self, session_id: int) -> None:
        """Another node took the session's publisher (it raced this one's): drop the
        one here without ``live.paused`` (the show goes on there); viewers here then
        pull it from the new origin."""
        session = self._sessions.get(session_id)
        if session is not None and session.publisher is not None:
            await self._drop_publisher(session.publisher, "moved")

    def relayed_sessions(self) -> list[int]:
        """Sessions whose stream this process has: its publisher, or a pull of it."""
        return [
            sid
            for sid, s in self._sessions.items()
            if s.pull is not None or (s.publisher is not None and not s.publisher.closed)
        ]

    def pull_count(self, session_id: int) -> int:
        """Edges pulling the session from this process."""
        session = self._sessions.get(session_id)
        return 0 if session is None else sum(1 for v in session.viewers if v.pull)

    def pullers(self, session_id: int | None = None) -> dict[str, MediaProcess]:
        """The processes pulling from this one (of one session, or of all): resource
        id -> the puller."""
        return {
            rid: v.puller
            for rid, v in self._viewers.items()
            if v.puller is not None
            and not v.closed
            and (session_id is None or v.session_id == session_id)
        }

    def pull_origins(self) -> dict[int, MediaProcess | None]:
        """The sessions this process pulls: session id -> the origin it pulls from."""
        return {sid: s.pull.origin for sid, s in self._sessions.items() if s.pull is not None}

    def waiting_sessions(self) -> list[int]:
        """Sessions with viewers (or pulls) here but no stream: no live publisher, no
        pull and none being made (their publisher may be on another node by now)."""
        return [
            sid
            for sid, s in self._sessions.items()
            if s.viewers
            and s.pull is None
            and s.pulling is None
            and not s.repulling
            and (s.publisher is None or s.publisher.closed)
        ]

    def pull_now(self, session_id: int) -> None:
        """Its origin is known now (``waiting_sessions``): pull it, with backoff."""
        session = self._sessions.get(session_id)
        if session is not None and session.pull is None and not session.repulling:
            self._spawn(self._pull_again(session_id, session, first_delay=0.0))

    async def drop_pull(self, resource_id: str, reason: str) -> None:
        """The edge pulling as ``resource_id`` is gone: free what fed it."""
        viewer = self._viewers.get(resource_id)
        if viewer is not None and viewer.pull:
            await self._drop_viewer(viewer, reason)

    def origin_lost(self, session_id: int) -> None:
        """The origin this process pulls ``session_id`` from is gone: pull again."""
        session = self._sessions.get(session_id)
        if session is not None and session.pull is not None:
            self._pull_lost(session.pull)

    def is_pulling(self, session_id: int) -> bool:
        """Whether this process (an edge) holds a pull of the session."""
        session = self._sessions.get(session_id)
        return session is not None and session.pull is not None

    def receiving_people(self, session_id: int, within_s: float = 1.5) -> int:
        """People (``person``; pulls are none) with a viewer whose transport is
        connected and that was sent media lately: 20 viewers of one person count 1."""
        session = self._sessions.get(session_id)
        if session is None:
            return 0
        since = time.monotonic() - within_s

        def receiving(v: _Viewer) -> bool:
            sent = (t.last_sent_at for t in v.tracks.values() if t.last_sent_at is not None)
            return v.connected and not v.pull and max(sent, default=-1.0) >= since

        return len({v.person or v.resource_id for v in session.viewers if receiving(v)})

    def session_ids(self) -> list[int]:
        """Sessions this process holds a publisher or viewers for."""
        return list(self._sessions)

    def viewer_stats(self, session_id: int) -> list[ViewerStats]:
        session = self._sessions.get(session_id)
        if session is None:
            return []
        stats = []
        for v in session.viewers:
            if v.pull:
                continue
            video = v.tracks.get("video")
            tracks = list(v.tracks.values())
            stats.append(
                ViewerStats(
                    resource_id=v.resource_id,
                    session_id=session_id,
                    connected=v.connected,
                    video_frames_forwarded=video.frames_sent if video else 0,
                    frames_skipped=sum(t.frames_skipped for t in tracks),
                    keyframe_resets=sum(t.resets for t in tracks),
                    send_backlog_bytes=sum(t.backlog() for t in tracks),
                )
            )
        return stats

    def is_live(self, session_id: int) -> bool:
        """Whether the session's publisher is sending media."""
        session = self._sessions.get(session_id)
        pub = None if session is None else session.publisher
        return pub is not None and not pub.closed and pub.started

    def relay(self, session_id: int) -> SessionRelay | None:
        """The session's relay (for tests, benchmarks and diagnostics)."""
        session = self._sessions.get(session_id)
        return None if session is None else session.relay

    def media_time(self, session_id: int) -> float | None:
        """Seconds into the session's recording now; None if not recording."""
        session = self._sessions.get(session_id)
        if session is None or session.recorder is None:
            return None
        return session.recorder.media_time()

    def recording_path(self, session_id: int) -> Path | None:
        """The session's recording file, once it has been started."""
        session = self._sessions.get(session_id)
        if session is None or session.recorder is None:
            return None
        return session.recorder.path if session.recorder.started else None

    def recording_state(self, session_id: int) -> tuple[str, str | None] | None:
        """The recording of a session whose publisher side is here: ``("recording",
        None)`` (being written, or waiting for its first keyframe), ``("incomplete",
        why)`` (cut short: ``SessionRecorder.problem``) or ``("off", why)`` (live but not
        recorded). None if this process holds no recording of it (ended, not published
        yet, pulled from another worker or node)."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.recording_problem is not None:
            return ("off", session.recording_problem)
        recorder = session.recorder
        if recorder is None:
            return None
        if recorder.problem is not None:
            return ("incomplete", recorder.problem)
        return ("recording", None)

    def copy_to_mp4(self, recording: Path) -> None:
        """Copy a finished H.264 recording to ``<name>.mp4`` in the background (not
        awaited: a long show takes seconds; ``close`` waits for it). Once per file at a
        time; a file whose copy failed is not tried again by this process. Also for a
        recording whose copy a crash left undone (the handler asks when serving one)."""
        if (
            recording in self._finishing
            or recording in self._mp4_copies
            or recording in self._mp4_failed
            or recording.with_suffix(".mp4").is_file()
        ):
            return
        self._mp4_copies.add(recording)

        async def copy() -> None:
            try:
                await asyncio.to_thread(remux_to_mp4, recording, recording.with_suffix(".mp4"))
            except Exception:
                logger.exception("%s could not copy %s to MP4", self._name, recording)
                if len(self._mp4_failed) > 10_000:
                    self._mp4_failed.clear()
                self._mp4_failed.add(recording)
            finally:
                self._mp4_copies.discard(recording)

        self._spawn(copy())

    def cover_path(self, session_id: int) -> Path | None:
        session = self._sessions.get(session_id)
        if session is None or session.recorder is None:
            return None
        path = session.recorder.cover_path
        return path if path.exists() else None

    def resource_owner(self, resource_id: str) -> tuple[int, Literal["publisher", "viewer"]] | None:
        """(session id, role) of a live resource, or None; lets the HTTP layer
        check that a PATCH/DELETE URL names the resource's own session."""
        pub = self._publishers.get(resource_id)
        if pub is not None and not pub.closed:
            return pub.session_id, "publisher"
        viewer = self._viewers.get(resource_id)
        if viewer is not None and not viewer.closed:
            return viewer.session_id, "viewer"
        return None

    def identify_viewer(self, session_id: int, resource_id: str, user_id: int) -> bool:
        """A guest viewer signed in while watching: its resource is now ``user_id``'s.

        Only a viewer of ``session_id`` that is still a guest can be claimed (the
        resource id is unguessable: whoever holds it made it). The audience listener
        is told, so the watch interval counts for the user. False if not claimable.
        """
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

    # ------------------------------------------------------------ edge pulls

    async def _pulled(self, session_id: int, session: _Session) -> None:
        """On an edge: the session is pulled from its origin (started here if not);
        waits for the origin's answer, so viewers are offered the pulled codec."""
        if session.pull is not None:
            return
        if session.pulling is None:
            session.pulling = asyncio.ensure_future(self._start_pull(session_id, session))
        await asyncio.shield(session.pulling)

    async def _start_pull(self, session_id: int, session: _Session) -> SessionPull:
        assert self._upstream is not None
        mimes = self._config.video_codecs
        if session.video_mime is not None:
            mimes = (session.video_mime,)
        pull = SessionPull(
            session_id, self._config, session.relay, self._upstream, mimes, self._pull_lost
        )
        try:
            await pull.connect()
            if self._closed or self._sessions.get(session_id) is not session:
                raise Unavailable("closed", "the session's media ended meanwhile")
        except BaseException:
            session.pulling = None
            await pull.close()
            raise
        session.pull, session.pulling = pull, None
        if pull.video_mime is not None:
            session.video_mime = pull.video_mime
        return pull

    def _pull_lost(self, pull: SessionPull) -> None:
        """The origin went away (it died, or dropped the pull): pull again, with
        backoff, for as long as this process has viewers of the session."""
        session = self._sessions.get(pull.session_id)
        if session is None or session.pull is not pull:
            return
        session.pull = None
        self._spawn(pull.close())
        self._spawn(self._pull_again(pull.session_id, session))

    async def _pull_again(
        self, session_id: int, session: _Session, first_delay: float = 0.25
    ) -> None:
        if session.repulling:
            return
        session.repulling = True
        try:
            await self._pull_while_watched(session_id, session, first_delay)
        finally:
            session.repulling = False

    async def _pull_while_watched(self, session_id: int, session: _Session, delay: float) -> None:
        retry = 0.25
        while not self._closed and self._sessions.get(session_id) is session and session.viewers:
            await asyncio.sleep(delay)
            live = session.publisher is not None and not session.publisher.closed
            if session.pull is not None or not session.viewers or live:
                return
            try:
                await self._pulled(session_id, session)
                logger.info("%s session %d pulled again", self._name, session_id)
                return
            except LiveshelfError as exc:
                logger.info("%s session %d not pulled yet: %s", self._name, session_id, exc)
            delay, retry = retry, min(retry * 2, self._config.pull_retry_max_s)

    async def _is_remote(self, session_id: int, session: _Session) -> bool:
        """Whether the session's stream is to be pulled (one is, or being made)."""
        if session.pull is not None or session.pulling is not None:
            return True
        assert self._upstream is not None
        return await self._upstream.remote(session_id)

    def _end_idle_pull(self, session_id: int) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            return
        session.linger = None
        if not session.viewers and session.publisher is None:
            self._sessions.pop(session_id, None)
            self._spawn(self._stop_pulling(session))
            session.relay.close()

    async def _stop_pulling(self, session: _Session) -> None:
        if session.linger is not None:
            session.linger.cancel()
            session.linger = None
        if session.pulling is not None:
            session.pulling.cancel()
            session.pulling = None
        pull, session.pull = session.pull, None
        if pull is not None:
            await pull.close()

    # ------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("closed", "media service is closed")

    def _session(self, session_id: int) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            if session_id in self._ended:
                raise Conflict("session_ended", f"session {session_id} has ended")
            relay = SessionRelay(
                session_id,
                self._config.pli_interval_s,
                self._config.viewer_backlog_bytes,
                self._on_incompatible,
                self.totals,
            )
            session = self._sessions[session_id] = _Session(relay=relay)
        return session

    def _new_recorder(self, session_id: int, directory: Path) -> SessionRecorder:
        return SessionRecorder(
            session_id,
            directory,
            self._config.cover_interval_s,
            min_free_bytes=self._config.recording_min_free_bytes,
        )

    def _peer_fields(self, session_id: int, pc: RTCPeerConnection, offer: Offer) -> dict[str, Any]:
        return {
            "resource_id": self._prefix + secrets.token_urlsafe(18),
            "session_id": session_id,
            "pc": pc,
            "etag": f'"{secrets.token_urlsafe(12)}"',
            "ice_ufrag": offer.ice_ufrag,
            "ice_pwd": offer.ice_pwd,
            "first_mid": offer.media[0].mid,
        }

    def _peer(self, resource_id: str) -> _Publisher | _Viewer:
        peer = self._publishers.get(resource_id) or self._viewers.get(resource_id)
        if peer is None or peer.closed:
            raise NotFound("not_found", "no such media resource")
        return peer

    async def _set_remote(self, pc: RTCPeerConnection, offer: Offer) -> None:
        text = filter_sdp_candidates(offer.sdp, self._networks)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="offer"))
        except OperationError as exc:
            raise NotAcceptable("codec_mismatch", str(exc)) from exc
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise InvalidInput("invalid_sdp", str(exc)) from exc

    def _pick_video_mime(self, media: OfferedMedia, required: str | None) -> str | None:
        choices = (required,) if required is not None else self._config.video_codecs
        return next((mime for mime in choices if _offers(media, mime)), None)

    def _preferences(self, kind: str, video_mime: str | None) -> list[RTCRtpCodecCapability]:
        caps = RTCRtpSender.getCapabilities(kind).codecs
        if kind == "audio":
            return [c for c in caps if c.mimeType.lower() == AUDIO_MIME]
        order = [video_mime] if video_mime is not None else list(self._config.video_codecs)
        prefs = [c for mime in order for c in caps if c.mimeType.lower() == mime.lower()]
        return prefs + [c for c in caps if c.mimeType.lower() == "video/rtx"]

    def _frame_sink(self, pub: _Publisher, fanout: TrackFanout) -> aiortc_hooks.FrameSink:
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

    def _send_pli(self, pub: _Publisher) -> bool:
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

    def _on_incompatible(self, track: ForwardedTrack) -> None:
        for viewer in self._viewers.values():
            if track in viewer.tracks.values():
                logger.info("%s viewer %s: publisher changed codec", self._name, viewer.resource_id)
                self._spawn(self._drop_viewer(viewer, "codec_changed"))
                return

    def _on_publisher_state(self, pub: _Publisher) -> None:
        if pub.pc.connectionState in ("failed", "closed") and not pub.closed:
            self._spawn(self._drop_publisher(pub, "ice_failed"))

    def _on_viewer_state(self, viewer: _Viewer) -> None:
        if viewer.connected and not viewer.joined and not viewer.closed:
            viewer.joined = True
            if self._audience is not None and not viewer.pull:
                self._audience.viewer_joined(
                    viewer.session_id, viewer.resource_id, viewer.user_id, viewer.person
                )
        if viewer.pc.connectionState in ("failed", "closed") and not viewer.closed:
            self._spawn(self._drop_viewer(viewer, viewer.pc.connectionState))

    async def _watch_publisher(self, pub: _Publisher) -> None:
        timeout = self._config.publisher_timeout_s
        while not pub.closed:
            await asyncio.sleep(min(1.0, timeout / 4))
            since = pub.last_media_at if pub.last_media_at is not None else pub.created_at
            if time.monotonic() - since > timeout:
                logger.info("%s publisher %s timed out", self._name, pub.resource_id)
                self._spawn(self._drop_publisher(pub, "timeout"))
                return

    async def _watch_viewer(self, viewer: _Viewer) -> None:
        timeout = self._config.viewer_connect_timeout_s
        while not viewer.closed and not viewer.connected:
            if time.monotonic() - viewer.created_at > timeout:
                self._spawn(self._drop_viewer(viewer, "timeout"))
                return
            await asyncio.sleep(min(1.0, timeout / 4))

    async def _drop_publisher(self, pub: _Publisher, reason: PublisherStopReason) -> None:
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

    async def _drop_viewer(self, viewer: _Viewer, reason: str) -> None:
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
            if not session.viewers and session.pull is not None and session.linger is None:
                session.linger = asyncio.get_running_loop().call_later(
                    self._config.pull_linger_s, self._end_idle_pull, viewer.session_id
                )
        for track in viewer.tracks.values():
            track.stop()
        if viewer.joined and self._audience is not None and not viewer.pull:
            self._audience.viewer_left(viewer.session_id, viewer.resource_id, reason)
        if viewer.watchdog is not None and viewer.watchdog is not asyncio.current_task():
            viewer.watchdog.cancel()
        viewer.watchdog = None  # a cancelled task's traceback holds the viewer
        await aiortc_hooks.close_peer(viewer.pc)
        logger.info("%s viewer %s gone: %s", self._name, viewer.resource_id, reason)

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

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _offers(media: OfferedMedia, mime: str) -> bool:
    """Whether an offered section has a codec aiortc can use as ``mime``."""
    local = [c for c in CODECS[media.kind] if c.mimeType.lower() == mime.lower()]
    return any(is_codec_compatible(lc, rc) for rc in media.codecs for lc in local)


def _negotiated_mime(answer_sdp: str, kind: str) -> str | None:
    """The codec our answer sends/receives for ``kind`` (first in its list)."""
    for m in aiortc_sdp.SessionDescription.parse(answer_sdp).media:
        if m.kind == kind and m.rtp.codecs:
            return str(m.rtp.codecs[0].mimeType)
    return None
