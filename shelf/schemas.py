"""Request bodies of the shelf routes, validated strictly (see ``live.schemas.Body``).

Money is a non-negative integer of minor units with an ISO 4217 code from
``live.money.CURRENCIES``; rates are basis points in [0, 10000]; text is bounded.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema, model_validator

from live.money import MAX_MINOR, Currency
from live.schemas import AwareDatetime, Body, Title

MAX_STOCK = 10_000_000
MAX_SHELF = 100


def _http_url(value: str) -> str:
    if not value.startswith(("https://", "http://")) or any(c.isspace() for c in value):
        raise ValueError("give an http(s) URL without spaces")
    return _no_nul(value)


def _no_nul(value: str) -> str:
    """Text the database can store: PostgreSQL's text holds no NUL character."""
    if "\x00" in value:
        raise ValueError("remove the NUL character")
    return value


MinorUnits = Annotated[int, Field(ge=0, le=MAX_MINOR)]
Bps = Annotated[int, Field(ge=0, le=10_000)]
Stock = Annotated[int, Field(ge=0, le=MAX_STOCK)]
Id = Annotated[int, Field(ge=1, le=2**31 - 1)]
Description = Annotated[str, StringConstraints(max_length=4000), AfterValidator(_no_nul)]
ImageUrl = Annotated[
    str,
    StringConstraints(min_length=8, max_length=2048),
    AfterValidator(_http_url),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 8,
            "maxLength": 2048,
            # what _http_url takes: no white space (str.isspace's), no NUL
            "pattern": r"^https?://[^\s\x00\x1c-\x1f\x85]*$",
        }
    ),
]
Note = Annotated[str, StringConstraints(max_length=500), AfterValidator(_no_nul)]


class CreateProductBody(Body):
    title: Title
    description: Description = ""
    image_url: ImageUrl | None = None
    price_minor: MinorUnits
    currency: Currency
    stock: Stock
    commission_bps: Bps


class EditProductBody(Body):
    """Every field optional; at least one must be given. ``stock`` sets the units
    available at the regular price (flash-sale reservations are not included)."""

    title: Title | None = None
    description: Description | None = None
    image_url: ImageUrl | None = None
    price_minor: MinorUnits | None = None
    currency: Currency | None = None
    stock: Stock | None = None
    commission_bps: Bps | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        for name in self.model_fields_set - {"image_url"}:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, object]:
        """The fields given, by name (``image_url: None`` removes the image)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class ProposeBody(Body):
    host_id: Id
    product_ids: Annotated[
        list[Id], Field(min_length=1, max_length=MAX_SHELF, json_schema_extra={"uniqueItems": True})
    ]
    commission_bps: Bps
    flat_fee_minor: MinorUnits | None = None
    flat_fee_currency: Currency | None = None
    note: Note | None = None
    #: flash sales allowed down to this share of the regular price (basis points;
    #: absent: no flash sales under this agreement), of at most this many units each
    flash_min_price_bps: Annotated[int, Field(ge=1, le=10_000)] | None = None
    flash_max_units: Annotated[int, Field(ge=1, le=MAX_STOCK)] | None = None
    #: a sale below the floor or over the cap waits for the brand's approval instead
    #: of being refused
    flash_ask_brand: bool = False

    @model_validator(mode="after")
    def _fee_has_currency(self) -> Self:
        if (self.flat_fee_minor is None) != (self.flat_fee_currency is None):
            raise ValueError("flat_fee_minor and flat_fee_currency go together")
        if len(set(self.product_ids)) != len(self.product_ids):
            raise ValueError("product_ids has duplicates")
        if self.flash_ask_brand and self.flash_min_price_bps is None:
            raise ValueError("flash_ask_brand needs flash_min_price_bps (flash sales agreed)")
        return self


#: the offer a step answers (``Cooperation.round``)
Round = Annotated[int, Field(ge=1, le=2**31 - 1)]


class DecisionBody(Body):
    """``POST /api/cooperations/{id}/{action}``: optional. ``round``: the offer the
    caller saw; if the terms changed since (a counter-offer), 409 ``stale_round``."""

    round: Round | None = None


class CounterBody(Body):
    """A counter-offer: the terms that change (left out: as they are), and a message.
    ``flat_fee_minor: null`` removes the flat fee; a new fee needs a currency unless the
    agreement has one. At least one term must be given."""

    round: Round | None = None
    commission_bps: Bps | None = None
    flat_fee_minor: MinorUnits | None = None
    flat_fee_currency: Currency | None = None
    message: Note | None = None

    @model_validator(mode="after")
    def _some_terms(self) -> Self:
        terms = {"commission_bps", "flat_fee_minor", "flat_fee_currency"}
        if not self.model_fields_set & terms:
            raise ValueError(
                "give at least one of commission_bps, flat_fee_minor, flat_fee_currency"
            )
        if "commission_bps" in self.model_fields_set and self.commission_bps is None:
            raise ValueError("commission_bps cannot be null")
        return self

    def changes(self) -> dict[str, object]:
        """The terms given, by name."""
        terms = ("commission_bps", "flat_fee_minor", "flat_fee_currency")
        return {name: getattr(self, name) for name in terms if name in self.model_fields_set}


class AgencyBody(Body):
    agency_id: Id


class ProductRef(Body):
    product_id: Id


class ShelfOrderBody(Body):
    """The whole shelf in its new order: exactly the products now on it."""

    product_ids: Annotated[list[Id], Field(max_length=MAX_SHELF)]


class FlashSaleBody(Body):
    product_id: Id
    price_minor: MinorUnits
    quantity: Annotated[int, Field(ge=1, le=MAX_STOCK)]
    per_buyer_limit: Annotated[int, Field(ge=1, le=MAX_STOCK)]
    starts_at: AwareDatetime
    ends_at: AwareDatetime

    @model_validator(mode="after")
    def _limits(self) -> Self:
        if self.per_buyer_limit > self.quantity:
            raise ValueError("per_buyer_limit cannot exceed quantity")
        return self
