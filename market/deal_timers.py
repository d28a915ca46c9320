"""``DealTimers``: the clock's steps of deals, in a bounded periodic pass.

One pass (``run_once``) takes, ``batch`` deals at a time, oldest first:

* offers not answered by their ``expires_ms`` (strictly after it) -> ``expire``;
* deliveries neither approved nor disputed by their ``review_ends_ms`` (strictly
  after it) -> ``auto_approve`` (then settled);
* scheduled deals whose product has now been pinned for the booked minutes
  -> ``deliver``.

Each is an ordinary step of ``Deals.act`` with ``caller=None``: a step a person (or
another worker's pass) took first is refused with a 409, which the pass skips. Tests
drive it with a ``ManualClock`` and call ``run_once`` directly.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import Select, select

from live.clock import Clock
from live.db import Database
from live.errors import Conflict
from live.tasks import reraise_if_cancelling, stop_task
from market.deal_models import Deal, DealState
from market.deal_rules import Action
from market.deals import Deals

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PassResult:
    expired: int = 0
    approved: int = 0
    delivered: int = 0


class DealTimers:
    def __init__(
        self, db: Database, clock: Clock, deals: Deals, *, every_s: float = 60.0, batch: int = 100
    ) -> None:
        self._db = db
        self._clock = clock
        self._deals = deals
        self._every_s = every_s
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"DealTimers({id(self)})")

    async def stop(self) -> None:
        await stop_task(self._task)
        self._task = None

    async def run_once(self) -> PassResult:
        """One pass (module docstring); what it did."""
        now = self._clock.now_ms()
        due_offers = select(Deal.id).where(
            Deal.state == DealState.OFFERED.value, Deal.expires_ms < now
        )
        due_reviews = select(Deal.id).where(
            Deal.state == DealState.DELIVERED.value, Deal.review_ends_ms < now
        )
        scheduled = select(Deal.id).where(Deal.state == DealState.SCHEDULED.value)
        return PassResult(
            expired=await self._each(due_offers, Action.EXPIRE),
            approved=await self._each(due_reviews, Action.AUTO_APPROVE),
            delivered=await self._each(scheduled, Action.DELIVER),
        )

    async def _each(self, query: Select[int], action: Action) -> int:
        """``action`` on every deal ``query`` finds, ``batch`` at a time; how many
        moved."""
        done, after = 0, 0
        while True:
            async with self._db.read() as s:
                ids = list(
                    await s.scalars(
                        query.where(Deal.id > after).order_by(Deal.id).limit(self._batch)
                    )
                )
            if not ids:
                return done
            for deal_id in ids:
                try:
                    await self._deals.act(None, deal_id, action)
                except Conflict:  # taken by someone else first, or not delivered yet
                    continue
                done += 1
            after = ids[-1]

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:
                reraise_if_cancelling()
                if not self._failing:
                    log.warning("DealTimers(%s): a pass failed: %r", id(self), exc)
                self._failing = True
            else:
                self._failing = False
            await asyncio.sleep(self._every_s)
