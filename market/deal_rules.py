"""The deal's state machine in one table: which action leads from which state to which,
and which party may take it. Anything not in ``TRANSITIONS`` is 409
``illegal_transition``; a party not listed for a step is 403 ``not_your_step``.

::

    offered   --accept (host)--> accepted --schedule (host)--> scheduled
    offered   --decline (host)--> declined
    offered   --withdraw (brand)--> withdrawn
    offered   --expire (clock, from 72 h + 1 ms on)--> expired
    accepted, scheduled --cancel (host, admin)--> cancelled
    scheduled --deliver (host, clock)--> delivered

    delivered --approve (brand) | auto_approve (clock, 72 h + 1 ms on)--> approved
    delivered --dispute (brand, within the review window)--> disputed
    approved  --settle (system, at once)--> settled
    disputed  --resolve (admin, with a split)--> resolved

The host's party is the host or the agency it has named; the brand's, the brand or an
agency ordering for it. Declined, withdrawn, expired and cancelled deals are refunded;
settled and resolved ones paid out (``market.deal_money``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from live.errors import Conflict
from market.deal_models import DealState

HOUR_MS = 3_600_000
#: an offer nobody answered expires once this has passed (strictly: not at 72 h)
OFFER_WINDOW_MS = 72 * HOUR_MS
#: a delivered deal the brand neither approved nor disputed is approved after this
REVIEW_WINDOW_MS = 72 * HOUR_MS


class Party(enum.StrEnum):
    BRAND = "brand"
    HOST = "host"
    ADMIN = "admin"
    #: the timers (``market.deal_timers``)
    CLOCK = "clock"
    #: a step that follows another at once (settling an approved deal)
    SYSTEM = "system"


class Action(enum.StrEnum):
    OFFER = "offer"
    ACCEPT = "accept"
    DECLINE = "decline"
    WITHDRAW = "withdraw"
    EXPIRE = "expire"
    SCHEDULE = "schedule"
    CANCEL = "cancel"
    DELIVER = "deliver"
    APPROVE = "approve"
    AUTO_APPROVE = "auto_approve"
    DISPUTE = "dispute"
    SETTLE = "settle"
    RESOLVE = "resolve"


_S = DealState
_A = Action
_BRAND = frozenset({Party.BRAND})
_HOST = frozenset({Party.HOST})

TRANSITIONS: Mapping[tuple[DealState, Action], tuple[DealState, frozenset[Party]]] = {
    (_S.OFFERED, _A.ACCEPT): (_S.ACCEPTED, _HOST),
    (_S.OFFERED, _A.DECLINE): (_S.DECLINED, _HOST),
    (_S.OFFERED, _A.WITHDRAW): (_S.WITHDRAWN, _BRAND),
    (_S.OFFERED, _A.EXPIRE): (_S.EXPIRED, frozenset({Party.CLOCK})),
    (_S.ACCEPTED, _A.SCHEDULE): (_S.SCHEDULED, _HOST),
    (_S.ACCEPTED, _A.CANCEL): (_S.CANCELLED, frozenset({Party.HOST, Party.ADMIN})),
    (_S.SCHEDULED, _A.CANCEL): (_S.CANCELLED, frozenset({Party.HOST, Party.ADMIN})),
    (_S.SCHEDULED, _A.DELIVER): (_S.DELIVERED, frozenset({Party.HOST, Party.CLOCK})),
    (_S.DELIVERED, _A.APPROVE): (_S.APPROVED, _BRAND),
    (_S.DELIVERED, _A.AUTO_APPROVE): (_S.APPROVED, frozenset({Party.CLOCK})),
    (_S.DELIVERED, _A.DISPUTE): (_S.DISPUTED, _BRAND),
    (_S.APPROVED, _A.SETTLE): (_S.SETTLED, frozenset({Party.SYSTEM})),
    (_S.DISPUTED, _A.RESOLVE): (_S.RESOLVED, frozenset({Party.ADMIN})),
}

#: the states that end a deal with the brand's money given back
REFUNDED = frozenset({_S.DECLINED, _S.WITHDRAWN, _S.EXPIRED, _S.CANCELLED})
#: the actions a user may ask for (``POST /api/deals/{id}/{action}``)
USER_ACTIONS = frozenset(
    action
    for (_state, action), (_to, parties) in TRANSITIONS.items()
    if parties & {Party.BRAND, Party.HOST, Party.ADMIN}
)


def transition(state: DealState, action: Action) -> tuple[DealState, frozenset[Party]]:
    """Where ``action`` leads from ``state`` and who may take it; 409 otherwise."""
    found = TRANSITIONS.get((state, action))
    if found is None:
        raise Conflict(
            "illegal_transition",
            f"a deal that is {state} cannot {action.replace('_', ' ')}",
            state=state.value,
            action=action.value,
        )
    return found
