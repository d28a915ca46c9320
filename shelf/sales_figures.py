"""``PaidSales``: what hosts sold, for features that show a host's verified figures (the
market's creator directory asks it through its own ``HostSales`` protocol, wired in
``app.py``).

A sale here is an order that was paid and never refunded: status ``paid`` with no unit
refunded (an order refunded in part is left out whole, one refunded in full is
``refunded``). Its time is when it was paid.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from live.db import Database
from shelf.order_models import Order, OrderStatus


class PaidSales:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def paid_sales(
        self, host_ids: Sequence[int], since_ms: int
    ) -> list[tuple[int, str, int, int]]:
        """``(host_id, currency, orders, gmv_minor)`` of the orders of ``host_ids``
        paid since ``since_ms`` and never refunded, by host and currency."""
        if not host_ids:
            return []
        query = (
            select(
                Order.host_id,
                Order.currency,
                func.count().label("orders"),
                func.sum(Order.amount_minor).label("gmv"),
            )
            .where(
                Order.host_id.in_(sorted(set(host_ids))),
                Order.status == OrderStatus.PAID.value,
                Order.refunded_quantity == 0,
                Order.paid_ms >= since_ms,
            )
            .group_by(Order.host_id, Order.currency)
            .order_by(Order.host_id, Order.currency)
        )
        async with self._db.read() as s:
            rows = (await s.execute(query)).all()
        return [(int(r.host_id), str(r.currency), int(r.orders), int(r.gmv or 0)) for r in rows]
