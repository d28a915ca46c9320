"""Deals' state machine (``market.deals``, ``market.deal_rules``) on both backends with
a scripted clock: every allowed step taken and audited, every other refused with 409,
the wrong party with 403, the 72 h timers to the second, idempotent offers and steps
(also 50 retries at once)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from deal_support import HOUR, PRODUCT, SECOND, World, make_world
from sqlalchemy import select
from support import database_at, migrate

from live.errors import Conflict, Forbidden, Unprocessable
from live.settings import Settings
from market.deal_models import DealState, DealStrike
from market.deal_offers import OfferTerms
from market.deal_rules import TRANSITIONS, Action

S = DealState


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    made = await make_world(settings)
    yield made
    await made.db.dispose()


async def in_state(world: World, state: DealState) -> int:
    """A deal of 10 000 brought to ``state`` by its ordinary steps."""
    if state is S.DELIVERED or state is S.DISPUTED or state is S.RESOLVED:
        deal = await world.delivered(10_000)
        if state is not S.DELIVERED:
            await world.act(world.brand, deal["id"], "dispute", reason="not pinned enough")
        if state is S.RESOLVED:
            await world.act(world.admin, deal["id"], "resolve", host_bps=5000)
        return int(deal["id"])
    if state is S.SETTLED:
        deal = await world.delivered(10_000)
        await world.act(world.brand, deal["id"], "approve")
        return int(deal["id"])
    deal_id = int((await world.offer(10_000))["id"])
    if state is S.EXPIRED:
        world.clock.advance(72 * HOUR + 1)
        await world.act(None, deal_id, "expire")
        world.clock.advance(-(72 * HOUR + 1))
    steps = {
        S.ACCEPTED: [(world.host, "accept")],
        S.DECLINED: [(world.host, "decline")],
        S.WITHDRAWN: [(world.brand, "withdraw")],
        S.SCHEDULED: [(world.host, "accept")],
        S.CANCELLED: [(world.host, "accept"), (world.host, "cancel")],
    }
    for who, action in steps.get(state, []):
        await world.act(who, deal_id, action)
    if state is S.SCHEDULED:
        await world.schedule(deal_id)
    return deal_id


async def test_every_allowed_step_is_taken_and_audited(world: World) -> None:
    brand, host, admin = world.brand, world.host, world.admin
    # the whole way: offered -> accepted -> scheduled -> delivered -> approved -> settled
    deal = await world.offer(10_000)
    assert (deal["state"], deal["seq"], deal["price_minor"], deal["minutes"]) == (
        "offered",
        1,
        10_000,
        10,
    )
    assert deal["expires_at"] == "2025-11-27T16:00:00.000Z"
    deal_id = deal["id"]
    assert (await world.act(host, deal_id, "accept"))["state"] == "accepted"
    scheduled = await world.schedule(deal_id)
    assert (scheduled["state"], scheduled["session_id"], scheduled["product_id"]) == (
        "scheduled",
        world.session_id,
        PRODUCT,
    )
    world.pins.minutes[(world.session_id, PRODUCT)] = 10
    world.clock.advance(SECOND)
    delivered = await world.act(host, deal_id, "deliver")
    assert delivered["state"] == "delivered"
    assert delivered["review_ends_at"] == "2025-11-27T16:00:01.000Z"
    settled = await world.act(brand, deal_id, "approve")
    assert (settled["state"], settled["seq"]) == ("settled", 6)
    steps = [
        (e.seq, e.action, e.from_state, e.to_state, e.party, e.actor_id)
        for e in await world.events(deal_id)
    ]
    assert steps == [
        (1, "offer", None, "offered", "brand", brand.user_id),
        (2, "accept", "offered", "accepted", "host", host.user_id),
        (3, "schedule", "accepted", "scheduled", "host", host.user_id),
        (4, "deliver", "scheduled", "delivered", "host", host.user_id),
        (5, "approve", "delivered", "approved", "brand", brand.user_id),
        (6, "settle", "approved", "settled", "system", None),
    ]
    assert [e.at_ms for e in await world.events(deal_id)][-1] == world.clock.now_ms()

    # the other ways out of each state
    ends = {
        S.DECLINED: (S.OFFERED, host, "decline"),
        S.WITHDRAWN: (S.OFFERED, brand, "withdraw"),
        S.CANCELLED: (S.ACCEPTED, host, "cancel"),
        S.DISPUTED: (S.DELIVERED, brand, "dispute"),
    }
    for end, (start, who, action) in ends.items():
        deal_id = await in_state(world, start)
        extra = {"reason": "the product was never shown"} if action == "dispute" else {}
        assert (await world.act(who, deal_id, action, **extra))["state"] == end
        last = (await world.events(deal_id))[-1]
        assert (last.from_state, last.to_state, last.actor_id) == (start, end, who.user_id)
    deal_id = await in_state(world, S.SCHEDULED)
    assert (await world.act(admin, deal_id, "cancel"))["state"] == "cancelled"
    deal_id = await in_state(world, S.DISPUTED)
    resolved = await world.act(admin, deal_id, "resolve", host_bps=3000)
    assert (resolved["state"], resolved["resolution_host_bps"]) == ("resolved", 3000)
    last = (await world.events(deal_id))[-1]
    assert (last.party, last.detail) == ("admin", '{"host_bps": 3000}')
    dispute = (await world.events(deal_id))[-2]
    assert dispute.detail == '{"reason": "not pinned enough"}'


#: every state a deal can rest in (``approved`` moves on to ``settled`` at once)
RESTING = [s for s in S if s is not S.APPROVED]


@pytest.mark.parametrize("state", RESTING, ids=str)
async def test_every_other_step_is_refused_with_409(world: World, state: DealState) -> None:
    deal_id = await in_state(world, state)
    before = (await world.deals.get(world.admin, deal_id), await world.line_count(deal_id))
    refused = [a for a in Action if a is not Action.OFFER and (state, a) not in TRANSITIONS]
    assert refused
    for action in refused:
        # whoever asks: the admin, the clock, the deal's own parties
        for who in (world.admin, None, world.brand, world.host):
            with pytest.raises(Conflict) as caught:
                await world.act(who, deal_id, action.value)
            assert caught.value.code == "illegal_transition", (action, who)
    after = (await world.deals.get(world.admin, deal_id), await world.line_count(deal_id))
    assert after == before


async def test_the_wrong_party_is_refused_with_403(world: World) -> None:
    deal_id = (await world.offer(10_000))["id"]
    stranger_host = await world.user(world.host.role)
    cases = [
        (world.brand, "accept", "not_your_step"),
        (world.host, "withdraw", "not_your_step"),
        (world.admin, "accept", "not_your_step"),
        (None, "accept", "not_your_step"),
        (stranger_host, "accept", "not_your_deal"),
        (world.agency, "accept", "not_your_deal"),  # the host has named no agency
    ]
    for who, action, code in cases:
        with pytest.raises(Forbidden) as caught:
            await world.act(who, deal_id, action)
        assert caught.value.code == code, (who, action)
    # the agency the host names acts for it, and that is recorded
    world.agencies.of[world.host.user_id] = world.agency.user_id
    assert (await world.act(world.agency, deal_id, "accept"))["state"] == "accepted"
    last = (await world.events(deal_id))[-1]
    assert (last.party, last.actor_id) == ("host", world.agency.user_id)
    # a brand's agency only when the brand has one: then it orders for the brand
    terms = OfferTerms(world.host.user_id, 1, world.services[1], brand_id=world.brand.user_id)
    with pytest.raises(Forbidden):
        await world.deals.offer(world.agency, terms, "k")
    world.brand_agents.pairs.add((world.agency.user_id, world.brand.user_id))
    deal, made = await world.deals.offer(world.agency, terms, "k")
    assert made and (deal["brand_id"], deal["ordered_by"]) == (
        world.brand.user_id,
        world.agency.user_id,
    )


async def test_an_offer_expires_72_hours_and_a_second_after_not_at_72(world: World) -> None:
    first = (await world.offer(10_000))["id"]
    world.clock.advance(HOUR)
    second = (await world.offer(12_345))["id"]
    world.clock.advance(71 * HOUR)  # the first offer's 72 h
    assert (await world.timers.run_once()).expired == 0
    with pytest.raises(Conflict, match="not_due"):
        await world.act(None, first, "expire")
    world.clock.advance(SECOND)
    assert (await world.timers.run_once()).expired == 1
    assert (await world.deals.get(world.brand, first))["state"] == "expired"
    assert (await world.deals.get(world.brand, second))["state"] == "offered"
    # an offer past its time cannot be accepted even before the pass
    world.clock.advance(HOUR)
    with pytest.raises(Conflict, match="offer_expired"):
        await world.act(world.host, second, "accept")
    assert (await world.timers.run_once()).expired == 1
    last = (await world.events(second))[-1]
    assert (last.action, last.party, last.actor_id) == ("expire", "clock", None)


async def test_a_delivery_is_approved_72_hours_and_a_second_after(world: World) -> None:
    deal_id = (await world.delivered(10_000))["id"]
    world.clock.advance(72 * HOUR)
    assert (await world.timers.run_once()).approved == 0
    assert (await world.deals.get(world.brand, deal_id))["state"] == "delivered"
    world.clock.advance(SECOND)
    # the brand can no longer dispute once the window closed
    with pytest.raises(Conflict, match="review_over"):
        await world.act(world.brand, deal_id, "dispute", reason="late")
    assert (await world.timers.run_once()).approved == 1
    assert (await world.deals.get(world.brand, deal_id))["state"] == "settled"
    actions = [(e.action, e.party) for e in await world.events(deal_id)][-2:]
    assert actions == [("auto_approve", "clock"), ("settle", "system")]


async def test_a_deal_is_delivered_only_after_the_booked_minutes(world: World) -> None:
    deal_id = (await world.offer(10_000))["id"]
    await world.act(world.host, deal_id, "accept")
    await world.schedule(deal_id)
    world.pins.minutes[(world.session_id, PRODUCT)] = 9
    with pytest.raises(Conflict) as caught:
        await world.act(world.host, deal_id, "deliver")
    assert caught.value.details == {"pinned_minutes": 9, "booked_minutes": 10}
    assert (await world.timers.run_once()).delivered == 0
    world.pins.minutes[(world.session_id, PRODUCT)] = 10
    assert (await world.timers.run_once()).delivered == 1
    assert (await world.deals.get(world.host, deal_id))["state"] == "delivered"


async def test_scheduling_needs_the_hosts_session_and_the_brands_product(world: World) -> None:
    deal_id = (await world.offer(10_000))["id"]
    await world.act(world.host, deal_id, "accept")
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "session_required"),
        ({"session_id": world.session_id + 999, "product_id": PRODUCT}, "not_the_hosts_session"),
        ({"session_id": world.session_id, "product_id": PRODUCT + 1}, "not_the_brands_product"),
    ]
    for step, code in cases:
        with pytest.raises(Unprocessable) as caught:
            await world.act(world.host, deal_id, "schedule", **step)
        assert caught.value.code == code
    assert (await world.deals.get(world.host, deal_id))["state"] == "accepted"


async def test_a_host_cancelling_after_accepting_gets_a_strike(world: World) -> None:
    by_host = await in_state(world, S.SCHEDULED)
    await world.act(world.host, by_host, "cancel")
    by_admin = await in_state(world, S.ACCEPTED)
    await world.act(world.admin, by_admin, "cancel")
    async with world.db.read() as s:
        rows = await s.scalars(select(DealStrike))
        strikes = [(x.deal_id, x.host_id, x.actor_id) for x in rows]
    assert strikes == [(by_host, world.host.user_id, world.host.user_id)]


async def test_an_offer_on_an_old_card_or_another_service_is_refused(world: World) -> None:
    old_service = world.services[10_000]
    await world.card(20_000)
    with pytest.raises(Conflict, match="stale_card"):
        await world.deals.offer(world.brand, OfferTerms(world.host.user_id, 1, old_service), "a")
    with pytest.raises(Unprocessable, match="service_not_on_card"):
        await world.deals.offer(world.brand, OfferTerms(world.host.user_id, 2, old_service), "b")


async def test_the_same_key_is_the_same_offer_and_pays_once(world: World) -> None:
    first = await world.offer(10_000, key="order-1")
    again = await world.offer(10_000, key="order-1")
    assert again == first
    assert await world.totals(first["id"]) == {"brand_payments": -10_000, "deal_escrow": 10_000}
    with pytest.raises(Unprocessable, match="idempotency_key_reused"):
        await world.offer(12_345, key="order-1")
    # the key is the orderer's: another brand's same key is another deal
    world.brand = await world.user(world.brand.role)
    assert (await world.offer(10_000, key="order-1"))["id"] != first["id"]


async def test_the_same_key_is_the_same_step(world: World) -> None:
    deal_id = (await world.offer(10_000))["id"]
    accepted = await world.act(world.host, deal_id, "accept", key="step-1")
    assert await world.act(world.host, deal_id, "accept", key="step-1") == accepted
    with pytest.raises(Unprocessable, match="idempotency_key_reused"):
        await world.act(world.host, deal_id, "cancel", key="step-1")
    declined = await world.act(world.host, deal_id, "cancel", key="step-2")
    assert await world.act(world.host, deal_id, "cancel", key="step-2") == declined
    assert len(await world.events(deal_id)) == 3
    assert await world.totals(deal_id) == {"brand_payments": 0, "deal_escrow": 0}


async def test_fifty_retries_at_once_make_one_deal_and_move_money_once(world: World) -> None:
    key = uuid.uuid4().hex
    offers = await asyncio.gather(*(world.offer(12_345, key=key) for _ in range(50)))
    assert len({d["id"] for d in offers}) == 1
    deal_id = offers[0]["id"]
    assert await world.totals(deal_id) == {"brand_payments": -12_345, "deal_escrow": 12_345}
    await world.act(world.host, deal_id, "accept")

    async def cancel() -> str:
        return str((await world.act(world.host, deal_id, "cancel", key="cancel-1"))["state"])

    assert set(await asyncio.gather(*(cancel() for _ in range(50)))) == {"cancelled"}
    assert await world.totals(deal_id) == {"brand_payments": 0, "deal_escrow": 0}
    assert await world.line_count(deal_id) == 4
    assert [e.action for e in await world.events(deal_id)] == ["offer", "accept", "cancel"]


async def test_only_its_parties_read_a_deal(world: World) -> None:
    deal_id = (await world.offer(10_000))["id"]
    stranger = await world.user(world.brand.role)
    with pytest.raises(Forbidden, match="not_your_deal"):
        await world.deals.get(stranger, deal_id)
    history = await world.deals.history(world.host, deal_id)
    assert [(h["action"], h["to"]) for h in history] == [("offer", "offered")]
    receipt = await world.deals.receipt(world.brand, deal_id)
    assert sorted((x["account"], x["amount_minor"]) for x in receipt["lines"]) == [
        ("brand_payments", -10_000),
        ("deal_escrow", 10_000),
    ]
    assert {(b["account"], b["payable_minor"]) for b in receipt["balances"]} == {
        ("brand_payments", -10_000),
        ("deal_escrow", 10_000),
    }


async def test_the_deal_tables_migrate_down_and_up(settings: Settings) -> None:
    db = await database_at(settings, "0016")
    try:
        await migrate(db, "downgrade", "0015")
        await migrate(db, "upgrade", "0016")
    finally:
        await db.dispose()
