"""Shelf fixtures: the app on a manual clock, and a brand + host + live session world."""

from __future__ import annotations

import pytest
from aiohttp import web
from shelf_support import World, make_world
from support import Api

from app import Settings, create_app, shelf_key
from live.clock import ManualClock
from shelf.feature import ShelfFeature


class TickingClock(ManualClock):
    """A manual clock that also moves 1 ms every time it is read.

    Why: the foundation's outbox dedup key is ``outbox:<row id>:<created ms>``, and
    SQLite hands a deleted last row's id to the next insert; on a clock that stands
    still, two different events then share a key and the second is dropped as a
    duplicate (reported to the foundation owner). Real clocks move; so does this one.
    """

    def now_ms(self) -> int:
        self.advance(1)
        return super().now_ms()


@pytest.fixture
def clock() -> ManualClock:
    return TickingClock()


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> web.Application:
    return create_app(settings, clock=clock)


@pytest.fixture
def feature(app: web.Application) -> ShelfFeature:
    return app[shelf_key]


@pytest.fixture
async def world(api: Api) -> World:
    return await make_world(api)
