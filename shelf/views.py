"""The JSON shapes of the shelf: what the API returns and what room events carry.

One function per shape, used by both the HTTP answers and the room events, so the
``hello`` snapshot and a replay of the events always agree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from live.auth import Principal
from live.clock import iso
from live.models import Role
from shelf.models import Cooperation, FlashSale, FlashStatus, Pin, Product


def stock_figures(p: Product, held: Iterable[FlashSale] = ()) -> dict[str, Any]:
    """The product's units told apart, the one reckoning every page shows.

    ``held``: the flash sales that hold units of it (running, or scheduled and already
    reserved a lead time before their start; others are skipped). ``regular`` sells at
    the regular price (``Product.stock``); ``flash`` is what running sales have left,
    at ``flash_price_minor``; ``reserved`` is held by scheduled sales about to start;
    ``flash_running``: a sale runs (its units, even none left, are what sells in its
    show). ``flash_price_minor`` is the running sale's price, else the reserved one's
    (the lowest of several), null when no sale holds units."""
    flash = reserved = 0
    running_price: int | None = None
    reserved_price: int | None = None
    running = False
    for f in held:
        left = f.quantity - f.sold
        if f.status == FlashStatus.RUNNING.value:
            running = True
            flash += left
            running_price = _lowest(running_price, f.price_minor)
        elif f.status == FlashStatus.SCHEDULED.value and f.reserved_ms is not None:
            reserved += left
            reserved_price = _lowest(reserved_price, f.price_minor)
    return {
        "regular": p.stock,
        "flash": flash,
        "reserved": reserved,
        "flash_price_minor": running_price if running_price is not None else reserved_price,
        "flash_running": running,
    }


def _lowest(a: int | None, b: int) -> int:
    return b if a is None else min(a, b)


def product_dict(
    p: Product, *, commission: bool = True, held: Iterable[FlashSale] = ()
) -> dict[str, Any]:
    """A product as its brand (and anyone browsing the catalogue) sees it; the offered
    commission only with ``commission`` (for those who may agree to it). ``held``: the
    product's flash sales holding units, in every show (``stock_figures``)."""
    data = {
        "id": p.id,
        "brand_id": p.brand_id,
        "title": p.title,
        "description": p.description,
        "image_url": p.image_url,
        "price_minor": p.price_minor,
        "currency": p.currency,
        "stock": p.stock,
        "stock_version": p.stock_version,
        "stock_figures": stock_figures(p, held),
        "commission_bps": p.commission_bps,
        "archived": p.archived_ms is not None,
        "archived_at": iso(p.archived_ms),
        "created_at": iso(p.created_ms),
        "updated_at": iso(p.updated_ms),
    }
    if not commission:
        del data["commission_bps"]
    return data


def sees_commission(caller: Principal | None) -> bool:
    """Whether ``caller`` may see the commissions brands offer: a party to such
    agreements (a brand, a host, an agency, an admin), not a buyer or a guest."""
    return caller is not None and caller.role in (Role.BRAND, Role.HOST, Role.AGENCY, Role.ADMIN)


def shelf_item_dict(p: Product) -> dict[str, Any]:
    """A product on a live shelf, as viewers see it (no commission, no stock: stock
    travels separately in ``stock`` / ``stock.changed``)."""
    return {
        "product_id": p.id,
        "brand_id": p.brand_id,
        "title": p.title,
        "image_url": p.image_url,
        "price_minor": p.price_minor,
        "currency": p.currency,
    }


def flash_dict(f: FlashSale, now_ms: int) -> dict[str, Any]:
    """A flash sale; ``server_time`` lets clients count down on the server's clock."""
    return {
        "id": f.id,
        "session_id": f.session_id,
        "product_id": f.product_id,
        "price_minor": f.price_minor,
        "currency": f.currency,
        "quantity": f.quantity,
        "sold": f.sold,
        "remaining": f.quantity - f.sold,
        "per_buyer_limit": f.per_buyer_limit,
        "status": f.status,
        #: whether the units are out of stock and held by the sale (from its start, or
        #: a short lead time before)
        "reserved": f.reserved_ms is not None,
        "cancel_reason": f.cancel_reason,
        "starts_ms": f.starts_ms,
        "ends_ms": f.ends_ms,
        "starts_at": iso(f.starts_ms),
        "ends_at": iso(f.ends_ms),
        "server_time": now_ms,
    }


def stock_entry(
    p: Product, flash: FlashSale | None, held: Iterable[FlashSale] = ()
) -> dict[str, Any]:
    """``stock.changed`` data, and one value of the snapshot's ``stock`` map.

    ``stock`` is what can be bought at the regular price; ``flash`` the running flash
    sale's units left in this session; ``stock_figures`` the units told apart in this
    session (``held``: its sales holding units of the product, the running one
    included); ``version`` grows with every change, so a client keeps the entry with
    the highest version.
    """
    return {
        "product_id": p.id,
        "stock": p.stock,
        "version": p.stock_version,
        "flash": None
        if flash is None
        else {"id": flash.id, "remaining": flash.quantity - flash.sold},
        "stock_figures": stock_figures(p, held),
    }


def card_dict(pin: Pin, p: Product, flash: FlashSale | None) -> dict[str, Any]:
    """The product card of ``card.shown`` and the snapshot's ``pinned``."""
    return {
        "pin_id": pin.id,
        "product_id": p.id,
        "title": p.title,
        "image_url": p.image_url,
        "price_minor": p.price_minor,
        "currency": p.currency,
        "flash": None
        if flash is None
        else {
            "id": flash.id,
            "price_minor": flash.price_minor,
            "remaining": flash.quantity - flash.sold,
            "ends_ms": flash.ends_ms,
        },
        "stock": p.stock,
        "pinned_at": iso(pin.start_ms),
    }


def pin_dict(pin: Pin) -> dict[str, Any]:
    return {
        "id": pin.id,
        "session_id": pin.session_id,
        "product_id": pin.product_id,
        "start_ms": pin.start_ms,
        "end_ms": pin.end_ms,
        "media_start_s": pin.media_start_s,
        "media_end_s": pin.media_end_s,
    }


def cooperation_dict(c: Cooperation, product_ids: list[int]) -> dict[str, Any]:
    return {
        "id": c.id,
        "brand_id": c.brand_id,
        "host_id": c.host_id,
        "product_ids": sorted(product_ids),
        "commission_bps": c.commission_bps,
        "flat_fee_minor": c.flat_fee_minor,
        "flat_fee_currency": c.flat_fee_currency,
        "note": c.note,
        "flash_min_price_bps": c.flash_min_price_bps,
        "flash_max_units": c.flash_max_units,
        "flash_ask_brand": c.flash_ask_brand,
        "status": c.status,
        "created_at": iso(c.created_ms),
        "decided_at": iso(c.decided_ms),
        "decided_by": c.decided_by,
        "ended_at": iso(c.ended_ms),
        "turn": c.turn,
        "round": c.round,
    }
