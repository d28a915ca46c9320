"""The spine's ledger (``live.ledger``) on its own, on both backends: balanced or
refused, posted once, summed per ref with holds; and its migration (0014)."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from support import database_at, migrate

from app import Settings
from live.db import Database
from live.ledger import (
    Balance,
    PostedDifferently,
    Refs,
    Transaction,
    Unbalanced,
    balanced,
    balances,
    lines_of,
    post,
    post_once,
)
from live.ledger_models import LedgerEntry

T0 = 1_764_000_000_000
DAY = 86_400_000
ACCOUNTS = ("escrow", "brand_budget", "host_commission", "platform_fees", "agency_share")


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url, schema=settings.database_schema)
    await database.migrate()  # at the newest revision already (tests/templates.py)
    yield database
    await database.dispose()


def unique(prefix: str) -> str:
    """A ref or txn no other test (or hypothesis example) uses: up to 40 characters."""
    return f"{prefix}:{uuid.uuid4().hex[:24]}"


def deal(
    txn: str, amounts: dict[str, int], *, ref: str | None = None, now: int = T0
) -> Transaction:
    return balanced(
        txn,
        "deal",
        amounts,
        currency="EUR",
        created_ms=now,
        refs=Refs(host_id=2, brand_id=1, ref=ref),
    )


async def count_of(db: Database, *txns: str) -> int:
    async with db.read() as s:
        found = await s.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.txn.in_(txns))
        )
    return int(found or 0)


# -- building ------------------------------------------------------------------------


@given(amounts=st.dictionaries(st.sampled_from(ACCOUNTS), st.integers(-(10**12), 10**12)))
def test_a_transaction_is_built_if_and_only_if_it_balances(amounts: dict[str, int]) -> None:
    if amounts and sum(amounts.values()) == 0:
        built = deal("t", amounts)
        assert {line["account"]: line["amount_minor"] for line in built.lines} == amounts
    else:
        with pytest.raises(Unbalanced):
            deal("t", amounts)


def test_lines_carry_their_holds_and_references() -> None:
    agency = Refs(host_id=2, brand_id=1, agency_id=9, ref="deal:17")
    built = balanced(
        "deal:17:release",
        "release",
        {"escrow": -1000, "host_commission": 850, "platform_fees": 100, "agency_share": 50},
        currency="EUR",
        created_ms=T0,
        refs=Refs(host_id=2, brand_id=1, ref="deal:17"),
        available_ms={"host_commission": T0 + DAY, "agency_share": T0 + 2 * DAY},
        line_refs={"agency_share": agency},
    )
    by_account = {line["account"]: line for line in built.lines}
    assert by_account["host_commission"]["available_ms"] == T0 + DAY
    assert by_account["agency_share"]["available_ms"] == T0 + 2 * DAY
    assert by_account["escrow"]["available_ms"] is None
    assert by_account["agency_share"]["agency_id"] == 9
    assert {line["agency_id"] for line in built.lines if line["account"] != "agency_share"} == {
        None
    }
    assert {line["session_id"] for line in built.lines} == {None}
    assert {line["ref"] for line in built.lines} == {"deal:17"}
    # the same columns in every line: the table's, but its id
    columns = {c.name for c in LedgerEntry.__table__.columns} - {"id"}
    assert all(set(line) == columns for line in built.lines)


# -- posting -------------------------------------------------------------------------


async def test_an_unbalanced_transaction_is_refused_and_writes_nothing(db: Database) -> None:
    ok, bad = unique("ok"), unique("bad")
    with pytest.raises(Unbalanced):
        async with db.transaction() as tx:
            post(tx, deal(ok, {"escrow": 500, "brand_budget": -500}))
            post(tx, deal(bad, {"escrow": 500, "brand_budget": -499}))
    with pytest.raises(Unbalanced):
        deal(unique("empty"), {})
    assert await count_of(db, ok, bad) == 0


async def test_post_once_twice_posts_once(db: Database) -> None:
    txn, ref = unique("deal"), unique("ref")
    async with db.transaction() as tx:
        assert await post_once(tx, deal(txn, {"escrow": 700, "brand_budget": -700}, ref=ref))
    async with db.transaction() as tx:
        # the first posting wins, whatever the second one says
        assert not await post_once(tx, deal(txn, {"escrow": 9, "brand_budget": -9}, ref=ref))
    async with db.read() as s:
        lines = await lines_of(s, txn)
        assert sorted((x.account, x.amount_minor) for x in lines) == [
            ("brand_budget", -700),
            ("escrow", 700),
        ]
        assert {(b.account, b.total_minor) for b in await balances(s, ref)} == {
            ("brand_budget", -700),
            ("escrow", 700),
        }


async def test_posting_a_txn_again_with_other_accounts_is_refused(db: Database) -> None:
    txn = unique("deal")
    async with db.transaction() as tx:
        assert await post_once(tx, deal(txn, {"escrow": 700, "brand_budget": -700}))
    with pytest.raises(PostedDifferently):
        async with db.transaction() as tx:
            await post_once(tx, deal(txn, {"escrow": 700, "host_commission": -700}))
    with pytest.raises(IntegrityError):
        async with db.transaction() as tx:
            post(tx, deal(txn, {"escrow": 700, "brand_budget": -700}))
    assert await count_of(db, txn) == 2


async def test_twenty_posters_at_once_post_once(db: Database) -> None:
    txn = unique("deal")
    amounts = {"escrow": 1200, "host_commission": -1000, "platform_fees": -200}

    async def poster() -> bool:
        async with db.transaction() as tx:
            return await post_once(tx, deal(txn, amounts))

    results = await asyncio.gather(*(poster() for _ in range(20)))
    assert sorted(results) == [False] * 19 + [True]
    async with db.read() as s:
        lines = await lines_of(s, txn)
    assert {x.account: x.amount_minor for x in lines} == amounts
    assert len(lines) == 3


# -- reading -------------------------------------------------------------------------


async def test_balances_per_ref_split_into_pending_and_payable(db: Database) -> None:
    ref, other = unique("deal"), unique("deal")
    refs = Refs(host_id=2, brand_id=1, ref=ref)
    agency = Refs(host_id=2, brand_id=1, agency_id=9, ref=ref)
    async with db.transaction() as tx:
        post(tx, deal(f"{ref}:escrow", {"brand_budget": -10_000, "escrow": 10_000}, ref=ref))
        post(
            tx,
            balanced(
                f"{ref}:release",
                "release",
                {
                    "escrow": -10_000,
                    "host_commission": 8_500,
                    "platform_fees": 1_000,
                    "agency_share": 500,
                },
                currency="EUR",
                created_ms=T0 + 10,
                refs=refs,
                available_ms={"host_commission": T0 + DAY, "agency_share": T0 + 2 * DAY},
                line_refs={"agency_share": agency},
            ),
        )
        # a refund reverses part of the commission, in the same hold window
        post(
            tx,
            balanced(
                f"{ref}:refund:0",
                "refund",
                {"host_commission": -1_500, "brand_budget": 1_500},
                currency="EUR",
                created_ms=T0 + 20,
                refs=refs,
                available_ms={"host_commission": T0 + DAY},
            ),
        )
        post(tx, deal(f"{other}:escrow", {"brand_budget": -3, "escrow": 3}, ref=other))

    def split(found: list[Balance]) -> dict[str, tuple[int, int]]:
        assert {b.currency for b in found} == {"EUR"}
        return {b.account: (b.pending_minor, b.payable_minor) for b in found}

    async with db.read() as s:
        before = split(await balances(s, ref, T0 + 30))
        at_first_hold = split(await balances(s, ref, T0 + DAY))
        later = split(await balances(s, ref, T0 + 2 * DAY))
        whole = split(await balances(s, ref))
        agency_lines = [x for x in await lines_of(s, f"{ref}:release") if x.agency_id]
    assert before == {
        "brand_budget": (0, -8_500),
        "escrow": (0, 0),
        "host_commission": (7_000, 0),
        "platform_fees": (0, 1_000),
        "agency_share": (500, 0),
    }
    # payable from ``available_ms`` on
    assert at_first_hold["host_commission"] == (0, 7_000)
    assert at_first_hold["agency_share"] == (500, 0)
    assert later["agency_share"] == (0, 500)
    assert whole == later
    assert [(x.account, x.agency_id, x.session_id) for x in agency_lines] == [
        ("agency_share", 9, None)
    ]


@dataclass(frozen=True)
class Posting:
    #: which of a few txn keys: the same key again is the txn posted again (its first
    #: posting's accounts, the amounts reversed: counted, they would show)
    key: int
    amounts: dict[str, int]
    holds: dict[str, int]
    once: bool


@st.composite
def postings(draw: st.DrawFn) -> Posting:
    accounts = draw(st.lists(st.sampled_from(ACCOUNTS), min_size=1, max_size=5, unique=True))
    rest = {account: draw(st.integers(-(10**12), 10**12)) for account in accounts[1:]}
    amounts = {accounts[0]: -sum(rest.values()), **rest}
    holds = {account: draw(st.integers(0, 100)) for account in accounts if draw(st.booleans())}
    return Posting(draw(st.integers(0, 5)), amounts, holds, draw(st.booleans()))


@hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequence=st.lists(postings(), min_size=1, max_size=8), now=st.integers(0, 100))
async def test_any_postings_balance_and_sum_per_account(
    db: Database, sequence: list[Posting], now: int
) -> None:
    ref = unique("prop")
    #: per account: (pending at ``now``, payable), recomputed from what was posted
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    posted: dict[int, Posting] = {}
    for number, posting in enumerate(sequence):
        first = posted.get(posting.key)
        amounts = posting.amounts if first is None else {a: -v for a, v in first.amounts.items()}
        built = balanced(
            f"{ref}:{posting.key}",
            "test",
            amounts,
            currency="EUR",
            created_ms=number,
            refs=Refs(host_id=2, brand_id=1, ref=ref),
            available_ms=posting.holds,
        )
        async with db.transaction() as tx:
            if first is not None or posting.once:
                assert await post_once(tx, built) is (first is None)
            else:
                post(tx, built)
        if first is not None:
            continue  # posted before: moves nothing
        posted[posting.key] = posting
        for account, amount in posting.amounts.items():
            expected[account][0 if posting.holds.get(account, -1) > now else 1] += amount
    async with db.read() as s:
        found = await balances(s, ref, now)
        lines = list(await s.scalars(select(LedgerEntry).where(LedgerEntry.txn.like(f"{ref}:%"))))
    assert {b.account: [b.pending_minor, b.payable_minor] for b in found} == expected
    assert sum(line.amount_minor for line in lines) == 0
    per_txn: dict[str, int] = defaultdict(int)
    for line in lines:
        per_txn[line.txn] += line.amount_minor
    assert set(per_txn) == {f"{ref}:{key}" for key in posted}
    assert set(per_txn.values()) == {0}


# -- the migration -------------------------------------------------------------------

#: the columns of a line at 0013, but its id (the table numbers them, 1 to 5 here)
LINE_COLUMNS = (
    "txn, kind, account, amount_minor, currency, order_id, session_id, host_id, "
    "brand_id, created_ms, available_ms"
)
OLD_LINES = [
    ("order:1:sale", "sale", "buyer_payments", -1000, "EUR", 1, 5, 2, 3, T0, None),
    ("order:1:sale", "sale", "host_commission", 100, "EUR", 1, 5, 2, 3, T0, T0 + DAY),
    ("order:1:sale", "sale", "brand_revenue", 900, "EUR", 1, 5, 2, 3, T0, None),
    ("flat:5:4", "flat_fee", "brand_revenue", -50, "USD", None, 5, 2, 3, T0, None),
    ("flat:5:4", "flat_fee", "host_commission", 50, "USD", None, 5, 2, 3, T0, T0 + DAY),
]


def sql_values(row: tuple[object, ...]) -> str:
    return ", ".join(
        "NULL" if v is None else f"'{v}'" if isinstance(v, str) else str(v) for v in row
    )


async def test_ledger_lines_survive_the_move_into_the_spine(settings: Settings) -> None:
    """0014 keeps every line as it was (no ref, no agency), then takes lines without a
    session; going back keeps them too, and refuses while a line needs 0014."""
    db = await database_at(settings, "0013")
    try:
        async with db.engine.begin() as conn:
            for row in OLD_LINES:
                await conn.exec_driver_sql(
                    f"INSERT INTO ledger_entries ({LINE_COLUMNS}) VALUES ({sql_values(row)})"
                )
        await migrate(db, "upgrade", "0014")
        async with db.engine.begin() as conn:
            rows = await conn.exec_driver_sql(
                f"SELECT id, {LINE_COLUMNS}, ref, agency_id FROM ledger_entries ORDER BY id"
            )
            assert [tuple(r) for r in rows] == [
                (number, *row, None, None) for number, row in enumerate(OLD_LINES, 1)
            ]
        async with db.transaction() as tx:
            assert await post_once(tx, deal("deal:1:escrow", {"escrow": 5, "brand_budget": -5}))
            # the unique (txn, account) came through the copy
            assert not await post_once(tx, deal("order:1:sale", {"buyer_payments": 0}))
        with pytest.raises(RuntimeError, match="0013 cannot hold"):
            await migrate(db, "downgrade", "0013")
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM ledger_entries WHERE txn = 'deal:1:escrow'")
        await migrate(db, "downgrade", "0013")
        async with db.engine.begin() as conn:
            rows = await conn.exec_driver_sql(
                f"SELECT id, {LINE_COLUMNS} FROM ledger_entries ORDER BY id"
            )
            assert [tuple(r) for r in rows] == [
                (number, *row) for number, row in enumerate(OLD_LINES, 1)
            ]
        with pytest.raises(IntegrityError):
            async with db.engine.begin() as conn:
                await conn.exec_driver_sql(
                    "INSERT INTO ledger_entries (txn, kind, account, amount_minor, currency, "
                    "host_id, brand_id, created_ms) VALUES ('x', 'deal', 'escrow', 0, 'EUR', "
                    "2, 1, 0)"
                )
    finally:
        await db.dispose()
