"""What an offer names and how it is checked (``Deals.offer``): the orderer, the
host's current card and the service on it, the same terms again for the same key."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from live.auth import Principal
from live.db import Database
from live.errors import Conflict, Forbidden, NotFound, Unprocessable
from live.models import Role, User
from market.deal_models import Deal
from market.deal_protocol import BrandAgents
from market.models import RateCardHead, RateCardService, ServiceKind


@dataclass(frozen=True, slots=True)
class OfferTerms:
    host_id: int
    card_version: int
    service_id: int
    #: the brand ordered for; None: the caller (a brand)
    brand_id: int | None = None


def booked_minutes(service: RateCardService) -> int:
    """The pinned minutes that deliver ``service``: a live segment's, a shelf slot 1."""
    return service.minutes if service.minutes is not None else 1


async def check_orderer(
    db: Database, agents: BrandAgents, caller: Principal, terms: OfferTerms
) -> int:
    """The brand the deal is for: the caller, or the brand an agency (or an admin)
    names; 403 for anyone else."""
    if caller.role is Role.BRAND:
        if terms.brand_id not in (None, caller.user_id):
            raise Forbidden("not_your_brand", "a brand orders only for itself")
        return caller.user_id
    if caller.role not in (Role.AGENCY, Role.ADMIN):
        raise Forbidden("role_not_allowed", "a brand (or an agency for it) orders deals")
    if terms.brand_id is None:
        raise Unprocessable("brand_required", "name the brand the deal is for (brand_id)")
    async with db.read() as s:
        brand = await s.get(User, terms.brand_id)
    if brand is None or brand.role != Role.BRAND.value:
        raise NotFound("brand_not_found", f"no brand {terms.brand_id}")
    if caller.role is Role.AGENCY and not await agents.acts_for_brand(
        caller.user_id, terms.brand_id
    ):
        raise Forbidden("not_your_brand", "this agency does not order for that brand")
    return terms.brand_id


async def card_service(tx: AsyncSession, terms: OfferTerms) -> RateCardService:
    """The service ``terms`` name, on the host's current card; 404/409/422 if not."""
    host = await tx.get(User, terms.host_id)
    if host is None or host.role != Role.HOST.value:
        raise NotFound("host_not_found", f"no host {terms.host_id}")
    head = await tx.get(RateCardHead, terms.host_id)
    if head is None:
        raise NotFound("rate_card_not_found", f"host {terms.host_id} has no rate card")
    if head.version != terms.card_version:
        raise Conflict(
            "stale_card",
            f"the host's card is at version {head.version}, not {terms.card_version}",
            current_version=head.version,
        )
    service = await tx.get(RateCardService, terms.service_id)
    if service is None or (service.host_id, service.version) != (
        terms.host_id,
        terms.card_version,
    ):
        raise Unprocessable(
            "service_not_on_card",
            f"service {terms.service_id} is not on version {terms.card_version} "
            f"of host {terms.host_id}'s card",
        )
    if service.kind == ServiceKind.NOTE.value:
        raise Unprocessable("notes_unavailable", "notes cannot be ordered yet")
    return service


def same_terms(deal: Deal, terms: OfferTerms, brand_id: int) -> Deal:
    """``deal``, made before with the key of an offer of ``terms``; 422 if the terms
    differ."""
    if (deal.host_id, deal.card_version, deal.service_id, deal.brand_id) != (
        terms.host_id,
        terms.card_version,
        terms.service_id,
        brand_id,
    ):
        raise Unprocessable(
            "idempotency_key_reused", "this key was used for another offer", deal_id=deal.id
        )
    return deal
