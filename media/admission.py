"""What the WHEP route asks before it answers a viewer's offer (``MediaHandlers.play``
and ``media_endpoint``).

- ``ViewerPlacement``: where a new viewer goes. One process serving all media
  (``media.placement.ProcessCap``) serves it here unless full; several workers
  (``media.cluster.WorkerGroup``) may pass it to another worker, or redirect it to
  another node.
- ``ClientCheck``: who the viewer is (its address) and whether it may offer now
  (``media.viewer_routing.MediaClients`` over ``live.guard``).

Both refuse by raising a ``live.errors`` kind (``media_full``, ``too_many_offers``).
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web


class ViewerPlacement(Protocol):
    """Where a new WHEP viewer goes when several workers serve media
    (``media.cluster.WorkerGroup``)."""

    async def place(
        self,
        request: web.Request,
        session_id: int,
        offer: bytes,
        user_id: int | None,
        address: str,
        guest_id: str | None = None,
    ) -> web.StreamResponse | None:
        """None: serve the viewer here (``address``: the client's; ``guest_id`` its
        verified guest id, for the token of a redirect). Else the answer
        of the worker that served it (or a refusal: ``media_full``; or a redirect to
        another node); raises a ``live.errors`` kind to refuse."""
        ...

    async def endpoint(self, session_id: int, user_id: int | None) -> tuple[str, str]:
        """The node a new viewer should play from: its name and public URL, or
        ``("", "")`` for this server itself; ``media_full`` if every node is full."""
        ...


class ClientCheck(Protocol):
    """Who a WHEP viewer is, and whether it may offer now (``live.guard``)."""

    def address(self, request: web.Request) -> str:
        """The client's address (as another worker passed it on, for a placed offer)."""
        ...

    async def offered(
        self, request: web.Request, session_id: int, address: str, user_id: int | None
    ) -> None:
        """Count the offer (per address, and per user when ``user_id`` is given);
        ``RateLimited`` (429) past the rate (placed offers were counted by the worker
        that placed them)."""
        ...
