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
- Lost races: after each await an offer checks again whether the service closed
  (``closed``) or its session ended (``session_ended``) meanwhile (their drop of the
  publisher a WHIP offer reserved closes its peer connection under it): it raises that,
  not aiortc's error, having closed its peer connection and given back all it took
  (slot, tracks, holding; no session is made after the close).

Where the rest lives: ``MediaService`` makes the resources (the offers, here); its base
``MediaResources`` (``media.resources``) does all that follows (PATCH, DELETE, a
session's end, the close, other processes' calls) and owns the collaborators,
``PeerKeeper`` (``media.keeper``: each peer from its admission to its drop) and
``EdgePulls`` (``media.edge``: an edge's pulls of remote sessions). The tables and
every read-only question about them are ``MediaTables`` (``media.tables``), the base of
both; the records are in ``media.peers``, the SDP steps in ``media.negotiation``.
"""

from __future__ import annotations

import logging
import secrets

from aiortc import RTCPeerConnection, RTCRtpTransceiver

from live.errors import Conflict, InvalidInput, LiveshelfError, NotAcceptable, RateLimited
from live.holdings import caps_for

from . import aiortc_hooks
from .ice import create_peer_connection, set_local_description
from .negotiation import (
    AUDIO_MIME,
    RECV_DIRECTIONS,
    SEND_DIRECTIONS,
    codec_preferences,
    negotiated_mime,
    offers,
    peer_fields,
    pick_video_mime,
    set_remote,
)
from .offer import Offer, OfferedMedia, parse_offer
from .peers import Publisher, SessionMedia, Viewer
from .protocol import Resource
from .pull import MediaProcess
from .resources import MediaResources

logger = logging.getLogger(__name__)


class MediaService(MediaResources):
    """Publishers and viewers of every live session in this process."""

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
        codecs = self._config.video_codecs
        video = offer.kind("video")
        audio = offer.kind("audio")
        if video is not None and pick_video_mime(video, session.video_mime, codecs) is None:
            raise NotAcceptable("codec_mismatch", "offer has no VP8 or H.264 video")
        if audio is not None and not offers(audio, AUDIO_MIME):
            raise NotAcceptable("codec_mismatch", "offer has no Opus audio")

        pc = create_peer_connection(self._config)
        pub = Publisher(**peer_fields(self._prefix, session_id, pc, offer))
        session.publisher = pub  # reserve the slot before the first await
        transceivers: dict[str, RTCRtpTransceiver] = {}
        try:
            # after each await: the session may have ended, the service closed, and
            # their drop of this publisher closed ``pc`` (``_check_publishing``)
            if self._upstream is not None:
                await self._upstream.may_publish(session_id)
                self._check_publishing(session_id, session, pub)
            # the session moved here from another node: its stream comes from here now
            await self._pulls.stop(session)
            self._check_publishing(session_id, session, pub)
            for m in offer.media:
                t = pc.addTransceiver(m.kind, direction="recvonly")
                t.setCodecPreferences(codec_preferences(m.kind, session.video_mime, codecs))
                transceivers[m.kind] = t
            await self._set_remote(pc, offer)
            self._check_publishing(session_id, session, pub)
            for kind, t in transceivers.items():
                aiortc_hooks.tap_receiver(
                    t.receiver, self._keeper.frame_sink(pub, session.relay.fanout(kind))
                )
                section = offer.kind(kind)
                if self._config.publisher_dtls_server and section and section.dtls_role == "auto":
                    t.receiver.transport._set_role("server")
            if video is not None and "video" in transceivers:
                pub.video_receiver = transceivers["video"].receiver
                pub.video_ssrc = video.ssrc
            await set_local_description(pc, self._config.ice_addresses)
            self._check_publishing(session_id, session, pub)
        except BaseException as exc:
            lost = self._lost_publish(session_id, session, pub)
            if session.publisher is pub:  # not another offer's reservation
                session.publisher = None
            await aiortc_hooks.close_peer(pc)
            if lost is None or not isinstance(exc, Exception) or _same(exc, lost):
                raise
            raise lost from exc  # aiortc's error on the peer connection closed under it

        answer = pc.localDescription.sdp
        negotiated = negotiated_mime(answer, "video")
        if negotiated is not None:
            session.video_mime = negotiated
        self._keeper.admit_publisher(pub, session, transceivers)
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
        self._keeper.watch_publisher(pub)
        if self._upstream is not None:
            await self._upstream.claimed(session_id)
            lost = self._lost_race(session_id, session)
            if lost is not None:  # its end (or the close) dropped it, or is about to
                await self._drop_publisher(pub, "shutdown" if self._closed else "ended")
                raise lost
        pub.claimed = True
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
            viewer.holding = (tuple(caps), token)  # ``PeerKeeper.drop_viewer`` gives it back
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
        self._check_open()  # ``play`` may have awaited the caps: make no session after close
        session = self._session(session_id)
        self._pulls.answering(session)  # its pull does not end idle under this offer
        try:
            if self._upstream is not None and not live:
                await self._pull_first(session_id, session)
            return await self._answer_in(
                session_id, session, offer, wanted, user_id, puller, person
            )
        finally:
            self._pulls.answered(session_id, session)

    async def _pull_first(self, session_id: int, session: SessionMedia) -> None:
        """On an edge, a session whose stream comes from elsewhere: its pull is made
        first, so the viewer is offered its codec."""
        pulls = self._pulls
        if not await pulls.is_remote(session_id, session):
            return
        self._check_answering(session_id, session)
        try:
            await pulls.pulled(session_id, session)
        except LiveshelfError:
            self._check_answering(session_id, session)
            if session.publisher is None or session.publisher.closed:
                raise
            # the pull was stopped for a publisher here: the stream comes from here now
        self._check_answering(session_id, session)

    async def _answer_in(
        self,
        session_id: int,
        session: SessionMedia,
        offer: Offer,
        wanted: list[OfferedMedia],
        user_id: int | None,
        puller: MediaProcess | None,
        person: str,
    ) -> Resource:
        codecs = self._config.video_codecs
        for m in wanted:
            if m.kind == "video":
                required = session.relay.video.mime_type or session.video_mime
                if pick_video_mime(m, required, codecs) is None:
                    raise NotAcceptable(
                        "codec_mismatch",
                        f"viewer cannot receive {required or 'VP8 or H.264'} video",
                    )
            elif not offers(m, AUDIO_MIME):
                raise NotAcceptable("codec_mismatch", "viewer cannot receive Opus audio")

        pc = create_peer_connection(self._config)
        viewer = Viewer(
            **peer_fields(self._prefix, session_id, pc, offer),
            user_id=user_id,
            puller=puller,
            person=person,
        )
        try:
            transceivers: dict[str, RTCRtpTransceiver] = {}
            for m in wanted:
                track = session.relay.new_track(m.kind, f"{viewer.resource_id}/{m.kind}")
                t = pc.addTransceiver(track, direction="sendonly")
                aiortc_hooks.send_only(t.receiver)
                required = session.relay.video.mime_type or session.video_mime
                t.setCodecPreferences(codec_preferences(m.kind, required, codecs))
                transceivers[m.kind] = t
                viewer.tracks[m.kind] = track
            await self._set_remote(pc, offer)
            self._check_answering(session_id, session)
            await set_local_description(pc, self._config.ice_addresses)
            self._check_answering(session_id, session)
        except BaseException as exc:
            lost = self._lost_race(session_id, session)
            for track in viewer.tracks.values():
                track.stop()
            await aiortc_hooks.close_peer(pc)
            if lost is None or not isinstance(exc, Exception) or _same(exc, lost):
                raise
            raise lost from exc

        answer = pc.localDescription.sdp
        self._keeper.admit_viewer(viewer, session, transceivers, answer)
        logger.info("%s viewer %s for session %d", self._name, viewer.resource_id, session_id)
        return Resource(viewer.resource_id, answer, viewer.etag, session_id, "viewer")

    def _check_publishing(self, session_id: int, session: SessionMedia, pub: Publisher) -> None:
        """After each await of a WHIP offer (``_lost_publish``)."""
        lost = self._lost_publish(session_id, session, pub)
        if lost is not None:
            raise lost

    def _lost_publish(
        self, session_id: int, session: SessionMedia, pub: Publisher
    ) -> LiveshelfError | None:
        """What a WHIP offer answers when, while it awaited, the service closed, its
        session ended (both drop the publisher reserved and close its peer connection)
        or its reservation was dropped otherwise; None if none of these."""
        lost = self._lost_race(session_id, session)
        if lost is None and (pub.closed or session.publisher is not pub):
            # no step drops a publisher being answered today (``publisher_moved``
            # spares it): whatever did took the slot for another
            lost = Conflict("publisher_exists", f"session {session_id} has another publisher")
        return lost

    async def _set_remote(self, pc: RTCPeerConnection, offer: Offer) -> None:
        await set_remote(pc, offer, self._networks)


def _same(exc: Exception, lost: LiveshelfError) -> bool:
    return isinstance(exc, LiveshelfError) and exc.code == lost.code
