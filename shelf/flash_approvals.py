"""The brand's answer to flash sales outside its agreed terms.

An agreement with ``flash_ask_brand`` turns a sale below the brand's price floor or
over its unit cap into a sale ``pending_approval`` (``shelf.flash``) instead of a
refusal. Viewers never see such a sale. The brand lists what waits for it and answers:

* ``approve``: ``pending_approval`` -> ``scheduled``, with the room event
  ``flash.scheduled`` (the host's studio and the viewers see it at once); the
  scheduler then reserves and starts it like any other (at once if its start passed
  while it waited). Refused with 409 ``flash_sale_expired`` when its window has
  already ended (the scheduler cancels it, reason ``not_approved``).
* ``decline``: ``pending_approval`` -> ``declined``, with the room event
  ``flash.declined`` (the host's studio shows it; viewers' pages ignore it).

Both are a compare-and-set on the status committed with the event, so two answers (or
an answer racing the host's cancel or the scheduler's expiry) never both happen: the
loser gets 409 ``flash_sale_not_pending`` with the status it found. Only the brand
that owns the product (or an admin) may answer: 403 ``not_your_product``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web
from sqlalchemy import select, update

from live.auth import Principal
from live.clock import Clock
from live.db import Database
from live.errors import Conflict, Forbidden, NotFound
from live.http import json_response, path_id, signed_in
from live.models import LiveSession, Role, User
from live.openapi import Answer, operation
from live.outbox import Outbox, OutboxRelay
from shelf.answers import FlashApprovalsAnswer, FlashSaleAnswer
from shelf.flash import flash_floor
from shelf.models import Cooperation, FlashSale, FlashStatus, Product, ShelfItem
from shelf.views import flash_dict

_PENDING = FlashStatus.PENDING.value
#: most sales one listing shows (a brand has at most this many waiting in practice:
#: each is one host's request for one show)
MAX_LISTED = 200


class FlashApprovals:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        outbox: Outbox,
        relay: OutboxRelay,
        wake_scheduler: Callable[[], None],
    ) -> None:
        self._db = db
        self._clock = clock
        self._outbox = outbox
        self._relay = relay
        self._wake = wake_scheduler

    async def waiting(self, caller: Principal, brand_id: int) -> list[dict[str, Any]]:
        """The sales of ``brand_id``'s products waiting for its answer, soonest first
        (at most ``MAX_LISTED``), each with what the brand needs to decide: the
        product, its regular price, the agreed floor and cap, the host and the show."""
        _check_brand(caller, brand_id)
        now = self._clock.now_ms()
        async with self._db.read() as s:
            rows = (
                await s.execute(
                    select(FlashSale, Product, Cooperation, LiveSession, User)
                    .join(Product, Product.id == FlashSale.product_id)
                    .join(
                        ShelfItem,
                        (ShelfItem.session_id == FlashSale.session_id)
                        & (ShelfItem.product_id == FlashSale.product_id),
                    )
                    .join(Cooperation, Cooperation.id == ShelfItem.cooperation_id)
                    .join(LiveSession, LiveSession.id == FlashSale.session_id)
                    .join(User, User.id == LiveSession.host_id)
                    .where(Product.brand_id == brand_id, FlashSale.status == _PENDING)
                    .order_by(FlashSale.starts_ms, FlashSale.id)
                    .limit(MAX_LISTED)
                )
            ).all()
        return [
            {
                **flash_dict(flash, now),
                "product": {
                    "id": product.id,
                    "title": product.title,
                    "price_minor": product.price_minor,
                    "currency": product.currency,
                },
                "terms": {
                    "cooperation_id": coop.id,
                    "floor_minor": flash_floor(product, coop),
                    "max_units": coop.flash_max_units,
                },
                "session": {"id": session.id, "title": session.title},
                "host": {"id": host.id, "display_name": host.display_name or host.username},
            }
            for flash, product, coop, session, host in rows
        ]

    async def approve(self, caller: Principal, flash_id: int) -> dict[str, Any]:
        return await self._answer(caller, flash_id, FlashStatus.SCHEDULED, "flash.scheduled")

    async def decline(self, caller: Principal, flash_id: int) -> dict[str, Any]:
        return await self._answer(caller, flash_id, FlashStatus.DECLINED, "flash.declined")

    async def _answer(
        self, caller: Principal, flash_id: int, target: FlashStatus, event: str
    ) -> dict[str, Any]:
        caller.require(Role.BRAND)
        now = self._clock.now_ms()
        async with self._db.transaction() as tx:
            flash = await tx.get(FlashSale, flash_id)
            product = None if flash is None else await tx.get(Product, flash.product_id)
            if flash is None or product is None:
                raise NotFound("flash_sale_not_found", f"no flash sale {flash_id}")
            _check_brand(caller, product.brand_id)
            if target is FlashStatus.SCHEDULED and flash.ends_ms <= now:
                raise Conflict(
                    "flash_sale_expired", "the sale's window has passed; the host may ask again"
                )
            values: dict[str, Any] = {"status": target.value, "decided_ms": now}
            values["decided_by"] = caller.user_id
            if target is FlashStatus.DECLINED:
                values["closed_ms"] = now
            moved = await tx.execute(
                update(FlashSale)
                .where(FlashSale.id == flash_id, FlashSale.status == _PENDING)
                .values(values)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                await tx.refresh(flash)
                raise Conflict(
                    "flash_sale_not_pending",
                    f"the sale is {flash.status}, not waiting for an answer",
                    status=flash.status,
                )
            await tx.refresh(flash)
            data = flash_dict(flash, now)
            row = self._outbox.add(tx, flash.session_id, event, data)
        await self._relay.publish([row])
        self._wake()
        return data


def _check_brand(caller: Principal, brand_id: int) -> None:
    caller.require(Role.BRAND)  # or an admin
    if caller.role is Role.BRAND and caller.user_id != brand_id:
        raise Forbidden("not_your_product", "these are another brand's products")


class FlashApprovalHandlers:
    """``GET /api/brands/{id}/flash-approvals`` (the brand, or an admin),
    ``POST /api/flash-sales/{id}/approve`` and ``/decline`` (the product's brand)."""

    def __init__(self, approvals: FlashApprovals) -> None:
        self._approvals = approvals

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/brands/{id}/flash-approvals", self.waiting),
            web.post("/api/flash-sales/{id}/approve", self.approve),
            web.post("/api/flash-sales/{id}/decline", self.decline),
        ]

    @operation(
        "Flash sales waiting for the brand",
        tag="flash sales",
        roles=("brand",),
        answers=Answer(200, FlashApprovalsAnswer),
    )
    async def waiting(self, request: web.Request) -> web.Response:
        """The sales of the brand's products waiting for its answer, soonest first (at
        most 200), each with its product, the agreed terms, the host and the show."""
        sales = await self._approvals.waiting(signed_in(request), path_id(request))
        return json_response({"flash_sales": sales})

    @operation(
        "Approve a flash sale",
        tag="flash sales",
        roles=("brand",),
        answers=Answer(200, FlashSaleAnswer),
        errors=(409,),
    )
    async def approve(self, request: web.Request) -> web.Response:
        """The product's brand: the sale becomes ``scheduled`` (409
        ``flash_sale_expired`` once its window has ended, ``flash_sale_not_pending``
        when it no longer waits)."""
        return json_response(await self._approvals.approve(signed_in(request), path_id(request)))

    @operation(
        "Decline a flash sale",
        tag="flash sales",
        roles=("brand",),
        answers=Answer(200, FlashSaleAnswer),
        errors=(409,),
    )
    async def decline(self, request: web.Request) -> web.Response:
        """The product's brand: the sale becomes ``declined`` (409
        ``flash_sale_not_pending`` when it no longer waits)."""
        return json_response(await self._approvals.decline(signed_in(request), path_id(request)))
