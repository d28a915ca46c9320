"""The deal routes' JSON answers as models (``live.openapi``): a deal, its receipt
and the published fee schedule (built by ``market.deal_views``)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime

from live.openapi import AnswerModel

State = Literal[
    "offered",
    "accepted",
    "declined",
    "withdrawn",
    "expired",
    "scheduled",
    "cancelled",
    "delivered",
    "approved",
    "disputed",
    "resolved",
    "settled",
]


class DealAnswer(AnswerModel):
    """A deal; its terms were fixed when it was offered."""

    id: int
    state: State
    brand_id: int
    host_id: int
    #: the agency managing the host at the offer (it gets ``agency_share_bps``)
    agency_id: int | None
    ordered_by: int
    card_version: int
    service_id: int
    kind: str
    #: the pinned minutes that count as delivered
    minutes: int
    price_minor: int
    currency: str
    platform_fee_bps: int
    agency_share_bps: int
    session_id: int | None
    product_id: int | None
    dispute_reason: str | None
    resolution_host_bps: int | None
    #: the number of the deal's last step
    seq: int
    offered_at: AwareDatetime | None
    expires_at: AwareDatetime | None
    accepted_at: AwareDatetime | None
    scheduled_at: AwareDatetime | None
    delivered_at: AwareDatetime | None
    review_ends_at: AwareDatetime | None
    approved_at: AwareDatetime | None
    disputed_at: AwareDatetime | None
    resolved_at: AwareDatetime | None
    settled_at: AwareDatetime | None
    closed_at: AwareDatetime | None


class DealLineAnswer(AnswerModel):
    txn: str
    kind: str
    account: str
    amount_minor: int
    currency: str
    agency_id: int | None
    at: AwareDatetime
    #: when a held line becomes payable (null: at once)
    payable_at: AwareDatetime | None


class DealBalanceAnswer(AnswerModel):
    account: str
    currency: str
    pending_minor: int
    payable_minor: int


class DealReceiptAnswer(AnswerModel):
    """The deal and every ledger line posted for it; its lines sum to zero."""

    deal: DealAnswer
    lines: list[DealLineAnswer]
    balances: list[DealBalanceAnswer]


class FeesAnswer(AnswerModel):
    """The published fee schedule, copied onto each deal when it is offered."""

    platform_fee_bps: int
    agency_share_bps: int
    #: how the shares are rounded
    rounding: str
