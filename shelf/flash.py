"""Flash sales: scheduling and cancelling (the scheduler starts and ends them).

A flash sale sells ``quantity`` units of a shelved product at ``price_minor`` (below
the regular price, in the product's currency), at most ``per_buyer_limit`` per buyer,
between ``starts_at`` and ``ends_at`` on the server's clock. Creating one reserves
nothing: the scheduler moves the units out of the product's stock when the sale starts,
or a short lead time before (``shelf.models``, ``shelf.flash_scheduler``). Refusals:

* 422 ``invalid_window`` (end not after start), ``window_in_past`` (end already
  passed), ``window_too_long`` (over 24 h), ``window_too_far`` (starts over 30 days
  ahead), ``flash_price_not_lower``; a start in the past means "now";
* the brand's terms, in the agreement the product is on the shelf under: 409
  ``flash_not_agreed`` (it allows no flash sales), 422 ``flash_price_below_floor``
  (under ``flash_min_price_bps`` of the regular price, rounded up, and never 0) and
  ``flash_quantity_over_cap`` (over ``flash_max_units``) -- unless the agreement has
  ``flash_ask_brand``: then such a sale is made ``pending_approval`` and waits for the
  brand (``shelf.flash_approvals``);
* 409 ``session_ended``, ``product_archived``, ``not_on_shelf``,
  ``insufficient_stock`` (fewer units in stock now than asked for; checked, not
  reserved), ``flash_sale_overlaps`` (another pending, scheduled or running sale of the
  same product in the session overlaps the window -- so at most one runs),
  ``too_many_flash_sales_planned`` (the show holds ``MAX_PLANNED`` such sales already).

Every change is committed with its room event through the outbox:
``flash.scheduled`` / ``flash.cancelled`` here (a sale pending approval has no event:
viewers never see it), ``flash.scheduled`` / ``flash.declined`` when the brand
answers, ``flash.started`` / ``flash.ended`` by ``shelf.flash_scheduler.FlashScheduler``;
each carries the sale and ``server_time``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select, update

from live.auth import Principal
from live.clock import Clock, to_ms
from live.db import Database
from live.errors import Conflict, NotFound, Unprocessable
from live.models import OutboxEvent, Role, SessionStatus
from live.outbox import Outbox, OutboxRelay
from live.paging import Listing, Page
from live.sessions import SessionService
from shelf.models import Cooperation, FlashSale, FlashStatus, Product, ShelfItem
from shelf.publisher import StockPublisher
from shelf.schemas import FlashSaleBody
from shelf.state import ACTIVE_FLASH
from shelf.stock import StockService
from shelf.views import flash_dict

#: sales that hold their window (and so exclude an overlapping one)
_HOLDING = (*ACTIVE_FLASH, FlashStatus.PENDING.value)
#: sales only the session's host sees in its list
_HOSTS_ONLY = (FlashStatus.PENDING.value, FlashStatus.DECLINED.value)
#: sales the host may still cancel
_CANCELLABLE = (FlashStatus.SCHEDULED.value, FlashStatus.PENDING.value)
#: pending, scheduled and running sales one show may hold (every viewer's snapshot
#: carries the scheduled and running ones)
MAX_PLANNED = 50
MAX_WINDOW_MS = 24 * 3600 * 1000
MAX_LEAD_MS = 30 * 24 * 3600 * 1000


class FlashSaleService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        sessions: SessionService,
        stock: StockService,
        publisher: StockPublisher,
        outbox: Outbox,
        relay: OutboxRelay,
        wake_scheduler: Callable[[], None],
    ) -> None:
        self._db = db
        self._clock = clock
        self._sessions = sessions
        self._stock = stock
        self._publisher = publisher
        self._outbox = outbox
        self._relay = relay
        self._wake = wake_scheduler

    async def create(self, host: Principal, session_id: int, body: FlashSaleBody) -> dict[str, Any]:
        session = await self._sessions.owned(host, session_id)
        if session.status == SessionStatus.ENDED.value:
            raise Conflict("session_ended", "the session has ended")
        now = self._clock.now_ms()
        starts, ends = _window(to_ms(body.starts_at), to_ms(body.ends_at), now)
        async with self._db.transaction() as tx:
            product = await tx.get(Product, body.product_id)
            if product is None:
                raise NotFound("product_not_found", f"no product {body.product_id}")
            if product.archived_ms is not None:
                raise Conflict("product_archived", "an archived product cannot be flash-sold")
            item = await tx.get(ShelfItem, (session_id, product.id))
            if item is None:
                raise Conflict("not_on_shelf", "put the product on the shelf first")
            if body.price_minor >= product.price_minor:
                raise Unprocessable(
                    "flash_price_not_lower",
                    f"the flash price must be below the regular price {product.price_minor}",
                )
            coop = await tx.get(Cooperation, item.cooperation_id)
            status = _status_under_terms(coop, product, body)
            # Nothing is reserved before the sale starts (the scheduler does it), but a
            # sale of more units than there are now is refused at once. Locking the
            # shelf row serialises creations for the product here, so two overlapping
            # ones cannot both pass the overlap check below.
            await tx.execute(
                update(ShelfItem)
                .where(ShelfItem.session_id == session_id, ShelfItem.product_id == product.id)
                .values(position=ShelfItem.position)
            )
            if product.stock < body.quantity:
                raise Conflict(
                    "insufficient_stock",
                    f"only {product.stock} units in stock",
                    available=product.stock,
                )
            clash = await tx.scalar(
                select(FlashSale.id).where(
                    FlashSale.session_id == session_id,
                    FlashSale.product_id == product.id,
                    FlashSale.status.in_(_HOLDING),
                    FlashSale.starts_ms < ends,
                    FlashSale.ends_ms > starts,
                )
            )
            if clash is not None:
                raise Conflict(
                    "flash_sale_overlaps",
                    f"flash sale {clash} of this product overlaps that window",
                    flash_sale_id=clash,
                )
            planned = await tx.scalar(
                select(func.count())
                .select_from(FlashSale)
                .where(FlashSale.session_id == session_id, FlashSale.status.in_(_HOLDING))
            )
            if (planned or 0) >= MAX_PLANNED:
                raise Conflict(
                    "too_many_flash_sales_planned",
                    f"a show holds at most {MAX_PLANNED} pending, scheduled or running sales",
                    max_planned=MAX_PLANNED,
                )
            flash = FlashSale(
                session_id=session_id,
                product_id=product.id,
                price_minor=body.price_minor,
                currency=product.currency,
                quantity=body.quantity,
                sold=0,
                per_buyer_limit=body.per_buyer_limit,
                starts_ms=starts,
                ends_ms=ends,
                status=status.value,
                created_ms=now,
            )
            tx.add(flash)
            await tx.flush()
            data = flash_dict(flash, now)
            if status is FlashStatus.PENDING:
                # Only the host (this answer) and the brand (its approvals) see it.
                return data
            row = self._outbox.add(tx, session_id, "flash.scheduled", data)
        await self._after_commit(product.id, row)
        return data

    async def cancel(self, host: Principal, session_id: int, flash_id: int) -> dict[str, Any]:
        """Cancel a scheduled (not yet running) sale, or one waiting for the brand's
        approval; a reservation it holds (a lead time before its start) returns to stock."""
        await self._sessions.owned(host, session_id)
        now = self._clock.now_ms()
        async with self._db.transaction() as tx:
            flash = await tx.get(FlashSale, flash_id)
            if flash is None or flash.session_id != session_id:
                raise NotFound("flash_sale_not_found", f"no flash sale {flash_id} here")
            moved = await tx.execute(
                update(FlashSale)
                .where(FlashSale.id == flash_id, FlashSale.status.in_(_CANCELLABLE))
                .values(status=FlashStatus.CANCELLED.value, closed_ms=now)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                raise Conflict(
                    "flash_sale_not_scheduled",
                    f"a {flash.status} flash sale cannot be cancelled",
                    status=flash.status,
                )
            await self._stock.release(tx, flash_id, flash.product_id)
            await tx.refresh(flash)
            data = flash_dict(flash, now)
            row = self._outbox.add(tx, session_id, "flash.cancelled", data)
        await self._after_commit(flash.product_id, row)
        return data

    async def list_for_session(
        self, session_id: int, page: Page, caller: Principal | None = None
    ) -> Listing[dict[str, Any]]:
        """A page of the session's sales by id, the order they were created in
        (``page`` is oldest first); 404 for an unknown session. Sales that waited for
        the brand (``pending_approval``, ``declined``) only for the session's host (or
        an admin)."""
        session = await self._sessions.get_row(session_id)
        now = self._clock.now_ms()
        query = select(FlashSale).where(FlashSale.session_id == session_id)
        if caller is None or (caller.user_id != session.host_id and caller.role is not Role.ADMIN):
            query = query.where(FlashSale.status.not_in(_HOSTS_ONLY))
        async with self._db.read() as s:
            rows = list(await s.scalars(page.select(query, FlashSale.id)))
        return page.cut(rows, lambda f: f.id, lambda f: flash_dict(f, now))

    async def _after_commit(self, product_id: int, row: OutboxEvent) -> None:
        # Published before answering, so the host's next action's event follows it.
        await self._relay.publish([row])
        self._publisher.changed(product_id)
        self._wake()


def _window(starts: int, ends: int, now: int) -> tuple[int, int]:
    if ends <= starts:
        raise Unprocessable("invalid_window", "ends_at must be after starts_at")
    if ends <= now:
        raise Unprocessable("window_in_past", "ends_at has already passed on the server clock")
    if ends - starts > MAX_WINDOW_MS:
        raise Unprocessable("window_too_long", "a flash sale lasts at most 24 hours")
    if starts - now > MAX_LEAD_MS:
        raise Unprocessable("window_too_far", "schedule flash sales at most 30 days ahead")
    return max(starts, now), ends


def _status_under_terms(
    coop: Cooperation | None, product: Product, body: FlashSaleBody
) -> FlashStatus:
    """The sale keeps to the agreement the product is on the shelf under: flash sales
    agreed at all, the price not under the brand's floor, the units within its cap.
    Outside the floor or cap it is refused, or, when the agreement says so, waits for
    the brand's approval (``pending_approval``)."""
    if coop is None or coop.flash_min_price_bps is None:
        raise Conflict(
            "flash_not_agreed", "the brand's agreement for this product allows no flash sales"
        )
    floor = flash_floor(product, coop)
    assert floor is not None
    refusal: Unprocessable | None = None
    if body.price_minor < floor:
        refusal = Unprocessable(
            "flash_price_below_floor",
            f"the brand agreed to flash prices of {floor} or more for this product",
            floor_minor=floor,
        )
    elif coop.flash_max_units is not None and body.quantity > coop.flash_max_units:
        refusal = Unprocessable(
            "flash_quantity_over_cap",
            f"the brand agreed to at most {coop.flash_max_units} units a flash sale",
            max_units=coop.flash_max_units,
        )
    if refusal is None:
        return FlashStatus.SCHEDULED
    if coop.flash_ask_brand:
        return FlashStatus.PENDING
    raise refusal


def flash_floor(product: Product, coop: Cooperation) -> int | None:
    """The lowest flash price the agreement allows for ``product`` (its share of the
    regular price, rounded up, never 0); None: the agreement allows no flash sales."""
    if coop.flash_min_price_bps is None:
        return None
    return max(1, -(-product.price_minor * coop.flash_min_price_bps // 10_000))
