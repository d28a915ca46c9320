"""A tiny room-channel client for the shelf tests: read events, fold them into state."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientWebSocketResponse
from aiohttp.test_utils import TestClient

SHELF_TYPES = {
    "shelf.updated",
    "card.shown",
    "card.hidden",
    "flash.scheduled",
    "flash.started",
    "flash.ended",
    "flash.cancelled",
    "stock.changed",
}


async def connect(
    client: TestClient[Any, Any], session_id: int, token: str | None = None, **query: Any
) -> tuple[ClientWebSocketResponse, dict[str, Any]]:
    params = {k: str(v) for k, v in query.items()}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ws = await client.ws_connect(f"/api/sessions/{session_id}/ws", params=params, headers=headers)
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello", hello
    return ws, hello


async def read_until(
    ws: ClientWebSocketResponse, want: str, *, count: int = 1, within_s: float = 5.0
) -> list[dict[str, Any]]:
    """Every room event received until ``count`` events of type ``want`` have arrived."""
    events: list[dict[str, Any]] = []
    seen = 0
    async with asyncio.timeout(within_s):
        while seen < count:
            msg = await ws.receive_json()
            if "seq" not in msg:
                continue
            events.append(msg)
            if msg["type"] == want:
                seen += 1
    return events


async def drain(ws: ClientWebSocketResponse, quiet_s: float = 0.4) -> list[dict[str, Any]]:
    """Every room event that arrives until the socket has been quiet for ``quiet_s``."""
    events: list[dict[str, Any]] = []
    while True:
        try:
            msg = await ws.receive_json(timeout=quiet_s)
        except TimeoutError:
            return events
        if "seq" in msg:
            events.append(msg)


def fold(snapshot: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """What a client shows: the snapshot's shelf state with ``events`` applied in order."""
    state = {
        "shelf": list(snapshot["shelf"]),
        "shelf_version": snapshot["shelf_version"],
        "pinned": snapshot["pinned"],
        "stock": dict(snapshot["stock"]),
        "flash_sales": {f["id"]: f for f in snapshot["flash_sales"]},
    }
    for event in events:
        kind, data = event["type"], event["data"]
        if kind == "shelf.updated" and data["version"] > state["shelf_version"]:
            state["shelf"], state["shelf_version"] = data["shelf"], data["version"]
            for entry in data["stock"].values():
                _newer_stock(state, entry)
        elif kind == "card.shown":
            state["pinned"] = data
        elif kind == "card.hidden":
            if state["pinned"] and state["pinned"]["pin_id"] == data["pin_id"]:
                state["pinned"] = None
        elif kind in ("flash.scheduled", "flash.started"):
            state["flash_sales"][data["id"]] = data
        elif kind in ("flash.ended", "flash.cancelled"):
            state["flash_sales"].pop(data["id"], None)
        elif kind == "stock.changed":
            _newer_stock(state, data)
    return state


def _newer_stock(state: dict[str, Any], entry: dict[str, Any]) -> None:
    key = str(entry["product_id"])
    old = state["stock"].get(key)
    if old is None or entry["version"] > old["version"]:
        state["stock"][key] = entry


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """The parts of a folded state that must equal a fresh snapshot's."""
    pinned = state["pinned"]
    flash = state["flash_sales"]
    ids = sorted(flash) if isinstance(flash, dict) else sorted(f["id"] for f in flash)
    shelf_ids = {str(item["product_id"]) for item in state["shelf"]}
    return {
        "shelf": state["shelf"],
        "shelf_version": state["shelf_version"],
        "pinned": None if pinned is None else (pinned["pin_id"], pinned["product_id"]),
        "stock": {k: v for k, v in state["stock"].items() if k in shelf_ids},
        "flash_sales": ids,
    }
