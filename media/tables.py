"""``MediaTables``: what one process's media holds, and the questions asked of it.

The tables: each session's media here (``SessionMedia`` by session id), the sessions
that ended here, the live publishers and viewers by resource id, and the count of WHEP
offers being answered. It is the base of ``MediaResources`` (and so of ``MediaService``),
which fills and empties them (offers, ends) and shares them with its collaborators
(``PeerKeeper``: admissions and drops; ``EdgePulls``: pulled sessions).

Every method here only reads, answering from the tables as they are at the call (no
await, nothing started or changed): viewer and peer counts for placement, metrics and
``/api/admin/runtime``; which sessions this process publishes, relays, pulls or waits
for (``media.cluster``); viewers' stats and who is receiving (analytics); and each
session's recording and cover. Pulls (another process's viewer-like pull of a session)
are counted apart from viewers everywhere. ``_peer`` raises ``not_found`` for a
resource that is not live.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from live.errors import NotFound

from .peers import Publisher, SessionMedia, Viewer
from .protocol import ViewerStats
from .pull import MediaProcess
from .relay import SessionRelay


class MediaTables:
    """The sessions, publishers and viewers of this process, read-only."""

    def __init__(self) -> None:
        self._sessions: dict[int, SessionMedia] = {}
        #: sessions that ended here, so an offer answered across the end cannot make
        #: them anew (a session nobody would end again); the last ``ENDED_KEPT``
        self._ended: dict[int, None] = {}
        self._publishers: dict[str, Publisher] = {}
        self._viewers: dict[str, Viewer] = {}
        self._answering = 0  # play() calls under way (pulls aside)

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

        def receiving(v: Viewer) -> bool:
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

    # ------------------------------------------------------------ recordings

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

    def cover_path(self, session_id: int) -> Path | None:
        session = self._sessions.get(session_id)
        if session is None or session.recorder is None:
            return None
        path = session.recorder.cover_path
        return path if path.exists() else None

    # ------------------------------------------------------------- resources

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

    def _peer(self, resource_id: str) -> Publisher | Viewer:
        peer = self._publishers.get(resource_id) or self._viewers.get(resource_id)
        if peer is None or peer.closed:
            raise NotFound("not_found", "no such media resource")
        return peer
