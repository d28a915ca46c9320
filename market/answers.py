"""The market's JSON answers as models: what the OpenAPI document (``live.openapi``)
says the rate card, profile and directory routes return. The services build plain
dicts (``market.views``); these describe them field by field, and the tests hold every
answer to them (``live.openapi.AnswerChecker``)."""

from __future__ import annotations

from pydantic import AwareDatetime

from live.openapi import AnswerModel
from market.schemas import Kind


class ServiceAnswer(AnswerModel):
    #: what a deal names (with the card's version)
    id: int
    kind: Kind
    #: a live segment's minutes (null for other kinds)
    minutes: int | None
    price_minor: int
    currency: str
    turnaround_days: int
    description: str | None


class RateCardAnswer(AnswerModel):
    """One published version of a host's rate card (never changed once published)."""

    host_id: int
    version: int
    #: whether it is the host's newest version
    current: bool
    published_at: AwareDatetime
    #: the host, or the agency that published it for the host
    published_by: int
    services: list[ServiceAnswer]


class RateCardVersionAnswer(AnswerModel):
    version: int
    published_at: AwareDatetime
    published_by: int
    services: int


class RateCardVersionsAnswer(AnswerModel):
    """Newest first; ``next_before_id`` is the version to ask before next."""

    versions: list[RateCardVersionAnswer]
    next_before_id: int | None


class ProfileAnswer(AnswerModel):
    """What the host says of itself: self-reported, never verified."""

    tags: list[str]
    region: str | None
    bio: str
    updated_at: AwareDatetime | None


class OwnProfileAnswer(AnswerModel):
    host_id: int
    profile: ProfileAnswer


class SalesAnswer(AnswerModel):
    currency: str
    orders: int
    gmv_minor: int


class VerifiedAnswer(AnswerModel):
    """Figures computed from liveshelf's own records (``market.figures``), as of
    ``as_of_ms``: refreshed periodically, so up to the refresh interval old."""

    as_of_ms: int
    as_of: AwareDatetime
    #: the figures below cover this many days before ``as_of`` (followers: at ``as_of``)
    window_days: int
    followers: int
    avg_concurrent_viewers: float
    peak_concurrent_viewers: int
    avg_watch_s: float
    #: paid orders never refunded, over every currency
    orders: int
    #: the same per currency, with their GMV
    gmv: list[SalesAnswer]
    #: null until deals exist
    on_time_delivery_rate: float | None


class CreatorAnswer(AnswerModel):
    host_id: int
    display_name: str
    profile: ProfileAnswer
    rate_card: RateCardAnswer
    #: null until the host's figures were first computed
    verified: VerifiedAnswer | None


class CreatorsAnswer(AnswerModel):
    """A page of the directory; ``next_after``: the cursor for the next page (null: the
    last)."""

    creators: list[CreatorAnswer]
    next_after: str | None
