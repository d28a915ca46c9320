"""The order path's read-only answers, shared by the attempts that arrive together.

Once a product is known sold out (``shelf.soldout``), every further attempt on it is
answered from a read: the order context (session, shelf, stock, running flash sale,
open pin) and the order the buyer's Idempotency-Key already names, if any. In a flash
sale's tail thousands of such attempts a second hit the same product; one read each
was about a fifth of the server's main thread (py-spy, ``bench/RESULTS.md``), on round
trips that all return the same context row.

``ContextReads`` batches them per (session, product) (``live.coalesce.Batcher``): the
first attempt starts a round trip at once; attempts that arrive while it is in flight
wait and go together in the next one, and so on while any wait. Each batch is one
statement: the context row with, as one more column, the orders named by all the
batch's (buyer, key) pairs (an ``unnest`` join on the unique (buyer_id,
idempotency_key) index, aggregated to JSON). An idle server adds no delay (a lone
attempt goes at once); a busy one sends one read per round trip instead of one per
attempt. The round trip runs in the task of the attempt that starts it; if that
attempt is cancelled, the others of its batch go in the next one.

Exactness is unchanged: every attempt in a batch is answered as of that batch's
reads, which happen after the attempt arrived and before it is answered, so each
answer is one the write path could have given at that instant.

On PostgreSQL (``SharedContextReads``) the write path takes its context from the same
reads (the take itself is one statement that rechecks the stock, ``shelf.order_sql``),
so a burst of buyers before the sell-out shares them too. On SQLite (``ContextReads``:
no arrays, and no speed claim) each attempt runs the single-row context read with its
own pair: the same answers, one read each; its write path reads inside its ``BEGIN
IMMEDIATE`` transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import ARRAY, Select, Text, and_, bindparam, cast, func, literal_column, select
from sqlalchemy.orm import aliased

from live.clock import Clock
from live.coalesce import Batcher
from live.db import Database
from shelf.order_models import Order

#: The columns of an earlier order, in the order ``_with_earlier`` lists them.
_EARLIER = ("buyer_id", "idempotency_key", "id", "request_hash", "response_json")

#: Never an order's buyer: the context read with this pair names no earlier order.
_NOBODY = -1

#: What ``ContextReads`` builds from a context row (once per round trip, shared by
#: every attempt that round trip answers).
C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class Earlier:
    """The order a buyer's Idempotency-Key already names."""

    order_id: int
    request_hash: str
    response_json: str | None


_Answer = tuple[C | None, Earlier | None]


class ContextReads(Generic[C]):
    """One context read per attempt (SQLite: no arrays, and no speed claim)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        context: Select[*tuple[Any, ...]],
        build: Callable[[dict[str, Any]], C],
    ) -> None:
        """``context``: the order context statement, with bind parameters ``sid``,
        ``pid``, ``now``, ``buyer`` and ``key`` and the earlier order's columns
        ``existing_id``, ``existing_hash`` and ``existing_response``; ``build`` makes
        the context object from its row (with those columns set to None)."""
        self._db = db
        self._statement = context
        self._clock = clock
        self._build = build
        self._context = db.prepare_read(context)
        #: Round trips made (benchmarks report them).
        self.round_trips = 0

    async def read(
        self, session_id: int, product_id: int, buyer_id: int, key: str
    ) -> tuple[C | None, Earlier | None]:
        """The context (None: no such session) and the order (``buyer_id``, ``key``)
        already names, if any."""
        self.round_trips += 1
        row = await self._context.first(self._params(session_id, product_id, buyer_id, key))
        return self._split(row)

    async def close(self) -> None:
        """Wait for the round trips in flight (their waiters get their answers)."""

    def _params(self, session_id: int, product_id: int, buyer_id: int, key: str) -> dict[str, Any]:
        return {
            "sid": session_id,
            "pid": product_id,
            "buyer": buyer_id,
            "key": key,
            "now": self._clock.now_ms(),
        }

    def _split(self, row: dict[str, Any] | None) -> tuple[C | None, Earlier | None]:
        """The context built from ``row`` with its ``existing_*`` columns set to None,
        and the earlier order they named."""
        if row is None:
            return None, None
        order_id, request_hash, response_json = (
            row["existing_id"],
            row["existing_hash"],
            row["existing_response"],
        )
        row["existing_id"] = row["existing_hash"] = row["existing_response"] = None
        context = self._build(row)
        if order_id is None:
            return context, None
        return context, Earlier(order_id, request_hash, response_json)


class SharedContextReads(ContextReads[C]):
    """PostgreSQL: the attempts on one (session, product) that arrive together share
    one round trip (module docstring)."""

    def __init__(self, *args: Any) -> None:
        """As ``ContextReads``."""
        super().__init__(*args)
        db, context = self._db, self._statement
        self._earlier = db.prepare_read(_earlier_query())
        self._batch = db.prepare_read(_with_earlier(context))
        #: per (session, product): the (buyer, key) pairs of the attempts waiting
        self._batches: Batcher[tuple[int, int], tuple[int, str], _Answer[C]] = Batcher(
            self._answer_batch
        )

    async def read(
        self, session_id: int, product_id: int, buyer_id: int, key: str
    ) -> tuple[C | None, Earlier | None]:
        return await self._batches.submit((session_id, product_id), (buyer_id, key))

    async def close(self) -> None:
        await self._batches.wait_idle()

    async def _answer_batch(
        self, session_product: tuple[int, int], pairs: list[tuple[int, str]]
    ) -> list[_Answer[C]]:
        """One round trip for a batch: each (buyer, key) pair's answer, in order."""
        context, earlier = await self._read_batch(*session_product, pairs)
        return [(context, earlier.get(pair)) for pair in pairs]

    async def _read_batch(
        self, session_id: int, product_id: int, pairs: list[tuple[int, str]]
    ) -> tuple[C | None, dict[tuple[int, str], Earlier]]:
        self.round_trips += 1
        unique = list(dict.fromkeys(pairs))
        asked = {"buyers": [buyer for buyer, _ in unique], "keys": [key for _, key in unique]}
        row = await self._batch.first(
            {**self._params(session_id, product_id, _NOBODY, ""), **asked}
        )
        if row is None:  # no such session: a key may still name an order elsewhere
            found = [[r[name] for name in _EARLIER] for r in await self._earlier.all(asked)]
        else:
            found = orjson.loads(row.pop("earlier"))
        context, _ = self._split(row)
        earlier = {
            (buyer, key): Earlier(order_id, request_hash, response)
            for buyer, key, order_id, request_hash, response in found
        }
        return context, earlier


def _earlier_query() -> Select[*tuple[Any, ...]]:
    """The orders named by (buyers[i], keys[i]) pairs, one index probe per pair."""
    order = aliased(Order, name="earlier_order")
    asked = (
        func.unnest(
            bindparam("buyers", type_=ARRAY(Order.buyer_id.type)),
            bindparam("keys", type_=ARRAY(Order.idempotency_key.type)),
        )
        .table_valued("buyer", "key")
        .render_derived(name="asked")
    )
    return select(
        order.buyer_id,
        order.idempotency_key,
        order.id,
        order.request_hash,
        order.response_json,
    ).join_from(
        asked,
        order,
        and_(order.buyer_id == asked.c.buyer, order.idempotency_key == asked.c.key),
    )


def _with_earlier(context: Select[*tuple[Any, ...]]) -> Select[*tuple[Any, ...]]:
    """``context`` plus a column ``earlier``: the orders ``_earlier_query`` finds, as a
    JSON text of ``[buyer, key, id, request_hash, response_json]`` arrays. One
    statement per batch instead of two side by side: half the round trips, and on the
    database a third less CPU per batch (``bench/RESULTS.md``)."""
    found = _earlier_query().subquery("found")
    as_json = func.coalesce(
        func.json_agg(func.json_build_array(*(found.c[name] for name in _EARLIER))),
        literal_column("'[]'::json"),
    )
    earlier = select(cast(as_json, Text)).scalar_subquery()
    return context.add_columns(earlier.label("earlier"))
