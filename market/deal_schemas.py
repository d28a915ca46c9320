"""Request bodies of the deal routes, validated strictly (``live.schemas.Body``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from live.http import MAX_ID
from live.schemas import Body

MAX_REASON = 500

Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("remove the NUL character")
    return value


class OfferBody(Body):
    """One service of the host's current rate card. ``brand_id``: the brand an agency
    orders for (a brand orders for itself and may leave it out)."""

    host_id: Id
    card_version: Id
    service_id: Id
    brand_id: Id | None = None


class StepBody(Body):
    """What a step says: ``schedule`` a session and product, ``dispute`` a reason,
    ``resolve`` the host's part in basis points; the other steps nothing."""

    session_id: Id | None = None
    product_id: Id | None = None
    reason: (
        Annotated[
            str,
            StringConstraints(min_length=1, max_length=MAX_REASON),
            AfterValidator(_no_nul),
        ]
        | None
    ) = None
    host_bps: Annotated[int, Field(ge=0, le=10_000)] | None = None
