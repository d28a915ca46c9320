"""live/reaper.py reads two private attributes of aiohttp's RequestHandler: the check
that runs at start-up passes on the aiohttp installed, and refuses a class without them."""

from __future__ import annotations

import pytest
from aiohttp.web_protocol import RequestHandler

from live import reaper


def test_the_reached_attributes_are_there(monkeypatch: pytest.MonkeyPatch) -> None:
    reaper.check_compatible()
    slots = tuple(s for s in RequestHandler.__slots__ if s != "_request_in_progress")
    monkeypatch.setattr(RequestHandler, "__slots__", slots)
    with pytest.raises(RuntimeError, match="_request_in_progress"):
        reaper.check_compatible()
