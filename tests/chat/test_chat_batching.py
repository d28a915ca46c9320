"""Large rooms: above the threshold, chat leaves in ``chat.batch`` frames, nothing lost."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from chat_support import connect, next_of, room, send
from support import Api

BATCHING = {
    "message_rate": 1000,
    "message_burst": 1000,
    "batch_threshold_per_s": 10,
    "batch_interval_s": 0.15,
}


async def _collect(ws: Any, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(frames carrying chat, messages in order) until ``n`` messages arrived."""
    frames: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    while len(out) < n:
        frame = await next_of(ws, "chat.message", "chat.batch", "error")
        assert frame["type"] != "error", frame
        frames.append(frame)
        out.extend(
            [frame["data"]] if frame["type"] == "chat.message" else frame["data"]["messages"]
        )
    return frames, out


@pytest.mark.chat_config(**BATCHING)
async def test_batching_switches_on_above_threshold_and_loses_nothing(api: Api) -> None:
    _host, sid = await room(api)
    senders = [await api.signup("viewer") for _ in range(5)]
    sockets = [(await connect(api.client, sid, s))[0] for s in senders]
    watcher, _ = await connect(api.client, sid)

    # A quiet room: message by message.
    await send(sockets[0], "quiet")
    frames, _ = await _collect(watcher, 1)
    assert [f["type"] for f in frames] == ["chat.message"]

    # A busy room: 5 senders x 30 messages as fast as they go (the room channel itself
    # lets one socket send 40 messages at once).
    per_sender = 30
    start = time.monotonic()
    await asyncio.gather(*(_burst(ws, i, per_sender) for i, ws in enumerate(sockets)))
    frames, got = await _collect(watcher, per_sender * len(sockets))
    elapsed = time.monotonic() - start
    kinds = [f["type"] for f in frames]
    assert "chat.batch" in kinds
    assert kinds.index("chat.batch") <= 12  # switched on soon after 10 messages/s
    batches = [f for f in frames if f["type"] == "chat.batch"]
    assert sum(len(b["data"]["messages"]) for b in batches) > 75
    # Nothing lost, nothing twice, nothing reordered.
    ids = [m["id"] for m in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for i in range(len(sockets)):
        assert [m["text"] for m in got if m["text"].startswith(f"s{i}-")] == [
            f"s{i}-{k}" for k in range(per_sender)
        ]
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(seqs)
    # Frames are bounded: about one per batch interval, not one per message.
    assert len(frames) <= 12 + elapsed / 0.15 + 2, (len(frames), elapsed)

    # Quiet again (below half the threshold for a second): message by message again.
    await asyncio.sleep(1.2)
    await send(sockets[0], "calm")
    frames, got = await _collect(watcher, 1)
    assert [f["type"] for f in frames] == ["chat.message"] and got[0]["text"] == "calm"
    for ws in [*sockets, watcher]:
        await ws.close()


async def _burst(ws: Any, sender: int, n: int) -> None:
    for k in range(n):
        await send(ws, f"s{sender}-{k}")


@pytest.mark.chat_config(**BATCHING)
async def test_batches_replay_from_since(api: Api) -> None:
    _host, sid = await room(api)
    senders = [(await connect(api.client, sid, await api.signup("viewer")))[0] for _ in range(2)]
    watcher, hello = await connect(api.client, sid)
    await asyncio.gather(*(_burst(ws, i, 30) for i, ws in enumerate(senders)))
    frames, _ = await _collect(watcher, 60)
    assert any(f["type"] == "chat.batch" for f in frames)
    middle = frames[len(frames) // 2]
    await watcher.close()
    again = await api.client.ws_connect(
        f"/api/sessions/{sid}/ws", params={"since": str(middle["seq"]), "epoch": hello["epoch"]}
    )
    assert (await next_of(again, "hello"))["recovered"] is True
    replayed = frames[len(frames) // 2 + 1 :]
    rest, _ = await _collect(again, sum(_count(f) for f in replayed))
    assert [f["seq"] for f in rest] == [f["seq"] for f in replayed]
    for socket in (*senders, again):
        await socket.close()


def _count(frame: dict[str, Any]) -> int:
    return 1 if frame["type"] == "chat.message" else len(frame["data"]["messages"])
