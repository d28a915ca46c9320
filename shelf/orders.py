"""Orders from a live session (or its replay): the money path.

Placing an order is two short writes around the payment:

1. *take*: check the session, shelf and buyer; take the units (no oversell under any
   concurrency, see ``shelf.stock``) and record the order as ``placed``, keyed by
   ``(buyer, Idempotency-Key)``;
2. capture the payment (``PaymentProvider``, keyed by the order id);
3. *settle*: ``paid`` + the ledger lines + the ``order.placed`` ticker event (outbox),
   or ``cancelled`` + the units back.

The response (status and body) is stored with the order, so the same key from the
same buyer gets the same answer, however often and however concurrently it is sent,
and never takes stock twice. A crash between 1 and 3 leaves a ``placed`` order that
``recover()`` settles (at start-up and then in the background, ``shelf.recovery``).
An order acknowledged to a client was committed with its events in the outbox first.

``OrderService`` decides (``decide``: every refusal the context alone decides, the
price, the order's columns; the answers and events); its ``OrderStore``
(``shelf.order_store``) reads, takes and writes, the same way on either backend as
far as this module can tell. Where a refusal is answered from a read, and which
writes are single statements, is the store's business.

Longer than ~400 lines because ``OrderService`` is the whole money path, and its steps
(``place``, ``decide``, ``_settle``, ``_answer_again``, ``recover``, ``refund``) share
the store, the payments and the answer stored with each order; ``decide``'s checks
stay beside ``place`` so that the order they run in can be read against the write
that meets them in the same order.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from live.auth import Principal
from live.clock import Clock, iso
from live.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unavailable,
    Unprocessable,
)
from live.models import Role, SessionStatus
from live.outbox import OutboxRelay
from live.paging import Listing, Page
from shelf.order_context import Attempt, OrderContext
from shelf.order_models import Order, OrderFigures, OrderSource, OrderStatus, SettledOrder
from shelf.order_reads import Earlier
from shelf.order_store import OrderStore
from shelf.order_store_base import NewOrder, Placed, Settlement
from shelf.payments import PaymentProvider
from shelf.publisher import StockPublisher
from shelf.stock import check_units

#: (session id, buyer id) -> None, or raise (e.g. a banned viewer cannot buy).
BuyerGate = Callable[[int, int], Awaitable[None]]

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")

#: The ``SettledOrder`` fields a settlement copies from the placed order's columns.
_CARRIED = tuple(
    f.name for f in dataclasses.fields(SettledOrder) if f.name not in ("id", "status", "paid_ms")
)


@dataclass(frozen=True, slots=True)
class OrderResult:
    status: int
    body: dict[str, Any]


@dataclass
class OrderStats:
    """What order requests were answered since the process started (counted by the
    handlers: a refusal raised anywhere on the way, validation included, costs the
    success path nothing): orders by their state in the answer (``paid``,
    ``cancelled``, ...; a repeated request's answer counts again), refusals by error
    code."""

    answered: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)


def mask_name(name: str) -> str:
    """``"alice"`` -> ``"a***e"``: enough for a ticker, not enough to identify anyone."""
    name = name.strip() or "?"
    if len(name) <= 2:
        return name[0] + "*"
    return f"{name[0]}***{name[-1]}"


def order_dict(order: OrderFigures) -> dict[str, Any]:
    return {
        "id": order.id,
        "session_id": order.session_id,
        "product_id": order.product_id,
        "quantity": order.quantity,
        "unit_price_minor": order.unit_price_minor,
        "amount_minor": order.amount_minor,
        "currency": order.currency,
        "status": order.status,
        "source": order.source,
        "flash_sale_id": order.flash_sale_id,
        "pin_id": order.pin_id,
        "commission_bps": order.commission_bps,
        "refunded_quantity": order.refunded_quantity,
        "placed_at": iso(order.placed_ms),
        "paid_at": iso(order.paid_ms),
    }


class OrderService:
    def __init__(
        self,
        store: OrderStore,
        clock: Clock,
        publisher: StockPublisher,
        payments: PaymentProvider,
        relay: OutboxRelay,
        *,
        platform_fee_bps: int,
        gates: Sequence[BuyerGate] = (),
        settle_wait_s: float = 5.0,
    ) -> None:
        #: where the orders are (``shelf.order_store.order_store_for``)
        self.store = store
        self._clock = clock
        self._publisher = publisher
        self._payments = payments
        self._relay = relay
        self._platform_fee_bps = platform_fee_bps
        self._gates = list(gates)
        self._settle_wait_s = settle_wait_s
        #: answers by outcome since the process started (``live.metrics``)
        self.stats = OrderStats()

    def add_gate(self, gate: BuyerGate) -> None:
        self._gates.append(gate)

    async def close(self) -> None:
        """Let the shared reads in flight finish (before the database closes)."""
        await self.store.close()

    # -- placing ---------------------------------------------------------------------

    async def place(
        self,
        buyer: Principal,
        session_id: int,
        product_id: int,
        quantity: int,
        key: str | None,
        *,
        source: OrderSource = OrderSource.LIVE,
        expected_price: int | None = None,
        expected_currency: str | None = None,
    ) -> OrderResult:
        """Place an order; with ``expected_price`` (and ``expected_currency``), only at
        that unit price: another one is refused (``409 price_changed``, with the current
        price) before anything is taken or charged."""
        buyer.require(Role.VIEWER)
        if not key or not _KEY_RE.match(key):
            raise InvalidInput(
                "idempotency_key_required",
                "send an Idempotency-Key header of 1-128 printable ASCII characters",
            )
        for gate in self._gates:
            await gate(session_id, buyer.user_id)
        attempt = Attempt(
            session_id,
            product_id,
            buyer.user_id,
            key,
            self._clock.now_ms(),
            quantity,
            source,
            expected_price,
            expected_currency,
        )
        taken = await self.store.take(attempt, self.decide)
        if taken is None:
            raise Conflict("order_in_progress", "this order is being processed; retry")
        if isinstance(taken, Earlier):
            return await self._answer_again(taken, attempt)
        self._publisher.changed(product_id)
        try:
            captured = await self._payments.capture(
                taken.order_id,
                taken.values["amount_minor"],
                taken.values["currency"],
                buyer.user_id,
            )
        except (OSError, TimeoutError) as exc:
            # No answer from the provider: the order stays placed (its units taken) and
            # the background recovery settles it (``shelf.recovery``); a retry with the
            # same key answers ``order_in_progress`` until then, and then the order.
            raise Unavailable(
                "payment_unavailable",
                "the payment could not be confirmed yet; retry with the same key",
                retry_after_ms=5000,
            ) from exc
        return await self._settle(taken, captured.ok, captured.reference, buyer.display_name)

    def decide(self, attempt: Attempt, ctx: OrderContext | None) -> Earlier | NewOrder:
        """What ``attempt`` comes to in ``ctx``: every refusal the context alone decides,
        in the order the write meets them (the units as ``shelf.stock`` takes them), or
        the order the key already names, or the order to record."""
        if ctx is None:
            raise NotFound("session_not_found", f"no live session {attempt.session_id}")
        if ctx.existing_id is not None:
            assert ctx.existing_hash is not None
            return Earlier(ctx.existing_id, ctx.existing_hash, ctx.existing_response)
        _check_session(ctx.status, attempt.source)
        if ctx.cooperation_id is None:
            raise NotFound("not_on_shelf", "the product is not on this session's shelf")
        if ctx.archived_ms is not None:
            raise Conflict("product_archived", "this product is no longer sold")
        flash = ctx.flash_id is not None and attempt.source is OrderSource.LIVE
        _check_price(ctx, attempt, flash)  # before the units: they may not do
        flash_limit = ctx.flash_limit if flash else None
        flash_left = None
        if flash:
            assert ctx.flash_quantity is not None and ctx.flash_sold is not None
            flash_left = ctx.flash_quantity - ctx.flash_sold
        check_units(
            attempt.quantity, stock=ctx.stock, flash_limit=flash_limit, flash_left=flash_left
        )
        return NewOrder(self._order_values(ctx, attempt, flash), flash_limit)

    def _order_values(self, ctx: OrderContext, attempt: Attempt, flash: bool) -> dict[str, Any]:
        """The ``placed`` order's columns, at the flash price inside a running sale."""
        assert ctx.host_id is not None and ctx.brand_id is not None
        if flash:
            price, currency, flash_id = ctx.flash_price, ctx.flash_currency, ctx.flash_id
        else:
            price, currency, flash_id = ctx.price_minor, ctx.currency, None
        assert price is not None and currency is not None
        return {
            "session_id": attempt.session_id,
            "buyer_id": attempt.buyer_id,
            "host_id": ctx.host_id,
            "brand_id": ctx.brand_id,
            "product_id": attempt.product_id,
            "cooperation_id": ctx.cooperation_id,
            "flash_sale_id": flash_id,
            "pin_id": ctx.pin_id if attempt.source is OrderSource.LIVE else None,
            "quantity": attempt.quantity,
            "unit_price_minor": price,
            "currency": currency,
            "amount_minor": price * attempt.quantity,
            "commission_bps": ctx.commission_bps,
            "platform_fee_bps": self._platform_fee_bps,
            "flat_fee_minor": ctx.flat_fee_minor,
            "refunded_quantity": 0,
            "status": OrderStatus.PLACED.value,
            "source": attempt.source.value,
            "idempotency_key": attempt.key,
            "request_hash": attempt.request_hash(),
            "placed_ms": attempt.now_ms,
        }

    async def _settle(
        self, placed: Placed, paid: bool, reference: str, buyer_name: str
    ) -> OrderResult:
        """Record the payment's outcome, once. Returns the answer stored with the order."""
        now = self._clock.now_ms()
        carried = {name: placed.values[name] for name in _CARRIED}
        event: dict[str, Any] | None = None
        if paid:
            order = SettledOrder(
                id=placed.order_id, status=OrderStatus.PAID.value, paid_ms=now, **carried
            )
            result = OrderResult(201, order_dict(order))
            event = _placed_event(order, buyer_name)
        else:
            order = SettledOrder(
                id=placed.order_id, status=OrderStatus.CANCELLED.value, paid_ms=None, **carried
            )
            error = {"code": "payment_declined", "message": "the payment was declined"}
            result = OrderResult(402, {"error": error, "order": order_dict(order)})
        answer = orjson.dumps({"status": result.status, "body": result.body}).decode()
        settled = await self.store.settle(
            Settlement(order, reference, now, answer, event, placed.values["flat_fee_minor"])
        )
        if settled.earlier_answer is not None:
            return _stored(settled.earlier_answer)
        await self._relay.publish(settled.events)
        if not paid:
            self._publisher.changed(order.product_id)
        return result

    async def _answer_again(self, order: Earlier, attempt: Attempt) -> OrderResult:
        if order.request_hash != attempt.request_hash():
            raise Unprocessable(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different order",
                order_id=order.order_id,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settle_wait_s
        answer: Earlier | None = order
        while answer is not None and answer.response_json is None and loop.time() <= deadline:
            await asyncio.sleep(0.02)
            # None: its take was lost with a commit the database had not flushed yet (a
            # database crash, early lock release). Nothing was charged; a retry orders anew.
            answer = await self.store.find(attempt.buyer_id, attempt.key)
        if answer is None or answer.response_json is None:
            raise Conflict("order_in_progress", "this order is still being processed")
        return _stored(answer.response_json)

    async def recover(self, older_than_ms: int = 0) -> int:
        """Settle orders left ``placed`` by a crash; returns how many were settled."""
        stuck = await self.store.placed_before(self._clock.now_ms() - older_than_ms)
        for placed in stuck:
            values = placed.values
            captured = await self._payments.capture(
                placed.order_id, values["amount_minor"], values["currency"], values["buyer_id"]
            )
            await self._settle(placed, captured.ok, captured.reference, "?")
        return len(stuck)

    # -- reading and refunding ---------------------------------------------------------

    async def get(self, caller: Principal, order_id: int) -> dict[str, Any]:
        order = await self.store.get(order_id)
        if order is None:
            raise NotFound("order_not_found", f"no order {order_id}")
        if caller.role is not Role.ADMIN and caller.user_id not in (
            order.buyer_id,
            order.brand_id,
            order.host_id,
        ):
            raise NotFound("order_not_found", f"no order {order_id}")
        return order_dict(order)

    async def mine(self, buyer: Principal, page: Page) -> Listing[dict[str, Any]]:
        """A page of the buyer's orders, newest first."""
        orders = await self.store.buyer_orders(buyer.user_id, page)
        return page.cut(orders, lambda o: o.id, order_dict)

    async def refund(
        self, caller: Principal, order_id: int, quantity: int | None = None
    ) -> dict[str, Any]:
        """Refund ``quantity`` units (default: all that are left) of a paid order.

        The product's brand or an admin. Reverses the sale's ledger lines for those
        units and returns them to stock.
        """
        caller.require(Role.BRAND)

        def units_of(order: Order) -> int:
            if caller.role is not Role.ADMIN and order.brand_id != caller.user_id:
                raise Forbidden("not_your_order", "only the product's brand may refund it")
            if order.status != OrderStatus.PAID.value:
                raise Conflict("not_refundable", f"a {order.status} order cannot be refunded")
            left = order.quantity - order.refunded_quantity
            units = left if quantity is None else quantity
            if not 1 <= units <= left:
                raise Unprocessable("invalid_quantity", f"refund between 1 and {left} units")
            return units

        order, row = await self.store.refund(
            order_id, self._clock.now_ms(), units_of, self._payments.refund
        )
        result = order_dict(order)
        await self._relay.publish([row])
        self._publisher.changed(result["product_id"])
        return result


def _check_session(status: str, source: OrderSource) -> None:
    if source is OrderSource.LIVE and status != SessionStatus.LIVE.value:
        raise Conflict("session_not_live", "orders are taken while the session is live")
    if source is OrderSource.REPLAY and status != SessionStatus.ENDED.value:
        raise Conflict("replay_not_available", "replay orders open when the session ends")


def _placed_event(order: OrderFigures, buyer_name: str) -> dict[str, Any]:
    """The ``order.placed`` ticker event's data."""
    return {
        "order_id": order.id,
        "buyer": mask_name(buyer_name),
        "product_id": order.product_id,
        "quantity": order.quantity,
        "flash": order.flash_sale_id is not None,
    }


def _stored(response_json: str) -> OrderResult:
    stored = orjson.loads(response_json)
    return OrderResult(int(stored["status"]), dict(stored["body"]))


def _check_price(ctx: OrderContext, attempt: Attempt, flash: bool) -> None:
    """``price_changed`` unless the unit price the order would be charged at (the flash
    price inside a running sale) is the one the buyer expected."""
    price, currency = attempt.expected_price, attempt.expected_currency
    if price is None and currency is None:
        return
    if flash:
        now_price, now_currency = ctx.flash_price, ctx.flash_currency
    else:
        now_price, now_currency = ctx.price_minor, ctx.currency
    if (price is not None and price != now_price) or (
        currency is not None and currency != now_currency
    ):
        raise Conflict(
            "price_changed",
            "the price has changed; check it and order again",
            unit_price_minor=now_price,
            currency=now_currency,
        )
