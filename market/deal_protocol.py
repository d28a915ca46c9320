"""What deals ask of other features, wired in ``app.py`` (features never import each
other): whether a show delivered what a deal bought, whose a product is, and which
agencies order for a brand."""

from __future__ import annotations

from typing import Protocol


class PinMinutes(Protocol):
    """How long a product was pinned in a live session (the shelf's pins)."""

    async def pinned_minutes(self, session_id: int, product_id: int) -> int:
        """Whole minutes session ``session_id`` had product ``product_id`` pinned, over
        all its pins so far (0: never)."""
        ...


class ProductBrands(Protocol):
    """Whose a product is (the shelf's catalogue)."""

    async def brand_of(self, product_id: int) -> int | None:
        """The brand owning ``product_id``; None: no such product."""
        ...


class BrandAgents(Protocol):
    """Which agencies order deals for a brand."""

    async def acts_for_brand(self, agency_id: int, brand_id: int) -> bool: ...


class NoBrandAgents:
    """No agency orders for any brand (until brands can name one)."""

    async def acts_for_brand(self, agency_id: int, brand_id: int) -> bool:
        return False
