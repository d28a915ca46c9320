"""What the market asks of other features, wired in ``app.py`` (features never import
each other): who acts for a host, and what a host sold."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class AgencyOf(Protocol):
    """The agency a host has named to act for it (``shelf.host_links.HostLinks``)."""

    async def agency_id_of(self, host_id: int) -> int | None:
        """None: the host has named none. Read fresh on every call: a host clearing
        its agency takes effect at once."""
        ...


class HostSales(Protocol):
    """What hosts sold (``shelf.sales_figures.PaidSales``)."""

    async def paid_sales(
        self, host_ids: Sequence[int], since_ms: int
    ) -> list[tuple[int, str, int, int]]:
        """``(host_id, currency, orders, gmv_minor)`` of the orders of ``host_ids`` paid
        since ``since_ms`` and never refunded, by host and currency."""
        ...
