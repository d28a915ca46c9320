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

With several nodes (``media.nodes``), worker 0 of each node is also that node's
**relay**: the origin of the sessions published to the node, and the one worker that
pulls the sessions published elsewhere (from their origin node's relay worker). Resource
ids name the node too (``{node}.w{index}.``); calls and requests for another node's
resource go to that node's worker; a session's end reaches every node; a full node
answers a new viewer's offer with ``307`` to a node with room (``NodeChooser``), in a
URL carrying a signed token (``media.tokens``).

``WorkerGroup`` is what the rest of the server holds of all this (``MediaControl``,
``Upstream``, ``ViewerPlacement``): it makes the calls and pulls and places the new
viewers itself, over its parts: ``media.worker_links`` (the ways to the other workers,
and which worker a resource id names), ``media.group_load`` (this worker's load on the
board, and the pulls and nodes it watches there) and ``media.viewer_routing`` (the
headers of a placed offer, the client check, a viewer's PATCH or DELETE sent to its
worker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Middleware
from redis.exceptions import RedisError

from live.errors import Conflict, Unavailable

from .forward import INTERNAL_HEADER, MediaForwarder, is_internal
from .group_load import GroupLoad
from .internal import LocalMediaControl
from .nodes import NodeChooser, NodeLoad
from .placement import LoadBoard, Placement, WorkerLoad
from .pull import MediaProcess, Pulled
from .viewer_routing import CLIENT_HEADER, PLACED_HEADER, resource_middleware
from .worker_links import HOME, NodeSetup, WorkerLinks, resource_owner, unavailable

log = logging.getLogger(__name__)


def _full() -> Unavailable:
    return Unavailable("media_full", "every media worker is full; try again soon")


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
        node: NodeSetup | None = None,
    ) -> None:
        """``board`` and ``max_viewers`` (> 0) turn placement on; ``cpu_limit`` is the
        share of a core past which a worker takes no new viewer; ``node`` makes this
        node one of several (it needs ``board``)."""
        if not 0 <= index < len(urls):
            raise ValueError(f"worker {index} of {len(urls)}")
        self.index = index
        self._local = local
        self._node = node
        self._links = WorkerLinks(index, urls, token, node)
        self._token = token
        self._placement = (
            Placement(index, max_viewers, board, cpu_limit)
            if board is not None and max_viewers > 0
            else None
        )
        self._chooser = None if node is None else NodeChooser(node.name, node.board)
        self._group_load = GroupLoad(index, urls, local, board, self._placement, node)

    @property
    def home(self) -> MediaForwarder | None:
        """The way to the home, or None on the home itself."""
        return self._links.home

    @property
    def node_name(self) -> str:
        return "" if self._node is None else self._node.name

    @property
    def me(self) -> MediaProcess:
        return self._local.me

    async def home_reachable(self) -> None:
        """Return once the home answered its internal status, raise if it did not (the
        other workers' ``/readyz``; the caller bounds the time)."""
        await self._links.local[HOME].answers()  # its pooled connection, not a new client

    async def close(self) -> None:
        await self._links.close()

    # -- load (``GroupLoad``) ---------------------------------------------------------

    def load(self) -> WorkerLoad:
        """This worker's media load now (``GroupLoad.load``)."""
        return self._group_load.load()

    async def keep_up(self, interval_s: float = 1.0) -> None:
        """``GroupLoad.keep_up``: report this worker's load every ``interval_s`` and
        watch the pulls (and, on a node's relay worker, the other nodes) until
        cancelled."""
        await self._group_load.keep_up(interval_s)

    async def drain(self) -> bool:
        """``GroupLoad.drain``: take no new viewers; whether another worker of this node
        serves."""
        return await self._group_load.drain()

    # -- MediaControl ----------------------------------------------------------------

    async def end_session(self, session_id: int) -> None:
        """Every other node first (each ends its viewers and commits their leaves), then
        this node's edges, then its home, which closes what is left of the session's
        watch intervals."""
        if self._node is not None:
            try:
                nodes = await self._node.board.loads()
            except RedisError as exc:  # their viewers go when their pulls end
                log.warning("session %d: other nodes not told of its end: %r", session_id, exc)
                nodes = {}
            others = [n for n in nodes.values() if n.node != self._node.name and n.workers]
            await asyncio.gather(
                *(
                    self._links.to_url(n.workers[HOME]).end_session(session_id, whole_node=True)
                    for n in others
                )
            )
        await self.end_node_session(session_id, last=True)
        if self._node is not None:
            with contextlib.suppress(RedisError):
                await self._node.board.forget_origin(session_id)

    async def end_node_session(self, session_id: int, *, last: bool = False) -> None:
        """The session's end on this node: its edges, then its home (``last``: the
        home also closes the session's other open watch intervals)."""
        home = self.home
        if home is not None and not last:  # the home does it (the internal "node" end)
            await home.end_session(session_id, whole_node=True)
            return
        edges = [i for i in (self.index, *self._links.local) if i != HOME]
        await asyncio.gather(*(self._end_on(i, session_id) for i in edges))
        await self._end_on(HOME, session_id, last=last)

    async def _end_on(self, index: int, session_id: int, *, last: bool = True) -> None:
        if index == self.index:
            await self._local.end_session(session_id, last=last)
        else:  # an edge (its end only samples), or the home with ``last``
            await self._links.local[index].end_session(session_id)

    async def media_time(self, session_id: int) -> float | None:
        if self._node is not None:
            with contextlib.suppress(RedisError, Unavailable):
                origin = await self._node.board.origin(session_id)
                if origin is not None and origin.node != self._node.name:
                    link = await self._links.node_worker(origin.node, origin.worker)
                    return await link.media_time(session_id)
        home = self.home
        if home is None:
            return await self._local.media_time(session_id)
        return await home.media_time(session_id)

    async def identify_viewer(self, session_id: int, resource_id: str, user_id: int) -> bool:
        owner = resource_owner(resource_id)
        if owner is None or owner == (self.node_name, self.index):
            return await self._local.identify_viewer(session_id, resource_id, user_id)
        node, worker = owner
        if node != self.node_name:
            if self._node is None:
                return False
            try:
                link = await self._links.node_worker(node, worker)
            except Unavailable:
                return False
            return await link.identify_viewer(session_id, resource_id, user_id)
        local = self._links.local.get(worker)
        return local is not None and await local.identify_viewer(session_id, resource_id, user_id)

    # -- Upstream: the home (the node's relay) is the origin of the node's sessions ---

    async def remote(self, session_id: int) -> bool:
        if self.index != HOME:
            return True
        if self._node is None:
            return False
        try:
            origin = await self._node.board.origin(session_id)
        except RedisError as exc:
            log.warning("the origin of session %d is unknown: %r", session_id, exc)
            return False
        return origin is not None and origin.node != self._node.name

    async def may_publish(self, session_id: int) -> None:
        if self._node is None or self.index != HOME:
            return
        try:
            origin = await self._node.board.origin(session_id)
            if origin is None or origin.node == self._node.name:
                return
            node = (await self._node.board.loads()).get(origin.node)
        except RedisError as exc:  # nothing to check against: the host may publish
            log.warning("session %d: other nodes' publishers not checked: %r", session_id, exc)
            return
        if node is None or node.pid != origin.pid or session_id not in node.published:
            return  # no record of that publisher on a live origin
        # the record is up to a second old: the origin itself says, unless it is down
        # (a worker killed a moment ago still has a fresh record)
        if node.workers:
            origin_home = self._links.to_url(node.workers[HOME])
            if await origin_home.holds_publisher(session_id):
                raise Conflict(
                    "publisher_exists",
                    f"session {session_id} already has a publisher (on node {origin.node})",
                )

    async def claimed(self, session_id: int) -> None:
        if self._node is None or self.index != HOME:
            return
        try:
            await self._node.board.set_origin(session_id, self.me)
        except RedisError as exc:  # the publisher works; other nodes cannot find it yet
            log.warning("session %d's origin not recorded: %r", session_id, exc)

    async def pull(self, session_id: int, offer_sdp: str) -> Pulled:
        home = self.home
        if home is not None:
            return await home.pull(session_id, offer_sdp, self.me)
        if self._node is None:
            raise RuntimeError("the home is the origin; it does not pull")
        try:
            origin = await self._node.board.origin(session_id)
        except RedisError as exc:
            raise unavailable(f"the session's origin is unknown: {exc!r}") from exc
        if origin is None or origin.node == self._node.name:
            raise unavailable(f"session {session_id} is published on no other node")
        link = await self._links.node_worker(origin.node, origin.worker)
        return await link.pull(session_id, offer_sdp, self.me)

    async def release(self, session_id: int, resource_id: str) -> None:
        home = self.home
        if home is not None:
            await home.release(session_id, resource_id)
            return
        owner = resource_owner(resource_id)
        if owner is not None and self._node is not None and owner[0] != self._node.name:
            await (await self._links.node_worker(*owner)).release(session_id, resource_id)

    # -- HTTP: a new viewer is placed; a viewer's PATCH / DELETE reach its worker --------

    async def place(
        self,
        request: web.Request,
        session_id: int,
        offer: bytes,
        user_id: int | None,
        address: str,
        guest_id: str | None = None,
    ) -> web.StreamResponse | None:
        """``ViewerPlacement``: None to serve the viewer here, else the answer of the
        worker ``Placement`` chose (the next one if it filled up meanwhile); with every
        worker full, a ``307`` to another node with room (unless the offer came with a
        media token: it was sent to this node already)."""
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
            answer = await self._links.local[chosen].forward(
                request,
                {PLACED_HEADER: "1", INTERNAL_HEADER: self._token, CLIENT_HEADER: address},
                offer,
                unless="media_full",
            )
            if answer is not None:
                return answer
            # it filled up since its last report, or takes no connection yet: the next
            tried.add(chosen)
        if self._node is not None and "token" not in request.query:
            return await self._redirect(session_id, user_id, guest_id)
        raise _full()

    async def _redirect(
        self, session_id: int, user_id: int | None, guest_id: str | None
    ) -> web.Response:
        """``307`` to a node with room (RFC 9725 s4.5), in a URL with a token."""
        assert self._node is not None and self._chooser is not None
        try:
            node = await self._chooser.choose(session_id, exclude=self._node.name)
        except RedisError as exc:
            log.warning("no other node to send a viewer to: %r", exc)
            node = None
        if node is None:
            raise _full()
        url = self.media_url(node, session_id, user_id, guest_id)
        return web.Response(status=307, headers={"Location": url})

    def media_url(
        self, node: NodeLoad, session_id: int, user_id: int | None, guest_id: str | None = None
    ) -> str:
        """``node``'s WHEP URL for the session, with a token for ``user_id`` (or the
        guest ``guest_id``)."""
        assert self._node is not None
        token, _ = self._node.tokens.issue(session_id, node.node, user_id, guest_id)
        return f"{node.public_url}/whep/{session_id}?token={quote(token)}"

    async def endpoint(self, session_id: int, user_id: int | None) -> tuple[str, str]:
        """``ViewerPlacement.endpoint``: the node for a new viewer (name, public URL);
        ``media_full`` if no node has room."""
        if self._node is None or self._chooser is None:
            return "", ""
        try:
            node = await self._chooser.choose(session_id)
        except RedisError as exc:
            raise unavailable(f"the node directory cannot be read: {exc!r}") from exc
        if node is None:
            raise _full()
        return node.node, node.public_url

    def resource_middleware(self) -> Middleware:
        """For the ``/whep`` sub-application: requests naming another worker's
        resource (``/{session_id}/{resource_id}``) are forwarded to that worker."""
        return resource_middleware(self.index, self._links, self._node)
