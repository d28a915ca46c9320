"""The ledger: money as balanced double-entry transactions, for every feature.

A transaction (``txn``: a key the posting feature makes unique per event, such as
``order:7:sale`` or ``deal:17:escrow``) is one line per account whose amounts sum to
zero, so money only ever moves between accounts. A positive amount is owed *to* the
account's holder, a negative one *by* it. Accounts and kinds are plain strings each
feature declares (the shelf's ``Account`` and ``EntryKind``; up to 24 and 16
characters); amounts are integer minor units, in one currency per transaction. A line
may be held: ``available_ms`` is when it becomes payable (None: at once). Nothing is
ever edited: a refund is a new transaction of reversing lines.

Every line names what it is about (``Refs``): always a host and a brand; a session,
an order, an agency (its share of a deal) where there is one; and ``ref``, the posting
feature's own key for what was paid (``deal:17``), which ``balances`` sums by.

Writing, inside the caller's database transaction (the money moves with the change it
pays for, or not at all):

* ``balanced(txn, kind, {account: amount}, ...)`` builds the lines, and raises
  ``Unbalanced`` before anything is written when they do not sum to zero;
* ``post(tx, ...)`` adds them to the caller's session. ``(txn, account)`` is unique:
  posting a txn that was posted before fails (``IntegrityError``) instead of counting
  twice;
* ``post_once(tx, ...)`` inserts them unless the txn was posted before (``INSERT ... ON
  CONFLICT (txn, account) DO NOTHING``) and says whether it did: the same txn posted
  twice, or by twenty tasks at once, moves the money once (the first posting wins).

Reading: ``lines_of`` (a txn's lines: a receipt), ``balances`` (per account and
currency, everything posted with one ``ref``, split at a given moment into what is
still held and what is payable).

The statements are built once (``live.db.once_per_dialect``, module constants): the
shelf posts a sale through here with every paid order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import BigInteger, String, Table, bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from live.db import once_per_dialect, upsert
from live.ledger_models import LedgerEntry

_TABLE = cast(Table, LedgerEntry.__table__)


class LedgerError(Exception):
    """A posting the ledger refuses: a mistake of the posting feature, never a client's
    (so no ``live.errors`` kind: it is a 500 if it ever reaches a request)."""


class Unbalanced(LedgerError, ValueError):
    """The amounts of a transaction do not sum to zero (or there are none)."""

    def __init__(self, txn: str, amounts: Mapping[str, int]) -> None:
        self.txn = txn
        self.amounts = dict(amounts)
        super().__init__(f"ledger transaction {txn!r} does not balance: {self.amounts}")


class PostedDifferently(LedgerError):
    """``post_once`` found the txn posted before with other accounts."""


@dataclass(frozen=True, slots=True)
class Refs:
    """What a line is about: its columns besides the money."""

    host_id: int
    brand_id: int
    session_id: int | None = None
    order_id: int | None = None
    agency_id: int | None = None
    #: the posting feature's key for what was paid (``deal:17``; up to 40 characters)
    ref: str | None = None

    def columns(self) -> dict[str, Any]:
        return {
            "host_id": self.host_id,
            "brand_id": self.brand_id,
            "session_id": self.session_id,
            "order_id": self.order_id,
            "agency_id": self.agency_id,
            "ref": self.ref,
        }


@dataclass(frozen=True, slots=True)
class Transaction:
    """One balanced transaction's lines, made by ``balanced``: each line is the column
    values of one ``LedgerEntry`` (the same keys in every line)."""

    txn: str
    lines: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Balance:
    """What one account holds in one currency (``balances``)."""

    account: str
    currency: str
    #: held: the lines not payable yet at the moment asked about
    pending_minor: int
    payable_minor: int

    @property
    def total_minor(self) -> int:
        return self.pending_minor + self.payable_minor


def balanced(
    txn: str,
    kind: str,
    amounts: Mapping[str, int],
    *,
    currency: str,
    created_ms: int,
    refs: Refs,
    available_ms: Mapping[str, int] | None = None,
    line_refs: Mapping[str, Refs] | None = None,
) -> Transaction:
    """The lines of transaction ``txn``: one per account of ``amounts`` (minor units of
    ``currency``), each held until ``available_ms[account]`` if given, each about
    ``line_refs[account]`` if given, else ``refs``. Raises ``Unbalanced`` unless the
    amounts sum to zero."""
    if not amounts or sum(amounts.values()) != 0:
        raise Unbalanced(txn, amounts)
    shared: dict[str, Any] = {
        "txn": txn,
        "kind": kind,
        "currency": currency,
        "created_ms": created_ms,
    }
    shared.update(refs.columns())
    lines = []
    for account, amount in amounts.items():
        line = {
            **shared,
            "account": account,
            "amount_minor": amount,
            "available_ms": available_ms.get(account) if available_ms else None,
        }
        if line_refs and account in line_refs:
            line.update(line_refs[account].columns())
        lines.append(line)
    return Transaction(txn, tuple(lines))


def post(tx: AsyncSession, *transactions: Transaction) -> None:
    """Add ``transactions`` to the caller's session (written at its next flush, kept
    or rolled back with it)."""
    tx.add_all(LedgerEntry(**line) for t in transactions for line in t.lines)


@once_per_dialect
def _insert_once(tx: AsyncSession | AsyncConnection) -> Any:
    return (
        upsert(tx, _TABLE)
        .on_conflict_do_nothing(index_elements=["txn", "account"])
        .returning(_TABLE.c.id)
    )


async def post_once(tx: AsyncSession | AsyncConnection, transaction: Transaction) -> bool:
    """Insert ``transaction``'s lines in the caller's transaction unless its txn was
    posted before; True if they were inserted now.

    A posting is recognised by its lines' ``(txn, account)``: a txn's key names one
    event of its feature, which posts the same accounts for it every time. Raises
    ``PostedDifferently`` if only some lines were posted before (the txn was posted
    with other accounts: a bug of its feature)."""
    # In one order of accounts for every poster of the txn: concurrent ones wait on
    # the same first row instead of each holding a row the other needs.
    lines = sorted(transaction.lines, key=itemgetter("account"))
    posted = len((await tx.execute(_insert_once(tx), lines)).all())
    if posted not in (0, len(lines)):
        raise PostedDifferently(
            f"ledger transaction {transaction.txn!r} was posted before with other accounts"
        )
    return posted > 0


_LINES_OF = select(LedgerEntry).where(LedgerEntry.txn == bindparam("txn")).order_by(LedgerEntry.id)

_HELD = LedgerEntry.available_ms > bindparam("now", type_=BigInteger)
_BALANCES = (
    select(
        LedgerEntry.account,
        LedgerEntry.currency,
        func.sum(case((_HELD, LedgerEntry.amount_minor), else_=0)).label("pending"),
        func.sum(LedgerEntry.amount_minor).label("total"),
    )
    .where(LedgerEntry.ref == bindparam("ref", type_=String))
    .group_by(LedgerEntry.account, LedgerEntry.currency)
    .order_by(LedgerEntry.account, LedgerEntry.currency)
)


async def lines_of(s: AsyncSession, txn: str) -> list[LedgerEntry]:
    """Transaction ``txn``'s lines in the order they were posted (none: not posted)."""
    return list(await s.scalars(_LINES_OF, {"txn": txn}))


async def balances(s: AsyncSession, ref: str, now_ms: int | None = None) -> list[Balance]:
    """Per account and currency, the sum of every line posted with ``ref``, by account
    then currency. ``now_ms``: the part held past it (``available_ms > now_ms``) is
    ``pending_minor``, the rest ``payable_minor``; None: everything is payable."""
    rows = await s.execute(_BALANCES, {"ref": ref, "now": now_ms})
    return [
        Balance(
            account=row.account,
            currency=row.currency,
            pending_minor=int(row.pending or 0),
            payable_minor=int(row.total or 0) - int(row.pending or 0),
        )
        for row in rows
    ]
