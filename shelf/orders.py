"""Orders from a live session (or its replay): the money path.

Placing an order is two short transactions around the payment:

1. *take*: check the session, shelf and buyer; take the units (one conditional UPDATE,
   no oversell under any concurrency, see ``shelf.stock``) and insert the order as
   ``placed``, keyed by ``(buyer, Idempotency-Key)``. On PostgreSQL a regular-price
   order does both in one autocommit statement, so the product's row lock never waits
   for this process (``OrderService._take``);
2. capture the payment (``PaymentProvider``, keyed by the order id);
3. *settle*: ``paid`` + the ledger lines + the ``order.placed`` ticker event (outbox),
   or ``cancelled`` + the units back. On PostgreSQL a paid order without a flat fee is
   settled by one statement (``shelf.order_sql``).

The response (status and body) is stored with the order, so the same key from the
same buyer gets the same answer, however often and however concurrently it is sent,
and never takes stock twice. A crash between 1 and 3 leaves a ``placed`` order that
``recover()`` settles at the next start. An order acknowledged to a client was
committed with its events in the outbox first.

Reads first: on PostgreSQL every attempt starts with the context query as a prepared
read outside any transaction, shared by the attempts that arrive together
(``shelf.orderreads``); it answers exactly (the stored answer for a known key, or the
refusal the write would give) and only an attempt that finds enough units goes on to
the write. So a flash sale's tail of thousands of refused attempts costs a pair of
reads per round trip, not a write each. SQLite reads inside its write transaction
(``BEGIN IMMEDIATE``), except for a product this process has seen run out
(``shelf.soldout``), which is answered from the read alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import BigInteger, Integer, Select, String, and_, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from live.auth import Principal
from live.clock import Clock, iso
from live.db import Database
from live.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LiveshelfError,
    NotFound,
    Unavailable,
    Unprocessable,
)
from live.models import LiveSession, Role, SessionStatus
from live.outbox import Outbox, OutboxRelay, WrittenEvent
from live.paging import Listing, Page
from shelf import order_sql
from shelf.ledger import CommissionLedger
from shelf.models import Cooperation, FlashSale, FlashStatus, Pin, Product, ShelfItem
from shelf.order_models import Order, OrderFigures, OrderSource, OrderStatus, PaidOrder
from shelf.orderreads import ContextReads, Earlier
from shelf.payments import PaymentProvider
from shelf.publisher import StockPublisher
from shelf.soldout import SoldOutGate
from shelf.stock import StockService, flash_limit_reached, flash_sold_out, out_of_stock

#: (session id, buyer id) -> None, or raise (e.g. a banned viewer cannot buy).
BuyerGate = Callable[[int, int], Awaitable[None]]

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")

#: The ``PaidOrder`` fields the one-statement settlement copies from the placed order.
_PAID_CARRIED = tuple(
    f.name for f in dataclasses.fields(PaidOrder) if f.name not in ("id", "status", "paid_ms")
)

#: Refusals for lack of units: they mark the product in the sold-out gate.
_NO_UNITS = frozenset({"out_of_stock", "flash_sold_out"})


@dataclass(frozen=True, slots=True)
class OrderResult:
    status: int
    body: dict[str, Any]


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


@dataclass(frozen=True, slots=True)
class OrderContext:
    """One row of ``_context_query``: everything an order depends on."""

    status: str
    cooperation_id: int | None
    host_id: int | None
    brand_id: int | None
    commission_bps: int | None
    flat_fee_minor: int | None
    price_minor: int | None
    currency: str | None
    archived_ms: int | None
    stock: int | None
    flash_id: int | None
    flash_price: int | None
    flash_currency: str | None
    flash_limit: int | None
    flash_quantity: int | None
    flash_sold: int | None
    pin_id: int | None
    existing_id: int | None
    existing_hash: str | None
    existing_response: str | None


@dataclass(frozen=True, slots=True)
class _Taken:
    """The units are taken and the order inserted (``placed``), not yet committed."""

    order_id: int
    #: the order's columns as inserted (``OrderService._order_values``)
    values: dict[str, Any]


def request_hash(session_id: int, product_id: int, quantity: int, source: OrderSource) -> str:
    return hashlib.sha256(f"{session_id}:{product_id}:{quantity}:{source}".encode()).hexdigest()


class OrderService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        stock: StockService,
        publisher: StockPublisher,
        ledger: CommissionLedger,
        payments: PaymentProvider,
        outbox: Outbox,
        relay: OutboxRelay,
        *,
        platform_fee_bps: int,
        gates: Sequence[BuyerGate] = (),
        settle_wait_s: float = 5.0,
    ) -> None:
        self._db = db
        self._clock = clock
        self._stock = stock
        self._publisher = publisher
        self._context = _context_query()
        self._reads = ContextReads(db, clock, self._context, lambda row: OrderContext(**row))
        # PostgreSQL's one-statement writes (``shelf.order_sql``); None on SQLite.
        # Early lock release: the product row's lock goes at COMMIT, not after the WAL
        # flush; ``_take`` flushes before anything depends on the order.
        self._take_and_record = (
            None
            if db.is_sqlite
            else db.prepare_write(order_sql.take_and_record(), flush_at_commit=False)
        )
        self._settle_paid = None if db.is_sqlite else db.prepare_write(order_sql.settle_paid())
        self._sold_out = SoldOutGate()  # routes SQLite only (PostgreSQL always reads first)
        if db.is_sqlite:
            # Every committed stock change in this process (refund, cancelled payment,
            # stock edit, flash sale end or cancel) may bring units back: forget the mark.
            publisher.add_change_listener(self._sold_out.clear)
        self._ledger = ledger
        self._payments = payments
        self._outbox = outbox
        self._relay = relay
        self._platform_fee_bps = platform_fee_bps
        self._gates = list(gates)
        self._settle_wait_s = settle_wait_s

    def add_gate(self, gate: BuyerGate) -> None:
        self._gates.append(gate)

    async def close(self) -> None:
        """Let the shared reads in flight finish (before the database closes)."""
        await self._reads.close()

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
        params = {
            "sid": session_id,
            "pid": product_id,
            "buyer": buyer.user_id,
            "key": key,
            "now": self._clock.now_ms(),
            "expect": (expected_price, expected_currency),
        }
        try:
            ctx: OrderContext | None = None
            # PostgreSQL: every attempt starts from the shared read (the take rechecks
            # the units in its one statement). SQLite reads inside its write
            # transaction, unless the product is known sold out here.
            if self._take_and_record is not None or self._sold_out.routes_to_read(
                session_id, product_id, quantity
            ):
                ctx, earlier = await self._read_check(params, quantity, source)
                if earlier is not None:
                    fingerprint = request_hash(session_id, product_id, quantity, source)
                    return await self._answer_again(earlier, buyer.user_id, key, fingerprint)
                self._sold_out.clear(product_id)  # units are there: the write decides
            # Hashed only now: most attempts in a sell-out are refused by the read.
            fingerprint = request_hash(session_id, product_id, quantity, source)
            taken = await self._take(params, quantity, fingerprint, source, ctx)
        except IntegrityError:
            taken = None  # the same key raced us and won
        except LiveshelfError as exc:
            if exc.code in _NO_UNITS and self._take_and_record is None:  # SQLite routes by it
                self._sold_out.mark(session_id, product_id, quantity)
            raise
        if not isinstance(taken, _Taken):
            if taken is None:
                taken = await self._find(buyer.user_id, key)
            if taken is None:
                raise Conflict("order_in_progress", "this order is being processed; retry")
            return await self._answer_again(taken, buyer.user_id, key, fingerprint)
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
        if captured.ok and self._settle_paid is not None and not taken.values["flat_fee_minor"]:
            settled = await self._settle_in_one(taken, captured.reference, buyer.display_name)
            if settled is not None:
                return settled
        return await self._settle(
            taken.order_id, captured.ok, captured.reference, buyer.display_name
        )

    def _check(
        self,
        ctx: OrderContext | None,
        params: dict[str, Any],
        quantity: int,
        source: OrderSource,
    ) -> Earlier | None:
        """Every refusal the context alone decides, in the order the write path meets
        them (the same errors as ``StockService``'s UPDATEs); the order the key already
        names, if any; None: go and take the units."""
        if ctx is None:
            raise NotFound("session_not_found", f"no live session {params['sid']}")
        if ctx.existing_id is not None:
            assert ctx.existing_hash is not None
            return Earlier(ctx.existing_id, ctx.existing_hash, ctx.existing_response)
        self._check_session(ctx.status, source)
        if ctx.cooperation_id is None:
            raise NotFound("not_on_shelf", "the product is not on this session's shelf")
        if ctx.archived_ms is not None:
            raise Conflict("product_archived", "this product is no longer sold")
        _check_price(ctx, params["expect"], source)  # before the units: they may not do
        if ctx.flash_id is not None and source is OrderSource.LIVE:
            assert ctx.flash_limit is not None
            assert ctx.flash_quantity is not None and ctx.flash_sold is not None
            if quantity > ctx.flash_limit:
                raise flash_limit_reached(ctx.flash_limit)
            if ctx.flash_quantity - ctx.flash_sold < quantity:
                raise flash_sold_out()
        elif ctx.stock is None or ctx.stock < quantity:
            raise out_of_stock()
        return None

    async def _read_check(
        self, params: dict[str, Any], quantity: int, source: OrderSource
    ) -> tuple[OrderContext | None, Earlier | None]:
        """The context from a shared read (``shelf.orderreads``) and ``_check``'s verdict:
        raises a refusal, or gives the order the key already names, or (ctx, None)."""
        ctx, earlier = await self._reads.read(
            params["sid"], params["pid"], params["buyer"], params["key"]
        )
        if earlier is not None:
            return None, earlier
        return ctx, self._check(ctx, params, quantity, source)

    async def _take(
        self,
        params: dict[str, Any],
        quantity: int,
        fingerprint: str,
        source: OrderSource,
        ctx: OrderContext | None,
    ) -> _Taken | Earlier:
        """Take the units with a conditional UPDATE (the authority: the read only refuses
        early) and record the ``placed`` order, from ``ctx`` (read just before; on SQLite
        read here, inside the write transaction).

        The UPDATE locks the product (or flash sale) row until the transaction ends and
        every other buyer of it queues on that lock, so the lock must not wait for this
        process. On PostgreSQL a regular-price order is one statement in autocommit
        (``_take_and_record``: the UPDATE and the INSERT in a CTE): the row is locked
        only while PostgreSQL runs it, and not while its commit is flushed to disk
        (early lock release, ``live.db``): this method returns after the flush. A
        flash-sale order takes the sale's units, the buyer's allowance and the stock
        version in one transaction, order first and units last. SQLite (one writer at a
        time, ``BEGIN IMMEDIATE``) reads and takes in one write transaction."""
        if self._take_and_record is None:
            async with self._db.write_connection() as tx:
                row = (await tx.execute(self._context, params)).mappings().first()
                ctx = OrderContext(**row) if row is not None else None
                existing = self._check(ctx, params, quantity, source)
                if existing is not None:
                    return existing
                assert ctx is not None
                return await self._record_then_take(tx, ctx, params, quantity, fingerprint, source)
        assert ctx is not None
        if ctx.flash_id is not None and source is OrderSource.LIVE:
            async with self._db.write_connection() as tx:
                return await self._record_then_take(tx, ctx, params, quantity, fingerprint, source)
        values = self._order_values(ctx, params, quantity, fingerprint, source)
        order_id = await self._take_and_record.value(
            {f"o_{name}": values[name] for name in order_sql.ORDER_COLUMNS}
        )
        if order_id is None:
            raise out_of_stock()
        # Committed without waiting for the disk (the next buyer got the row at once);
        # durable before the payment is captured or anyone hears of the order.
        await self._db.flush_commits()
        return _Taken(order_id, values)

    async def _record_then_take(
        self,
        tx: AsyncConnection,
        ctx: OrderContext,
        params: dict[str, Any],
        quantity: int,
        fingerprint: str,
        source: OrderSource,
    ) -> _Taken:
        """In ``tx``: the order first, the units last (so only the COMMIT follows the
        row lock); too few units raise, and the order rolls back with the transaction."""
        values = self._order_values(ctx, params, quantity, fingerprint, source)
        order_id = await tx.scalar(insert(Order).values(values).returning(Order.id))
        assert order_id is not None
        if values["flash_sale_id"] is not None:
            assert ctx.flash_limit is not None
            await self._stock.take_flash(
                tx, values["flash_sale_id"], ctx.flash_limit, params["buyer"], quantity
            )
            await self._stock.bump(tx, params["pid"])
        else:
            await self._stock.take_regular(tx, params["pid"], quantity)
        return _Taken(order_id, values)

    def _order_values(
        self,
        ctx: OrderContext,
        params: dict[str, Any],
        quantity: int,
        fingerprint: str,
        source: OrderSource,
    ) -> dict[str, Any]:
        """The ``placed`` order's columns, at the flash price inside a running sale."""
        assert ctx.host_id is not None and ctx.brand_id is not None
        if ctx.flash_id is not None and source is OrderSource.LIVE:
            price, currency, flash_id = ctx.flash_price, ctx.flash_currency, ctx.flash_id
        else:
            price, currency, flash_id = ctx.price_minor, ctx.currency, None
        assert price is not None and currency is not None
        return {
            "session_id": params["sid"],
            "buyer_id": params["buyer"],
            "host_id": ctx.host_id,
            "brand_id": ctx.brand_id,
            "product_id": params["pid"],
            "cooperation_id": ctx.cooperation_id,
            "flash_sale_id": flash_id,
            "pin_id": ctx.pin_id if source is OrderSource.LIVE else None,
            "quantity": quantity,
            "unit_price_minor": price,
            "currency": currency,
            "amount_minor": price * quantity,
            "commission_bps": ctx.commission_bps,
            "platform_fee_bps": self._platform_fee_bps,
            "flat_fee_minor": ctx.flat_fee_minor,
            "refunded_quantity": 0,
            "status": OrderStatus.PLACED.value,
            "source": source.value,
            "idempotency_key": params["key"],
            "request_hash": fingerprint,
            "placed_ms": params["now"],
        }

    @staticmethod
    def _check_session(status: str, source: OrderSource) -> None:
        if source is OrderSource.LIVE and status != SessionStatus.LIVE.value:
            raise Conflict("session_not_live", "orders are taken while the session is live")
        if source is OrderSource.REPLAY and status != SessionStatus.ENDED.value:
            raise Conflict("replay_not_available", "replay orders open when the session ends")

    async def _settle_in_one(
        self, taken: _Taken, reference: str, buyer_name: str
    ) -> OrderResult | None:
        """PostgreSQL, a paid order without a flat fee: what ``_settle`` writes (paid +
        stored answer, the sale's ledger lines, the ``order.placed`` event), as one
        statement (``shelf.order_sql.settle_paid``). None: the order was not placed any
        more (settled elsewhere); ``_settle`` then gives the stored answer."""
        assert self._settle_paid is not None
        now = self._clock.now_ms()
        carried = {name: taken.values[name] for name in _PAID_CARRIED}
        order = PaidOrder(id=taken.order_id, status=OrderStatus.PAID.value, paid_ms=now, **carried)
        result = OrderResult(201, order_dict(order))
        lines = self._ledger.sale_lines(order, now)
        data = orjson.dumps(_placed_event(order, buyer_name)).decode()
        params: dict[str, Any] = {
            "s_order_id": order.id,
            "s_now": now,
            "s_ref": reference,
            "s_response": orjson.dumps({"status": result.status, "body": result.body}).decode(),
            "s_type": "order.placed",
            "s_data": data,
        }
        params["l_lines"] = orjson.dumps(
            [{name: line[name] for name in order_sql.LEDGER_COLUMNS} for line in lines]
        ).decode()
        event_id = await self._settle_paid.value(params)
        if event_id is None:
            return None
        event = WrittenEvent(event_id, order.session_id, "order.placed", data, now)
        await self._relay.publish([event])
        return result

    async def _settle(
        self, order_id: int, paid: bool, reference: str, buyer_name: str
    ) -> OrderResult:
        """Record the payment's outcome, once. Returns the answer stored with the order."""
        now = self._clock.now_ms()
        rows = []
        async with self._db.transaction() as tx:
            order = await tx.scalar(select(Order).where(Order.id == order_id).with_for_update())
            assert order is not None
            if order.status != OrderStatus.PLACED.value:
                assert order.response_json is not None
                return _stored(order.response_json)
            if paid:
                order.status = OrderStatus.PAID.value
                order.paid_ms = now
                order.payment_ref = reference
                self._ledger.post_sale(tx, order, now)
                if order.flat_fee_minor:
                    coop = await tx.get(Cooperation, order.cooperation_id)
                    currency = (coop.flat_fee_currency if coop else None) or order.currency
                    await self._ledger.post_flat_fee(tx, order, currency, now)
                result = OrderResult(201, order_dict(order))
                rows.append(
                    self._outbox.add(
                        tx, order.session_id, "order.placed", _placed_event(order, buyer_name)
                    )
                )
            else:
                order.status = OrderStatus.CANCELLED.value
                order.closed_ms = now
                await self._stock.put_back(
                    tx,
                    product_id=order.product_id,
                    quantity=order.quantity,
                    buyer_id=order.buyer_id,
                    flash_sale_id=order.flash_sale_id,
                )
                error = {"code": "payment_declined", "message": "the payment was declined"}
                result = OrderResult(402, {"error": error, "order": order_dict(order)})
            stored = {"status": result.status, "body": result.body}
            order.response_json = orjson.dumps(stored).decode()
        await self._relay.publish(rows)
        if not paid:
            self._publisher.changed(order.product_id)
        return result

    async def _answer_again(
        self, order: Earlier, buyer_id: int, key: str, fingerprint: str
    ) -> OrderResult:
        if order.request_hash != fingerprint:
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
            answer = await self._find(buyer_id, key)
        if answer is None or answer.response_json is None:
            raise Conflict("order_in_progress", "this order is still being processed")
        return _stored(answer.response_json)

    async def _find(self, buyer_id: int, key: str) -> Earlier | None:
        async with self._db.read() as s:
            order = await s.scalar(
                select(Order).where(Order.buyer_id == buyer_id, Order.idempotency_key == key)
            )
        if order is None:
            return None
        return Earlier(order.id, order.request_hash, order.response_json)

    async def recover(self, older_than_ms: int = 0) -> int:
        """Settle orders left ``placed`` by a crash; returns how many were settled."""
        cutoff = self._clock.now_ms() - older_than_ms
        async with self._db.read() as s:
            stuck = list(
                await s.scalars(
                    select(Order).where(
                        Order.status == OrderStatus.PLACED.value, Order.placed_ms <= cutoff
                    )
                )
            )
        for order in stuck:
            captured = await self._payments.capture(
                order.id, order.amount_minor, order.currency, order.buyer_id
            )
            await self._settle(order.id, captured.ok, captured.reference, "?")
        return len(stuck)

    # -- reading and refunding ---------------------------------------------------------

    async def get(self, caller: Principal, order_id: int) -> dict[str, Any]:
        async with self._db.read() as s:
            order = await s.get(Order, order_id)
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
        query = select(Order).where(Order.buyer_id == buyer.user_id)
        async with self._db.read() as s:
            orders = list(await s.scalars(page.select(query, Order.id)))
        return page.cut(orders, lambda o: o.id, order_dict)

    async def refund(
        self, caller: Principal, order_id: int, quantity: int | None = None
    ) -> dict[str, Any]:
        """Refund ``quantity`` units (default: all that are left) of a paid order.

        The product's brand or an admin. Reverses the sale's ledger lines for those
        units and returns them to stock.
        """
        caller.require(Role.BRAND)
        now = self._clock.now_ms()
        async with self._db.transaction() as tx:
            order = await tx.scalar(select(Order).where(Order.id == order_id).with_for_update())
            if order is None:
                raise NotFound("order_not_found", f"no order {order_id}")
            if caller.role is not Role.ADMIN and order.brand_id != caller.user_id:
                raise Forbidden("not_your_order", "only the product's brand may refund it")
            if order.status != OrderStatus.PAID.value:
                raise Conflict("not_refundable", f"a {order.status} order cannot be refunded")
            left = order.quantity - order.refunded_quantity
            units = left if quantity is None else quantity
            if not 1 <= units <= left:
                raise Unprocessable("invalid_quantity", f"refund between 1 and {left} units")
            assert order.payment_ref is not None
            refund_id = f"{order.id}:{order.refunded_quantity}"
            amount = self._ledger.post_refund(tx, order, units, order.refunded_quantity, now)
            await self._payments.refund(order.payment_ref, refund_id, amount)
            order.refunded_quantity += units
            if order.refunded_quantity == order.quantity:
                order.status = OrderStatus.REFUNDED.value
                order.closed_ms = now
            await self._stock.put_back(
                tx,
                product_id=order.product_id,
                quantity=units,
                buyer_id=order.buyer_id,
                flash_sale_id=order.flash_sale_id,
            )
            row = self._outbox.add(
                tx,
                order.session_id,
                "order.refunded",
                {"order_id": order.id, "product_id": order.product_id, "quantity": units},
            )
            result = order_dict(order)
        await self._relay.publish([row])
        self._publisher.changed(result["product_id"])
        return result


def _context_query() -> Select[*tuple[Any, ...]]:
    """Everything an order depends on, in one row (None: no such session): the columns
    of ``OrderContext``, including the units left and the order the key already names.

    Built once with bind parameters ``sid``, ``pid``, ``buyer``, ``key`` and ``now``:
    building and cache-keying a statement this size per request cost more CPU than
    the database work it describes.
    """
    session_id = bindparam("sid", type_=Integer)
    product_id = bindparam("pid", type_=Integer)
    buyer_id = bindparam("buyer", type_=Integer)
    key = bindparam("key", type_=String)
    now = bindparam("now", type_=BigInteger)
    open_pin = (
        select(Pin.id)
        .where(Pin.session_id == session_id, Pin.start_ms <= now, Pin.end_ms.is_(None))
        .order_by(Pin.start_ms.desc(), Pin.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    running = and_(
        FlashSale.session_id == session_id,
        FlashSale.product_id == product_id,
        FlashSale.status == FlashStatus.RUNNING.value,
        FlashSale.starts_ms <= now,
        FlashSale.ends_ms > now,
    )
    return (
        select(
            LiveSession.status,
            ShelfItem.cooperation_id,
            Cooperation.host_id,
            Cooperation.brand_id,
            Cooperation.commission_bps,
            Cooperation.flat_fee_minor,
            Product.price_minor,
            Product.currency,
            Product.archived_ms,
            Product.stock,
            FlashSale.id.label("flash_id"),
            FlashSale.price_minor.label("flash_price"),
            FlashSale.currency.label("flash_currency"),
            FlashSale.per_buyer_limit.label("flash_limit"),
            FlashSale.quantity.label("flash_quantity"),
            FlashSale.sold.label("flash_sold"),
            open_pin.label("pin_id"),
            Order.id.label("existing_id"),
            Order.request_hash.label("existing_hash"),
            Order.response_json.label("existing_response"),
        )
        .select_from(LiveSession)
        .outerjoin(
            ShelfItem,
            and_(ShelfItem.session_id == LiveSession.id, ShelfItem.product_id == product_id),
        )
        .outerjoin(Cooperation, Cooperation.id == ShelfItem.cooperation_id)
        .outerjoin(Product, Product.id == ShelfItem.product_id)
        .outerjoin(FlashSale, running)
        # At most one row: (buyer_id, idempotency_key) is unique.
        .outerjoin(Order, and_(Order.buyer_id == buyer_id, Order.idempotency_key == key))
        .where(LiveSession.id == session_id)
    )


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


def _check_price(
    ctx: OrderContext, expected: tuple[int | None, str | None], source: OrderSource
) -> None:
    """``price_changed`` unless the unit price the order would be charged at (the flash
    price inside a running sale) is the one the buyer expected."""
    price, currency = expected
    if price is None and currency is None:
        return
    if ctx.flash_id is not None and source is OrderSource.LIVE:
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
