"""Posting and delivering chat over the room channel; snapshot; CSV export; likes."""

from __future__ import annotations

import asyncio
import csv
import io
import struct

import orjson
import pytest
from chat_support import connect, messages, next_of, quiet, refused, room, send
from support import Api
from wsclient import client_frame

from live.clock import ManualClock
from live.protocol import MAX_CLIENT_MESSAGE_BYTES


async def test_post_deliver_and_order_across_two_viewers(api: Api) -> None:
    host, sid = await room(api)
    alice = await api.signup("viewer")
    bob = await api.signup("viewer")
    ws_a, _ = await connect(api.client, sid, alice)
    ws_b, _ = await connect(api.client, sid, bob)
    ws_h, _ = await connect(api.client, sid, host)
    for i in range(3):
        await send(ws_a, f"a{i}")
        await send(ws_b, f"b{i}")
    await send(ws_h, "welcome")
    seen_a = await messages(ws_a, 7)
    seen_b = await messages(ws_b, 7)
    assert seen_a == seen_b
    texts = [m["text"] for m in seen_a]
    assert [t for t in texts if t.startswith("a")] == ["a0", "a1", "a2"]
    assert [t for t in texts if t.startswith("b")] == ["b0", "b1", "b2"]
    ids = [m["id"] for m in seen_a]
    assert ids == sorted(ids) and len(set(ids)) == 7
    by_text = {m["text"]: m for m in seen_a}
    assert by_text["a0"]["user"] == {
        "id": alice.id,
        "display_name": alice.username,
        "role": "viewer",
    }
    assert by_text["welcome"]["user"]["role"] == "host"
    for ws in (ws_a, ws_b, ws_h):
        await ws.close()


@pytest.mark.chat_config(snapshot_messages=3)
async def test_snapshot_has_the_last_n(api: Api) -> None:
    _host, sid = await room(api)
    viewer = await api.signup("viewer")
    ws, hello = await connect(api.client, sid, viewer)
    assert hello["snapshot"]["chat"] == {"messages": [], "slow_mode_s": 0}
    assert hello["snapshot"]["likes"] == {"total": 0}
    for i in range(5):
        await send(ws, f"m{i}")
    await messages(ws, 5)
    late, hello = await connect(api.client, sid)
    assert [m["text"] for m in hello["snapshot"]["chat"]["messages"]] == ["m2", "m3", "m4"]
    assert hello["snapshot"]["chat"]["messages"][0]["user"]["id"] == viewer.id
    await ws.close()
    await late.close()


async def test_guests_read_but_cannot_post_or_like(api: Api) -> None:
    _host, sid = await room(api)
    viewer = await api.signup("viewer")
    guest, hello = await connect(api.client, sid)
    assert hello["connection"]["role"] == "guest"
    ws, _ = await connect(api.client, sid, viewer)
    error = await refused(guest, {"type": "chat.send", "text": "hi"})
    assert error["code"] == "sign_in_required"
    error = await refused(guest, {"type": "like"})
    assert error["code"] == "sign_in_required"
    await send(ws, "from a viewer")
    assert [m["text"] for m in await messages(guest, 1)] == ["from a viewer"]
    await guest.close()
    await ws.close()


async def test_text_is_cleaned_and_never_interpreted(api: Api) -> None:
    _host, sid = await room(api)
    viewer = await api.signup("viewer")
    ws, _ = await connect(api.client, sid, viewer)
    await send(ws, "  <b>hi</b>\x00\x07 there\u202e\nok\u200b  ")
    (message,) = await messages(ws, 1)
    assert message["text"] == "<b>hi</b> there ok"
    await send(ws, "👨‍👩‍👧 family")  # the zero-width joiner of emoji sequences stays
    (message,) = await messages(ws, 1)
    assert message["text"] == "👨\u200d👩\u200d👧 family"
    await ws.close()


async def test_oversized_or_malformed_messages_get_errors_and_change_nothing(api: Api) -> None:
    host, sid = await room(api)
    viewer = await api.signup("viewer")
    ws, _ = await connect(api.client, sid, viewer)
    cases = [
        ({"type": "chat.send", "text": "x" * 301}, "message_too_long"),
        ({"type": "chat.send", "text": " \x00\u200b "}, "empty_message"),
        ({"type": "chat.send"}, "invalid_input"),
        ({"type": "chat.send", "text": 5}, "invalid_input"),
        ({"type": "chat.send", "text": "hi", "html": True}, "invalid_input"),
        ({"type": "like", "count": 0}, "invalid_input"),
        ({"type": "like", "count": "3"}, "invalid_input"),
        ({"type": "like", "count": 51}, "too_many_likes"),
    ]
    for message, code in cases:
        error = await refused(ws, message)
        assert error["code"] == code, (message, error)
    await ws.send_str('{"type": "chat.send", "text": "' + "y" * MAX_CLIENT_MESSAGE_BYTES + '"}')
    assert (await next_of(ws, "error"))["code"] == "message_too_large"
    await ws.send_str("{not json")
    assert (await next_of(ws, "error"))["code"] == "invalid_json"
    await quiet(ws, ("chat.message", "chat.batch", "likes.updated"), 0.5)
    await send(ws, "x" * 300)
    (message,) = await messages(ws, 1)
    assert message["text"] == "x" * 300
    exported = await api.call("GET", f"/api/sessions/{sid}/chat.csv", host, expect=200)
    assert len(list(csv.reader(io.StringIO(exported)))) == 2  # header + the one message
    await ws.close()


async def test_every_message_is_stored_and_exported_as_csv(api: Api) -> None:
    host, sid = await room(api)
    viewer = await api.signup("viewer")
    ws, _ = await connect(api.client, sid, viewer)
    await send(ws, "=SUM(A1:A9)")
    await send(ws, 'quote " and, comma')
    await send(ws, "to be deleted")
    sent = await messages(ws, 3)
    await api.call("DELETE", f"/api/sessions/{sid}/chat/messages/{sent[2]['id']}", host, expect=200)
    res = await api.client.get(f"/api/sessions/{sid}/chat.csv", headers=host.headers)
    assert res.status == 200
    assert res.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await res.text())))
    assert [int(r["id"]) for r in rows] == [m["id"] for m in sent]
    assert rows[0]["text"] == "'=SUM(A1:A9)"  # never a formula in a spreadsheet
    assert rows[1]["text"] == 'quote " and, comma'
    assert rows[0]["user_id"] == str(viewer.id) and rows[0]["role"] == "viewer"
    assert rows[0]["deleted_at"] == "" and rows[2]["deleted_at"] != ""
    assert rows[2]["deleted_by"] == str(host.id)
    other_host = await api.signup("host")
    for account, status, code in (
        (viewer, 403, "role_not_allowed"),
        (other_host, 403, "not_your_session"),
        (None, 401, "sign_in_required"),
    ):
        res = await api.call("GET", f"/api/sessions/{sid}/chat.csv", account, expect=status)
        assert res["error"]["code"] == code
    await ws.close()


@pytest.mark.chat_config(like_rate=1000, like_burst=1000, likes_interval_s=0.2)
async def test_likes_are_aggregated_never_one_event_per_tap(api: Api) -> None:
    _host, sid = await room(api)
    viewers = [await api.signup("viewer") for _ in range(3)]
    sockets = [(await connect(api.client, sid, v))[0] for v in viewers]
    watcher, _ = await connect(api.client, sid)
    for _ in range(40):
        for ws in sockets:
            await ws.send_json({"type": "like", "count": 2})
    total, updates = 0, 0
    while total < 240:
        event = await next_of(watcher, "likes.updated")
        updates += 1
        assert event["data"]["total"] > total
        total = event["data"]["total"]
    assert total == 240
    assert updates <= 12  # 120 like messages, 240 taps: a few updates, not one per tap
    await quiet(watcher, ("likes.updated",), 0.5)
    _late, hello = await connect(api.client, sid)
    assert hello["snapshot"]["likes"] == {"total": 240}
    for ws in [*sockets, watcher, _late]:
        await ws.close()


async def test_an_ended_session_refuses_chat(api: Api, clock: ManualClock) -> None:
    host, sid = await room(api)
    viewer = await api.signup("viewer")
    ws, _ = await connect(api.client, sid, viewer)
    clock.advance(1)  # see chat_support.OUTBOX_NOTE
    await api.call("POST", f"/api/sessions/{sid}/end", host, expect=200)
    await next_of(ws, "session.ended")
    error = await refused(ws, {"type": "chat.send", "text": "still here?"})
    assert error["code"] == "session_ended"
    await ws.close()


async def test_what_a_client_sent_before_its_close_frame_is_handled(api: Api) -> None:
    """Issue 27: likes and a message sent in the same write as the close frame were
    dropped when the close arrived while they waited their turn. Messages received
    before the client's close frame are handled; data after it is ignored (RFC 6455)."""
    _host, sid = await room(api)
    watcher, _ = await connect(api.client, sid, await api.signup("viewer"))
    leaver = await api.signup("viewer")
    ticket = (await api.call("POST", "/api/auth/ticket", leaver, expect=200))["ticket"]
    reader, writer = await asyncio.open_connection("127.0.0.1", api.client.port)
    writer.write(
        (
            f"GET /api/sessions/{sid}/ws?ticket={ticket} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ).encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    like = orjson.dumps({"type": "like"})
    chat = orjson.dumps({"type": "chat.send", "text": "bye all"})
    after = orjson.dumps({"type": "chat.send", "text": "after the close"})
    burst = b"".join(client_frame(0x1, like) for _ in range(15))
    burst += client_frame(0x1, chat) + client_frame(0x8, struct.pack("!H", 1000))
    burst += client_frame(0x1, after)
    writer.write(burst)  # one write: the close arrives while the likes wait their turn
    async with asyncio.timeout(5):
        while await reader.read(4096):  # the server echoes the close and hangs up
            pass
    writer.close()
    total, texts = 0, []
    async with asyncio.timeout(5):
        while total < 15 or not texts:
            event = await next_of(watcher, "likes.updated", "chat.message", "chat.batch")
            if event["type"] == "likes.updated":
                total = event["data"]["total"]
            elif event["type"] == "chat.message":
                texts.append(event["data"]["text"])
            else:
                texts += [m["text"] for m in event["data"]["messages"]]
    assert (total, texts) == (15, ["bye all"])
    await quiet(watcher, ("chat.message", "chat.batch"), 0.5)  # not the one after
    await watcher.close()
