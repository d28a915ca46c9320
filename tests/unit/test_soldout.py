"""``SoldOutGate``: the routing hint of the order path (no I/O)."""

from __future__ import annotations

from shelf.soldout import SoldOutGate


def test_marks_route_attempts_for_as_many_units_or_more() -> None:
    gate = SoldOutGate()
    assert not gate.routes_to_read(1, 7, 1)
    gate.mark(1, 7, 3)
    assert not gate.routes_to_read(1, 7, 2)  # fewer units may still be there
    assert gate.routes_to_read(1, 7, 3)
    assert gate.routes_to_read(1, 7, 9)
    gate.mark(1, 7, 5)  # a larger refusal does not widen what is known
    assert not gate.routes_to_read(1, 7, 2)
    gate.mark(1, 7, 1)
    assert gate.routes_to_read(1, 7, 1)


def test_marks_are_per_session_and_cleared_per_product() -> None:
    gate = SoldOutGate()
    gate.mark(1, 7, 1)  # e.g. a flash sale of product 7 in session 1
    gate.mark(2, 7, 1)
    gate.mark(1, 8, 1)
    assert not gate.routes_to_read(3, 7, 1)
    gate.clear(7)  # any stock change of product 7, in any session
    assert not gate.routes_to_read(1, 7, 1)
    assert not gate.routes_to_read(2, 7, 1)
    assert gate.routes_to_read(1, 8, 1)
    gate.clear(99)  # unknown: nothing happens


def test_bounded() -> None:
    gate = SoldOutGate(max_products=3)
    for product in range(3):
        gate.mark(1, product, 1)
    assert len(gate) == 3
    gate.mark(1, 3, 1)  # full: forget everything, keep the newest
    assert len(gate) == 1
    assert gate.routes_to_read(1, 3, 1)
    assert not gate.routes_to_read(1, 0, 1)
