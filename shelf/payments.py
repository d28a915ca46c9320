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
    """Captures immediately; ``decline_buyers`` lets tests exercise a refused card."""

    __test__ = False  # not a pytest class

    def __init__(self, *, decline_buyers: frozenset[int] = frozenset()) -> None:
        self.decline_buyers = decline_buyers
        self.captures: dict[int, Captured] = {}
        self.amounts: dict[str, int] = {}
        self.refunds: dict[str, int] = {}

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
        return result

    async def refund(self, reference: str, refund_id: str, amount_minor: int) -> None:
        if refund_id in self.refunds:
            return
        refunded = sum(v for k, v in self.refunds.items() if k.startswith(f"{reference}:"))
        if refunded + amount_minor > self.amounts.get(reference, 0):
            raise ValueError(f"refund over the captured amount of {reference}")
        self.refunds[f"{reference}:{refund_id}"] = amount_minor
