"""``EdgePulls``: how a ``MediaService`` pulls the sessions it does not originate.

On an edge (a service given an ``Upstream``), the first viewer of a remote session
starts one pull of it from the session's origin (``media.pull.SessionPull``), which
feeds the session's relay like a local publisher would; every later viewer shares it.

Contract:

- It shares the service's session table (``SessionMedia`` by session id): it reads it,
  sets each session's ``pull``, ``pulling``, ``linger`` and ``repulling``, and drops a
  pulled session nobody watches any more from it (``pull_linger_s`` after its last
  viewer left).
- ``pulled`` waits for the origin's answer (so viewers are offered the pulled codec);
  it raises the origin's refusal, or ``media_unavailable`` when the origin cannot be
  reached, or ``closed`` when the session ended (or the service closed), or the pull
  being made was stopped (``stop``: a publisher is here now), meanwhile.
- A pull lingers (``pull_linger_s``) once the session has no viewer and no offer being
  answered (``answering`` .. ``answered``): an offer that waits for its pull, or whose
  answer is being made, keeps it; an offer refused after its pull was made lets it go.
- A lost pull (the origin died, or dropped it) is made again, with backoff from 0.25 s
  doubling up to ``pull_retry_max_s``, for as long as the session has viewers here and
  no live publisher; one such loop per session at a time.
- Its tasks are the service's (``spawn``), so ``MediaService.close`` waits for them;
  after ``close`` no pull is made, or made again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from live.errors import LiveshelfError, Unavailable

from .config import MediaConfig
from .peers import SessionMedia
from .pull import SessionPull, Upstream

logger = logging.getLogger(__name__)


class EdgePulls:
    """The pulls of one service's remote sessions."""

    def __init__(
        self,
        config: MediaConfig,
        upstream: Upstream | None,
        sessions: dict[int, SessionMedia],
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task[Any]],
        name: str,
    ) -> None:
        """``sessions``: the service's table of sessions. ``spawn``: how the service
        starts the tasks it waits for when it closes. ``name``: the service's, logged."""
        self._config = config
        self._upstream = upstream
        self._sessions = sessions
        self._spawn = spawn
        self._name = name
        self._closed = False

    def close(self) -> None:
        """The service is closing: no pull is made, or made again, from now on."""
        self._closed = True

    async def pulled(self, session_id: int, session: SessionMedia) -> None:
        """On an edge: the session is pulled from its origin (started here if not);
        waits for the origin's answer, so viewers are offered the pulled codec."""
        if session.pull is not None:
            return
        if session.pulling is None:
            session.pulling = asyncio.ensure_future(self._start(session_id, session))
        pulling = session.pulling
        try:
            await asyncio.shield(pulling)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not pulling.cancelled() or (task is not None and task.cancelling()):
                raise  # this caller was cancelled, not the pull
            # ``stop``: the session ended, the service closed, or a publisher is here
            raise Unavailable("closed", "the session's pull was stopped meanwhile") from None

    async def _start(self, session_id: int, session: SessionMedia) -> SessionPull:
        assert self._upstream is not None
        mimes = self._config.video_codecs
        if session.video_mime is not None:
            mimes = (session.video_mime,)
        pull = SessionPull(
            session_id, self._config, session.relay, self._upstream, mimes, self._lost
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

    def _lost(self, pull: SessionPull) -> None:
        """The origin went away (it died, or dropped the pull): pull again, with
        backoff, for as long as this process has viewers of the session."""
        session = self._sessions.get(pull.session_id)
        if session is None or session.pull is not pull:
            return
        session.pull = None
        self._spawn(pull.close())
        self._spawn(self._again(pull.session_id, session))

    async def _again(
        self, session_id: int, session: SessionMedia, first_delay: float = 0.25
    ) -> None:
        if session.repulling:
            return
        session.repulling = True
        try:
            await self._while_watched(session_id, session, first_delay)
        finally:
            session.repulling = False

    async def _while_watched(self, session_id: int, session: SessionMedia, delay: float) -> None:
        retry = 0.25
        while not self._closed and self._sessions.get(session_id) is session and session.viewers:
            await asyncio.sleep(delay)
            live = session.publisher is not None and not session.publisher.closed
            if session.pull is not None or not session.viewers or live:
                return
            try:
                await self.pulled(session_id, session)
                logger.info("%s session %d pulled again", self._name, session_id)
                return
            except LiveshelfError as exc:
                logger.info("%s session %d not pulled yet: %s", self._name, session_id, exc)
            delay, retry = retry, min(retry * 2, self._config.pull_retry_max_s)

    async def is_remote(self, session_id: int, session: SessionMedia) -> bool:
        """Whether the session's stream is to be pulled (one is, or being made)."""
        if session.pull is not None or session.pulling is not None:
            return True
        assert self._upstream is not None
        return await self._upstream.remote(session_id)

    def pull_now(self, session_id: int) -> None:
        """Its origin is known now (``waiting_sessions``): pull it, with backoff."""
        session = self._sessions.get(session_id)
        if session is not None and session.pull is None and not session.repulling:
            self._spawn(self._again(session_id, session, first_delay=0.0))

    def origin_lost(self, session_id: int) -> None:
        """The origin this process pulls ``session_id`` from is gone: pull again."""
        session = self._sessions.get(session_id)
        if session is not None and session.pull is not None:
            self._lost(session.pull)

    def answering(self, session: SessionMedia) -> None:
        """An offer of the session is being answered: its pull (if any) no longer
        lingers, nor starts to, until ``answered``."""
        session.answering += 1
        self.viewer_joined(session)

    def answered(self, session_id: int, session: SessionMedia) -> None:
        """The offer is answered (its viewer joined) or refused: a pull nobody watches
        now lingers (``viewer_left``)."""
        session.answering -= 1
        if self._sessions.get(session_id) is session:
            self.viewer_left(session_id, session)

    def viewer_joined(self, session: SessionMedia) -> None:
        """A viewer was answered: the session's pull (if any) no longer lingers."""
        if session.linger is not None:
            session.linger.cancel()
            session.linger = None

    def viewer_left(self, session_id: int, session: SessionMedia) -> None:
        """A viewer is gone: the last one's pull ends ``pull_linger_s`` later (unless a
        viewer comes back, or an offer is being answered, meanwhile)."""
        if (
            not session.viewers
            and not session.answering
            and session.pull is not None
            and session.linger is None
        ):
            session.linger = asyncio.get_running_loop().call_later(
                self._config.pull_linger_s, self._end_idle, session_id
            )

    def _end_idle(self, session_id: int) -> None:
        session = self._sessions.get(session_id)
        if session is None:
            return
        session.linger = None
        if not session.viewers and not session.answering and session.publisher is None:
            self._sessions.pop(session_id, None)
            self._spawn(self.stop(session))
            session.relay.close()

    async def stop(self, session: SessionMedia) -> None:
        """End the session's pull, the one being made, and its linger (the session
        ended, or its publisher is here now)."""
        if session.linger is not None:
            session.linger.cancel()
            session.linger = None
        if session.pulling is not None:
            session.pulling.cancel()
            session.pulling = None
        pull, session.pull = session.pull, None
        if pull is not None:
            await pull.close()
