"""The order path's storage: one interface, a SQLite and a PostgreSQL twin.

``OrderService`` (``shelf.orders``) holds the rules: who may buy, which refusal, at
which price, what the answer and the events are. An ``OrderStore`` holds the orders
and takes the units, and never decides a refusal of its own beyond the stock rules'
(``shelf.stock``). ``order_store_for`` picks the twin once, in the wiring:

* ``SqliteOrderStore`` (``shelf.order_store_sqlite``): reads and takes in one
  ``BEGIN IMMEDIATE`` transaction; a product seen sold out is answered from a read;
* ``PostgresOrderStore`` (``shelf.order_store_postgres``): shared reads first, a
  regular-price take and a paid settlement each one statement.

Contract (both; ``tests/orders/test_order_store_contract.py``):

* ``take`` reads the attempt's context, asks ``decide`` what it comes to and, if that
  is a new order, records it ``placed`` and takes its units, atomically: never more
  units than there are (regular stock, or a running flash sale's, within the buyer's
  allowance), whatever the concurrency. A refusal (from ``decide`` or the taking
  statements) raises and leaves nothing behind. It returns the ``Placed`` order, or
  the ``Earlier`` order the buyer's key already names, or None when a concurrent
  attempt with that key is recording it and it cannot be read yet. A returned
  ``Placed`` is committed and durable.
* ``settle`` writes a payment's outcome once: only while the order is ``placed``
  (else it writes nothing and gives the stored answer). Paid: status, reference,
  stored answer, the sale's ledger lines, a first flat fee of its session and
  cooperation, the ``order.placed`` event (outbox), in one transaction. Cancelled:
  status, stored answer and the units back where they came from.
* ``refund`` gives units of a paid order back (ledger, stock, event) on its locked
  row; ``units_of`` decides how many (or refuses) and ``pay_back`` is called inside
  the transaction, before anything commits.
* ``find``, ``get``, ``buyer_orders``, ``placed_before`` read orders.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from live.clock import Clock
from live.db import Database
from live.models import OutboxEvent
from live.outbox import Outbox
from live.paging import Page
from shelf.ledger import CommissionLedger
from shelf.order_context import Attempt, OrderContext
from shelf.order_models import Order
from shelf.order_reads import ContextReads, Earlier
from shelf.order_store_base import Decide, Placed, Settled, Settlement
from shelf.order_store_postgres import PostgresOrderStore
from shelf.order_store_sqlite import SqliteOrderStore
from shelf.publisher import StockPublisher
from shelf.stock import StockService


class OrderStore(Protocol):
    #: the context reads (``round_trips`` is what benchmarks report)
    reads: ContextReads[OrderContext]

    async def take(self, attempt: Attempt, decide: Decide) -> Placed | Earlier | None: ...

    async def settle(self, settlement: Settlement) -> Settled: ...

    async def refund(
        self,
        order_id: int,
        now_ms: int,
        units_of: Callable[[Order], int],
        pay_back: Callable[[str, str, int], Awaitable[None]],
    ) -> tuple[Order, OutboxEvent]: ...

    async def find(self, buyer_id: int, key: str) -> Earlier | None: ...

    async def get(self, order_id: int) -> Order | None: ...

    async def buyer_orders(self, buyer_id: int, page: Page) -> list[Order]: ...

    async def placed_before(self, cutoff_ms: int) -> list[Placed]:
        """Orders still ``placed`` since ``cutoff_ms`` or before (a crash, a lost
        payment call)."""
        ...

    async def close(self) -> None:
        """Let the reads in flight finish (before the database closes)."""
        ...


def order_store_for(
    db: Database,
    clock: Clock,
    stock: StockService,
    publisher: StockPublisher,
    ledger: CommissionLedger,
    outbox: Outbox,
) -> OrderStore:
    """The store for ``db``'s backend."""
    if db.is_sqlite:
        return SqliteOrderStore(db, clock, stock, publisher, ledger, outbox)
    return PostgresOrderStore(db, clock, stock, ledger, outbox)
