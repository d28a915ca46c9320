"""``GroupLoad``: one media worker's load on its node's load board, and what it watches
there (``media.cluster`` says who does what; ``media.placement`` reads the board).

- ``load``: this worker's load now (viewers, pulls, CPU share, serving or draining,
  the sessions it relays); ``state`` is ``serving`` until ``drain``.
- ``keep_up`` (a task until cancelled): every second writes the load to the board and
  reads the others' back; frees the pulls of edges that are gone and pulls again the
  sessions whose origin died (``watch_pulls``). On a node's relay worker (with several
  nodes) it also writes the node's record (``node_load``) and watches the other nodes
  (``watch_nodes``): pulls of nodes that are gone, sessions whose origin node died or
  moved, a publisher another node took, viewers waiting for a session published
  elsewhere. It withdraws the records when cancelled.
- A process's records are told apart by pid: a record from another pid than the pull's
  other end means that end was restarted (its peers died with it).

A Redis failure is logged and ``keep_up``'s round tried again at the next interval;
``drain`` says False when the others cannot be read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.exceptions import RedisError

from .internal import LocalMediaControl
from .nodes import NodeLoad
from .placement import LoadBoard, Placement, State, SteadyCpu, WorkerLoad
from .worker_links import HOME, NodeSetup

log = logging.getLogger(__name__)


class GroupLoad:
    """The load of worker ``index`` of a node's workers, and what it watches."""

    def __init__(
        self,
        index: int,
        urls: tuple[str, ...],
        local: LocalMediaControl,
        board: LoadBoard | None,
        placement: Placement | None,
        node: NodeSetup | None,
    ) -> None:
        """``board`` None: nothing is reported or watched (one worker, or placement
        off); ``placement`` gives the per-worker cap of the node's record."""
        self.index = index
        self.state: State = "serving"
        self._urls = urls
        self._local = local
        self._board = board
        self._placement = placement
        self._node = node
        self._cpu = SteadyCpu()
        self._last_cpu = 0.0

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
        here = "" if self._node is None else self._node.name
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
            pid=self._local.me.pid,
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
