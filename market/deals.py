"""``Deals``: brands order a host's rate card services, paid into escrow; the deal goes
through the steps of ``market.deal_rules`` and its money through ``market.deal_money``.

* An offer names the host, the card version and the service (the host's current
  card; 409 ``stale_card`` for an older one, 422 ``service_not_on_card`` for a service
  of another card). Its price, minutes, the published fee and the share of the agency
  managing the host *now* are copied onto the deal; the brand pays at once (escrow).
* Every step is one database transaction: the deal moves by a compare-and-set on
  ``(state, seq)``, the step is kept as a ``DealEvent`` (who, when, from, to, what it
  said) and its money posted with ``post_once``. A step that lost to a concurrent one
  changes nothing and gets 409 ``illegal_transition``.
* Idempotency: an offer's ``Idempotency-Key`` is unique per orderer (the same key
  returns the same deal; with other terms 422 ``idempotency_key_reused``); a step's is
  unique per deal (the same key repeats the answer, after the step as before it). So
  a retried request moves money once, even with many retries at the same moment.
* Who: the brand's side (the brand, or an agency ordering for it: ``BrandAgents``)
  offers, withdraws, approves and disputes; the host's (the host, or the agency it
  names now: ``AgencyOf``) accepts, declines, schedules, reports delivery and cancels
  (a cancel by the host's side is a strike: ``DealStrike``); an admin cancels and
  resolves disputes; the clock (``market.deal_timers``, ``caller=None``) expires,
  auto-approves and reports delivery. Others: 403 ``not_your_deal`` /
  ``not_your_step``.
* Delivery: the session the deal was scheduled on had the product pinned for the
  booked minutes (``PinMinutes``), else 409 ``not_delivered``. A live segment books
  its card's minutes; a shelf slot one minute.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from live.auth import Principal
from live.clock import Clock
from live.db import Database, upsert
from live.errors import Conflict, Forbidden, NotFound, Unprocessable
from live.ledger import balances, lines_of
from live.models import LiveSession, Role, SessionStatus
from market.deal_models import Deal, DealEvent, DealState, DealStrike
from market.deal_money import AGENCY_SHARE_BPS, BPS, PLATFORM_FEE_BPS, DealMoney, deal_ref
from market.deal_offers import OfferTerms, booked_minutes, card_service, check_orderer, same_terms
from market.deal_protocol import BrandAgents, NoBrandAgents, PinMinutes, ProductBrands
from market.deal_rules import (
    OFFER_WINDOW_MS,
    REFUNDED,
    REVIEW_WINDOW_MS,
    Action,
    Party,
    transition,
)
from market.deal_views import deal_dict, event_dict, receipt_dict
from market.protocol import AgencyOf


@dataclass(frozen=True, slots=True)
class StepInput:
    """What a step says besides its action (each step reads its own)."""

    session_id: int | None = None
    product_id: int | None = None
    reason: str | None = None
    host_bps: int | None = None


class Deals:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        money: DealMoney,
        agencies: AgencyOf,
        pins: PinMinutes,
        products: ProductBrands,
        brand_agents: BrandAgents | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._money = money
        self._agencies = agencies
        self._pins = pins
        self._products = products
        self._brand_agents = brand_agents or NoBrandAgents()

    # -- the offer -------------------------------------------------------------------

    async def offer(
        self, caller: Principal, terms: OfferTerms, key: str
    ) -> tuple[dict[str, Any], bool]:
        """The deal ``key`` names for ``caller``: made and paid now (True), or made
        before with the same key (False)."""
        brand_id = await check_orderer(self._db, self._brand_agents, caller, terms)
        agency_id = await self._agencies.agency_id_of(terms.host_id)
        now = self._clock.now_ms()
        async with self._db.transaction() as tx:
            earlier = await self._by_key(tx, caller.user_id, key)
            if earlier is not None:
                return deal_dict(same_terms(earlier, terms, brand_id)), False
            service = await card_service(tx, terms)
            row = {
                "brand_id": brand_id,
                "host_id": terms.host_id,
                "agency_id": agency_id,
                "ordered_by": caller.user_id,
                "idempotency_key": key,
                "card_version": terms.card_version,
                "service_id": service.id,
                "kind": service.kind,
                "minutes": booked_minutes(service),
                "price_minor": service.price_minor,
                "currency": service.currency,
                "platform_fee_bps": PLATFORM_FEE_BPS,
                "agency_share_bps": AGENCY_SHARE_BPS if agency_id is not None else 0,
                "state": DealState.OFFERED.value,
                "seq": 1,
                "offered_ms": now,
                "expires_ms": now + OFFER_WINDOW_MS,
            }
            # A concurrent retry with the same key waits here for the first one's
            # commit, inserts nothing and reads the deal it made.
            stmt = (
                upsert(tx, Deal)
                .values(row)
                .on_conflict_do_nothing(index_elements=["ordered_by", "idempotency_key"])
            )
            made = await tx.scalar(stmt.returning(Deal.id))
            if made is None:
                earlier = await self._by_key(tx, caller.user_id, key)
                assert earlier is not None
                return deal_dict(same_terms(earlier, terms, brand_id)), False
            deal = await tx.get_one(Deal, made)
            party = Party.ADMIN if caller.role is Role.ADMIN else Party.BRAND
            self._record(tx, deal, Action.OFFER, None, party, caller, key, now, None)
            await self._money.escrow(tx, deal, now)
            return deal_dict(deal), True

    async def _by_key(self, tx: AsyncSession, ordered_by: int, key: str) -> Deal | None:
        return await tx.scalar(
            select(Deal).where(Deal.ordered_by == ordered_by, Deal.idempotency_key == key)
        )

    # -- the steps -------------------------------------------------------------------

    async def act(
        self,
        caller: Principal | None,
        deal_id: int,
        action: Action,
        key: str | None = None,
        step: StepInput = StepInput(),
    ) -> dict[str, Any]:
        """Take step ``action`` of deal ``deal_id`` as ``caller`` (None: the clock);
        the deal as it is after it."""
        async with self._db.transaction() as tx:
            deal = await self._get(tx, deal_id)
            parties = await self._parties(caller, deal)
            if key is not None and await self._replayed(tx, deal, action, key):
                return deal_dict(deal)
            state = DealState(deal.state)
            to, allowed = transition(state, action)
            party = _pick(parties, allowed, action)
            now = self._clock.now_ms()
            changes = await self._check_step(tx, deal, action, step, now)
            changes.update(_stamps(to, now))
            detail = {k: v for k, v in asdict(step).items() if v is not None} or None
            if not await self._move(tx, deal, state, to, changes):
                if key is not None and await self._replayed(tx, deal, action, key):
                    return deal_dict(deal)
                raise Conflict(
                    "illegal_transition",
                    f"the deal became {deal.state} meanwhile",
                    state=deal.state,
                    action=action.value,
                )
            self._record(tx, deal, action, state, party, caller, key, now, detail)
            await self._pay(tx, deal, to, now)
            if action is Action.CANCEL and party is Party.HOST:
                assert caller is not None
                tx.add(
                    DealStrike(
                        deal_id=deal.id, host_id=deal.host_id, actor_id=caller.user_id, at_ms=now
                    )
                )
            if to is DealState.APPROVED:
                # settled at once, as its own step
                await self._move(tx, deal, to, DealState.SETTLED, {"settled_ms": now})
                self._record(tx, deal, Action.SETTLE, to, Party.SYSTEM, None, None, now, None)
                await self._money.settle(tx, deal, now)
            return deal_dict(deal)

    async def _check_step(
        self, tx: AsyncSession, deal: Deal, action: Action, step: StepInput, now: int
    ) -> dict[str, Any]:
        """The step's own conditions (409/422 when unmet); the columns it sets."""
        if action is Action.ACCEPT and now > deal.expires_ms:
            raise Conflict("offer_expired", "the offer expired: nothing can be accepted")
        if action is Action.EXPIRE and now <= deal.expires_ms:
            raise Conflict("not_due", "the offer has not expired yet")
        if action is Action.AUTO_APPROVE and now <= (deal.review_ends_ms or 0):
            raise Conflict("not_due", "the review window is still open")
        if action is Action.SCHEDULE:
            return await self._check_schedule(tx, deal, step)
        if action is Action.DELIVER:
            assert deal.session_id is not None and deal.product_id is not None
            pinned = await self._pins.pinned_minutes(deal.session_id, deal.product_id)
            if pinned < deal.minutes:
                raise Conflict(
                    "not_delivered",
                    f"the product was pinned {pinned} of the {deal.minutes} minutes booked",
                    pinned_minutes=pinned,
                    booked_minutes=deal.minutes,
                )
        if action is Action.DISPUTE:
            if not step.reason or not step.reason.strip():
                raise Unprocessable("reason_required", "a dispute states its reason")
            if now > (deal.review_ends_ms or 0):
                raise Conflict("review_over", "the review window has closed")
            return {"dispute_reason": step.reason.strip()[:500]}
        if action is Action.RESOLVE:
            if step.host_bps is None or not 0 <= step.host_bps <= BPS:
                raise Unprocessable(
                    "split_required", "a resolution gives the host 0 to 10000 bps (host_bps)"
                )
            return {"resolution_host_bps": step.host_bps}
        return {}

    async def _check_schedule(
        self, tx: AsyncSession, deal: Deal, step: StepInput
    ) -> dict[str, Any]:
        if step.session_id is None or step.product_id is None:
            raise Unprocessable(
                "session_required", "a deal is scheduled on a session, with a product"
            )
        session = await tx.get(LiveSession, step.session_id)
        if session is None or session.host_id != deal.host_id:
            raise Unprocessable("not_the_hosts_session", "the session is not the host's")
        if session.status == SessionStatus.ENDED.value:
            raise Conflict("session_ended", "the session has ended")
        if await self._products.brand_of(step.product_id) != deal.brand_id:
            raise Unprocessable("not_the_brands_product", "the product is not the brand's")
        return {"session_id": step.session_id, "product_id": step.product_id}

    async def _move(
        self,
        tx: AsyncSession,
        deal: Deal,
        state: DealState,
        to: DealState,
        changes: dict[str, Any],
    ) -> bool:
        """Compare-and-set: ``deal`` from ``state`` (as read) to ``to``. False when a
        concurrent step moved it first (``deal`` then holds what it became)."""
        values = {**changes, "state": to.value, "seq": deal.seq + 1}
        result = await tx.execute(
            update(Deal)
            .where(Deal.id == deal.id, Deal.state == state.value, Deal.seq == deal.seq)
            .values(values)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], result).rowcount != 1:
            await tx.refresh(deal)
            return False
        for name, value in values.items():
            set_committed_value(deal, name, value)  # written already: not dirty
        return True

    async def _pay(self, tx: AsyncSession, deal: Deal, to: DealState, now: int) -> None:
        if to in REFUNDED:
            await self._money.refund(tx, deal, now)
        elif to is DealState.RESOLVED:
            assert deal.resolution_host_bps is not None
            await self._money.resolve(tx, deal, deal.resolution_host_bps, now)

    def _record(
        self,
        tx: AsyncSession,
        deal: Deal,
        action: Action,
        state: DealState | None,
        party: Party,
        caller: Principal | None,
        key: str | None,
        now: int,
        detail: dict[str, Any] | None,
    ) -> None:
        """Keep the step that made ``deal`` what it is (its ``seq``)."""
        tx.add(
            DealEvent(
                deal_id=deal.id,
                seq=deal.seq,
                action=action.value,
                from_state=state.value if state else None,
                to_state=deal.state,
                party=party.value,
                actor_id=caller.user_id if caller else None,
                at_ms=now,
                idempotency_key=key,
                detail=json.dumps(detail) if detail else None,
            )
        )

    async def _replayed(self, tx: AsyncSession, deal: Deal, action: Action, key: str) -> bool:
        """Whether ``key`` named a step of ``deal`` before: the same action (answer it
        again), or another (422)."""
        event = await tx.scalar(
            select(DealEvent).where(DealEvent.deal_id == deal.id, DealEvent.idempotency_key == key)
        )
        if event is None:
            return False
        if event.action != action.value:
            raise Unprocessable(
                "idempotency_key_reused", f"this key was used to {event.action} this deal"
            )
        return True

    # -- who -------------------------------------------------------------------------

    async def _parties(self, caller: Principal | None, deal: Deal) -> frozenset[Party]:
        """The sides ``caller`` stands on in ``deal``; 403 ``not_your_deal`` if none."""
        if caller is None:
            return frozenset({Party.CLOCK})
        if caller.role is Role.ADMIN:
            return frozenset({Party.ADMIN})
        found: set[Party] = set()
        if caller.role is Role.BRAND and caller.user_id == deal.brand_id:
            found.add(Party.BRAND)
        elif caller.role is Role.HOST and caller.user_id == deal.host_id:
            found.add(Party.HOST)
        elif caller.role is Role.AGENCY:
            if await self._agencies.agency_id_of(deal.host_id) == caller.user_id:
                found.add(Party.HOST)
            if await self._brand_agents.acts_for_brand(caller.user_id, deal.brand_id):
                found.add(Party.BRAND)
        if not found:
            raise Forbidden("not_your_deal", "this deal is not yours")
        return frozenset(found)

    # -- reading ---------------------------------------------------------------------

    async def get(self, caller: Principal, deal_id: int) -> dict[str, Any]:
        async with self._db.read() as s:
            deal = await self._get(s, deal_id)
        await self._parties(caller, deal)
        return deal_dict(deal)

    async def history(self, caller: Principal, deal_id: int) -> list[dict[str, Any]]:
        """Every step of the deal, oldest first (who may read: as ``get``)."""
        async with self._db.read() as s:
            deal = await self._get(s, deal_id)
            await self._parties(caller, deal)
            rows = await s.scalars(
                select(DealEvent).where(DealEvent.deal_id == deal_id).order_by(DealEvent.seq)
            )
            return [event_dict(e) for e in rows]

    async def receipt(self, caller: Principal, deal_id: int) -> dict[str, Any]:
        """The deal and its money: every line posted for it, and its balances now."""
        async with self._db.read() as s:
            deal = await self._get(s, deal_id)
            await self._parties(caller, deal)
            lines = []
            for step in ("escrow", "refund", "settle", "resolve"):
                lines.extend(await lines_of(s, f"deal:{deal_id}:{step}"))
            held = await balances(s, deal_ref(deal_id), self._clock.now_ms())
            return receipt_dict(deal, sorted(lines, key=lambda x: x.id), held)

    async def _get(self, s: AsyncSession, deal_id: int) -> Deal:
        deal = await s.get(Deal, deal_id)
        if deal is None:
            raise NotFound("deal_not_found", f"no deal {deal_id}")
        return deal


def _pick(parties: frozenset[Party], allowed: frozenset[Party], action: Action) -> Party:
    """The side the caller takes ``action`` for; 403 if none of its sides may."""
    for party in Party:
        if party in parties and party in allowed:
            return party
    sides = " or ".join(sorted(allowed))
    raise Forbidden("not_your_step", f"only the {sides} may {action.replace('_', ' ')} a deal")


def _stamps(to: DealState, now: int) -> dict[str, Any]:
    """The timestamps reaching ``to`` sets."""
    if to in REFUNDED:
        return {"closed_ms": now}
    if to is DealState.DELIVERED:
        return {"delivered_ms": now, "review_ends_ms": now + REVIEW_WINDOW_MS}
    return {f"{to.value}_ms": now}
