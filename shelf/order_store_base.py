"""What both order stores share: the values they pass, and the transactional writes.

Both backends run these in one write transaction (``Database.transaction`` or
``write_connection``): a flash-sale take (the order first, the units last), the
settlement in its general form (a declined payment, a flat fee, or an order someone
else settled first), a refund, and the reads of single orders. Only what one backend
does differently lives in ``shelf.order_store_sqlite`` / ``shelf.order_store_postgres``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from live.db import Database
from live.errors import NotFound
from live.ledger import Transaction, post
from live.models import OutboxEvent
from live.outbox import Outbox, WrittenEvent
from live.paging import Page
from shelf import order_sql
from shelf.ledger import CommissionLedger
from shelf.models import Cooperation
from shelf.order_context import Attempt, OrderContext
from shelf.order_models import Order, OrderStatus, SettledOrder
from shelf.order_reads import ContextReads, Earlier
from shelf.stock import StockService


@dataclass(frozen=True, slots=True)
class NewOrder:
    """An order to record as ``placed``, and the units it takes."""

    #: the order's columns (``order_sql.ORDER_COLUMNS``)
    values: dict[str, Any]
    #: the per-buyer limit of the running flash sale it sells from (None: regular stock)
    flash_limit: int | None


@dataclass(frozen=True, slots=True)
class Placed:
    """An order recorded as ``placed`` (committed, its units taken)."""

    order_id: int
    #: its columns as recorded (``order_sql.ORDER_COLUMNS``)
    values: dict[str, Any]


#: What an attempt comes to, given its context (``OrderService.decide``): raises a
#: refusal, or gives the order the key already names, or the order to record.
Decide = Callable[[Attempt, OrderContext | None], Earlier | NewOrder]


@dataclass(frozen=True, slots=True)
class Settlement:
    """The outcome of a placed order's payment, as it is to be written."""

    #: the order as settled: status ``paid`` (then ``paid_ms``) or ``cancelled``
    order: SettledOrder
    reference: str
    now_ms: int
    #: the answer stored with the order, as JSON
    answer_json: str
    #: paid: the ``order.placed`` event's data; None: cancelled
    event: dict[str, Any] | None
    flat_fee_minor: int | None


@dataclass(frozen=True, slots=True)
class Settled:
    """``earlier_answer``: the order was settled before (nothing written), its stored
    answer; else None, and ``events`` to publish."""

    earlier_answer: str | None
    events: list[OutboxEvent | WrittenEvent]


def build_context(row: dict[str, Any]) -> OrderContext:
    return OrderContext(**row)


#: an order's row, locked: built once (each order settles through it; built per order,
#: its comparison left cyclic garbage for the collector's passes)
_LOCKED_ORDER = select(Order).where(Order.id == bindparam("order")).with_for_update()


class SqlOrderStore(ABC):
    """The writes both backends make in one transaction (module docstring)."""

    def __init__(
        self,
        db: Database,
        stock: StockService,
        ledger: CommissionLedger,
        outbox: Outbox,
        reads: ContextReads[OrderContext],
    ) -> None:
        self._db = db
        self._stock = stock
        self._ledger = ledger
        self._outbox = outbox
        self.reads = reads

    async def close(self) -> None:
        await self.reads.close()

    @abstractmethod
    async def take(self, attempt: Attempt, decide: Decide) -> Placed | Earlier | None:
        """See ``OrderStore.take``. A write that meets an order the key already names
        (the unique (buyer_id, idempotency_key) index: the same key raced us and won)
        answers ``find``'s order instead."""

    async def _record_then_take(self, tx: AsyncConnection, new: NewOrder) -> Placed:
        """In ``tx``: the order first, the units last (so only the COMMIT follows the
        row lock); too few units raise, and the order rolls back with the transaction."""
        values = new.values
        order_id = await tx.scalar(insert(Order).values(values).returning(Order.id))
        assert order_id is not None
        if new.flash_limit is not None:
            flash_id = values["flash_sale_id"]
            await self._stock.take_flash(
                tx, flash_id, new.flash_limit, values["buyer_id"], values["quantity"]
            )
            await self._stock.bump(tx, values["product_id"])
        else:
            await self._stock.take_regular(tx, values["product_id"], values["quantity"])
        return Placed(order_id, values)

    def _sale(self, settlement: Settlement) -> Transaction:
        return self._ledger.sale(settlement.order, settlement.now_ms)

    async def settle(self, settlement: Settlement) -> Settled:
        """Write ``settlement`` if the order is still placed, on its locked row: paid
        with the sale's ledger lines (and the flat fee, once per session and
        cooperation) and the event, or cancelled with its units back."""
        order = settlement.order
        now = settlement.now_ms
        async with self._db.transaction() as tx:
            row = await tx.scalar(_LOCKED_ORDER, {"order": order.id})
            assert row is not None
            if row.status != OrderStatus.PLACED.value:
                assert row.response_json is not None
                return Settled(row.response_json, [])
            row.status = order.status
            events: list[OutboxEvent | WrittenEvent] = []
            if settlement.event is not None:
                row.paid_ms = now
                row.payment_ref = settlement.reference
                post(tx, self._sale(settlement))
                if row.flat_fee_minor:
                    coop = await tx.get(Cooperation, row.cooperation_id)
                    currency = (coop.flat_fee_currency if coop else None) or row.currency
                    await self._ledger.post_flat_fee(tx, row, currency, now)
                events.append(
                    self._outbox.add(tx, row.session_id, "order.placed", settlement.event)
                )
            else:
                row.closed_ms = now
                await self._stock.put_back(
                    tx,
                    product_id=row.product_id,
                    quantity=row.quantity,
                    buyer_id=row.buyer_id,
                    flash_sale_id=row.flash_sale_id,
                )
            row.response_json = settlement.answer_json
        return Settled(None, events)

    async def find(self, buyer_id: int, key: str) -> Earlier | None:
        async with self._db.read() as s:
            order = await s.scalar(
                select(Order).where(Order.buyer_id == buyer_id, Order.idempotency_key == key)
            )
        if order is None:
            return None
        return Earlier(order.id, order.request_hash, order.response_json)

    async def placed_before(self, cutoff_ms: int) -> list[Placed]:
        async with self._db.read() as s:
            rows = await s.scalars(
                select(Order).where(
                    Order.status == OrderStatus.PLACED.value, Order.placed_ms <= cutoff_ms
                )
            )
            return [
                Placed(row.id, {name: getattr(row, name) for name in order_sql.ORDER_COLUMNS})
                for row in rows
            ]

    async def get(self, order_id: int) -> Order | None:
        async with self._db.read() as s:
            return await s.get(Order, order_id)

    async def buyer_orders(self, buyer_id: int, page: Page) -> list[Order]:
        query = select(Order).where(Order.buyer_id == buyer_id)
        async with self._db.read() as s:
            return list(await s.scalars(page.select(query, Order.id)))

    async def refund(
        self,
        order_id: int,
        now_ms: int,
        units_of: Callable[[Order], int],
        pay_back: Callable[[str, str, int], Awaitable[None]],
    ) -> tuple[Order, OutboxEvent]:
        async with self._db.transaction() as tx:
            order = await tx.scalar(_LOCKED_ORDER, {"order": order_id})
            if order is None:
                raise NotFound("order_not_found", f"no order {order_id}")
            units = units_of(order)
            assert order.payment_ref is not None
            refund_id = f"{order.id}:{order.refunded_quantity}"
            amount = self._ledger.post_refund(tx, order, units, order.refunded_quantity, now_ms)
            await pay_back(order.payment_ref, refund_id, amount)
            order.refunded_quantity += units
            if order.refunded_quantity == order.quantity:
                order.status = OrderStatus.REFUNDED.value
                order.closed_ms = now_ms
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
        return order, row
