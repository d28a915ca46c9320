"""The order path's one-statement writes on PostgreSQL.

A flash sale sends every buyer of a product at the same row. Whatever runs between a
statement that locks it and the COMMIT runs while everyone else waits, and with many
transactions in flight that includes this process's event loop getting round to
sending the next statement. So the two writes of a regular-price order are each one
statement, run in autocommit (``Database.prepare_write``):

* ``take_and_record``: take the units (``shelf.stock.take_regular_update``) and
  insert the ``placed`` order, one CTE. No row back: too few units (or archived). Its
  commit does not wait for the WAL flush, so the row is free for the next buyer a
  millisecond sooner; the order path flushes before the payment (``live.db``'s early
  lock release).
* ``settle_paid``: mark the order ``paid`` with its stored answer, post the sale's four
  ledger lines (built by ``live.ledger.balanced``, inserted here) and queue the
  ``order.placed`` event in the outbox, one CTE, only while the order is still
  ``placed``. No row back: someone settled it first.

Each is atomic (one statement is one transaction) and uses data-modifying CTEs, which
SQLite lacks; SQLite and the rarer cases (flash sales, declined payments, flat fees)
keep the transactional code in ``shelf.orders``.

Bind parameters are prefixed (``o_``, ``s_``, ``l_``): a parameter named like a column
of an UPDATE's table would join its SET clause.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    column,
    exists,
    func,
    select,
)
from sqlalchemy.sql.dml import ReturningInsert

from live.ledger_models import LedgerEntry
from live.models import OutboxEvent
from shelf.models import Product
from shelf.order_models import Order, OrderStatus
from shelf.stock import take_regular_update

#: The order columns ``take_and_record`` binds as ``o_<column>``.
ORDER_COLUMNS = (
    "session_id",
    "buyer_id",
    "host_id",
    "brand_id",
    "product_id",
    "cooperation_id",
    "flash_sale_id",
    "pin_id",
    "quantity",
    "unit_price_minor",
    "currency",
    "amount_minor",
    "commission_bps",
    "platform_fee_bps",
    "flat_fee_minor",
    "refunded_quantity",
    "status",
    "source",
    "idempotency_key",
    "request_hash",
    "placed_ms",
)

#: The ledger columns of each line in ``settle_paid``'s ``l_lines`` (a JSON array of
#: objects with these keys, taken from the lines ``live.ledger.balanced`` builds); an
#: order's lines have no ``ref`` or ``agency_id``, which stay NULL.
LEDGER_COLUMNS = (
    "txn",
    "kind",
    "account",
    "amount_minor",
    "currency",
    "order_id",
    "session_id",
    "host_id",
    "brand_id",
    "created_ms",
    "available_ms",
)


def take_and_record() -> ReturningInsert[int]:
    """Take regular stock and insert the ``placed`` order; returns the order id, or no
    row when too few units are left."""
    products = cast(Table, Product.__table__)
    orders = cast(Table, Order.__table__)
    binds = {name: bindparam(f"o_{name}", type_=orders.c[name].type) for name in ORDER_COLUMNS}
    taken = (
        take_regular_update(binds["product_id"], binds["quantity"])
        .returning(products.c.id)
        .cte("taken")
    )
    return (
        orders.insert()
        .from_select(list(ORDER_COLUMNS), select(*binds.values()).select_from(taken))
        .returning(orders.c.id)
    )


def settle_paid() -> ReturningInsert[int]:
    """Mark order ``s_order_id`` paid (``s_now``, ``s_ref``, stored answer
    ``s_response``) if it is still placed, insert the ledger lines ``l_*`` and the
    outbox event (``s_type``, ``s_data``); returns the outbox row's id, or no row when
    the order was not placed any more (nothing written)."""
    orders = cast(Table, Order.__table__)
    ledger = cast(Table, LedgerEntry.__table__)
    outbox = cast(Table, OutboxEvent.__table__)
    now = bindparam("s_now", type_=BigInteger)
    paid = (
        orders.update()
        .where(
            orders.c.id == bindparam("s_order_id", type_=Integer),
            orders.c.status == OrderStatus.PLACED.value,
        )
        .values(
            status=OrderStatus.PAID.value,
            paid_ms=now,
            payment_ref=bindparam("s_ref", type_=String),
            response_json=bindparam("s_response", type_=Text),
        )
        .returning(orders.c.id, orders.c.session_id)
        .cte("paid")
    )
    # The lines arrive as one JSON text: asyncpg encodes eleven arrays of four items
    # with about twice the CPU of running the whole statement (callgrind, RESULTS.md).
    line = (
        func.json_to_recordset(bindparam("l_lines", type_=Text).cast(JSON))
        .table_valued(*(column(name, ledger.c[name].type) for name in LEDGER_COLUMNS))
        .render_derived(name="line", with_types=True)
    )
    lines = (
        ledger.insert()
        .from_select(
            list(LEDGER_COLUMNS),
            select(*(line.c[name] for name in LEDGER_COLUMNS)).where(exists(select(paid.c.id))),
        )
        .cte("lines")
    )
    return (
        outbox.insert()
        .from_select(
            ["session_id", "type", "data", "created_ms"],
            select(
                paid.c.session_id,
                bindparam("s_type", type_=String),
                bindparam("s_data", type_=Text),
                now,
            ),
        )
        .returning(outbox.c.id)
        .add_cte(lines)
    )
