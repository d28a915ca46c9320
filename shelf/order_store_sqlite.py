"""The order store on SQLite: one writer at a time, so the read goes inside the write.

A take reads the order context and takes the units in one ``BEGIN IMMEDIATE``
transaction (``SqlOrderStore._record_then_take``). The exception is a product this
process has seen run out (``shelf.soldout``): an attempt on it is first answered from
a read outside any transaction, and goes on to the write only if that read finds
enough units. Every committed stock change in this process forgets the mark.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from live.clock import Clock
from live.db import Database
from live.errors import LiveshelfError
from live.outbox import Outbox
from shelf.ledger import CommissionLedger
from shelf.order_context import Attempt, OrderContext, context_query
from shelf.order_reads import ContextReads, Earlier
from shelf.order_store_base import Decide, Placed, SqlOrderStore, build_context
from shelf.publisher import StockPublisher
from shelf.soldout import SoldOutGate
from shelf.stock import StockService

#: Refusals for lack of units: they mark the product in the sold-out gate.
_NO_UNITS = frozenset({"out_of_stock", "flash_sold_out"})


class SqliteOrderStore(SqlOrderStore):
    def __init__(
        self,
        db: Database,
        clock: Clock,
        stock: StockService,
        publisher: StockPublisher,
        ledger: CommissionLedger,
        outbox: Outbox,
    ) -> None:
        self._context = context_query()
        reads = ContextReads(db, clock, self._context, build_context)
        super().__init__(db, stock, ledger, outbox, reads)
        self._sold_out = SoldOutGate()
        # Every committed stock change in this process (refund, cancelled payment,
        # stock edit, flash sale end or cancel) may bring units back: forget the mark.
        publisher.add_change_listener(self._sold_out.clear)

    async def take(self, attempt: Attempt, decide: Decide) -> Placed | Earlier | None:
        try:
            if self._sold_out.routes_to_read(
                attempt.session_id, attempt.product_id, attempt.quantity
            ):
                ctx, earlier = await self.reads.read(
                    attempt.session_id, attempt.product_id, attempt.buyer_id, attempt.key
                )
                if earlier is not None:
                    return earlier
                decide(attempt, ctx)  # a refusal raises; else the write decides
                self._sold_out.clear(attempt.product_id)
            async with self._db.write_connection() as tx:
                row = (await tx.execute(self._context, attempt.binds())).mappings().first()
                decided = decide(attempt, OrderContext(**row) if row is not None else None)
                if isinstance(decided, Earlier):
                    return decided
                return await self._record_then_take(tx, decided)
        except LiveshelfError as exc:
            if exc.code in _NO_UNITS:
                self._sold_out.mark(attempt.session_id, attempt.product_id, attempt.quantity)
            raise
        except IntegrityError:  # the same key raced us and won
            return await self.find(attempt.buyer_id, attempt.key)
