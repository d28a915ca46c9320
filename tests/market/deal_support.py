"""Helpers of the deal tests: the deal service on a scripted clock over a real
database, its users, a rate card and a show, and fakes of what other features answer
(who manages a host, pinned minutes, whose a product is)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from live.auth import Principal
from live.clock import ManualClock
from live.db import Database
from live.ledger import balances
from live.ledger_models import LedgerEntry
from live.models import LiveSession, Role, User
from live.settings import Settings
from market.deal_models import DealEvent
from market.deal_money import DealMoney, deal_ref
from market.deal_offers import OfferTerms
from market.deal_rules import Action
from market.deal_timers import DealTimers
from market.deals import Deals, StepInput
from market.models import RateCard, RateCardHead, RateCardService

T0 = 1_764_000_000_000
SECOND = 1_000
HOUR = 3_600_000
DAY = 86_400_000
HOLD = 7 * DAY
PRODUCT = 501


class FakeAgencies:
    def __init__(self) -> None:
        self.of: dict[int, int] = {}

    async def agency_id_of(self, host_id: int) -> int | None:
        return self.of.get(host_id)


class FakePins:
    def __init__(self) -> None:
        self.minutes: dict[tuple[int, int], int] = defaultdict(int)

    async def pinned_minutes(self, session_id: int, product_id: int) -> int:
        return self.minutes[(session_id, product_id)]


class FakeProducts:
    def __init__(self) -> None:
        self.brands: dict[int, int] = {}

    async def brand_of(self, product_id: int) -> int | None:
        return self.brands.get(product_id)


class FakeBrandAgents:
    def __init__(self) -> None:
        self.pairs: set[tuple[int, int]] = set()

    async def acts_for_brand(self, agency_id: int, brand_id: int) -> bool:
        return (agency_id, brand_id) in self.pairs


@dataclass
class World:
    db: Database
    clock: ManualClock
    deals: Deals
    timers: DealTimers
    agencies: FakeAgencies
    pins: FakePins
    products: FakeProducts
    brand_agents: FakeBrandAgents
    brand: Principal
    host: Principal
    agency: Principal
    admin: Principal
    session_id: int
    #: price -> service id on the host's current card (``card``)
    services: dict[int, int] = field(default_factory=dict)
    version: int = 0

    # -- setting up --------------------------------------------------------------------

    async def user(self, role: Role) -> Principal:
        name = f"{role.value[:5]}{uuid.uuid4().hex[:20]}"
        async with self.db.transaction() as tx:
            row = User(
                username=name,
                display_name=name,
                role=role.value,
                password_hash="x",
                created_ms=T0,
                disabled=False,
            )
            tx.add(row)
            await tx.flush()
            return Principal(row.id, name, role, name)

    async def card(self, *prices: int, minutes: int | None = 10) -> None:
        """A new current card of the host: a live segment of ``minutes`` per price."""
        self.version += 1
        host_id, version = self.host.user_id, self.version
        async with self.db.transaction() as tx:
            tx.add(
                RateCard(host_id=host_id, version=version, published_by=host_id, published_ms=T0)
            )
            rows = [
                RateCardService(
                    host_id=host_id,
                    version=version,
                    position=i,
                    kind="live_segment" if minutes else "shelf_slot",
                    minutes=minutes,
                    price_minor=price,
                    currency="EUR",
                    turnaround_days=7,
                )
                for i, price in enumerate(prices)
            ]
            tx.add_all(rows)
            head = await tx.get(RateCardHead, host_id)
            if head is None:
                tx.add(RateCardHead(host_id=host_id, version=version, published_ms=T0))
            else:
                head.version = version
            await tx.flush()
            self.services = {r.price_minor: r.id for r in rows}

    # -- acting ------------------------------------------------------------------------

    async def offer(self, price: int, key: str | None = None, **more: Any) -> dict[str, Any]:
        terms = OfferTerms(self.host.user_id, self.version, self.services[price], **more)
        deal, _made = await self.deals.offer(self.brand, terms, key or uuid.uuid4().hex)
        return deal

    async def act(
        self,
        who: Principal | None,
        deal_id: int,
        action: str,
        *,
        key: str | None = None,
        **step: Any,
    ) -> dict[str, Any]:
        return await self.deals.act(who, deal_id, Action(action), key, StepInput(**step))

    async def schedule(self, deal_id: int) -> dict[str, Any]:
        return await self.act(
            self.host, deal_id, "schedule", session_id=self.session_id, product_id=PRODUCT
        )

    async def delivered(self, price: int, **more: Any) -> dict[str, Any]:
        """A deal of ``price`` delivered now (the show pinned the product 10 minutes)."""
        deal = await self.offer(price, **more)
        await self.act(self.host, deal["id"], "accept")
        await self.schedule(deal["id"])
        self.pins.minutes[(self.session_id, PRODUCT)] = 10
        return await self.act(self.host, deal["id"], "deliver")

    # -- reading -----------------------------------------------------------------------

    async def money(self, deal_id: int, now: int | None = None) -> dict[str, tuple[int, int]]:
        """Per account: ``(pending, payable)`` of the deal at ``now`` (None: all)."""
        async with self.db.read() as s:
            found = await balances(s, deal_ref(deal_id), now)
        return {b.account: (b.pending_minor, b.payable_minor) for b in found}

    async def totals(self, deal_id: int) -> dict[str, int]:
        return {a: p + q for a, (p, q) in (await self.money(deal_id)).items()}

    async def line_sum(self, deal_id: int) -> int:
        async with self.db.read() as s:
            total = await s.scalar(
                select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0)).where(
                    LedgerEntry.ref == deal_ref(deal_id)
                )
            )
        return int(total or 0)

    async def line_count(self, deal_id: int) -> int:
        async with self.db.read() as s:
            found = await s.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.ref == deal_ref(deal_id))
            )
        return int(found or 0)

    async def events(self, deal_id: int) -> list[DealEvent]:
        async with self.db.read() as s:
            rows = await s.scalars(
                select(DealEvent).where(DealEvent.deal_id == deal_id).order_by(DealEvent.seq)
            )
            return list(rows)


async def make_world(settings: Settings) -> World:
    db = Database(settings.database_url, schema=settings.database_schema)
    await db.migrate()
    clock = ManualClock(T0)
    agencies, pins, products, agents = FakeAgencies(), FakePins(), FakeProducts(), FakeBrandAgents()
    deals = Deals(db, clock, DealMoney(HOLD), agencies, pins, products, agents)
    timers = DealTimers(db, clock, deals, batch=2)
    nobody = Principal(0, "", Role.ADMIN, "")
    world = World(
        db,
        clock,
        deals,
        timers,
        agencies,
        pins,
        products,
        agents,
        nobody,
        nobody,
        nobody,
        nobody,
        0,
    )
    await refill(world)
    return world


async def refill(world: World) -> None:
    """New users, card and show for ``world`` (a fresh host: its ledger lines start
    at nothing)."""
    world.brand = await world.user(Role.BRAND)
    world.host = await world.user(Role.HOST)
    world.agency = await world.user(Role.AGENCY)
    world.admin = await world.user(Role.ADMIN)
    world.version = 0
    world.products.brands[PRODUCT] = world.brand.user_id
    async with world.db.transaction() as tx:
        show = LiveSession(host_id=world.host.user_id, title="Show", status="live", created_ms=T0)
        tx.add(show)
        await tx.flush()
        world.session_id = show.id
    await world.card(10_000, 12_345, 10_001, 1, 9_999)
