"""Shelf fixtures: the app on a manual clock, and a brand + host + live session world."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web
from shelf_support import World, make_world
from support import Api, checked

from app import Settings, create_app
from live.clock import ManualClock
from shelf.feature import ShelfFeature, shelf_key


class TickingClock(ManualClock):
    """A manual clock that also moves 1 ms every time it is read, like a real one: no
    two events of a test share a timestamp, so ordering by time is never ambiguous."""

    def now_ms(self) -> int:
        self.advance(1)
        return super().now_ms()


@pytest.fixture
def clock() -> ManualClock:
    return TickingClock()


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Iterator[web.Application]:
    yield from checked(create_app(settings, clock=clock))


@pytest.fixture
def feature(app: web.Application) -> ShelfFeature:
    return app[shelf_key]


@pytest.fixture
async def world(api: Api) -> World:
    return await make_world(api)
