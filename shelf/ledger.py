"""The commission ledger: double-entry lines for sales, refunds and flat fees.

Every posting is one ledger transaction (``txn``) whose lines sum to zero, written
inside the caller's database transaction. Amounts are integer minor units and every
share is rounded down, with the brand taking the remainder:

    commission(units) = unit_price * units * commission_bps // 10_000
    platform(units)   = unit_price * units * platform_fee_bps // 10_000

A refund posts the difference between the shares of the units still sold before and
after it, so any sequence of partial refunds ends exactly at zero, and at any time
``host_commission`` of an order = ``commission(quantity - refunded_quantity)``.
``(txn, account)`` is unique: posting the same transaction twice fails instead of
counting twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from live.db import upsert
from shelf.order_models import Account, EntryKind, LedgerEntry, Order, OrderFigures

BPS = 10_000


def commission(order: OrderFigures, units: int) -> int:
    return order.unit_price_minor * units * order.commission_bps // BPS


def platform_fee(order: OrderFigures, units: int) -> int:
    return order.unit_price_minor * units * order.platform_fee_bps // BPS


class CommissionLedger:
    def __init__(self, hold_ms: int) -> None:
        self._hold_ms = hold_ms

    def post_sale(self, tx: AsyncSession, order: Order, now_ms: int) -> None:
        """The order was paid: buyer -> brand, host, platform."""
        tx.add_all(LedgerEntry(**line) for line in self.sale_lines(order, now_ms))

    def sale_lines(self, order: OrderFigures, now_ms: int) -> list[dict[str, Any]]:
        """The lines (column values) ``post_sale`` posts, for a caller that writes them
        itself (``shelf.order_sql.settle_paid``)."""
        amount = order.amount_minor
        host = commission(order, order.quantity)
        platform = platform_fee(order, order.quantity)
        return self._lines(
            order,
            f"order:{order.id}:sale",
            EntryKind.SALE,
            now_ms,
            {
                Account.BUYER_PAYMENTS: -amount,
                Account.HOST_COMMISSION: host,
                Account.PLATFORM_FEES: platform,
                Account.BRAND_REVENUE: amount - host - platform,
            },
        )

    def post_refund(
        self, tx: AsyncSession, order: Order, units: int, refund_no: int, now_ms: int
    ) -> int:
        """``units`` more units of ``order`` were refunded; returns the amount refunded.

        Call before increasing ``order.refunded_quantity``.
        """
        still_before = order.quantity - order.refunded_quantity
        still_after = still_before - units
        amount = order.unit_price_minor * units
        host = commission(order, still_before) - commission(order, still_after)
        platform = platform_fee(order, still_before) - platform_fee(order, still_after)
        lines = self._lines(
            order,
            f"order:{order.id}:refund:{refund_no}",
            EntryKind.REFUND,
            now_ms,
            {
                Account.BUYER_PAYMENTS: amount,
                Account.HOST_COMMISSION: -host,
                Account.PLATFORM_FEES: -platform,
                Account.BRAND_REVENUE: -(amount - host - platform),
            },
        )
        tx.add_all(LedgerEntry(**line) for line in lines)
        return amount

    async def post_flat_fee(
        self, tx: AsyncSession, order: Order, currency: str, now_ms: int
    ) -> None:
        """The cooperation's flat fee for this session: brand -> host, posted with the
        session's first paid order under that cooperation and never again."""
        assert order.flat_fee_minor is not None
        txn = f"flat:{order.session_id}:{order.cooperation_id}"
        lines = [
            self._line(order, txn, EntryKind.FLAT_FEE, account, amount, currency, now_ms)
            for account, amount in (
                (Account.BRAND_REVENUE, -order.flat_fee_minor),
                (Account.HOST_COMMISSION, order.flat_fee_minor),
            )
        ]
        insert = upsert(tx, LedgerEntry).values(lines)
        await tx.execute(insert.on_conflict_do_nothing(index_elements=["txn", "account"]))

    def _lines(
        self,
        order: OrderFigures,
        txn: str,
        kind: EntryKind,
        now_ms: int,
        amounts: dict[Account, int],
    ) -> list[dict[str, Any]]:
        """One ledger transaction's lines; they sum to zero."""
        assert sum(amounts.values()) == 0, amounts
        return [
            self._line(order, txn, kind, account, amount, order.currency, now_ms)
            for account, amount in amounts.items()
        ]

    def _line(
        self,
        order: OrderFigures,
        txn: str,
        kind: EntryKind,
        account: Account,
        amount: int,
        currency: str,
        now_ms: int,
    ) -> dict[str, Any]:
        """One ledger line's column values."""
        available = None
        if account is Account.HOST_COMMISSION:
            # A refund's reversal falls in the same hold window as the sale it reverses,
            # so "pending" and "payable" each net out per order.
            since = order.paid_ms if kind is EntryKind.REFUND and order.paid_ms else now_ms
            available = since + self._hold_ms
        return {
            "txn": txn,
            "kind": kind.value,
            "account": account.value,
            "amount_minor": amount,
            "currency": currency,
            "order_id": order.id if kind is not EntryKind.FLAT_FEE else None,
            "session_id": order.session_id,
            "host_id": order.host_id,
            "brand_id": order.brand_id,
            "created_ms": now_ms,
            "available_ms": available,
        }
