"""A deal's money in the spine's ledger (``live.ledger``): escrow, refund, settlement
and a dispute's resolution, each one balanced transaction posted with ``post_once``
inside the step's database transaction, so a retried step moves the money once.

Every line is about ``ref = "deal:{id}"`` (``live.ledger.balances`` sums a deal), its
host and brand; the agency's line also names the agency. Accounts:

* ``brand_payments`` pays the whole price when the offer is made
  (``deal:{id}:escrow``: ``brand_payments -price``, ``deal_escrow +price``);
* a declined, withdrawn, expired or cancelled deal gives it back exactly
  (``deal:{id}:refund``: the reverse);
* settlement empties the escrow (``deal:{id}:settle``) into ``platform_fees``,
  ``agency_share`` (when an agency managed the host at the offer) and
  ``host_commission``; the host's and the agency's lines are held for the hold period
  (``LIVESHELF_COMMISSION_HOLD_DAYS``, as the shelf's commission);
* a resolved dispute (``deal:{id}:resolve``) refunds the brand its part of the price
  and settles the rest as above.

The published fee schedule (``PLATFORM_FEE_BPS``, ``AGENCY_SHARE_BPS``) is copied onto
each deal when it is offered: a later change of the schedule never touches a deal.

Rounding: every share is rounded down and the host takes the remainder::

    released  = price - refund            (refund = price * (10_000 - host_bps) // 10_000;
                                           no dispute: refund = 0, released = price)
    fee       = released * platform_fee_bps // 10_000
    agency    = released * agency_share_bps // 10_000     (0 without an agency)
    host      = released - fee - agency

so the lines always sum to zero and nobody is paid a fraction of a minor unit. A
dispute resolved with ``host_bps`` 3000 on a price of 10 001 refunds the brand
``10_001 * 7000 // 10_000 = 7000`` and releases 3001.

A dispute does nothing to the ledger: the deal's money stays in its escrow (its own
``ref``) until an admin resolves it, and no other line of the host moves.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, bindparam, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from live.ledger import Refs, Transaction, balanced, post_once
from live.ledger_models import LedgerEntry
from market.deal_models import Deal

BPS = 10_000
#: the published fee schedule: the platform's fee on every settled deal
PLATFORM_FEE_BPS = 1_000
#: ... and the share of an agency that manages the host, on the same amount
AGENCY_SHARE_BPS = 1_500


class Account:
    BRAND_PAYMENTS = "brand_payments"
    DEAL_ESCROW = "deal_escrow"
    HOST_COMMISSION = "host_commission"
    PLATFORM_FEES = "platform_fees"
    AGENCY_SHARE = "agency_share"


class Kind:
    ESCROW = "deal_escrow"
    REFUND = "deal_refund"
    SETTLE = "deal_settle"
    RESOLVE = "deal_resolve"


@dataclass(frozen=True, slots=True)
class Split:
    """Where a deal's price goes when it is settled (or resolved)."""

    refund_minor: int
    fee_minor: int
    agency_minor: int
    host_minor: int


def split(deal: Deal, host_bps: int = BPS) -> Split:
    """The module docstring's rounding rule: shares rounded down, the host takes the
    remainder."""
    price = deal.price_minor
    refund = price * (BPS - host_bps) // BPS
    released = price - refund
    fee = released * deal.platform_fee_bps // BPS
    agency = released * deal.agency_share_bps // BPS if deal.agency_id is not None else 0
    return Split(refund, fee, agency, released - fee - agency)


def deal_ref(deal_id: int) -> str:
    return f"deal:{deal_id}"


class DealMoney:
    def __init__(self, hold_ms: int) -> None:
        self._hold_ms = hold_ms

    async def escrow(self, tx: AsyncSession, deal: Deal, now_ms: int) -> None:
        """The brand pays the offer: its price goes into escrow."""
        amounts = {Account.BRAND_PAYMENTS: -deal.price_minor, Account.DEAL_ESCROW: deal.price_minor}
        await post_once(tx, self._transaction(deal, "escrow", Kind.ESCROW, amounts, now_ms))

    async def refund(self, tx: AsyncSession, deal: Deal, now_ms: int) -> None:
        """The deal ends unpaid: the escrow goes back to the brand, exactly."""
        amounts = {Account.BRAND_PAYMENTS: deal.price_minor, Account.DEAL_ESCROW: -deal.price_minor}
        await post_once(tx, self._transaction(deal, "refund", Kind.REFUND, amounts, now_ms))

    async def settle(self, tx: AsyncSession, deal: Deal, now_ms: int) -> Split:
        """The deal is approved: the escrow is paid out (module docstring)."""
        parts = split(deal)
        await post_once(tx, self._payout(deal, "settle", Kind.SETTLE, parts, now_ms))
        return parts

    async def resolve(self, tx: AsyncSession, deal: Deal, host_bps: int, now_ms: int) -> Split:
        """A dispute is resolved: ``host_bps`` of the price is paid out as a
        settlement, the rest refunded to the brand."""
        parts = split(deal, host_bps)
        await post_once(tx, self._payout(deal, "resolve", Kind.RESOLVE, parts, now_ms))
        return parts

    def _payout(self, deal: Deal, step: str, kind: str, parts: Split, now_ms: int) -> Transaction:
        amounts = {
            Account.DEAL_ESCROW: -deal.price_minor,
            Account.BRAND_PAYMENTS: parts.refund_minor,
            Account.PLATFORM_FEES: parts.fee_minor,
            Account.AGENCY_SHARE: parts.agency_minor,
            Account.HOST_COMMISSION: parts.host_minor,
        }
        # Lines of nothing are left out; which ones are is fixed by the deal's terms,
        # so a retry posts the same accounts.
        amounts = {a: v for a, v in amounts.items() if v or a == Account.DEAL_ESCROW}
        held = now_ms + self._hold_ms
        line_refs = None
        if deal.agency_id is not None:
            line_refs = {
                Account.AGENCY_SHARE: Refs(
                    host_id=deal.host_id,
                    brand_id=deal.brand_id,
                    session_id=deal.session_id,
                    agency_id=deal.agency_id,
                    ref=deal_ref(deal.id),
                )
            }
        return self._transaction(
            deal,
            step,
            kind,
            amounts,
            now_ms,
            available_ms={Account.HOST_COMMISSION: held, Account.AGENCY_SHARE: held},
            line_refs=line_refs,
        )

    def _transaction(
        self,
        deal: Deal,
        step: str,
        kind: str,
        amounts: dict[str, int],
        now_ms: int,
        *,
        available_ms: dict[str, int] | None = None,
        line_refs: dict[str, Refs] | None = None,
    ) -> Transaction:
        return balanced(
            f"deal:{deal.id}:{step}",
            kind,
            amounts,
            currency=deal.currency,
            created_ms=now_ms,
            refs=Refs(
                host_id=deal.host_id,
                brand_id=deal.brand_id,
                session_id=deal.session_id,
                ref=deal_ref(deal.id),
            ),
            available_ms=available_ms,
            line_refs=line_refs,
        )


_HELD = LedgerEntry.available_ms > bindparam("now", type_=BigInteger)
_HOST_DEALS = (
    select(
        LedgerEntry.currency,
        func.sum(case((_HELD, LedgerEntry.amount_minor), else_=0)).label("pending"),
        func.sum(LedgerEntry.amount_minor).label("total"),
    )
    .where(
        LedgerEntry.host_id == bindparam("host"),
        LedgerEntry.account == Account.HOST_COMMISSION,
        LedgerEntry.ref.like("deal:%"),
    )
    .group_by(LedgerEntry.currency)
    .order_by(LedgerEntry.currency)
)


async def host_deal_commission(
    s: AsyncSession, host_id: int, now_ms: int
) -> dict[str, tuple[int, int]]:
    """Per currency, ``(pending, payable)`` of the host's commission from deals."""
    rows = await s.execute(_HOST_DEALS, {"host": host_id, "now": now_ms})
    return {
        row.currency: (int(row.pending or 0), int(row.total or 0) - int(row.pending or 0))
        for row in rows
    }
