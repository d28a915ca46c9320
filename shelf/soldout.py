"""The sold-out gate: which products this process has recently seen run out.

A flash sale ends with thousands of attempts on a product that has no units left. Each
of them would open a write transaction, read the order context, run the conditional
UPDATE that finds nothing and roll back: four round trips and most of the server's CPU,
to say "409 out_of_stock" again.

The gate is a routing hint, never an answer. While a product is *marked*, an attempt
on it first runs the order context as one prepared read outside any transaction
(``OrderService``): that read carries the current stock, the running flash sale's units
left and the buyer's earlier order under the same Idempotency-Key. So every answer
given on the read path is exact: it is the answer the write path would have given at
the instant of the read (a refusal is linearised at that read; an earlier order with
the key gets its stored answer). Only when the read finds enough units does the attempt
fall through to the write transaction, which stays the authority (the conditional
UPDATE), and the mark goes.

Consequences:

* Staleness of answers: none, in this process or across processes. A restock
  anywhere (refund, cancelled payment, a brand's stock edit, a flash sale ending or
  cancelled, another process) is seen by the very next read.
* Staleness of the mark only costs time: a mark left after a restock elsewhere makes
  one attempt pay the read before the write (and clears the mark). Local stock
  changes clear the mark at once (``StockPublisher`` change listeners), so a restock
  here goes straight to the write path.
* A mark for ``quantity`` q means "an attempt for q units was refused for lack of
  units"; attempts for fewer units are not routed by it (they may still succeed).
* Bounded: at most ``max_products`` marks; when full, the gate forgets them all (the
  cost is one write attempt per product to learn again).

Only SQLite is routed by it: on PostgreSQL every attempt starts with that read anyway,
shared by the attempts arriving together (``shelf.order_reads``).
"""

from __future__ import annotations


class SoldOutGate:
    """Which products this process saw run out, per session (module docstring).

    Not on ``live.coalesce``: it shares no work, it routes (``shelf.order_reads`` shares).
    """

    def __init__(self, *, max_products: int = 10_000) -> None:
        self._max_products = max_products
        # product id -> {session id -> smallest quantity refused for lack of units since
        # the product's last stock change}. Per session because a flash sale is. At most
        # ``max_products`` products (then emptied), each with the sessions refused since
        # its last stock change (which removes the product).
        self._refused: dict[int, dict[int, int]] = {}

    def routes_to_read(self, session_id: int, product_id: int, quantity: int) -> bool:
        """Should an attempt for ``quantity`` units try the read-only path first?"""
        sessions = self._refused.get(product_id)
        if sessions is None:
            return False
        refused = sessions.get(session_id)
        return refused is not None and quantity >= refused

    def mark(self, session_id: int, product_id: int, quantity: int) -> None:
        """An attempt for ``quantity`` units was refused: not enough units left."""
        sessions = self._refused.get(product_id)
        if sessions is None:
            if len(self._refused) >= self._max_products:
                self._refused.clear()
            sessions = self._refused[product_id] = {}
        refused = sessions.get(session_id)
        if refused is None or quantity < refused:
            sessions[session_id] = quantity

    def clear(self, product_id: int) -> None:
        """The product's stock (or a flash sale of it) changed: units may be back."""
        self._refused.pop(product_id, None)

    def __len__(self) -> int:
        return len(self._refused)
