"""``GET /api/sessions/{id}/stats``: everything a creator (or a brand on the shelf)
learns about one session, live (a second or two behind) or after it ended.

* ``audience``: the per-second curve (people receiving media, people on the room
  channel, joins, leaves -- people, never connections), watch time, retention,
  drop-offs annotated with what happened just before, and why viewers left;
* ``funnel``: per pin window, per product and for the session (``shelf/funnel.py``);
* ``fans``: the host's followers now and over time, followers gained during the
  session, and the session's signed-in viewers split into returning and new.

Who may read it: the session's host, admins, and brands with a product on the
session's shelf or pinned in it. A brand reads its own products' figures only (pins,
products, the session's totals made of its products, drop-offs annotated with its own
pins and flash sales) and the show's audience; the host's followers are not in it
(``fans`` keeps only the viewers' split into returning, new and guests).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select

from live import analytics
from live.analytics import AudienceReport, Moment
from live.auth import Principal
from live.clock import Clock, iso
from live.coalesce import SingleFlight
from live.db import Database
from live.errors import Forbidden, NotFound
from live.follows import FollowService
from live.models import LiveSession, Role
from shelf.funnel import PinRows, funnel, pin_rows
from shelf.models import FlashSale, FlashStatus, Pin, Product, ShelfItem

#: sales that were (or are to be) held: the stats' moments show them
_HELD = (FlashStatus.SCHEDULED.value, FlashStatus.RUNNING.value, FlashStatus.ENDED.value)


class StatsService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        audience: AudienceReport,
        follows: FollowService,
        *,
        fresh_ms: int = 2000,
    ) -> None:
        self._db = db
        self._clock = clock
        self._audience = audience
        self._follows = follows
        self._fresh_ms = fresh_ms
        #: session -> (when, its stats): at most 1,000 sessions, then emptied
        self._cache: dict[int, tuple[int, dict[str, Any]]] = {}
        self._flight: SingleFlight[dict[str, Any]] = SingleFlight()

    async def stats(self, caller: Principal, session_id: int) -> dict[str, Any]:
        """The stats of a session the caller may read, at most ``fresh_ms`` old: a live
        dashboard open in many tabs costs one computation per session and interval."""
        session = await self._readable(caller, session_id)
        result = await self._whole(session)
        if caller.role is Role.ADMIN or caller.user_id == session.host_id:
            return result
        return await self._for_brand(result, caller.user_id)

    async def _whole(self, session: LiveSession) -> dict[str, Any]:
        session_id = session.id
        now = self._clock.now_ms()
        cached = self._cache.get(session_id)
        if cached is not None and now - cached[0] < self._fresh_ms:
            return cached[1]

        async def load() -> dict[str, Any]:
            result = await self._compute(session, now)
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[session_id] = (now, result)
            return result

        # Requests arriving while it is computed share the computation.
        return await self._flight.do(session_id, load)

    async def _compute(self, session: LiveSession, now: int) -> dict[str, Any]:
        session_id = session.id
        curve = await self._audience.curve(session_id)
        intervals = await self._audience.intervals(session_id, now)
        pins = await pin_rows(self._db, session_id)
        moments = await self._moments(session_id, pins) + await self._audience.marks(session_id)
        reasons = Counter(i.reason or "watching" for i in intervals)
        return {
            "session": {
                "id": session.id,
                "title": session.title,
                "status": session.status,
                "host_id": session.host_id,
                "started_at": iso(session.started_ms),
                "ended_at": iso(session.ended_ms),
                "generated_at": iso(now),
            },
            "audience": {
                "curve": curve,
                **analytics.summary(intervals),
                "peak_viewers": max((c["media_viewers"] for c in curve), default=0),
                "retention": analytics.retention(intervals),
                "drop_offs": analytics.drop_offs(curve, moments),
                "leave_reasons": dict(sorted(reasons.items())),
            },
            "funnel": await funnel(self._db, session_id, curve, now, pins),
            "fans": await self._fans(session, intervals, now),
        }

    async def _for_brand(self, whole: dict[str, Any], brand_id: int) -> dict[str, Any]:
        """``whole`` as brand ``brand_id`` may read it (see the module docstring)."""
        funnel_ = whole["funnel"]
        audience = whole["audience"]
        seen = {p["product_id"] for p in funnel_["products"]} | {
            m["product_id"] for d in audience["drop_offs"] for m in d["after"] if "product_id" in m
        }
        async with self._db.read() as s:
            mine = set(
                await s.scalars(
                    select(Product.id).where(Product.id.in_(seen), Product.brand_id == brand_id)
                )
            )
        pins = [p for p in funnel_["pins"] if p["product_id"] in mine]
        products = [p for p in funnel_["products"] if p["product_id"] in mine]
        gmv: Counter[str] = Counter()
        for product in products:
            gmv.update(product["gmv_minor"])
        orders = sum(p["orders"] for p in products)
        drop_offs = [
            {**d, "after": [m for m in d["after"] if m.get("product_id", -1) in mine]}
            for d in audience["drop_offs"]
        ]
        return {
            **whole,
            "audience": {**audience, "drop_offs": drop_offs},
            "funnel": {
                "pins": pins,
                "products": products,
                "session": {
                    "impressions": sum(p["impressions"] for p in pins),
                    "clicks": sum(p["clicks"] for p in pins),
                    "orders": orders,
                    "units": sum(p["units"] for p in products),
                    "gmv_minor": dict(gmv),
                    "orders_outside_pins": orders - sum(p["orders"] for p in pins),
                },
            },
            "fans": {"viewers": whole["fans"]["viewers"]},
        }

    async def _readable(self, caller: Principal, session_id: int) -> LiveSession:
        async with self._db.read() as s:
            session = await s.get(LiveSession, session_id)
            if session is None:
                raise NotFound("session_not_found", f"no live session {session_id}")
            if caller.role is Role.ADMIN or caller.user_id == session.host_id:
                return session
            if caller.role is Role.HOST:
                raise Forbidden("not_your_session", "a host reads only their own sessions' stats")
            if caller.role is not Role.BRAND:
                raise Forbidden(
                    "role_not_allowed", "stats are for the host and brands on the shelf"
                )
            shelved = select(ShelfItem.product_id).where(ShelfItem.session_id == session_id)
            pinned = select(Pin.product_id).where(Pin.session_id == session_id)
            mine = await s.scalar(
                select(Product.id)
                .where(
                    Product.brand_id == caller.user_id,
                    Product.id.in_(shelved.union(pinned).scalar_subquery()),
                )
                .limit(1)
            )
            if mine is None:
                raise Forbidden(
                    "not_on_this_shelf", "a brand reads stats of sessions its products were on"
                )
            return session

    async def _moments(self, session_id: int, pins: PinRows) -> list[Moment]:
        async with self._db.read() as s:
            sales = (
                await s.scalars(
                    select(FlashSale).where(
                        FlashSale.session_id == session_id,
                        FlashSale.status.in_(_HELD),
                    )
                )
            ).all()
        out = []
        for pin, title in pins:
            detail = {"pin_id": pin.id, "product_id": pin.product_id, "title": title}
            out.append(Moment(pin.start_ms, "pin.start", detail))
            if pin.end_ms is not None:
                out.append(Moment(pin.end_ms, "pin.end", detail))
        for sale in sales:
            detail = {"flash_sale_id": sale.id, "product_id": sale.product_id}
            out.append(Moment(sale.started_ms or sale.starts_ms, "flash.start", detail))
            if sale.closed_ms is not None:
                out.append(Moment(sale.closed_ms, "flash.end", detail))
        return out

    async def _fans(
        self, session: LiveSession, intervals: list[analytics.Interval], now: int
    ) -> dict[str, Any]:
        start = session.started_ms or session.created_ms
        end = session.ended_ms or now
        before = await self._follows.followers_at(session.host_id, start)
        after = await self._follows.followers_at(session.host_id, end)
        async with self._db.read() as s:
            earlier = list(
                await s.scalars(
                    select(LiveSession.id).where(
                        LiveSession.host_id == session.host_id,
                        LiveSession.id != session.id,
                        LiveSession.created_ms < session.created_ms,
                    )
                )
            )
        seen_before = await self._audience.viewers_of_host_before(earlier, start)
        users = {int(i.viewer[1:]) for i in intervals if i.viewer.startswith("u")}
        guests = {i.viewer for i in intervals if not i.viewer.startswith("u")}
        return {
            "followers": len(after),
            "followers_gained": len(after - before),
            "followers_lost": len(before - after),
            "followers_over_time": await self._follows.over_time(session.host_id),
            "viewers": {
                "returning": len(users & seen_before),
                "new": len(users - seen_before),
                "guests": len(guests),
            },
        }
