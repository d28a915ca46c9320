"""The commission ledger: the shelf's sales, refunds and flat fees, posted to the
spine's ledger (``live.ledger``) as balanced transactions.

Every posting is one ledger transaction (``txn``) whose lines sum to zero, written
inside the caller's database transaction. Amounts are integer minor units and every
share is rounded down, with the brand taking the remainder:

    commission(units) = unit_price * units * commission_bps // 10_000
    platform(units)   = unit_price * units * platform_fee_bps // 10_000

A refund posts the difference between the shares of the units still sold before and
after it, so any sequence of partial refunds ends exactly at zero, and at any time
``host_commission`` of an order = ``commission(quantity - refunded_quantity)``.
``(txn, account)`` is unique: posting the same transaction twice fails instead of
counting twice (the flat fee, posted with each paid order of its session, is posted
once: ``live.ledger.post_once``). Host commission is held for ``hold_ms``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from live.ledger import Refs, Transaction, balanced, post, post_once
from shelf.order_models import Account, EntryKind, Order, OrderFigures

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
        post(tx, self.sale(order, now_ms))

    def sale(self, order: OrderFigures, now_ms: int) -> Transaction:
        """The transaction ``post_sale`` posts, for a caller that writes its lines
        itself (``shelf.order_sql.settle_paid``)."""
        amount = order.amount_minor
        host = commission(order, order.quantity)
        platform = platform_fee(order, order.quantity)
        return self._order_transaction(
            order,
            f"order:{order.id}:sale",
            EntryKind.SALE,
            now_ms,
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
        # A refund's reversal falls in the same hold window as the sale it reverses,
        # so "pending" and "payable" each net out per order.
        held_since = order.paid_ms or now_ms
        refund = self._order_transaction(
            order,
            f"order:{order.id}:refund:{refund_no}",
            EntryKind.REFUND,
            now_ms,
            held_since,
            {
                Account.BUYER_PAYMENTS: amount,
                Account.HOST_COMMISSION: -host,
                Account.PLATFORM_FEES: -platform,
                Account.BRAND_REVENUE: -(amount - host - platform),
            },
        )
        post(tx, refund)
        return amount

    async def post_flat_fee(
        self, tx: AsyncSession, order: Order, currency: str, now_ms: int
    ) -> None:
        """The cooperation's flat fee for this session: brand -> host, posted with the
        session's first paid order under that cooperation and never again."""
        assert order.flat_fee_minor is not None
        flat_fee = balanced(
            f"flat:{order.session_id}:{order.cooperation_id}",
            EntryKind.FLAT_FEE,
            {
                Account.BRAND_REVENUE: -order.flat_fee_minor,
                Account.HOST_COMMISSION: order.flat_fee_minor,
            },
            currency=currency,
            created_ms=now_ms,
            refs=Refs(host_id=order.host_id, brand_id=order.brand_id, session_id=order.session_id),
            available_ms={Account.HOST_COMMISSION: now_ms + self._hold_ms},
        )
        await post_once(tx, flat_fee)

    def _order_transaction(
        self,
        order: OrderFigures,
        txn: str,
        kind: EntryKind,
        now_ms: int,
        held_since: int,
        amounts: dict[str, int],
    ) -> Transaction:
        """One transaction of ``order``, in its currency; the host's commission held
        for ``hold_ms`` from ``held_since``."""
        return balanced(
            txn,
            kind,
            amounts,
            currency=order.currency,
            created_ms=now_ms,
            refs=Refs(
                host_id=order.host_id,
                brand_id=order.brand_id,
                session_id=order.session_id,
                order_id=order.id,
            ),
            available_ms={Account.HOST_COMMISSION: held_since + self._hold_ms},
        )
