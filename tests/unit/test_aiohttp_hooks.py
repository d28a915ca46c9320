"""``check_compatible`` passes on the installed aiohttp and names what changed when one
of the internals the room socket takeover relies on is gone or behaves otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from live.aiohttp_hooks import check_compatible


def test_the_installed_aiohttp_is_compatible() -> None:
    check_compatible()


def incompatible() -> str:
    with pytest.raises(RuntimeError) as info:
        check_compatible()
    return str(info.value)


def test_a_missing_slot_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    slots = tuple(s for s in RequestHandler.__slots__ if s != "_message_tail")
    monkeypatch.setattr(RequestHandler, "__slots__", slots)
    assert "RequestHandler._message_tail" in incompatible()


def test_buffered_headers_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web.StreamResponse, "_send_headers_immediately", False)
    assert "StreamResponse._send_headers_immediately" in incompatible()


def _patch(
    monkeypatch: pytest.MonkeyPatch, cls: type, name: str, after: Callable[..., Any]
) -> None:
    """Replace ``cls.name`` by the original followed by ``after(self, *args)``."""
    original = getattr(cls, name)

    def patched(self: Any, *args: Any) -> Any:
        result = original(self, *args)
        after(self, *args)
        return result

    monkeypatch.setattr(cls, name, patched)


def test_bytes_after_the_upgrade_not_kept_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # as if aiohttp handed them to a WebSocket reader of its own
    _patch(
        monkeypatch, RequestHandler, "data_received", lambda h, _: setattr(h, "_message_tail", b"")
    )
    assert "_message_tail" in incompatible()


def test_a_release_that_closes_the_transport_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def close_registered(server: web.Server, handler: RequestHandler, *_: Any) -> None:
        server._connections[handler].close()

    monkeypatch.setattr(web.Server, "connection_lost", close_registered)
    message = incompatible()
    assert "connection_lost closed the transport" in message
    assert "Server.connections" in message


def test_a_probe_that_breaks_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(*_: Any) -> None:
        raise AttributeError("'RequestHandler' object has no attribute '_parser'")

    monkeypatch.setattr(RequestHandler, "data_received", gone)
    assert "the upgrade probe failed" in incompatible()
