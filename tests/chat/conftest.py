"""Chat fixtures: the real app on a ManualClock, with chat limits set per test.

``@pytest.mark.chat_config(message_rate=100, ...)`` sets the chat part of the test's
settings (``LIVESHELF_CHAT_*`` for an operator): every app the test builds from its
``settings`` has them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web
from support import checked

from app import Settings, create_app
from live.clock import ManualClock
from live.settings import ChatSettings


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chat_config(**fields): ChatSettings for the test's settings"
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    marker = request.node.get_closest_marker("chat_config")
    if marker is None:
        return settings
    return settings.model_copy(update={"chat": ChatSettings(**marker.kwargs)})


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Iterator[web.Application]:
    yield from checked(create_app(settings, clock=clock))
