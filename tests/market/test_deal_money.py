"""Deals' money in the ledger (``market.deal_money``) on both backends: escrow at the
offer, exact refunds, settlement = price - fee - agency share with the documented
rounding (odd amounts too), the host's line held, a dispute's split, and a dispute
freezing only its own deal (a property over random histories)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import hypothesis
import pytest
from deal_support import HOLD, HOUR, World, make_world, refill
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from live.clock import ManualClock
from live.settings import Settings
from market.deal_money import AGENCY_SHARE_BPS, PLATFORM_FEE_BPS, host_deal_commission


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    made = await make_world(settings)
    yield made
    await made.db.dispose()


def test_the_published_schedule() -> None:
    assert (PLATFORM_FEE_BPS, AGENCY_SHARE_BPS) == (1_000, 1_500)


async def test_the_offer_pays_into_escrow_and_every_unpaid_end_refunds_exactly(
    world: World,
) -> None:
    ends = {"decline": world.host, "withdraw": world.brand, "expire": None, "cancel": world.host}
    for action, who in ends.items():
        deal_id = (await world.offer(12_345))["id"]
        assert await world.totals(deal_id) == {"brand_payments": -12_345, "deal_escrow": 12_345}
        if action == "cancel":
            await world.act(world.host, deal_id, "accept")
            await world.schedule(deal_id)
        if action == "expire":
            assert isinstance(world.clock, ManualClock)
            world.clock.advance(72 * HOUR + 1)
        await world.act(who, deal_id, action)
        assert await world.totals(deal_id) == {"brand_payments": 0, "deal_escrow": 0}, action
        assert await world.line_sum(deal_id) == 0
        assert await world.line_count(deal_id) == 4


#: price -> (fee, agency share, host) with an agency; without one the agency's part
#: goes to the host. Every share rounded down, the host takes the remainder.
SETTLEMENTS = {
    10_000: (1_000, 1_500, 7_500),
    12_345: (1_234, 1_851, 9_260),  # 1234.5 and 1851.75 rounded down
    10_001: (1_000, 1_500, 7_501),
    9_999: (999, 1_499, 7_501),
    1: (0, 0, 1),
}


@pytest.mark.parametrize("agency", [False, True], ids=["alone", "with-agency"])
async def test_settlement_is_price_minus_fee_minus_agency_share(world: World, agency: bool) -> None:
    if agency:
        world.agencies.of[world.host.user_id] = world.agency.user_id
    settled_at = world.clock.now_ms()
    for price, (fee, share, host) in SETTLEMENTS.items():
        deal = await world.delivered(price)
        assert deal["agency_id"] == (world.agency.user_id if agency else None)
        assert deal["agency_share_bps"] == (1_500 if agency else 0)
        await world.act(world.brand, deal["id"], "approve")
        expected = {
            "brand_payments": -price,
            "deal_escrow": 0,
            "platform_fees": fee,
            "host_commission": host if agency else host + share,
        }
        if agency:
            expected["agency_share"] = share
        totals = await world.totals(deal["id"])
        assert totals["deal_escrow"] == 0
        # (a line of nothing is not posted)
        assert {a: v for a, v in totals.items() if v} == {a: v for a, v in expected.items() if v}, (
            price
        )
        assert await world.line_sum(deal["id"]) == 0
        # held: the host's and the agency's part are payable after the hold
        money = await world.money(deal["id"], settled_at + HOLD - 1)
        assert money["host_commission"] == (expected["host_commission"], 0)
        assert money.get("platform_fees", (0, 0)) == (0, fee)
        later = await world.money(deal["id"], settled_at + HOLD)
        assert later["host_commission"] == (0, expected["host_commission"])
    # the fee schedule changing later does not touch a deal: the deal carries its own
    assert deal["platform_fee_bps"] == 1_000


@pytest.mark.parametrize(
    ("price", "host_bps", "refund", "fee", "host"),
    [(10_000, 3_000, 7_000, 300, 2_700), (10_001, 3_000, 7_000, 300, 2_701), (1, 3_000, 0, 0, 1)],
)
async def test_a_dispute_resolved_30_70_posts_exactly_that(
    world: World, price: int, host_bps: int, refund: int, fee: int, host: int
) -> None:
    deal_id = (await world.delivered(price))["id"]
    await world.act(world.brand, deal_id, "dispute", reason="pinned for 2 minutes only")
    assert await world.totals(deal_id) == {"brand_payments": -price, "deal_escrow": price}
    await world.act(world.admin, deal_id, "resolve", host_bps=host_bps)
    totals = await world.totals(deal_id)
    assert totals["brand_payments"] == -price + refund
    assert totals["deal_escrow"] == 0
    assert totals.get("platform_fees", 0) == fee
    assert totals["host_commission"] == host
    assert await world.line_sum(deal_id) == 0


# -- a dispute freezes only its deal -----------------------------------------------

ENDS = ("settle", "dispute", "resolve", "refund", "open")


@dataclass(frozen=True)
class Story:
    price: int
    end: str
    host_bps: int
    #: hours between this deal's delivery and the next step of the story
    gap_h: int


stories = st.builds(
    Story,
    price=st.integers(1, 10**9),
    end=st.sampled_from(ENDS),
    host_bps=st.integers(0, 10_000),
    gap_h=st.integers(0, 200),
)


@hypothesis.settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=st.lists(stories, min_size=1, max_size=6), agency=st.booleans())
async def test_a_dispute_freezes_only_its_own_deal(
    world: World, history: list[Story], agency: bool
) -> None:
    await refill(world)  # a fresh host for each history
    await world.card(*sorted({s.price for s in history}))
    if agency:
        world.agencies.of[world.host.user_id] = world.agency.user_id
    #: the host's commission: (amount, payable from) of each paid deal
    paid: list[tuple[int, int]] = []
    frozen: list[tuple[int, int]] = []
    for story in history:
        if story.end == "refund":
            deal_id = (await world.offer(story.price))["id"]
            await world.act(world.brand, deal_id, "withdraw")
        else:
            deal_id = (await world.delivered(story.price))["id"]
        if story.end in ("dispute", "resolve"):
            await world.act(world.brand, deal_id, "dispute", reason="no")
        if story.end == "resolve":
            await world.act(world.admin, deal_id, "resolve", host_bps=story.host_bps)
        if story.end == "settle":
            await world.act(world.brand, deal_id, "approve")
        totals = await world.totals(deal_id)
        if story.end in ("settle", "resolve"):
            paid.append((totals.get("host_commission", 0), world.clock.now_ms() + HOLD))
        if story.end == "dispute":
            frozen.append((deal_id, story.price))
        assert await world.line_sum(deal_id) == 0
        world.clock.advance(story.gap_h * HOUR)
        # the review windows of open deliveries may close: nothing moves by itself here
    for deal_id, price in frozen:
        # a disputed deal keeps its whole price in its escrow, and pays nobody
        assert await world.totals(deal_id) == {"brand_payments": -price, "deal_escrow": price}
    now = world.clock.now_ms()
    async with world.db.read() as s:
        found = await host_deal_commission(s, world.host.user_id, now)
    payable = sum(amount for amount, at in paid if at <= now)
    pending = sum(amount for amount, at in paid if at > now)
    assert found.get("EUR", (0, 0)) == (pending, payable)
