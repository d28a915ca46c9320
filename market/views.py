"""The JSON shapes of the market (``market.answers`` describes them)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from live.clock import iso
from market.models import CreatorFigures, CreatorProfile, CreatorSales, RateCard, RateCardService

#: the days the verified figures cover (``market.figures``)
WINDOW_DAYS = 30


def service_dict(s: RateCardService) -> dict[str, Any]:
    return {
        "id": s.id,
        "kind": s.kind,
        "minutes": s.minutes,
        "price_minor": s.price_minor,
        "currency": s.currency,
        "turnaround_days": s.turnaround_days,
        "description": s.description,
    }


def card_dict(
    card: RateCard, services: Iterable[RateCardService], *, current: bool
) -> dict[str, Any]:
    """``services`` in the card's order."""
    return {
        "host_id": card.host_id,
        "version": card.version,
        "current": current,
        "published_at": iso(card.published_ms),
        "published_by": card.published_by,
        "services": [service_dict(s) for s in services],
    }


def profile_dict(profile: CreatorProfile | None) -> dict[str, Any]:
    """A host's profile; an empty one when it has written none."""
    if profile is None:
        return {"tags": [], "region": None, "bio": "", "updated_at": None}
    return {
        "tags": [t for t in profile.tags.split(",") if t],
        "region": profile.region,
        "bio": profile.bio,
        "updated_at": iso(profile.updated_ms),
    }


def verified_dict(
    figures: CreatorFigures | None, sales: Iterable[CreatorSales]
) -> dict[str, Any] | None:
    if figures is None:
        return None
    return {
        "as_of_ms": figures.computed_ms,
        "as_of": iso(figures.computed_ms),
        "window_days": WINDOW_DAYS,
        "followers": figures.followers,
        "avg_concurrent_viewers": float(figures.avg_viewers),
        "peak_concurrent_viewers": figures.peak_viewers,
        "avg_watch_s": float(figures.avg_watch_s),
        "orders": figures.orders,
        "gmv": [
            {"currency": s.currency, "orders": s.orders, "gmv_minor": s.gmv_minor}
            for s in sorted(sales, key=lambda s: s.currency)
        ],
        # deals (and their delivery dates) do not exist yet
        "on_time_delivery_rate": None,
    }
