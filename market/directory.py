"""``CreatorDirectory``: brands find hosts to work with. A host is listed once it has
published a rate card (and while its account is enabled); the directory reads only the
cards, the profiles and the figures table (``market.figures``), never the raw records.

Filters (all optional, combined with AND): a ``tag`` and a ``region`` (self-reported:
``US`` also matches ``US-CA``); services of the current card of a ``kind``, in a
``currency``, priced within ``[min_price, max_price]`` (a price needs its currency:
400 ``currency_required``); at least ``min_followers`` and ``min_peak_viewers``
(verified figures; a host not yet computed counts 0).

Sorts: ``followers`` (the default) and ``peak_viewers``, highest first; ``gmv`` in a
``currency``, highest first; ``price``: the host's cheapest matching service in a
``currency``, lowest first. Ties by host id. Pages: ``live.paging.RankedPage``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import BigInteger, ColumnElement, Select, and_, cast, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from live.db import Database
from live.errors import InvalidInput, NotFound
from live.models import User
from live.paging import RankedListing, RankedPage
from market.models import (
    CreatorFigures,
    CreatorProfile,
    CreatorSales,
    CreatorTag,
    RateCard,
    RateCardHead,
    RateCardService,
)
from market.views import card_dict, profile_dict, verified_dict

Query = TypeVar("Query", bound=Select[*tuple[Any, ...]])
Sort = Literal["followers", "peak_viewers", "gmv", "price"]
SORTS: tuple[Sort, ...] = ("followers", "peak_viewers", "gmv", "price")
#: sorts from the lowest up (the others: highest first)
_ASCENDING = frozenset({"price"})


@dataclass(frozen=True, slots=True)
class DirectoryQuery:
    tag: str | None = None
    region: str | None = None
    kind: str | None = None
    currency: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    min_followers: int | None = None
    min_peak_viewers: int | None = None
    sort: Sort = "followers"

    def check(self) -> None:
        """400 ``currency_required`` for a price or a sort that needs a currency, 400
        ``invalid_query`` for an empty price range."""
        priced = self.min_price is not None or self.max_price is not None
        if self.currency is None and (priced or self.sort in ("gmv", "price")):
            raise InvalidInput(
                "currency_required", "a price range, or sorting by gmv or price, needs currency"
            )
        low, high = self.min_price, self.max_price
        if low is not None and high is not None and low > high:
            raise InvalidInput("invalid_query", "min_price is above max_price")

    @property
    def ascending(self) -> bool:
        return self.sort in _ASCENDING


def ranked_page(query: DirectoryQuery, limit: int, after: tuple[int, int] | None) -> RankedPage:
    return RankedPage(limit, after, descending=not query.ascending)


class CreatorDirectory:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def search(
        self, query: DirectoryQuery, page: RankedPage
    ) -> RankedListing[dict[str, Any]]:
        query.check()
        key = _sort_key(query)
        head = RateCardHead
        stmt = (
            select(head.host_id, key.label("key"))
            .join(User, User.id == head.host_id)
            .outerjoin(CreatorFigures, CreatorFigures.host_id == head.host_id)
            .outerjoin(CreatorProfile, CreatorProfile.host_id == head.host_id)
            .where(User.disabled.is_(False))
        )
        stmt = _filtered(stmt, query)
        async with self._db.read() as s:
            rows = (await s.execute(page.select(stmt, key, head.host_id))).all()
            found = page.cut(rows, lambda r: (int(r.key), int(r.host_id)), lambda r: r.host_id)
            creators = await _creators(s, found.items)
        return RankedListing([creators[h] for h in found.items], found.next_after)

    async def creator(self, host_id: int) -> dict[str, Any]:
        """One listed host; 404 ``creator_not_found`` unless it has a rate card."""
        async with self._db.read() as s:
            user = await s.get(User, host_id)
            listed = user is not None and not user.disabled
            creators = await _creators(s, [host_id]) if listed else {}
        if host_id not in creators:
            raise NotFound("creator_not_found", f"host {host_id} is not in the directory")
        return creators[host_id]


def _offered(query: DirectoryQuery) -> list[ColumnElement[bool]]:
    """The conditions on a service of the listed host's current card."""
    conditions = [
        RateCardService.host_id == RateCardHead.host_id,
        RateCardService.version == RateCardHead.version,
    ]
    if query.kind is not None:
        conditions.append(RateCardService.kind == query.kind)
    if query.currency is not None:
        conditions.append(RateCardService.currency == query.currency)
    if query.min_price is not None:
        conditions.append(RateCardService.price_minor >= query.min_price)
    if query.max_price is not None:
        conditions.append(RateCardService.price_minor <= query.max_price)
    return conditions


def _sort_key(query: DirectoryQuery) -> ColumnElement[int]:
    """The sort key, as a ``BigInteger`` (a cursor's key may be past 32 bits)."""
    return cast(_key(query), BigInteger)


def _key(query: DirectoryQuery) -> ColumnElement[int]:
    if query.sort == "peak_viewers":
        return func.coalesce(CreatorFigures.peak_viewers, 0)
    if query.sort == "gmv":
        gmv = (
            select(CreatorSales.gmv_minor)
            .where(
                CreatorSales.host_id == RateCardHead.host_id,
                CreatorSales.currency == query.currency,
            )
            .scalar_subquery()
        )
        return func.coalesce(gmv, 0)
    if query.sort == "price":
        cheapest = select(func.min(RateCardService.price_minor)).where(*_offered(query))
        return func.coalesce(cheapest.scalar_subquery(), 0)
    return func.coalesce(CreatorFigures.followers, 0)


def _filtered(stmt: Query, query: DirectoryQuery) -> Query:
    head = RateCardHead
    if query.tag is not None:
        tagged = select(CreatorTag.host_id).where(CreatorTag.tag == query.tag)
        stmt = stmt.where(head.host_id.in_(tagged))
    if query.region is not None:
        stmt = stmt.where(
            or_(
                CreatorProfile.region == query.region,
                CreatorProfile.region.startswith(f"{query.region}-", autoescape=True),
            )
        )
    if query.kind is not None or query.currency is not None:
        stmt = stmt.where(exists(select(RateCardService.id).where(*_offered(query))))
    if query.min_followers is not None:
        stmt = stmt.where(func.coalesce(CreatorFigures.followers, 0) >= query.min_followers)
    if query.min_peak_viewers is not None:
        stmt = stmt.where(func.coalesce(CreatorFigures.peak_viewers, 0) >= query.min_peak_viewers)
    return stmt


async def _creators(s: AsyncSession, host_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The directory entries of ``host_ids`` that have a rate card, by host id."""
    if not host_ids:
        return {}
    ids = sorted(set(host_ids))
    heads = {
        h.host_id: h
        for h in await s.scalars(select(RateCardHead).where(_in(RateCardHead.host_id, ids)))
    }
    if not heads:
        return {}
    # the versions just read, not the heads again: a publish meanwhile changes nothing here
    card_of = or_(
        *(
            and_(RateCard.host_id == h.host_id, RateCard.version == h.version)
            for h in heads.values()
        )
    )
    cards = {c.host_id: c for c in await s.scalars(select(RateCard).where(card_of))}
    service_of = or_(
        *(
            and_(RateCardService.host_id == h.host_id, RateCardService.version == h.version)
            for h in heads.values()
        )
    )
    services: dict[int, list[RateCardService]] = defaultdict(list)
    for service in await s.scalars(
        select(RateCardService)
        .where(service_of)
        .order_by(RateCardService.host_id, RateCardService.position)
    ):
        services[service.host_id].append(service)
    names = dict(
        (await s.execute(select(User.id, User.display_name).where(_in(User.id, heads)))).all()
    )
    profiles = {
        p.host_id: p
        for p in await s.scalars(select(CreatorProfile).where(_in(CreatorProfile.host_id, heads)))
    }
    figures = {
        f.host_id: f
        for f in await s.scalars(select(CreatorFigures).where(_in(CreatorFigures.host_id, heads)))
    }
    sales: dict[int, list[CreatorSales]] = defaultdict(list)
    for row in await s.scalars(select(CreatorSales).where(_in(CreatorSales.host_id, heads))):
        sales[row.host_id].append(row)
    return {
        host: {
            "host_id": host,
            "display_name": names.get(host, ""),
            "profile": profile_dict(profiles.get(host)),
            "rate_card": card_dict(cards[host], services[host], current=True),
            "verified": verified_dict(figures.get(host), sales[host]),
        }
        for host in heads
        if host in cards
    }


def _in(column: Any, ids: Any) -> ColumnElement[bool]:
    return column.in_(sorted(ids))  # type: ignore[no-any-return]
