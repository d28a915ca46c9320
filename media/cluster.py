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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Middleware
from redis.exceptions import RedisError

from live.errors import Conflict, Unavailable
from live.guard import Guard
from live.http import Handler
from live.settings import NODE_NAME

from .forward import INTERNAL_HEADER, LocalMediaControl, MediaForwarder, is_internal
from .nodes import NodeBoard, NodeChooser, NodeLoad
from .placement import LoadBoard, Placement, State, SteadyCpu, WorkerLoad
from .pull import MediaProcess, Pulled
from .tokens import MediaTokens

log = logging.getLogger(__name__)

HOME = 0
#: on a ``POST /whep/{id}`` another worker forwarded: it chose this worker already
PLACED_HEADER = "X-Liveshelf-Placed"
#: on such a request: the client's address, as the placing worker saw it
CLIENT_HEADER = "X-Liveshelf-Client"


def _full() -> Unavailable:
    return Unavailable("media_full", "every media worker is full; try again soon")


def _unavailable(message: str) -> Unavailable:
    return Unavailable("media_unavailable", message)


def resource_prefix(index: int, node: str = "") -> str:
    """How the resource ids of worker ``index`` (of ``node``) begin (token_urlsafe has
    no '.')."""
    return f"{node}.w{index}." if node else f"w{index}."


_OWNER = re.compile(rf"(?:(?P<node>{NODE_NAME.pattern})\.)?w(?P<worker>\d{{1,4}})\.")


def resource_owner(resource_id: str) -> tuple[str, int] | None:
    """The node ("" for none) and worker a resource id names, or None."""
    match = _OWNER.match(resource_id)
    if match is None:
        return None
    return match["node"] or "", int(match["worker"])


@dataclass(frozen=True)
class NodeSetup:
    """What a worker knows of its node among several (``LIVESHELF_NODE``)."""

    name: str
    #: where viewers reach this node
    public_url: str
    board: NodeBoard
    tokens: MediaTokens


class MediaClients:
    """``ClientCheck``: the client's address, and the rate of its offers (``Guard``).
    A viewer placed by another worker comes with the address that worker saw, and was
    counted there."""

    def __init__(self, guard: Guard, token: str) -> None:
        self._guard = guard
        self._token = token

    def address(self, request: web.Request) -> str:
        passed = request.headers.get(CLIENT_HEADER)
        if passed is not None and is_internal(request, self._token):
            return passed
        return self._guard.client_address(request)

    async def offered(
        self, request: web.Request, session_id: int, address: str, user_id: int | None
    ) -> None:
        if request.headers.get(PLACED_HEADER) and is_internal(request, self._token):
            return
        await self._guard.offer(session_id, address, user_id)


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
        self.state: State = "serving"
        self._local = local
        self._token = token
        self._urls = urls
        self._links = {i: MediaForwarder(url, token) for i, url in enumerate(urls) if i != index}
        #: other nodes' workers, by URL: one per worker of the deployment reached
        self._remote: dict[str, MediaForwarder] = {}
        self._node = node
        self._chooser = None if node is None else NodeChooser(node.name, node.board)
        self._board = board
        self._placement = (
            Placement(index, max_viewers, board, cpu_limit)
            if board is not None and max_viewers > 0
            else None
        )
        self._cpu = SteadyCpu()
        self._last_cpu = 0.0

    @property
    def home(self) -> MediaForwarder | None:
        """The way to the home, or None on the home itself."""
        return self._links.get(HOME)

    @property
    def node_name(self) -> str:
        return "" if self._node is None else self._node.name

    @property
    def me(self) -> MediaProcess:
        return self._local.me

    async def home_reachable(self) -> None:
        """Return once the home answered its internal status, raise if it did not (the
        other workers' ``/readyz``; the caller bounds the time)."""
        await self._links[HOME].answers()  # its pooled connection, not a new client

    async def close(self) -> None:
        for link in (*self._links.values(), *self._remote.values()):
            await link.close()

    def _link_to(self, url: str) -> MediaForwarder:
        """The way to another node's worker at ``url``."""
        link = self._remote.get(url)
        if link is None:
            link = self._remote[url] = MediaForwarder(url, self._token)
        return link

    async def _node_worker(self, node: str, worker: int) -> MediaForwarder:
        """The way to worker ``worker`` of another node; ``media_unavailable`` if that
        node has no fresh record (it is down) or no such worker."""
        assert self._node is not None
        try:
            load = (await self._node.board.loads()).get(node)
        except RedisError as exc:
            raise _unavailable(f"the node directory cannot be read: {exc!r}") from exc
        if load is None or not 0 <= worker < len(load.workers):
            raise _unavailable(f"media node {node!r} cannot be reached")
        return self._link_to(load.workers[worker])

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
                self._last_cpu = self._cpu.reading()
                try:
                    await self._board.report(self.load())
                    loads = await self._board.loads()
                    await self.watch_pulls(loads)
                    if self._node is not None and self.index == HOME:
                        await self._node.board.report(self.node_load(loads))
                        await self.watch_nodes(await self._node.board.loads())
                except RedisError as exc:
                    log.warning("media load not reported or read: %r", exc)
                await asyncio.sleep(interval_s)
        finally:
            with contextlib.suppress(RedisError):
                await self._board.withdraw(self.index)
                if self._node is not None and self.index == HOME:
                    await self._node.board.withdraw(self._node.name)

    async def watch_pulls(self, loads: dict[int, WorkerLoad]) -> None:
        """A pull's other end is gone when its worker's load is stale or comes from
        another process (it was restarted): the origin frees the pull of a dead edge;
        an edge whose origin died pulls again from the new one (with backoff). Pulls
        between nodes are ``watch_nodes``'s."""
        media = self._local.media
        here = self.node_name
        for resource_id, puller in media.pullers().items():
            load = loads.get(puller.worker)
            if puller.node == here and (load is None or load.pid != puller.pid):
                log.info("the edge pulling as %s (%s) is gone", resource_id, puller.header())
                await media.drop_pull(resource_id, "edge_gone")
        home = loads.get(HOME)
        for session_id, origin in media.pull_origins().items():
            if origin is not None and origin.node != here:
                continue
            if home is None or (origin is not None and home.pid != origin.pid):
                log.info("the origin of session %d is gone: pulling again", session_id)
                media.origin_lost(session_id)

    def node_load(self, loads: dict[int, WorkerLoad]) -> NodeLoad:
        """This node's record, from its workers' loads (on its relay worker)."""
        assert self._node is not None and self._placement is not None
        placement = self._placement
        loads = {**loads, self.index: self.load()}
        room = sum(
            placement.cap - load.viewers for load in loads.values() if placement.has_room(load)
        )
        return NodeLoad(
            node=self._node.name,
            public_url=self._node.public_url,
            workers=self._urls,
            pid=self.me.pid,
            viewers=sum(load.viewers for load in loads.values()),
            room=room,
            # its relay worker draining leaves the node open while another worker serves
            state="serving" if any(w.state == "serving" for w in loads.values()) else "draining",
            sessions=tuple(sorted({s for load in loads.values() for s in load.sessions})),
            published=tuple(sorted(self._local.media.published_sessions())),
        )

    async def watch_nodes(self, nodes: dict[str, NodeLoad]) -> None:
        """On a node's relay worker: drop the pulls of nodes that are gone; pull again
        a session whose origin node died or moved; start pulling a session whose
        viewers here wait while its publisher is on another node."""
        assert self._node is not None
        media = self._local.media
        here = self._node.name
        for resource_id, puller in media.pullers().items():
            node = nodes.get(puller.node)
            if puller.node != here and (node is None or node.pid != puller.pid):
                log.info("node %r pulling as %s is gone", puller.node, resource_id)
                await media.drop_pull(resource_id, "node_gone")
        pulled = media.pull_origins()
        waiting = media.waiting_sessions()
        published = media.published_sessions()
        origins = await self._node.board.origins(sorted({*pulled, *waiting, *published}))
        for session_id in published:
            origin = origins.get(session_id)
            node = None if origin is None else nodes.get(origin.node)
            # two publishers raced on two nodes: the later claim won
            if origin is not None and origin.node != here and node and node.pid == origin.pid:
                log.info("session %d: its publisher moved to node %r", session_id, origin.node)
                await media.publisher_moved(session_id)
        for session_id, origin in pulled.items():
            if origin is None or origin.node == here:
                continue
            node = nodes.get(origin.node)
            if node is None or node.pid != origin.pid or origins.get(session_id) != origin:
                log.info("session %d: its origin node %r is gone or moved", session_id, origin.node)
                media.origin_lost(session_id)
        for session_id in waiting:
            origin = origins.get(session_id)
            if origin is not None and origin.node != here:
                media.pull_now(session_id)

    async def drain(self) -> bool:
        """Take no new viewers (they are placed on other workers from now on); whether
        another worker of this node serves, so this one's viewers can move there (no,
        when that cannot be read)."""
        self.state = "draining"
        if self._board is None:
            return False
        try:
            await self._board.report(self.load())
            loads = await self._board.loads()
        except RedisError as exc:
            log.warning("media draining not reported, or the other workers not read: %r", exc)
            return False
        return any(load.state == "serving" for w, load in loads.items() if w != self.index)

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
                    self._link_to(n.workers[HOME]).end_session(session_id, whole_node=True)
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
        edges = [i for i in (self.index, *self._links) if i != HOME]
        await asyncio.gather(*(self._end_on(i, session_id) for i in edges))
        await self._end_on(HOME, session_id, last=last)

    async def _end_on(self, index: int, session_id: int, *, last: bool = True) -> None:
        if index == self.index:
            await self._local.end_session(session_id, last=last)
        else:  # an edge (its end only samples), or the home with ``last``
            await self._links[index].end_session(session_id)

    async def media_time(self, session_id: int) -> float | None:
        if self._node is not None:
            with contextlib.suppress(RedisError, Unavailable):
                origin = await self._node.board.origin(session_id)
                if origin is not None and origin.node != self._node.name:
                    link = await self._node_worker(origin.node, origin.worker)
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
                link = await self._node_worker(node, worker)
            except Unavailable:
                return False
            return await link.identify_viewer(session_id, resource_id, user_id)
        local = self._links.get(worker)
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
        if node.workers and await self._link_to(node.workers[HOME]).holds_publisher(session_id):
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
            raise _unavailable(f"the session's origin is unknown: {exc!r}") from exc
        if origin is None or origin.node == self._node.name:
            raise _unavailable(f"session {session_id} is published on no other node")
        link = await self._node_worker(origin.node, origin.worker)
        return await link.pull(session_id, offer_sdp, self.me)

    async def release(self, session_id: int, resource_id: str) -> None:
        home = self.home
        if home is not None:
            await home.release(session_id, resource_id)
            return
        owner = resource_owner(resource_id)
        if owner is not None and self._node is not None and owner[0] != self._node.name:
            await (await self._node_worker(*owner)).release(session_id, resource_id)

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
            answer = await self._links[chosen].forward(
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
            raise _unavailable(f"the node directory cannot be read: {exc!r}") from exc
        if node is None:
            raise _full()
        return node.node, node.public_url

    def resource_middleware(self) -> Middleware:
        """For the ``/whep`` sub-application: requests naming another worker's
        resource (``/{session_id}/{resource_id}``) are forwarded to that worker."""

        @web.middleware
        async def to_owner(request: web.Request, handler: Handler) -> web.StreamResponse:
            resource_id = request.match_info.get("resource_id")
            owner = None if resource_id is None else resource_owner(resource_id)
            if owner is None or owner == (self.node_name, self.index):
                return await handler(request)
            node, worker = owner
            if node == self.node_name:
                link = self._links.get(worker)
            elif self._node is not None:
                try:
                    link = await self._node_worker(node, worker)
                except Unavailable:
                    link = None  # that node is gone, and so is the resource
            else:
                link = None
            if link is not None:
                return await link.pass_on(request)
            return await handler(request)

        return to_owner
