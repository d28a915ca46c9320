"""The media workers of one node, as seen from one of them.

With ``--workers N`` every worker holds WebRTC peers. Worker 0, the **home**, is every
session's origin: WHIP ingest, the recording and the cover live there, and the other
workers forward those requests to it (``MediaForwarder``). **Any** worker serves WHEP
viewers: a worker with viewers of a session pulls that session once from the home
(``media.pull``) and fans it out to its own viewers, so one show's viewers spread over
every core.

Each worker listens on a loopback port of its own (``urls[index]``) for the others.
A viewer's resource id starts with its worker's prefix (``w{index}.``), so a PATCH or
DELETE that reaches another worker is forwarded to the owner, and the calls the rest
of the server makes on media (``MediaControl``) reach the right process:

- ``end_session``: every edge ends its viewers (and commits their leaves) first, then
  the home ends the publisher, the pulls and its own viewers and closes the analytics
  intervals a crashed worker left open;
- ``identify_viewer``: the viewer's owner;
- ``media_time``: the home (it records).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from aiohttp import web
from aiohttp.typedefs import Middleware
from redis.exceptions import RedisError

from live.http import Handler

from .errors import MediaError
from .forward import INTERNAL_HEADER, LocalMediaControl, MediaForwarder, is_internal
from .placement import CpuMeter, LoadBoard, Placement, State, WorkerLoad
from .pull import Pulled

log = logging.getLogger(__name__)

HOME = 0
#: on a ``POST /whep/{id}`` another worker forwarded: it chose this worker already
PLACED_HEADER = "X-Liveshelf-Placed"


def _full() -> MediaError:
    return MediaError("media_full", "every media worker is full; try again soon")


def resource_prefix(index: int) -> str:
    """How the resource ids of worker ``index`` begin (token_urlsafe has no '.')."""
    return f"w{index}."


def resource_worker(resource_id: str) -> int | None:
    """The worker a resource id names, or None if it names none."""
    head, dot, _ = resource_id.partition(".")
    if not dot or not head.startswith("w") or not head[1:].isdigit():
        return None
    return int(head[1:])


class WorkerGroup:
    """``MediaControl`` and ``Upstream`` for worker ``index`` of a node's workers, and
    where its new viewers go (``media.placement``)."""

    def __init__(
        self,
        index: int,
        urls: tuple[str, ...],
        token: str,
        local: LocalMediaControl,
        board: LoadBoard | None = None,
        max_viewers: int = 0,
        cpu_limit: float = 1.0,
    ) -> None:
        """``board`` and ``max_viewers`` (> 0) turn placement on; ``cpu_limit`` is the
        share of a core past which a worker takes no new viewer."""
        if not 0 <= index < len(urls):
            raise ValueError(f"worker {index} of {len(urls)}")
        self.index = index
        self.state: State = "serving"
        self._local = local
        self._token = token
        self._links = {i: MediaForwarder(url, token) for i, url in enumerate(urls) if i != index}
        self._board = board
        self._placement = (
            Placement(index, max_viewers, board, cpu_limit)
            if board is not None and max_viewers > 0
            else None
        )
        self._cpu = CpuMeter()
        self._last_cpu = 0.0

    @property
    def home(self) -> MediaForwarder | None:
        """The way to the home, or None on the home itself."""
        return self._links.get(HOME)

    async def close(self) -> None:
        for link in self._links.values():
            await link.close()

    # -- load -------------------------------------------------------------------------

    def load(self) -> WorkerLoad:
        """This worker's media load now."""
        media = self._local.media
        # edges pulling from here, and this worker's own pulls
        pulls = sum(media.pull_count(s) + media.is_pulling(s) for s in media.session_ids())
        return WorkerLoad(
            worker=self.index,
            viewers=media.viewer_total(),
            pulls=pulls,
            cpu=self._last_cpu,
            state=self.state,
            sessions=tuple(media.relayed_sessions()),
        )

    async def keep_up(self, interval_s: float = 1.0) -> None:
        """Every ``interval_s`` until cancelled: write this worker's load to the board
        and let go of pulls whose other end is gone (``watch_pulls``); withdraw the
        load at the end."""
        if self._board is None:
            return
        try:
            while True:
                self._last_cpu = self._cpu.share()
                try:
                    await self._board.report(self.load())
                    await self.watch_pulls(await self._board.loads())
                except RedisError as exc:
                    log.warning("media load not reported or read: %r", exc)
                await asyncio.sleep(interval_s)
        finally:
            with contextlib.suppress(RedisError):
                await self._board.withdraw(self.index)

    async def watch_pulls(self, loads: dict[int, WorkerLoad]) -> None:
        """A pull's other end is gone when its worker's load is stale or comes from
        another process (it was restarted): the origin frees the pull of a dead edge;
        an edge whose origin died pulls again from the new one (with backoff)."""
        media = self._local.media
        for resource_id, (worker, pid) in media.pullers().items():
            load = loads.get(worker)
            if load is None or load.pid != pid:
                log.info("the edge pulling as %s (worker %d) is gone", resource_id, worker)
                await media.drop_pull(resource_id, "edge_gone")
        home = loads.get(HOME)
        for session_id, origin_pid in media.pull_origins().items():
            if home is None or (origin_pid is not None and home.pid != origin_pid):
                log.info("the origin of session %d is gone: pulling again", session_id)
                media.origin_lost(session_id)

    async def drain(self) -> None:
        """Take no new viewers (they are placed on other workers from now on)."""
        self.state = "draining"
        if self._board is not None:
            with contextlib.suppress(RedisError):
                await self._board.report(self.load())

    # -- MediaControl ----------------------------------------------------------------

    async def end_session(self, session_id: int) -> None:
        edges = [i for i in (self.index, *self._links) if i != HOME]
        await asyncio.gather(*(self._end_on(i, session_id) for i in edges))
        await self._end_on(HOME, session_id)

    async def _end_on(self, index: int, session_id: int) -> None:
        if index == self.index:
            await self._local.end_session(session_id)
        else:
            await self._links[index].end_session(session_id)

    async def media_time(self, session_id: int) -> float | None:
        home = self.home
        if home is None:
            return await self._local.media_time(session_id)
        return await home.media_time(session_id)

    async def identify_viewer(self, session_id: int, resource_id: str, user_id: int) -> bool:
        owner = resource_worker(resource_id)
        if owner is None or owner == self.index:
            return await self._local.identify_viewer(session_id, resource_id, user_id)
        link = self._links.get(owner)
        return link is not None and await link.identify_viewer(session_id, resource_id, user_id)

    # -- Upstream: the home is every session's origin ---------------------------------

    async def pull(self, session_id: int, offer_sdp: str) -> Pulled:
        home = self.home
        if home is None:
            raise RuntimeError("the home is the origin; it does not pull")
        return await home.pull(session_id, offer_sdp, (self.index, os.getpid()))

    async def release(self, session_id: int, resource_id: str) -> None:
        home = self.home
        if home is not None:
            await home.release(session_id, resource_id)

    # -- HTTP: a new viewer is placed; a viewer's PATCH / DELETE reach its worker --------

    async def place(
        self, request: web.Request, session_id: int, offer: bytes
    ) -> web.StreamResponse | None:
        """``ViewerPlacement``: None to serve the viewer here, else the answer of the
        worker ``Placement`` chose (the next one if it filled up meanwhile)."""
        placement = self._placement
        if placement is None:
            return None
        if request.headers.get(PLACED_HEADER) and is_internal(request, self._token):
            # another worker chose this one: serve it if there is room, never re-place
            if placement.has_room(self.load()):
                return None
            raise _full()
        tried: set[int] = set()
        while (chosen := await placement.choose(session_id, self.load(), tried)) is not None:
            if chosen == self.index:
                # checked again: other offers ran while choose awaited the board
                if placement.has_room(self.load()):
                    return None  # the handler's play() counts this viewer at once
                tried.add(chosen)
                continue
            answer = await self._links[chosen].forward(
                request,
                {PLACED_HEADER: "1", INTERNAL_HEADER: self._token},
                offer,
                unless="media_full",
            )
            if answer is not None:
                return answer
            tried.add(chosen)  # it filled up since its last report: the next one
        raise _full()

    def resource_middleware(self) -> Middleware:
        """For the ``/whep`` sub-application: requests naming another worker's
        resource (``/{session_id}/{resource_id}``) are forwarded to that worker."""

        @web.middleware
        async def to_owner(request: web.Request, handler: Handler) -> web.StreamResponse:
            resource_id = request.match_info.get("resource_id")
            owner = None if resource_id is None else resource_worker(resource_id)
            link = None if owner is None else self._links.get(owner)
            if link is not None:
                return await link.pass_on(request)
            return await handler(request)

        return to_owner
