"""Chat fixtures: the real app on a ManualClock, with chat limits set per test.

``@pytest.mark.chat_config(message_rate=100, ...)`` sets ``LIVESHELF_CHAT_*`` for the
test's app, exactly as an operator would.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from app import Settings, create_app
from live.clock import ManualClock


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chat_config(**fields): ChatConfig overrides for the test's app"
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def app(
    settings: Settings,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> web.Application:
    marker = request.node.get_closest_marker("chat_config")
    for name, value in (marker.kwargs if marker else {}).items():
        monkeypatch.setenv(f"LIVESHELF_CHAT_{name.upper()}", str(value))
    return create_app(settings, clock=clock)
