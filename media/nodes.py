"""Several nodes: groups of media workers on different addresses sharing PostgreSQL and
Redis (``LIVESHELF_NODE``).

The node a session's WHIP publisher reached is its **origin** (``NodeBoard`` keeps the
session -> origin process map). In every other node with viewers of the session, the
node's relay worker (its worker 0) pulls the session once from the origin's relay
worker, and the node's other workers pull from their relay worker as they always do:
a tree of depth two, one stream per node on the network.

Each node's relay worker writes a record of its node every second (``NodeLoad``):
where its workers listen for the other nodes, its public URL, how many more viewers
it takes, and the sessions it relays. ``NodeChooser`` picks the node a new viewer goes
to (``GET /api/sessions/{id}/media-endpoint``, and a full node's ``307``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field

from redis.asyncio import Redis

from .placement import FreshRecords, State
from .pull import MediaProcess

log = logging.getLogger(__name__)

#: a session's origin record outlives a crashed node that never cleared it this long
ORIGIN_TTL_S = 86_400


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """One node, as its relay worker reports it."""

    node: str
    #: where viewers reach the node (``https://node-b.example.com``)
    public_url: str
    #: where the other nodes reach each of its workers, by index
    workers: tuple[str, ...]
    #: its relay worker's process (a restarted one has another)
    pid: int
    viewers: int
    #: viewers it takes still: free slots of its workers that have room
    room: int
    state: State
    sessions: tuple[int, ...]
    #: sessions whose WHIP publisher is connected to it (a second one elsewhere is refused)
    published: tuple[int, ...] = ()
    at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> NodeLoad:
        data = json.loads(text)
        data["workers"] = tuple(data["workers"])
        data["sessions"] = tuple(data["sessions"])
        data["published"] = tuple(data.get("published", ()))
        return cls(**data)


class NodeBoard:
    """Nodes' records (one hash, a field per node) and sessions' origins in Redis."""

    def __init__(self, redis: Redis, prefix: str, *, stale_s: float = 5.0) -> None:
        self._redis = redis
        self._prefix = prefix
        self._records = FreshRecords(redis, f"{prefix}:media:nodes", NodeLoad.from_json, stale_s)

    async def report(self, load: NodeLoad) -> None:
        await self._records.put(load.node, load.to_json())

    async def withdraw(self, node: str) -> None:
        await self._records.remove(node)

    async def loads(self) -> dict[str, NodeLoad]:
        """The fresh records by node (stale or unreadable ones left out)."""
        return {load.node: load for load in await self._records.fresh()}

    def _origin_key(self, session_id: int) -> str:
        return f"{self._prefix}:media:origin:{session_id}"

    async def set_origin(self, session_id: int, origin: MediaProcess) -> None:
        await self._redis.set(self._origin_key(session_id), origin.header(), ex=ORIGIN_TTL_S)

    async def origin(self, session_id: int) -> MediaProcess | None:
        """The process holding the session's publisher (or that held it last)."""
        return (await self.origins([session_id])).get(session_id)

    async def origins(self, session_ids: list[int]) -> dict[int, MediaProcess]:
        if not session_ids:
            return {}
        values = await self._redis.mget([self._origin_key(s) for s in session_ids])
        found = {}
        for session_id, value in zip(session_ids, values, strict=True):
            text = value.decode() if isinstance(value, bytes) else value
            origin = None if text is None else MediaProcess.from_header(text)
            if origin is not None:
                found[session_id] = origin
        return found

    async def forget_origin(self, session_id: int) -> None:
        await self._redis.delete(self._origin_key(session_id))


class NodeChooser:
    """Which node serves a new viewer: this one while it has room; else the node with
    the most room among those that relay the session already; else the node with the
    most room (it will pull the session); else none. Choices count as reservations
    until the chosen node's next report, so a burst spreads."""

    def __init__(self, me: str, board: NodeBoard) -> None:
        self.me = me
        self._board = board
        #: node -> (viewers sent there, time of the first) not yet in its report: one
        #: per node of the deployment at most
        self._reserved: dict[str, tuple[int, float]] = {}

    async def choose(self, session_id: int, *, exclude: str | None = None) -> NodeLoad | None:
        loads = await self._board.loads()
        open_ = [
            load
            for load in loads.values()
            if load.state == "serving" and self._room(load) > 0 and load.node != exclude
        ]
        mine = [load for load in open_ if load.node == self.me]
        relaying = [load for load in open_ if session_id in load.sessions]
        pool = mine or relaying or open_
        if not pool:
            return None
        best = max(pool, key=lambda n: (self._room(n), n.node))
        if best.node != self.me:
            count, since = self._reserved.get(best.node, (0, time.time()))
            self._reserved[best.node] = (count + 1, since)
        return best

    def _room(self, load: NodeLoad) -> int:
        """Its reported room less what this worker sent there since the report."""
        count, since = self._reserved.get(load.node, (0, 0.0))
        if count and load.at > since + 1.0:  # a report made after them counts them
            del self._reserved[load.node]
            count = 0
        return load.room - count
