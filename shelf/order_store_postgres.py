"""The order store on PostgreSQL: a shared read first, then one statement per write.

Every attempt starts with the context read outside any transaction, shared by the
attempts on the same product that arrive together (``shelf.order_reads``); it answers
exactly, and only an attempt that finds enough units goes on to write.

A regular-price take is one autocommit statement (``order_sql.take_and_record``: the
conditional UPDATE and the INSERT in a CTE), so the product row is locked only while
PostgreSQL runs it, and not while its commit is flushed to disk (early lock release,
``live.db``): ``take`` returns after the flush. A flash-sale take (the sale's units,
the buyer's allowance and the stock version) is one transaction, order first and
units last. A paid order without a flat fee is settled by one statement
(``order_sql.settle_paid``); the other settlements are the shared transactional one.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError

from live.clock import Clock
from live.db import Database
from live.outbox import Outbox, WrittenEvent
from shelf import order_sql
from shelf.ledger import CommissionLedger
from shelf.order_context import Attempt, OrderContext, context_query
from shelf.order_reads import Earlier, SharedContextReads
from shelf.order_store_base import (
    Decide,
    NewOrder,
    Placed,
    Settled,
    Settlement,
    SqlOrderStore,
    build_context,
)
from shelf.stock import StockService, out_of_stock


class PostgresOrderStore(SqlOrderStore):
    def __init__(
        self,
        db: Database,
        clock: Clock,
        stock: StockService,
        ledger: CommissionLedger,
        outbox: Outbox,
    ) -> None:
        reads: SharedContextReads[OrderContext] = SharedContextReads(
            db, clock, context_query(), build_context
        )
        super().__init__(db, stock, ledger, outbox, reads)
        # The product row's lock goes at COMMIT, not after the WAL flush; ``take``
        # flushes before anything depends on the order.
        self._take_and_record = db.prepare_write(order_sql.take_and_record(), flush_at_commit=False)
        self._settle_paid = db.prepare_write(order_sql.settle_paid())

    async def take(self, attempt: Attempt, decide: Decide) -> Placed | Earlier | None:
        # a refusal (most attempts in a sell-out) raises from here, before any write
        ctx, earlier = await self.reads.read(
            attempt.session_id, attempt.product_id, attempt.buyer_id, attempt.key
        )
        if earlier is not None:
            return earlier
        decided = decide(attempt, ctx)
        if isinstance(decided, Earlier):
            return decided
        try:
            return await self._write(decided)
        except IntegrityError:  # the same key raced us and won
            return await self.find(attempt.buyer_id, attempt.key)

    async def _write(self, decided: NewOrder) -> Placed:
        if decided.flash_limit is not None:
            async with self._db.write_connection() as tx:
                return await self._record_then_take(tx, decided)
        values = decided.values
        order_id = await self._take_and_record.value(
            {f"o_{name}": values[name] for name in order_sql.ORDER_COLUMNS}
        )
        if order_id is None:
            raise out_of_stock()
        # Committed without waiting for the disk (the next buyer got the row at once);
        # durable before the payment is captured or anyone hears of the order.
        await self._db.flush_commits()
        return Placed(order_id, values)

    async def settle(self, settlement: Settlement) -> Settled:
        """See ``OrderStore.settle``: a paid order without a flat fee in one statement."""
        if settlement.event is None or settlement.flat_fee_minor:
            return await super().settle(settlement)
        data = orjson.dumps(settlement.event).decode()
        params: dict[str, Any] = {
            "s_order_id": settlement.order.id,
            "s_now": settlement.now_ms,
            "s_ref": settlement.reference,
            "s_response": settlement.answer_json,
            "s_type": "order.placed",
            "s_data": data,
            "l_lines": orjson.dumps(
                [
                    {name: line[name] for name in order_sql.LEDGER_COLUMNS}
                    for line in self._sale(settlement).lines
                ]
            ).decode(),
        }
        event_id = await self._settle_paid.value(params)
        if event_id is None:  # not placed any more: its stored answer
            return await super().settle(settlement)
        event = WrittenEvent(
            event_id, settlement.order.session_id, "order.placed", data, settlement.now_ms
        )
        return Settled(None, [event])
