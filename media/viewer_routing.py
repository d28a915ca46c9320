"""What marks a viewer's requests when several workers serve media, and where a request
for another worker's viewer goes (``media.cluster`` says who does what).

- A new WHEP offer that ``WorkerGroup.place`` passes on to the worker placement chose
  is marked ``X-Liveshelf-Placed`` (that worker serves it if it has room and never
  places it again), with the client's address in ``X-Liveshelf-Client``. The headers
  count only on requests carrying the internal token (``media.forward.is_internal``).
- ``MediaClients`` (``ClientCheck``): the client's address and the rate of its offers;
  a placed offer comes with the address the placing worker saw, and was counted there.
- ``resource_middleware``: a PATCH or DELETE naming another worker's resource
  (``media.worker_links.resource_owner``) is passed on to that worker, of this node or
  another; one whose node is gone is answered here (``not_found``).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from live.errors import Unavailable
from live.guard import Guard
from live.http import Handler

from .forward import is_internal
from .worker_links import NodeSetup, WorkerLinks, resource_owner

#: on a ``POST /whep/{id}`` another worker forwarded: it chose this worker already
PLACED_HEADER = "X-Liveshelf-Placed"
#: on such a request: the client's address, as the placing worker saw it
CLIENT_HEADER = "X-Liveshelf-Client"


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


def resource_middleware(index: int, links: WorkerLinks, node: NodeSetup | None) -> Middleware:
    """For the ``/whep`` sub-application of worker ``index``: requests naming another
    worker's resource (``/{session_id}/{resource_id}``) are forwarded to that worker."""
    node_name = "" if node is None else node.name

    @web.middleware
    async def to_owner(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource_id = request.match_info.get("resource_id")
        owner = None if resource_id is None else resource_owner(resource_id)
        if owner is None or owner == (node_name, index):
            return await handler(request)
        node_of, worker = owner
        if node_of == node_name:
            link = links.local.get(worker)
        elif node is not None:
            try:
                link = await links.node_worker(node_of, worker)
            except Unavailable:
                link = None  # that node is gone, and so is the resource
        else:
            link = None
        if link is not None:
            return await link.pass_on(request)
        return await handler(request)

    return to_owner
