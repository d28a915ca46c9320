"""The JSON answers of the shelf's figures as models: the host's commission and the
brand's sales reports (``shelf.reports``) and a session's stats (``shelf.stats``), as
the OpenAPI document (``live.openapi``) says they are. Money is integer minor units,
per ISO 4217 currency; an answer has no field beyond these (``AnswerModel``), and the
tests hold every answer to them (``live.openapi.AnswerChecker``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field
from pydantic.json_schema import SkipJsonSchema

from live.answers import FollowersOnDay, omitted
from live.models import SessionStatus
from live.openapi import AnswerModel

#: money by ISO 4217 currency code, in minor units
MoneyByCurrency = dict[str, int]


# -- the reports as CSV ---------------------------------------------------------------------

#: ISO 4217 minor digits where they are not 2 (of the codes ``shelf.schemas`` takes)
# fmt: off
_MINOR_DIGITS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND",
         "VUV", "XAF", "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}
# fmt: on


def minor_digits(currency: str) -> int:
    """How many minor digits ``currency`` has (2 for EUR, 0 for JPY, 3 for KWD)."""
    return _MINOR_DIGITS.get(currency.upper(), 2)


def amount(minor: int, currency: str) -> Decimal:
    """Minor units as the amount in the currency: 123456 EUR -> ``1234.56``, 1500 JPY ->
    ``1500``, -5 EUR -> ``-0.05`` (written with a dot and no grouping: what spreadsheets
    read; a number, so the CSV writer never mistakes a minus for a formula)."""
    return Decimal(minor).scaleb(-minor_digits(currency))


def csv_columns(columns: list[str]) -> list[str]:
    """A report's CSV columns: its own (money in ``*_minor`` units), then for each money
    column the amount in the currency (``gmv_minor`` -> ``gmv``, ``amount``)."""
    return columns + [c.removesuffix("_minor") for c in columns if c.endswith("_minor")]


def with_amounts(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` and, beside each ``*_minor`` figure, its amount (``csv_columns``)."""
    currency = row.get("currency")
    if not isinstance(currency, str):
        return row
    amounts = {
        key.removesuffix("_minor"): amount(value, currency)
        for key, value in row.items()
        if key.endswith("_minor") and isinstance(value, int)
    }
    return {**row, **amounts}


# -- reports --------------------------------------------------------------------------------


class PeriodAnswer(AnswerModel):
    """The orders placed in ``[from, to)``."""

    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime


class SalesFigures(AnswerModel):
    orders: int
    units: int
    gmv_minor: int
    refunded_units: int
    refunds_minor: int


class HostCommissionTotals(SalesFigures):
    currency: str
    commission_pending_minor: int
    commission_payable_minor: int
    commission_total_minor: int


class HostCommissionRow(HostCommissionTotals):
    session_id: int
    session_title: str


class HostCommissionAnswer(AnswerModel):
    """Per session and currency; ``totals`` per currency."""

    host_id: int
    period: PeriodAnswer
    rows: list[HostCommissionRow]
    totals: list[HostCommissionTotals]


class BrandSalesTotals(SalesFigures):
    currency: str
    host_commission_minor: int
    platform_fees_minor: int
    brand_net_minor: int


class BrandSalesRow(BrandSalesTotals):
    host_id: int
    host_name: str
    session_id: int
    session_title: str


class BrandSalesAnswer(AnswerModel):
    """Per host, session and currency; ``totals`` per currency."""

    brand_id: int
    period: PeriodAnswer
    rows: list[BrandSalesRow]
    totals: list[BrandSalesTotals]


# -- session stats --------------------------------------------------------------------------


class StatsSession(AnswerModel):
    id: int
    title: str
    status: SessionStatus
    host_id: int
    started_at: AwareDatetime | None
    ended_at: AwareDatetime | None
    #: when these figures were computed (they are at most a few seconds old)
    generated_at: AwareDatetime


class AudienceSecond(AnswerModel):
    """One second of the audience curve (``second``: epoch seconds): people receiving
    media, people on the room channel, and that second's joins and leaves of each."""

    second: int
    media_viewers: int
    sockets: int
    joins: int
    leaves: int
    socket_joins: int
    socket_leaves: int


class RetentionPoint(AnswerModel):
    """The share of viewers still watching ``t`` seconds after they first joined."""

    t: int
    share: float


class PinMoment(AnswerModel):
    kind: Literal["pin.start", "pin.end"]
    at_ms: int
    #: seconds from the moment to the drop-off's second (negative: during it)
    seconds_before: float
    pin_id: int
    product_id: int
    title: str


class FlashMoment(AnswerModel):
    kind: Literal["flash.start", "flash.end"]
    at_ms: int
    seconds_before: float
    flash_sale_id: int
    product_id: int


class PublisherMoment(AnswerModel):
    """The publisher going live or pausing (``live.audience``)."""

    kind: Literal["live.started", "live.paused"]
    at_ms: int
    seconds_before: float
    reason: str | SkipJsonSchema[None] = omitted()


Moment = Annotated[PinMoment | FlashMoment | PublisherMoment, Field(discriminator="kind")]


class DropOff(AnswerModel):
    """A second where leaving spiked, with what happened just before (newest first)."""

    second: int
    leaves: int
    viewers_before: int
    after: list[Moment]


class AudienceStats(AnswerModel):
    curve: list[AudienceSecond]
    viewers: int
    average_watch_s: float
    median_watch_s: float
    peak_viewers: int
    retention: list[RetentionPoint]
    drop_offs: list[DropOff]
    #: viewers by why they left (``watching``: not yet)
    leave_reasons: dict[str, int]


class FunnelPin(AnswerModel):
    pin_id: int
    product_id: int
    title: str
    start_ms: int
    end_ms: int | None
    media_start_s: float | None
    media_end_s: float | None
    viewers_at_start: int
    peak_viewers: int
    impressions: int
    clicks: int
    orders: int
    units: int
    gmv_minor: MoneyByCurrency
    click_rate: float
    conversion_rate: float


class FunnelProduct(AnswerModel):
    product_id: int
    title: str
    pins: int
    impressions: int
    clicks: int
    orders: int
    buyers: int
    units: int
    gmv_minor: MoneyByCurrency


class FunnelTotals(AnswerModel):
    impressions: int
    clicks: int
    orders: int
    units: int
    gmv_minor: MoneyByCurrency
    orders_outside_pins: int


class FunnelStats(AnswerModel):
    pins: list[FunnelPin]
    products: list[FunnelProduct]
    session: FunnelTotals


class ViewerSplit(AnswerModel):
    returning: int
    new: int
    guests: int


class HostFans(AnswerModel):
    """The host's followers (the host's and admins' view)."""

    followers: int
    followers_gained: int
    followers_lost: int
    followers_over_time: list[FollowersOnDay]
    viewers: ViewerSplit


class BrandFans(AnswerModel):
    """A brand's view: the viewers' split only."""

    viewers: ViewerSplit


class StatsAnswer(AnswerModel):
    """A session's stats; a brand reads its own products' figures only."""

    session: StatsSession
    audience: AudienceStats
    funnel: FunnelStats
    fans: HostFans | BrandFans
