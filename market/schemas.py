"""Request bodies of the market routes, validated strictly (``live.schemas.Body``).

Money is a positive integer of minor units with an ISO 4217 code (``live.money``);
text is bounded and holds no NUL character (PostgreSQL's text cannot).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from live.money import MAX_MINOR, Currency
from live.schemas import Body

#: the most services one card holds
MAX_SERVICES = 20
MAX_MINUTES = 240
MAX_TURNAROUND_DAYS = 90
MAX_SERVICE_DESCRIPTION = 500
MAX_TAGS = 10
MAX_BIO = 1000
#: a tag: lowercase letters, digits and '-', 1..32 characters
TAG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
#: a region: an ISO 3166-1 alpha-2 country code, optionally with a subdivision (US-CA)
REGION_PATTERN = r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("remove the NUL character")
    return value


Kind = Literal["live_segment", "note", "shelf_slot"]
Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
Region = Annotated[str, StringConstraints(pattern=REGION_PATTERN)]


class ServiceBody(Body):
    """One service: ``minutes`` for a ``live_segment`` only (the service refuses it
    missing, ``minutes_required``, or given to another kind, ``minutes_not_allowed``)."""

    kind: Kind
    minutes: Annotated[int, Field(ge=1, le=MAX_MINUTES)] | None = None
    price_minor: Annotated[int, Field(ge=1, le=MAX_MINOR)]
    currency: Currency
    turnaround_days: Annotated[int, Field(ge=1, le=MAX_TURNAROUND_DAYS)]
    description: (
        Annotated[
            str, StringConstraints(max_length=MAX_SERVICE_DESCRIPTION), AfterValidator(_no_nul)
        ]
        | None
    ) = None


class RateCardBody(Body):
    """A whole new version of the card. ``base_version``: the version the editor saw
    (0: none yet); if another was published since, 409 ``stale_version``."""

    services: Annotated[list[ServiceBody], Field(min_length=1, max_length=MAX_SERVICES)]
    base_version: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None


class ProfileBody(Body):
    """The whole profile (what is left out is emptied): self-reported, never verified."""

    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)] = []
    region: Region | None = None
    bio: Annotated[str, StringConstraints(max_length=MAX_BIO), AfterValidator(_no_nul)] = ""

    @model_validator(mode="after")
    def _distinct_tags(self) -> Self:
        if len(set(self.tags)) != len(self.tags):
            raise ValueError("tags has duplicates")
        return self
