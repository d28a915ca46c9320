"""The shelf's JSON answers as models: what the OpenAPI document (``live.openapi``)
says the catalogue, cooperation, agency, shelf, pin, flash-sale and order routes return
(the report and stats routes': ``shelf.report_answers``). The services build plain
dicts (``shelf.views``, ``shelf.orders``...); these describe them field by field: an
answer has no field beyond these (``AnswerModel``), and the tests hold every answer to
them (``live.openapi.AnswerChecker``)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime
from pydantic.json_schema import SkipJsonSchema

from live.answers import SessionAnswer, omitted
from live.openapi import AnswerModel, ErrorDetail
from shelf.models import CooperationStatus, FlashStatus
from shelf.order_models import OrderSource, OrderStatus

# -- catalogue ----------------------------------------------------------------------------


class StockFiguresAnswer(AnswerModel):
    """A product's units told apart (``shelf.views.stock_figures``): what every page
    shows. In a product: over every show; in a stock entry: in that show."""

    #: units that sell at the regular price now (``stock``)
    regular: int
    #: units running flash sales have left, at ``flash_price_minor``
    flash: int
    #: units held by scheduled flash sales about to start (reserved a lead time ahead)
    reserved: int
    #: the running sale's price, else the reserved one's (the lowest of several); null
    #: when no sale holds units
    flash_price_minor: int | None
    #: a flash sale runs: in its show its units (even none left) are what sells
    flash_running: bool


class ProductAnswer(AnswerModel):
    """A product (``shelf.views.product_dict``)."""

    id: int
    brand_id: int
    title: str
    description: str
    image_url: str | None
    price_minor: int
    currency: str
    #: units that sell at the regular price now (flash-sale reservations not included)
    stock: int
    stock_version: int
    #: regular, flash and reserved units and the flash price, over every show
    stock_figures: StockFiguresAnswer
    commission_bps: int | SkipJsonSchema[None] = omitted(
        "the commission the brand offers: only for brands, hosts, agencies and admins"
    )
    archived: bool
    archived_at: AwareDatetime | None
    created_at: AwareDatetime
    updated_at: AwareDatetime


class BrandSessionAnswer(SessionAnswer):
    """A session as ``GET /api/sessions`` lists it, plus the brand's products on its
    shelf, in shelf order."""

    product_ids: list[int]


# -- cooperations and agencies --------------------------------------------------------------


class HostNameAnswer(AnswerModel):
    id: int
    display_name: str


class HostsAnswer(AnswerModel):
    hosts: list[HostNameAnswer]


class CooperationAnswer(AnswerModel):
    """A cooperation agreement (``shelf.views.cooperation_dict``)."""

    id: int
    brand_id: int
    host_id: int
    product_ids: list[int]
    commission_bps: int
    flat_fee_minor: int | None
    flat_fee_currency: str | None
    note: str | None
    #: the lowest flash price agreed, in basis points of the regular price (null: no
    #: flash sales under this agreement)
    flash_min_price_bps: int | None
    #: the most units one flash sale may hold (null: no cap)
    flash_max_units: int | None
    flash_ask_brand: bool
    status: CooperationStatus
    created_at: AwareDatetime
    decided_at: AwareDatetime | None
    decided_by: int | None
    ended_at: AwareDatetime | None
    #: who acts next while it is proposed: the host (or its agency) or the brand
    turn: Literal["host", "brand"]
    #: which offer the terms are: 1 the proposal, +1 per counter-offer
    round: int


class PartyAnswer(AnswerModel):
    id: int
    display_name: str


class CooperationRoundAnswer(AnswerModel):
    """One step of an agreement (``shelf.cooperation.round_dict``), with the terms it
    made (proposed, countered) or answered (accepted, declined, withdrawn, ended)."""

    step: int
    round: int
    action: Literal["proposed", "countered", "accepted", "declined", "withdrawn", "ended"]
    #: who took it: the brand, or the host's side (the host or its agency)
    party: Literal["host", "brand"]
    by_user: int | None
    commission_bps: int
    flat_fee_minor: int | None
    flat_fee_currency: str | None
    message: str | None
    at: AwareDatetime


class CooperationRoundsAnswer(AnswerModel):
    """Every step of an agreement, oldest first, and who its parties are."""

    cooperation_id: int
    brand: PartyAnswer
    host: PartyAnswer
    rounds: list[CooperationRoundAnswer]


class AgencyAnswer(AnswerModel):
    host_id: int
    #: the agency the host named (null: none)
    agency_id: int | None


class HostIdsPage(AnswerModel):
    """The hosts that named the calling agency, by id (oldest first)."""

    host_ids: list[int]
    next_after_id: int | None


# -- the live shelf, pins -------------------------------------------------------------------


class ShelfItemAnswer(AnswerModel):
    """A product on a live shelf as viewers see it (``shelf.views.shelf_item_dict``)."""

    product_id: int
    brand_id: int
    title: str
    image_url: str | None
    price_minor: int
    currency: str


class StockFlashAnswer(AnswerModel):
    id: int
    remaining: int


class StockEntryAnswer(AnswerModel):
    """A product's stock on screen (``shelf.views.stock_entry``): ``stock`` at the
    regular price, ``flash`` the running flash sale's units left, ``stock_figures``
    the units told apart in this show; keep the entry with the highest ``version``."""

    product_id: int
    stock: int
    version: int
    flash: StockFlashAnswer | None
    stock_figures: StockFiguresAnswer


class CardFlashAnswer(AnswerModel):
    id: int
    price_minor: int
    remaining: int
    ends_ms: int


class CardAnswer(AnswerModel):
    """The pinned product's card (``shelf.views.card_dict``, ``card.shown`` data)."""

    pin_id: int
    product_id: int
    title: str
    image_url: str | None
    price_minor: int
    currency: str
    flash: CardFlashAnswer | None
    stock: int
    pinned_at: AwareDatetime


class FlashSaleAnswer(AnswerModel):
    """A flash sale (``shelf.views.flash_dict``); ``server_time`` (epoch ms) lets
    clients count down on the server's clock."""

    id: int
    session_id: int
    product_id: int
    price_minor: int
    currency: str
    quantity: int
    sold: int
    remaining: int
    per_buyer_limit: int
    status: FlashStatus
    #: whether its units are out of the product's stock and held by the sale
    reserved: bool
    #: why the server cancelled it (null: the host did, or it was not cancelled)
    cancel_reason: Literal["out_of_stock", "not_approved", "session_ended"] | None
    starts_ms: int
    ends_ms: int
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    server_time: int


class ShelfStateAnswer(AnswerModel):
    """The shelf state, the same as the room snapshot's part (``shelf.state``)."""

    shelf: list[ShelfItemAnswer]
    shelf_version: int
    pinned: CardAnswer | None
    #: by product id
    stock: dict[str, StockEntryAnswer]
    #: the session's scheduled and running sales
    flash_sales: list[FlashSaleAnswer]


class ShelfUpdatedAnswer(AnswerModel):
    """The ``shelf.updated`` event's data: the whole new shelf, in order, and the stock
    of every product on it (by product id)."""

    version: int
    shelf: list[ShelfItemAnswer]
    stock: dict[str, StockEntryAnswer]


class UnpinnedAnswer(AnswerModel):
    pinned: None
    #: the product that was pinned (null: nothing was)
    unpinned: int | None


class PinAnswer(AnswerModel):
    """A pin window (``shelf.views.pin_dict``): the open one has no end; the media
    times are seconds into the recording, when one was running."""

    id: int
    session_id: int
    product_id: int
    start_ms: int
    end_ms: int | None
    media_start_s: float | None
    media_end_s: float | None


# -- flash-sale approvals -------------------------------------------------------------------


class ApprovalProduct(AnswerModel):
    id: int
    title: str
    price_minor: int
    currency: str


class ApprovalTerms(AnswerModel):
    cooperation_id: int
    #: the lowest flash price the agreement allows (null: no flash sales agreed)
    floor_minor: int | None
    #: the most units one sale may hold (null: no cap)
    max_units: int | None


class ApprovalSession(AnswerModel):
    id: int
    title: str


class FlashApprovalAnswer(FlashSaleAnswer):
    """A sale waiting for the brand, with what the brand needs to decide."""

    product: ApprovalProduct
    terms: ApprovalTerms
    session: ApprovalSession
    host: HostNameAnswer


class FlashApprovalsAnswer(AnswerModel):
    flash_sales: list[FlashApprovalAnswer]


# -- orders ---------------------------------------------------------------------------------


class OrderAnswer(AnswerModel):
    """An order (``shelf.orders.order_dict``)."""

    id: int
    session_id: int
    product_id: int
    quantity: int
    unit_price_minor: int
    amount_minor: int
    currency: str
    status: OrderStatus
    source: OrderSource
    flash_sale_id: int | None
    #: the pin window open when it was placed (live orders only)
    pin_id: int | None
    commission_bps: int
    refunded_quantity: int
    placed_at: AwareDatetime
    paid_at: AwareDatetime | None


class PaymentDeclinedAnswer(AnswerModel):
    """402: the payment was declined; the order is ``cancelled`` (its units back)."""

    error: ErrorDetail
    order: OrderAnswer
