"""Brands' catalogues: create, edit, archive and list products.

Rules: only brands create products; only the owning brand (or an admin) edits or
archives one; an archived product stays readable but cannot be edited, shelved,
proposed or put on a flash sale. A stock edit bumps the stock version and is
announced as ``stock.changed``; a change to what the shelf shows (title, image,
price, currency) re-announces the shelves that carry the product.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from live.auth import Principal
from live.clock import Clock
from live.db import Database
from live.errors import Conflict, Forbidden, NotFound
from live.models import Role
from live.paging import Listing, Page
from shelf.models import Product
from shelf.publisher import StockPublisher
from shelf.schemas import CreateProductBody, EditProductBody
from shelf.state import holding_flashes
from shelf.stock import StockService
from shelf.views import product_dict, sees_commission

#: Called with a product id after a change of what shelves show about it.
ProductListener = Callable[[int], Awaitable[None]]

_SHOWN_ON_SHELF = frozenset({"title", "image_url", "price_minor", "currency"})


class CatalogueService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        stock: StockService,
        publisher: StockPublisher,
    ) -> None:
        self._db = db
        self._clock = clock
        self._stock = stock
        self._publisher = publisher
        self._listeners: list[ProductListener] = []

    def add_listener(self, listener: ProductListener) -> None:
        self._listeners.append(listener)

    async def create(self, brand: Principal, body: CreateProductBody) -> dict[str, Any]:
        brand.require(Role.BRAND)
        now = self._clock.now_ms()
        product = Product(
            brand_id=brand.user_id,
            title=body.title,
            description=body.description,
            image_url=body.image_url,
            price_minor=body.price_minor,
            currency=body.currency,
            stock=body.stock,
            commission_bps=body.commission_bps,
            stock_version=0,
            created_ms=now,
            updated_ms=now,
        )
        async with self._db.transaction() as tx:
            tx.add(product)
            await tx.flush()
        return product_dict(product)

    async def get(self, product_id: int, caller: Principal | None = None) -> dict[str, Any]:
        """Anyone; the commission for the parties of agreements only."""
        async with self._db.read() as s:
            product = await s.get(Product, product_id)
            if product is None:
                raise NotFound("product_not_found", f"no product {product_id}")
            held = await holding_flashes(s, product_ids=[product_id])
        return product_dict(
            product, commission=sees_commission(caller), held=held.get(product_id, ())
        )

    async def get_row(self, product_id: int) -> Product:
        async with self._db.read() as s:
            product = await s.get(Product, product_id)
        if product is None:
            raise NotFound("product_not_found", f"no product {product_id}")
        return product

    async def list_for_brand(
        self,
        caller: Principal | None,
        brand_id: int,
        page: Page,
        *,
        include_archived: bool = False,
    ) -> Listing[dict[str, Any]]:
        """A page of a brand's products, newest first (``page`` is newest first).
        Archived ones only for the brand itself."""
        own = caller is not None and (caller.user_id == brand_id or caller.role is Role.ADMIN)
        query = select(Product).where(Product.brand_id == brand_id)
        if not (own and include_archived):
            query = query.where(Product.archived_ms.is_(None))
        commission = sees_commission(caller)
        async with self._db.read() as s:
            rows = list(await s.scalars(page.select(query, Product.id)))
            held = await holding_flashes(s, product_ids=[p.id for p in rows])
        return page.cut(
            rows,
            lambda p: p.id,
            lambda p: product_dict(p, commission=commission, held=held.get(p.id, ())),
        )

    async def edit(
        self, brand: Principal, product_id: int, body: EditProductBody
    ) -> dict[str, Any]:
        changes = body.changes()
        async with self._db.transaction() as tx:
            product = await self._owned(tx, brand, product_id)
            if product.archived_ms is not None:
                raise Conflict("product_archived", "an archived product cannot be edited")
            stock = changes.pop("stock", None)
            if stock is not None:
                assert isinstance(stock, int)
                await self._stock.set_stock(tx, product_id, stock)
            changes["updated_ms"] = self._clock.now_ms()
            await tx.execute(update(Product).where(Product.id == product_id).values(changes))
            edited = await tx.get(Product, product_id, populate_existing=True)
            assert edited is not None
            held = await holding_flashes(tx, product_ids=[product_id])
            result = product_dict(edited, held=held.get(product_id, ()))
        if stock is not None:
            self._publisher.changed(product_id)
        if _SHOWN_ON_SHELF & changes.keys():
            for listener in self._listeners:
                await listener(product_id)
        return result

    async def archive(self, brand: Principal, product_id: int) -> dict[str, Any]:
        """Archive (idempotent). Shelves keep an archived product visible, but it can no
        longer be bought (``StockService.take``), shelved again or flash-sold."""
        async with self._db.transaction() as tx:
            product = await self._owned(tx, brand, product_id)
            if product.archived_ms is None:
                product.archived_ms = self._clock.now_ms()
                product.updated_ms = product.archived_ms
            held = await holding_flashes(tx, product_ids=[product_id])
            result = product_dict(product, held=held.get(product_id, ()))
        return result

    async def _owned(self, tx: AsyncSession, brand: Principal, product_id: int) -> Product:
        brand.require(Role.BRAND)
        product = await tx.get(Product, product_id)
        if product is None:
            raise NotFound("product_not_found", f"no product {product_id}")
        if product.brand_id != brand.user_id and brand.role is not Role.ADMIN:
            raise Forbidden("not_your_product", "only the product's brand may change it")
        return product
