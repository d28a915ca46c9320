"""The JSON shapes of deals: a deal, one of its steps, its receipt."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from live.clock import iso
from live.ledger import Balance
from live.ledger_models import LedgerEntry
from market.deal_models import Deal, DealEvent

_STEPS = (
    "offered",
    "expires",
    "accepted",
    "scheduled",
    "delivered",
    "review_ends",
    "approved",
    "disputed",
    "resolved",
    "settled",
    "closed",
)


def deal_dict(deal: Deal) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": deal.id,
        "state": deal.state,
        "brand_id": deal.brand_id,
        "host_id": deal.host_id,
        "agency_id": deal.agency_id,
        "ordered_by": deal.ordered_by,
        "card_version": deal.card_version,
        "service_id": deal.service_id,
        "kind": deal.kind,
        "minutes": deal.minutes,
        "price_minor": deal.price_minor,
        "currency": deal.currency,
        "platform_fee_bps": deal.platform_fee_bps,
        "agency_share_bps": deal.agency_share_bps,
        "session_id": deal.session_id,
        "product_id": deal.product_id,
        "dispute_reason": deal.dispute_reason,
        "resolution_host_bps": deal.resolution_host_bps,
        "seq": deal.seq,
    }
    for step in _STEPS:
        body[f"{step}_at"] = iso(getattr(deal, f"{step}_ms"))
    return body


def event_dict(event: DealEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "action": event.action,
        "from": event.from_state,
        "to": event.to_state,
        "party": event.party,
        "actor_id": event.actor_id,
        "at": iso(event.at_ms),
        "detail": json.loads(event.detail) if event.detail else None,
    }


def receipt_dict(
    deal: Deal, lines: Iterable[LedgerEntry], balances: Iterable[Balance]
) -> dict[str, Any]:
    """The deal, every ledger line posted for it (oldest first) and what each account
    holds of it now."""
    return {
        "deal": deal_dict(deal),
        "lines": [
            {
                "txn": line.txn,
                "kind": line.kind,
                "account": line.account,
                "amount_minor": line.amount_minor,
                "currency": line.currency,
                "agency_id": line.agency_id,
                "at": iso(line.created_ms),
                "payable_at": iso(line.available_ms),
            }
            for line in lines
        ],
        "balances": [
            {
                "account": b.account,
                "currency": b.currency,
                "pending_minor": b.pending_minor,
                "payable_minor": b.payable_minor,
            }
            for b in balances
        ],
    }
