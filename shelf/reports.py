"""Commission and sales reports, as JSON rows or the same rows as CSV.

A report covers the orders *placed* in ``[from, to)`` with their state now (a later
refund of such an order counts), plus the flat fees posted in that range. Money is
integer minor units per currency; a session that sold in two currencies has a row per
currency. Host commission is ``pending`` until its hold ends, ``payable`` after. Only
the shelf's own ledger lines count (``SHELF_KINDS``): other features post to the same
ledger (``live.ledger``).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, or_, select

from live.auth import Principal
from live.clock import Clock, iso
from live.db import Database
from live.errors import Forbidden
from live.ledger_models import LedgerEntry
from live.models import LiveSession, Role, User
from shelf.order_models import Account, EntryKind, Order, OrderStatus
from shelf.report_answers import csv_columns, with_amounts

#: The statuses of orders that count as sold (a refund is a later, separate line).
SOLD = (OrderStatus.PAID.value, OrderStatus.REFUNDED.value)
#: The ledger lines the reports count: the shelf's own (other features post to the
#: same ledger, e.g. a deal's escrow, with lines for the same host and brand).
SHELF_KINDS = tuple(kind.value for kind in EntryKind)

HOST_COLUMNS = [
    "session_id",
    "session_title",
    "currency",
    "orders",
    "units",
    "gmv_minor",
    "refunded_units",
    "refunds_minor",
    "commission_pending_minor",
    "commission_payable_minor",
    "commission_total_minor",
]
BRAND_COLUMNS = [
    "host_id",
    "host_name",
    "session_id",
    "session_title",
    "currency",
    "orders",
    "units",
    "gmv_minor",
    "refunded_units",
    "refunds_minor",
    "host_commission_minor",
    "platform_fees_minor",
    "brand_net_minor",
]


@dataclass(frozen=True, slots=True)
class Period:
    from_ms: int
    to_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"from": iso(self.from_ms), "to": iso(self.to_ms)}


def to_csv(columns: list[str], rows: Iterable[dict[str, Any]]) -> str:
    """The rows as CSV: ``columns``, then each money column's amount in its currency
    (``gmv_minor`` 123456 EUR -> ``gmv`` 1234.56; ``shelf.report_answers.csv_columns``)."""
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=csv_columns(columns), extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_safe(v) for k, v in with_amounts(row).items()})
    return out.getvalue()


def _csv_safe(value: Any) -> Any:
    # A title starting with = + - @ would run as a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def _totals(rows: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    by_currency: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = by_currency.setdefault(row["currency"], {"currency": row["currency"]})
        for key in keys:
            total[key] = total.get(key, 0) + row[key]
    return [by_currency[c] for c in sorted(by_currency)]


class ReportService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def host_commission(
        self, caller: Principal, host_id: int, period: Period, session_id: int | None = None
    ) -> dict[str, Any]:
        """Per session and currency: orders, units, GMV, refunds, commission.

        ``session_id`` narrows it to one session (the studio's live numbers).
        """
        if caller.role is not Role.ADMIN and caller.user_id != host_id:
            raise Forbidden("not_your_report", "a host reads only their own commission")
        now = self._clock.now_ms()
        orders = Order.host_id == host_id
        entries = LedgerEntry.host_id == host_id
        if session_id is not None:
            orders = and_(orders, Order.session_id == session_id)
            entries = and_(entries, LedgerEntry.session_id == session_id)
        async with self._db.read() as s:
            sales = await s.execute(self._sales_query(orders, period))
            ledger = await s.execute(self._ledger_query(entries, period, now))
            rows: dict[tuple[int, str], dict[str, Any]] = defaultdict(dict)
            for r in sales:
                rows[(r.session_id, r.currency)].update(_sales_fields(r))
            for r in ledger:
                row = rows[(r.session_id, r.currency)]
                row["commission_pending_minor"] = int(r.host_pending or 0)
                row["commission_payable_minor"] = int(r.host_payable or 0)
            titles = await _names(s, LiveSession.id, LiveSession.title, {k[0] for k in rows})
        out = []
        for (session_id, currency), row in sorted(rows.items()):
            full: dict[str, Any] = {
                **_empty_sales(),
                "commission_pending_minor": 0,
                "commission_payable_minor": 0,
            }
            full.update(row)
            full.update(
                session_id=session_id, session_title=titles.get(session_id), currency=currency
            )
            full["commission_total_minor"] = (
                full["commission_pending_minor"] + full["commission_payable_minor"]
            )
            out.append(full)
        money = [c for c in HOST_COLUMNS[3:]]
        return {
            "host_id": host_id,
            "period": period.to_dict(),
            "rows": out,
            "totals": _totals(out, money),
        }

    async def brand_sales(self, caller: Principal, brand_id: int, period: Period) -> dict[str, Any]:
        """Per host, session and currency: what the brand's products sold and who earned what."""
        if caller.role is not Role.ADMIN and caller.user_id != brand_id:
            raise Forbidden("not_your_report", "a brand reads only its own sales")
        now = self._clock.now_ms()
        async with self._db.read() as s:
            sales = await s.execute(
                self._sales_query(Order.brand_id == brand_id, period, by_host=True)
            )
            ledger = await s.execute(
                self._ledger_query(LedgerEntry.brand_id == brand_id, period, now, by_host=True)
            )
            rows: dict[tuple[int, int, str], dict[str, Any]] = defaultdict(dict)
            for r in sales:
                rows[(r.host_id, r.session_id, r.currency)].update(_sales_fields(r))
            for r in ledger:
                row = rows[(r.host_id, r.session_id, r.currency)]
                row["host_commission_minor"] = int((r.host_pending or 0) + (r.host_payable or 0))
                row["platform_fees_minor"] = int(r.platform or 0)
                row["brand_net_minor"] = int(r.brand or 0)
            titles = await _names(s, LiveSession.id, LiveSession.title, {k[1] for k in rows})
            names = await _names(s, User.id, User.display_name, {k[0] for k in rows})
        out = []
        for (host_id, session_id, currency), row in sorted(rows.items()):
            full: dict[str, Any] = {
                **_empty_sales(),
                "host_commission_minor": 0,
                "platform_fees_minor": 0,
                "brand_net_minor": 0,
            }
            full.update(row)
            full.update(
                host_id=host_id,
                host_name=names.get(host_id),
                session_id=session_id,
                session_title=titles.get(session_id),
                currency=currency,
            )
            out.append(full)
        money = BRAND_COLUMNS[5:]
        return {
            "brand_id": brand_id,
            "period": period.to_dict(),
            "rows": out,
            "totals": _totals(out, money),
        }

    @staticmethod
    def _sales_query(where: Any, period: Period, *, by_host: bool = False) -> Any:
        keys = [Order.host_id] if by_host else []
        return (
            select(
                *keys,
                Order.session_id,
                Order.currency,
                func.count().label("orders"),
                func.sum(Order.quantity).label("units"),
                func.sum(Order.amount_minor).label("gmv"),
                func.sum(Order.refunded_quantity).label("refunded_units"),
                func.sum(Order.refunded_quantity * Order.unit_price_minor).label("refunds"),
            )
            .where(
                where,
                Order.status.in_(SOLD),
                Order.placed_ms >= period.from_ms,
                Order.placed_ms < period.to_ms,
            )
            .group_by(*keys, Order.session_id, Order.currency)
        )

    @staticmethod
    def _ledger_query(where: Any, period: Period, now: int, *, by_host: bool = False) -> Any:
        keys = [LedgerEntry.host_id] if by_host else []
        host = LedgerEntry.account == Account.HOST_COMMISSION.value

        def total(condition: Any) -> Any:
            return func.sum(case((condition, LedgerEntry.amount_minor), else_=0))

        return (
            select(
                *keys,
                LedgerEntry.session_id,
                LedgerEntry.currency,
                total(and_(host, LedgerEntry.available_ms > now)).label("host_pending"),
                total(and_(host, LedgerEntry.available_ms <= now)).label("host_payable"),
                total(LedgerEntry.account == Account.PLATFORM_FEES.value).label("platform"),
                total(LedgerEntry.account == Account.BRAND_REVENUE.value).label("brand"),
            )
            .outerjoin(Order, Order.id == LedgerEntry.order_id)
            .where(
                where,
                LedgerEntry.kind.in_(SHELF_KINDS),
                or_(
                    and_(
                        LedgerEntry.order_id.is_not(None),
                        Order.placed_ms >= period.from_ms,
                        Order.placed_ms < period.to_ms,
                    ),
                    and_(
                        LedgerEntry.order_id.is_(None),
                        LedgerEntry.created_ms >= period.from_ms,
                        LedgerEntry.created_ms < period.to_ms,
                    ),
                ),
            )
            .group_by(*keys, LedgerEntry.session_id, LedgerEntry.currency)
        )


async def _names(s: Any, key: Any, value: Any, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    result = await s.execute(select(key, value).where(key.in_(sorted(ids))))
    return {row[0]: row[1] for row in result}


def _empty_sales() -> dict[str, int]:
    return {
        "orders": 0,
        "units": 0,
        "gmv_minor": 0,
        "refunded_units": 0,
        "refunds_minor": 0,
    }


def _sales_fields(r: Any) -> dict[str, int]:
    return {
        "orders": int(r.orders),
        "units": int(r.units or 0),
        "gmv_minor": int(r.gmv or 0),
        "refunded_units": int(r.refunded_units or 0),
        "refunds_minor": int(r.refunds or 0),
    }
