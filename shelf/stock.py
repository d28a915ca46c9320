"""Stock: taking and returning units inside the caller's transaction.

This is the piece the order stores call (``shelf.order_store``). Every method works
inside an open write transaction (``Database.transaction()``) and changes stock with
one conditional UPDATE, so concurrent buyers can never oversell; rows are locked in
the fixed order flash sale -> product. After the transaction commits, the caller announces the
change with ``StockPublisher.changed(product_id)`` (see ``shelf.publisher``).

How a flash sale's reservation is represented: see ``shelf.models`` -- once
reserved (at its start), the flash sale row holds ``quantity`` units already taken out
of ``Product.stock`` and counts ``sold``; an order sells from the running flash sale of
its session when there is one, else from ``Product.stock``.

The stock rules, each written once: regular stock is taken by
``take_regular_update`` (both backends' order paths), a flash sale's units and the
buyer's allowance by ``StockService.take_flash``. ``check_units`` is the same rules
read from a context row (the order path refuses from a read, see ``shelf.orders``);
it must refuse exactly what those statements refuse, with the same errors.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import ColumnElement, Integer, Table, Update, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from live.clock import Clock
from live.db import once_per_dialect, upsert
from live.errors import Conflict
from shelf.models import FlashPurchase, FlashSale, FlashStatus, Product

#: Where the taking statements run: an ORM session, or a bare Core connection (the
#: order path, see ``shelf.order_store_base``).
Executor = AsyncSession | AsyncConnection


# The refusals for lack of units, built in one place: the order path's read-only check
# (``shelf.orders``) must answer exactly what these UPDATEs answer.
def out_of_stock() -> Conflict:
    return Conflict("out_of_stock", "not enough units left")


def flash_sold_out() -> Conflict:
    return Conflict("flash_sold_out", "the flash sale has not enough units left")


def flash_limit_reached(per_buyer_limit: int) -> Conflict:
    return Conflict("flash_limit_reached", f"at most {per_buyer_limit} per buyer")


def check_flash_quantity(quantity: int, per_buyer_limit: int) -> None:
    """No buyer orders more than a flash sale's per-buyer limit at once."""
    if quantity > per_buyer_limit:
        raise flash_limit_reached(per_buyer_limit)


def check_units(
    quantity: int,
    *,
    stock: int | None,
    flash_limit: int | None,
    flash_left: int | None,
) -> None:
    """The taking statements' refusals, decided from values read just before:
    ``flash_limit``/``flash_left`` of the running flash sale the order sells from
    (None: it sells regular ``stock``). The buyer's earlier purchases in the sale are
    left to ``take_flash`` (the read does not carry them)."""
    if flash_limit is not None:
        assert flash_left is not None
        check_flash_quantity(quantity, flash_limit)
        if flash_left < quantity:
            raise flash_sold_out()
    elif stock is None or stock < quantity:
        raise out_of_stock()


def take_regular_update(product_id: ColumnElement[int], quantity: ColumnElement[int]) -> Update:
    """The conditional UPDATE that takes ``quantity`` units of regular stock (and bumps
    the stock version): it matches no row when too few are left or the product is
    archived. Also the first half of ``shelf.order_sql.take_and_record``."""
    products = cast(Table, Product.__table__)
    return (
        products.update()
        .where(
            products.c.id == product_id,
            products.c.stock >= quantity,
            products.c.archived_ms.is_(None),
        )
        .values(stock=products.c.stock - quantity, stock_version=products.c.stock_version + 1)
    )


# A flash sale's orders come by the thousand: its two statements are built once (values
# bound per call), as building them per order made cyclic garbage (live.db.once_per_dialect).
_TAKE_FLASH = (
    update(FlashSale)
    .where(
        FlashSale.id == bindparam("flash"),
        FlashSale.status == FlashStatus.RUNNING.value,
        FlashSale.sold + bindparam("units", type_=Integer()) <= FlashSale.quantity,
    )
    .values(sold=FlashSale.sold + bindparam("units", type_=Integer()))
)


def _build_flash_purchase(tx: AsyncSession | AsyncConnection) -> Any:
    """One buyer's units of a flash sale, added up to the per-buyer limit."""
    stmt = upsert(tx, FlashPurchase).values(
        flash_sale_id=bindparam("flash"), buyer_id=bindparam("buyer"), quantity=bindparam("units")
    )
    added = FlashPurchase.quantity + stmt.excluded.quantity
    return stmt.on_conflict_do_update(
        index_elements=["flash_sale_id", "buyer_id"],
        set_={"quantity": added},
        where=added <= bindparam("limit", type_=Integer()),
    )


_flash_purchase = once_per_dialect(_build_flash_purchase)


class StockService:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._take_regular = take_regular_update(
            bindparam("pid", type_=Integer), bindparam("qty", type_=Integer)
        )

    async def take_regular(self, tx: Executor, product_id: int, quantity: int) -> None:
        """Take ``quantity`` units from regular stock (409 ``out_of_stock``).

        The hot statement of a flash sale: a prebuilt Core UPDATE (no ORM session
        synchronisation, no per-call statement construction)."""
        result = await tx.execute(self._take_regular, {"pid": product_id, "qty": quantity})
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise out_of_stock()

    async def take_flash(
        self, tx: Executor, flash_id: int, per_buyer_limit: int, buyer_id: int, quantity: int
    ) -> None:
        """Take ``quantity`` units of a running flash sale for one buyer (409
        ``flash_sold_out`` / ``flash_limit_reached``). The caller bumps the stock version."""
        check_flash_quantity(quantity, per_buyer_limit)
        result = await tx.execute(_TAKE_FLASH, {"flash": flash_id, "units": quantity})
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise flash_sold_out()
        purchase = {"flash": flash_id, "buyer": buyer_id, "units": quantity}
        added = await tx.execute(_flash_purchase(tx), {**purchase, "limit": per_buyer_limit})
        if added.rowcount != 1:  # type: ignore[attr-defined]
            raise flash_limit_reached(per_buyer_limit)

    async def put_back(
        self,
        tx: AsyncSession,
        *,
        product_id: int,
        quantity: int,
        buyer_id: int,
        flash_sale_id: int | None = None,
    ) -> None:
        """Return units of a refunded or cancelled order.

        Units from a flash sale that is still running go back to the sale (and the
        buyer's allowance); otherwise -- regular units, or the sale is over and its
        rest already returned -- they go back to ``Product.stock``.
        """
        if flash_sale_id is not None:
            result = await tx.execute(
                update(FlashSale)
                .where(
                    FlashSale.id == flash_sale_id,
                    FlashSale.status == FlashStatus.RUNNING.value,
                    FlashSale.sold >= quantity,
                )
                .values(sold=FlashSale.sold - quantity)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                await tx.execute(
                    update(FlashPurchase)
                    .where(
                        FlashPurchase.flash_sale_id == flash_sale_id,
                        FlashPurchase.buyer_id == buyer_id,
                        FlashPurchase.quantity >= quantity,
                    )
                    .values(quantity=FlashPurchase.quantity - quantity)
                )
                await self.bump(tx, product_id)
                return
        await tx.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(stock=Product.stock + quantity, stock_version=Product.stock_version + 1)
        )

    async def set_stock(self, tx: AsyncSession, product_id: int, stock: int) -> None:
        """Set the regular stock (a brand's edit)."""
        await tx.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(stock=stock, stock_version=Product.stock_version + 1)
        )

    async def reserve(self, tx: AsyncSession, flash: FlashSale, now_ms: int) -> int:
        """Move up to ``flash.quantity`` units from regular stock into the sale, as many
        as there are; set the sale's ``quantity`` to that and ``reserved_ms``; return it
        (0: nothing in stock, nothing changed -- the caller cancels the sale).

        The first UPDATE locks the product row (every buyer of the product queues on
        it too), so the stock read after it is the stock the second UPDATE takes from.
        """
        await self.bump(tx, flash.product_id)
        stock = await tx.scalar(select(Product.stock).where(Product.id == flash.product_id))
        units = min(flash.quantity, stock or 0)
        if units == 0:
            return 0
        await tx.execute(
            update(Product)
            .where(Product.id == flash.product_id)
            .values(stock=Product.stock - units)
        )
        await tx.execute(
            update(FlashSale)
            .where(FlashSale.id == flash.id)
            .values(quantity=units, reserved_ms=now_ms)
        )
        return units

    async def release(self, tx: AsyncSession, flash_sale_id: int, product_id: int) -> None:
        """Give a finished flash sale's unsold units back to stock (none when it never
        reserved any).

        Call it in the transaction that moved the sale out of ``running``/``scheduled``
        (after that, ``take`` no longer sells from it, so ``sold`` is final).
        """
        rest = (
            select(FlashSale.quantity - FlashSale.sold)
            .where(FlashSale.id == flash_sale_id, FlashSale.reserved_ms.is_not(None))
            .scalar_subquery()
        )
        await tx.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(
                stock=Product.stock + func.coalesce(rest, 0),
                stock_version=Product.stock_version + 1,
            )
        )

    async def bump(self, tx: Executor, product_id: int) -> None:
        """A flash sale of the product changed what is on offer: bump its stock version."""
        await tx.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(stock_version=Product.stock_version + 1)
        )
