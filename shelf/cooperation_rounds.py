"""``CooperationRounds``: the counter-offer turns of a proposal and the history of every
agreement's steps; the base of ``CooperationService`` (``shelf.cooperation``), on
``HostLinks`` (``shelf.host_links``).

* While it is proposed, ``turn`` says who acts next: the host's side first. The party
  whose turn it is accepts, declines or counters (new commission, flat fee, message:
  the terms change, ``round`` grows by one and the turn passes), back and forth. The
  other party gets 409 ``not_your_turn``; an action that names the ``round`` it saw
  after the terms changed gets 409 ``stale_round``. Every step is kept with its terms
  (``CooperationRound``, ``rounds``; ``round_dict`` is one step's answer).
* A step on a proposal is a compare-and-set on the turn and round it read
  (``_unchanged``); one that lost to a concurrent step gets 409 ``illegal_transition``
  or ``stale_round`` (``_raced``). A refusal changes nothing.

After each step commits, the brand, the host and the host's agency hear of it on
their per-user event stream (``news``: ``cooperation.<action>`` with the agreement and
the step); that is best effort (the pages reload the list when their stream resumes
without the missed events).

It also reads one agreement for the service (``_get``, ``_check_reader``: ``rounds``
and ``get`` let the same people read). A base class for the reason ``HostLinks`` is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from live.auth import Principal
from live.clock import Clock, iso
from live.db import Database
from live.errors import Conflict, Forbidden, NotFound, Unprocessable
from live.models import Role, User
from shelf.host_links import HostLinks
from shelf.models import (
    Cooperation,
    CooperationParty,
    CooperationRound,
    CooperationStatus,
    HostAgency,
)
from shelf.schemas import CounterBody

#: the service's logger, named as before its parts moved out of ``shelf.cooperation``
log = logging.getLogger("shelf.cooperation")

_PROPOSED = CooperationStatus.PROPOSED.value
_BRAND = CooperationParty.BRAND
_HOST = CooperationParty.HOST
#: the terms a counter-offer may change
_TERMS = ("commission_bps", "flat_fee_minor", "flat_fee_currency")


class CooperationNews(Protocol):
    """Where the parties hear of each step (``live.user_events.UserEvents``)."""

    async def publish(
        self, user_ids: Iterable[int], type_: str, data: Mapping[str, Any]
    ) -> None: ...


def round_dict(r: CooperationRound) -> dict[str, Any]:
    return {
        "step": r.step,
        "round": r.round,
        "action": r.action,
        "party": r.party,
        "by_user": r.by_user,
        "commission_bps": r.commission_bps,
        "flat_fee_minor": r.flat_fee_minor,
        "flat_fee_currency": r.flat_fee_currency,
        "message": r.message,
        "at": iso(r.at_ms),
    }


class CooperationRounds(HostLinks):
    def __init__(self, db: Database, clock: Clock, news: CooperationNews | None = None) -> None:
        super().__init__(db, clock)
        self._news = news

    # -- turns and history -----------------------------------------------------------

    async def _party(
        self, tx: AsyncSession, caller: Principal, coop: Cooperation
    ) -> CooperationParty:
        """The side ``caller`` acts for: the brand, or the host (the host itself or its
        agency); an admin acts for whichever side's turn it is. 403 for anyone else."""
        if caller.role is Role.ADMIN:
            return CooperationParty(coop.turn)
        if caller.role is Role.BRAND:
            if coop.brand_id != caller.user_id:
                raise Forbidden("not_your_cooperation", "this agreement is not yours")
            return _BRAND
        await self._check_host_side(tx, caller, coop)
        return _HOST

    def _check_turn(self, coop: Cooperation, party: CooperationParty, round_: int | None) -> None:
        """A pending proposal, ``party``'s turn, and the round the caller saw (if given)
        still the current one; else 409 (nothing changes)."""
        if coop.status != _PROPOSED:
            raise Conflict(
                "illegal_transition",
                f"the cooperation is {coop.status}: nothing is left to decide",
                status=coop.status,
            )
        if coop.turn != party.value:
            raise Conflict(
                "not_your_turn",
                f"the {coop.turn} answers this offer first",
                turn=coop.turn,
                round=coop.round,
            )
        if round_ is not None and round_ != coop.round:
            raise self._stale(coop)

    def _stale(self, coop: Cooperation) -> Conflict:
        return Conflict(
            "stale_round",
            f"the terms changed since round {coop.round - 1 or 1}: read them again",
            round=coop.round,
            turn=coop.turn,
        )

    def _countered_terms(self, coop: Cooperation, body: CounterBody) -> dict[str, Any]:
        """The terms after ``body``: unchanged ones kept; 422 when they do not go
        together or nothing changes."""
        current: dict[str, Any] = {name: getattr(coop, name) for name in _TERMS}
        terms = {**current, **body.changes()}
        if terms["flat_fee_minor"] is None and "flat_fee_currency" not in body.model_fields_set:
            terms["flat_fee_currency"] = None  # the fee removed: its currency goes too
        if (terms["flat_fee_minor"] is None) != (terms["flat_fee_currency"] is None):
            raise Unprocessable(
                "fee_needs_currency",
                "a flat fee needs its currency (flat_fee_currency), and a currency a fee",
            )
        if terms == current:
            raise Unprocessable(
                "terms_unchanged", "a counter-offer changes the commission or the flat fee"
            )
        return terms

    def _unchanged(self, coop: Cooperation) -> tuple[Any, ...]:
        """The conditions of a compare-and-set on a proposal as ``coop`` holds it."""
        return (
            Cooperation.id == coop.id,
            Cooperation.status == _PROPOSED,
            Cooperation.turn == coop.turn,
            Cooperation.round == coop.round,
        )

    async def _raced(
        self, tx: AsyncSession, coop: Cooperation, expected: CooperationStatus
    ) -> NoReturn:
        """A compare-and-set lost to a concurrent step: 409 saying what happened."""
        await tx.refresh(coop)
        if coop.status != expected.value:
            raise Conflict(
                "illegal_transition",
                f"the cooperation became {coop.status} meanwhile",
                status=coop.status,
            )
        raise self._stale(coop)

    async def _next_step(self, tx: AsyncSession, coop_id: int) -> int:
        last = await tx.scalar(
            select(func.max(CooperationRound.step)).where(
                CooperationRound.cooperation_id == coop_id
            )
        )
        return int(last or 0) + 1

    def _record(
        self,
        tx: AsyncSession,
        coop: Cooperation,
        step: int,
        action: str,
        party: CooperationParty,
        caller: Principal,
        message: str | None,
    ) -> CooperationRound:
        """Keep one step with the terms it made or answered (flushed with ``tx``)."""
        row = CooperationRound(
            cooperation_id=coop.id,
            step=step,
            round=coop.round,
            action=action,
            party=party.value,
            by_user=caller.user_id,
            commission_bps=coop.commission_bps,
            flat_fee_minor=coop.flat_fee_minor,
            flat_fee_currency=coop.flat_fee_currency,
            message=message,
            at_ms=self._clock.now_ms(),
        )
        tx.add(row)
        return row

    async def _parties(self, tx: AsyncSession, coop: Cooperation) -> list[int]:
        """Who hears of a step: the brand, the host and the host's agency."""
        link = await tx.get(HostAgency, coop.host_id)
        ids = [coop.brand_id, coop.host_id]
        return ids if link is None else [*ids, link.agency_id]

    async def _tell(
        self, user_ids: list[int], cooperation: dict[str, Any], step: CooperationRound
    ) -> None:
        """``cooperation.<action>`` to each party's event stream, after the commit. Best
        effort: the step is committed whatever happens here (module docstring)."""
        if self._news is None:
            return
        data = {"cooperation": cooperation, "step": round_dict(step)}
        try:
            await self._news.publish(user_ids, f"cooperation.{step.action}", data)
        except Exception as exc:  # the log is down: the pages reload on their next resume
            log.warning("cooperation %s: could not tell the parties: %s", step.cooperation_id, exc)

    async def rounds(self, caller: Principal, coop_id: int) -> dict[str, Any]:
        """Every step of the agreement, oldest first, and the names of its brand and
        host (who may read: as ``get``)."""
        async with self._db.read() as tx:
            coop = await self._get(tx, coop_id)
            await self._check_reader(tx, caller, coop)
            rows = await tx.scalars(
                select(CooperationRound)
                .where(CooperationRound.cooperation_id == coop_id)
                .order_by(CooperationRound.step)
            )
            steps = [round_dict(r) for r in rows]
            query = select(User.id, User.display_name).where(
                User.id.in_([coop.brand_id, coop.host_id])
            )
            names = {row.id: row.display_name for row in (await tx.execute(query)).all()}
        return {
            "cooperation_id": coop_id,
            "brand": {"id": coop.brand_id, "display_name": names.get(coop.brand_id, "")},
            "host": {"id": coop.host_id, "display_name": names.get(coop.host_id, "")},
            "rounds": steps,
        }

    # -- one agreement ---------------------------------------------------------------

    async def _get(self, tx: AsyncSession, coop_id: int) -> Cooperation:
        coop = await tx.get(Cooperation, coop_id)
        if coop is None:
            raise NotFound("cooperation_not_found", f"no cooperation {coop_id}")
        return coop

    async def _check_reader(self, tx: AsyncSession, caller: Principal, coop: Cooperation) -> None:
        """Its brand, its host, the host's agency or an admin; 403 for anyone else."""
        if caller.role is Role.BRAND and coop.brand_id == caller.user_id:
            return
        if caller.role is Role.BRAND:
            raise Forbidden("not_your_cooperation", "this agreement is not yours")
        await self._check_host_side(tx, caller, coop)
