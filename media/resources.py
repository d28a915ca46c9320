"""``MediaResources``: what becomes of the WHIP and WHEP resources once made, and the
service's parts (the base of ``MediaService``, which makes the resources: the offers).

It owns the collaborators and the tables (``MediaTables``, whose read-only questions
it answers) and does everything but answering an offer:

- ``patch`` a resource (trickle ICE: ``media.negotiation.apply_trickle``) and
  ``delete`` it (``not_found`` for an id that is not live);
- ``end_session``: the session's publisher and viewers are dropped, its pull and relay
  ended, its recording finished and then copied to MP4 (H.264); an ended session is
  remembered (the last ``ENDED_KEPT``), so an offer answered across its end cannot make
  it anew;
- ``close``: every session is ended (``shutdown``), the lifecycle calls queued are
  delivered, and every task the service started is waited for; after it, offers are
  refused ``closed``;
- what other processes and people ask (``media.cluster``, ``media.internal``): a
  publisher that moved to another node, pulls to make again or to drop, a guest viewer
  signed in, an MP4 copy a crash left undone.

Its collaborators: ``PeerKeeper`` (``media.keeper``: each peer's admission, watching
and drop) and ``EdgePulls`` (``media.edge``: an edge's pulls), which share its tables.
It is a base class rather than a collaborator because the service is one object to
everything that uses it (the handlers, ``media.internal``, ``media.cluster``, the tests),
and what an offer checks again after each await (``_closed``, the session table) is
what the steps here change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Literal

from live.errors import Conflict, LiveshelfError, Unavailable
from live.holdings import Holdings, MemoryHoldings

from . import aiortc_hooks
from .config import MediaConfig
from .edge import EdgePulls
from .keeper import PeerKeeper
from .negotiation import apply_trickle
from .peers import Publisher, SessionMedia
from .protocol import AudienceListener, MediaLifecycle, PublisherStopReason
from .pull import Upstream
from .recording import SessionRecorder, remux_to_mp4
from .relay import RelayTotals, SessionRelay
from .tables import MediaTables

logger = logging.getLogger(__name__)

#: ended sessions remembered (``MediaService._ended``); an offer is answered in
#: seconds, long before this many more sessions end in one process
ENDED_KEPT = 10_000


class MediaResources(MediaTables):
    """The resources of every live session in this process, once answered."""

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
        super().__init__()
        self._upstream = upstream
        self._prefix = resource_prefix
        self._config = config
        self._networks = config.remote_networks()
        #: what every session's relay did (``live.metrics``)
        self.totals = RelayTotals()
        self._holdings: Holdings = holdings or MemoryHoldings()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: recordings being closed, being copied to MP4, and those whose copy failed
        self._finishing: set[Path] = set()
        self._mp4_copies: set[Path] = set()
        self._mp4_failed: set[Path] = set()
        self._closed = False
        self._name = f"MediaService({id(self):#x})"
        self._pulls = EdgePulls(config, upstream, self._sessions, self._spawn, self._name)
        self._keeper = PeerKeeper(
            config,
            self._sessions,
            self._publishers,
            self._viewers,
            lifecycle=lifecycle,
            audience=audience,
            holdings=self._holdings,
            pulls=self._pulls,
            spawn=self._spawn,
            name=self._name,
        )

    # ------------------------------------------------------- PATCH / DELETE

    async def patch(self, resource_id: str, sdpfrag: str, if_match: str | None) -> str | None:
        """Apply a trickle-ICE fragment; returns None (HTTP 204).

        Raises ``not_found``, ``etag_mismatch``, ``invalid_sdp`` or
        ``ice_restart_unsupported``. Candidates outside the allowed networks
        are ignored, as are candidates after end-of-candidates.
        """
        peer = self._peer(resource_id)
        max_bytes = self._config.max_sdp_bytes
        await apply_trickle(peer, sdpfrag, if_match, max_bytes, self._networks, self._name)
        return None

    async def delete(self, resource_id: str) -> None:
        """End a publisher or viewer; ``not_found`` for unknown ids."""
        peer = self._peer(resource_id)
        if isinstance(peer, Publisher):
            await self._drop_publisher(peer, "deleted")
        else:
            await self._keeper.drop_viewer(peer, "deleted")

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
                await self._keeper.drop_viewer(viewer, reason)
            await self._pulls.stop(session)
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
        self._pulls.close()
        for session_id in list(self._sessions):
            await self.end_session(session_id, "shutdown")
        await self._keeper.close()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        logger.info("%s closed", self._name)

    # ------------------------------------------------- other processes, people

    async def publisher_moved(self, session_id: int) -> None:
        """Another node took the session's publisher (it raced this one's): drop the
        one here without ``live.paused`` (the show goes on there); viewers here then
        pull it from the new origin.

        A publisher still being answered here is left alone: it has not claimed the
        session yet, so the claim seen elsewhere is the older one (another node's
        publisher, or a dead origin's whose record is not stale yet) and its own, still
        to come, wins."""
        session = self._sessions.get(session_id)
        pub = None if session is None else session.publisher
        if pub is not None and pub.claimed:
            await self._drop_publisher(pub, "moved")

    def pull_now(self, session_id: int) -> None:
        """Its origin is known now (``waiting_sessions``): pull it, with backoff."""
        self._pulls.pull_now(session_id)

    async def drop_pull(self, resource_id: str, reason: str) -> None:
        """The edge pulling as ``resource_id`` is gone: free what fed it."""
        viewer = self._viewers.get(resource_id)
        if viewer is not None and viewer.pull:
            await self._keeper.drop_viewer(viewer, reason)

    def origin_lost(self, session_id: int) -> None:
        """The origin this process pulls ``session_id`` from is gone: pull again."""
        self._pulls.origin_lost(session_id)

    def identify_viewer(self, session_id: int, resource_id: str, user_id: int) -> bool:
        """A guest viewer signed in while watching: its resource is now ``user_id``'s.

        Only a viewer of ``session_id`` that is still a guest can be claimed (the
        resource id is unguessable: whoever holds it made it). The audience listener
        is told, so the watch interval counts for the user. False if not claimable.
        """
        return self._keeper.identify_viewer(session_id, resource_id, user_id)

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

    # ------------------------------------------------------------ internals

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("closed", "media service is closed")

    def _check_answering(self, session_id: int, session: SessionMedia) -> None:
        """After each await of an offer: raise what it answers when the service closed
        (``closed``) or ``session`` ended (``session_ended``) meanwhile."""
        lost = self._lost_race(session_id, session)
        if lost is not None:
            raise lost

    def _lost_race(self, session_id: int, session: SessionMedia) -> LiveshelfError | None:
        if self._closed:
            return Unavailable("closed", "media service is closing")
        if self._sessions.get(session_id) is not session:
            return Conflict("session_ended", f"session {session_id} has ended")
        return None

    def _session(self, session_id: int) -> SessionMedia:
        session = self._sessions.get(session_id)
        if session is None:
            if session_id in self._ended:
                raise Conflict("session_ended", f"session {session_id} has ended")
            relay = SessionRelay(
                session_id,
                self._config.pli_interval_s,
                self._config.viewer_backlog_bytes,
                self._keeper.on_incompatible,
                self.totals,
            )
            session = self._sessions[session_id] = SessionMedia(relay=relay)
        return session

    def _new_recorder(self, session_id: int, directory: Path) -> SessionRecorder:
        return SessionRecorder(
            session_id,
            directory,
            self._config.cover_interval_s,
            min_free_bytes=self._config.recording_min_free_bytes,
        )

    async def _drop_publisher(self, pub: Publisher, reason: PublisherStopReason) -> None:
        """The service's own drops of a publisher (DELETE, the session's end, a move)."""
        await self._keeper.drop_publisher(pub, reason)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
