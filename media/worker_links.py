"""How one media worker reaches the others (``media.cluster`` says who does what).

- Resource ids: a worker's WHIP/WHEP resource ids begin with its prefix
  (``resource_prefix``: ``w{index}.``, with several nodes ``{node}.w{index}.``), so
  ``resource_owner`` tells from an id alone which node and worker hold the resource.
- ``NodeSetup``: what a worker knows of its node among several (``LIVESHELF_NODE``).
- ``WorkerLinks``: one ``MediaForwarder`` per other worker of the node, by index (the
  media home is ``HOME``), made once; and, with several nodes, one per worker of another
  node reached so far, by URL, found through the node board. A node that has no fresh
  record (it is down), or no such worker, is ``media_unavailable`` (``unavailable``),
  as is a board that cannot be read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from redis.exceptions import RedisError

from live.errors import Unavailable
from live.settings import NODE_NAME

from .forward import MediaForwarder
from .nodes import NodeBoard
from .tokens import MediaTokens

HOME = 0


def unavailable(message: str) -> Unavailable:
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


class WorkerLinks:
    """The ways from worker ``index`` to the other workers, of its node and of others."""

    def __init__(
        self, index: int, urls: tuple[str, ...], token: str, node: NodeSetup | None
    ) -> None:
        self._token = token
        self._node = node
        #: the node's other workers, by index
        self.local = {i: MediaForwarder(url, token) for i, url in enumerate(urls) if i != index}
        #: other nodes' workers, by URL: one per worker of the deployment reached
        self._remote: dict[str, MediaForwarder] = {}

    @property
    def home(self) -> MediaForwarder | None:
        """The way to the home, or None on the home itself."""
        return self.local.get(HOME)

    async def close(self) -> None:
        for link in (*self.local.values(), *self._remote.values()):
            await link.close()

    def to_url(self, url: str) -> MediaForwarder:
        """The way to another node's worker at ``url``."""
        link = self._remote.get(url)
        if link is None:
            link = self._remote[url] = MediaForwarder(url, self._token)
        return link

    async def node_worker(self, node: str, worker: int) -> MediaForwarder:
        """The way to worker ``worker`` of another node; ``media_unavailable`` if that
        node has no fresh record (it is down) or no such worker."""
        assert self._node is not None
        try:
            load = (await self._node.board.loads()).get(node)
        except RedisError as exc:
            raise unavailable(f"the node directory cannot be read: {exc!r}") from exc
        if load is None or not 0 <= worker < len(load.workers):
            raise unavailable(f"media node {node!r} cannot be reached")
        return self.to_url(load.workers[worker])
