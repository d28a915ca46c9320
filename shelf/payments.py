"""Payment providers: capturing and refunding buyers' money.

``PaymentProvider`` is the whole interface the order service needs. Calls are keyed
by the order id, so a capture or refund repeated after a crash is answered with the
first result instead of charging twice. ``TestPaymentProvider`` captures at once and
keeps its records in memory; a real provider (a card processor) implements the same
two methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Captured:
    ok: bool
    reference: str
    reason: str = ""


class PaymentProvider(Protocol):
    async def capture(
        self, order_id: int, amount_minor: int, currency: str, buyer_id: int
    ) -> Captured:
        """Charge the buyer. Same ``order_id`` again -> the first answer, nothing more."""
        ...

    async def refund(self, reference: str, refund_id: str, amount_minor: int) -> None:
        """Give ``amount_minor`` back. Same ``refund_id`` again -> nothing more."""
        ...


class TestPaymentProvider:
    """Captures immediately; ``decline_buyers`` lets tests exercise a refused card.

    It remembers the last ``remember`` captures, with their amounts and refunds; older
    ones are forgotten, oldest first. Capturing a forgotten order again answers the
    same (the answer depends only on the order and the buyer); a refund of a forgotten
    capture is not checked against its amount (the order service bounds refunds by the
    order's units) and is not kept. The demo server uses it too: 10,000 captures are
    ~2 MB at most, reached after ~3 hours of an order a second.
    """

    __test__ = False  # not a pytest class

    def __init__(
        self, *, decline_buyers: frozenset[int] = frozenset(), remember: int = 10_000
    ) -> None:
        self.decline_buyers = decline_buyers
        self._remember = remember
        #: order id -> its capture: the last ``remember`` orders, the oldest dropped first
        self.captures: dict[int, Captured] = {}
        #: capture reference -> amount: one per remembered capture that succeeded
        self.amounts: dict[str, int] = {}
        #: capture reference -> refund id -> amount: one per remembered capture refunded
        self.refunds: dict[str, dict[str, int]] = {}
        #: captures forgotten so far
        self.forgotten = 0

    async def capture(
        self, order_id: int, amount_minor: int, currency: str, buyer_id: int
    ) -> Captured:
        earlier = self.captures.get(order_id)
        if earlier is not None:
            return earlier
        if buyer_id in self.decline_buyers:
            result = Captured(False, "", "card_declined")
        else:
            result = Captured(True, f"test_{order_id}")
            self.amounts[result.reference] = amount_minor
        self.captures[order_id] = result
        if len(self.captures) > self._remember:
            oldest = self.captures.pop(next(iter(self.captures)))
            self.amounts.pop(oldest.reference, None)
            self.refunds.pop(oldest.reference, None)
            self.forgotten += 1
        return result

    async def refund(self, reference: str, refund_id: str, amount_minor: int) -> None:
        captured = self.amounts.get(reference)
        if captured is None:
            if not self.forgotten:
                raise ValueError(f"refund over the captured amount of {reference}")
            return  # a forgotten capture: not checked, not kept
        done = self.refunds.setdefault(reference, {})
        if refund_id in done:
            return
        if sum(done.values()) + amount_minor > captured:
            raise ValueError(f"refund over the captured amount of {reference}")
        done[refund_id] = amount_minor
