"""Moderation from the host and from moderators, and its refusal for viewers."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import WSMsgType
from chat_support import connect, messages, next_of, quiet, refused, room, send
from support import Account, Api, admin

from live.clock import ManualClock
from live.protocol import CloseCode


async def _appoint(api: Api, host: Account, sid: int) -> Account:
    moderator = await api.signup("viewer")
    await api.call(
        "POST", f"/api/sessions/{sid}/moderators", host, json={"user_id": moderator.id}, expect=201
    )
    return moderator


@pytest.fixture(params=["host", "moderator"])
def actor_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _actor(api: Api, host: Account, sid: int, kind: str) -> Account:
    return host if kind == "host" else await _appoint(api, host, sid)


async def test_delete_removes_the_message_everywhere(
    api: Api, clock: ManualClock, actor_kind: str
) -> None:
    host, sid = await room(api)
    actor = await _actor(api, host, sid, actor_kind)
    viewer = await api.signup("viewer")
    ws, _ = await connect(api.client, sid, viewer)
    await send(ws, "keep me")
    await send(ws, "delete me")
    keep, gone = await messages(ws, 2)
    res = await api.call(
        "DELETE", f"/api/sessions/{sid}/chat/messages/{gone['id']}", viewer, expect=403
    )
    assert res["error"]["code"] == "not_a_moderator"
    clock.advance(1)
    res = await api.call(
        "DELETE", f"/api/sessions/{sid}/chat/messages/{gone['id']}", actor, expect=200
    )
    assert res["id"] == gone["id"]
    assert (await next_of(ws, "chat.deleted"))["data"] == {"id": gone["id"]}
    _late, hello = await connect(api.client, sid)
    assert [m["id"] for m in hello["snapshot"]["chat"]["messages"]] == [keep["id"]]
    await api.call("DELETE", f"/api/sessions/{sid}/chat/messages/999999", actor, expect=404)
    log = await api.call("GET", f"/api/sessions/{sid}/chat/moderation-log", actor, expect=200)
    deletion = next(a for a in log["actions"] if a["action"] == "delete_message")
    assert deletion["actor_id"] == actor.id
    assert deletion["message_id"] == gone["id"]
    assert deletion["target_user_id"] == viewer.id
    await ws.close()
    await _late.close()


async def test_mute_for_a_time(api: Api, clock: ManualClock, actor_kind: str) -> None:
    host, sid = await room(api)
    actor = await _actor(api, host, sid, actor_kind)
    viewer = await api.signup("viewer")
    other = await api.signup("viewer")
    ws, _ = await connect(api.client, sid, viewer)
    res = await api.call(
        "POST",
        f"/api/sessions/{sid}/chat/mutes",
        other,
        json={"user_id": viewer.id, "seconds": 60},
        expect=403,
    )
    assert res["error"]["code"] == "not_a_moderator"
    res = await api.call(
        "POST",
        f"/api/sessions/{sid}/chat/mutes",
        actor,
        json={"user_id": viewer.id, "seconds": 60},
        expect=201,
    )
    error = await refused(ws, {"type": "chat.send", "text": "can I talk?"})
    assert error["code"] == "muted"
    assert error["details"]["until"] == res["muted_until"]
    await ws.send_json({"type": "like"})  # muted viewers may still like
    clock.advance(61_000)
    await send(ws, "back again")
    assert [m["text"] for m in await messages(ws, 1)] == ["back again"]
    await api.call(
        "POST",
        f"/api/sessions/{sid}/chat/mutes",
        actor,
        json={"user_id": viewer.id, "seconds": 60},
        expect=201,
    )
    assert (await refused(ws, {"type": "chat.send", "text": "x"}))["code"] == "muted"
    await api.call("DELETE", f"/api/sessions/{sid}/chat/mutes/{viewer.id}", actor, expect=204)
    await send(ws, "unmuted")
    assert [m["text"] for m in await messages(ws, 1)] == ["unmuted"]
    log = await api.call("GET", f"/api/sessions/{sid}/chat/moderation-log", host, expect=200)
    assert [(a["action"], a["actor_id"]) for a in log["actions"][:3]] == [
        ("unmute", actor.id),
        ("mute", actor.id),
        ("mute", actor.id),
    ]
    await ws.close()


async def _closed_with(ws: Any) -> tuple[str, int | None]:
    error = await next_of(ws, "error")
    msg = await ws.receive(timeout=10)
    while msg.type is WSMsgType.TEXT:
        msg = await ws.receive(timeout=10)
    assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), msg
    return error["code"], ws.close_code


async def test_ban_closes_the_socket_and_keeps_the_viewer_out(api: Api, actor_kind: str) -> None:
    host, sid = await room(api)
    actor = await _actor(api, host, sid, actor_kind)
    viewer = await api.signup("viewer")
    ws, _ = await connect(api.client, sid, viewer)
    second, _ = await connect(api.client, sid, viewer)  # every socket of the viewer goes
    bystander, _ = await connect(api.client, sid)
    res = await api.call(
        "POST",
        f"/api/sessions/{sid}/chat/bans",
        viewer,
        json={"user_id": actor.id},
        expect=403,
    )
    assert res["error"]["code"] in ("not_a_moderator", "target_is_staff")
    res = await api.call(
        "POST",
        f"/api/sessions/{sid}/chat/bans",
        actor,
        json={"user_id": viewer.id, "reason": "spam"},
        expect=201,
    )
    assert res["sockets_closed"] == 2
    for socket in (ws, second):
        assert await _closed_with(socket) == ("banned", CloseCode.FORBIDDEN)
    again = await api.client.ws_connect(f"/api/sessions/{sid}/ws", headers=viewer.headers)
    assert await _closed_with(again) == ("banned", CloseCode.FORBIDDEN)
    # Still in the room: the bystander, who sees nothing of it.
    await bystander.send_json({"type": "ping", "ref": 1})
    assert (await next_of(bystander, "pong"))["ref"] == 1
    settings = await api.call("GET", f"/api/sessions/{sid}/chat/settings", actor, expect=200)
    assert settings["bans"] == [viewer.id]
    await api.call("DELETE", f"/api/sessions/{sid}/chat/bans/{viewer.id}", actor, expect=204)
    back, _ = await connect(api.client, sid, viewer)
    await send(back, "sorry")
    assert [m["text"] for m in await messages(back, 1)] == ["sorry"]
    log = await api.call("GET", f"/api/sessions/{sid}/chat/moderation-log", host, expect=200)
    ban = next(a for a in log["actions"] if a["action"] == "ban")
    assert ban["actor_id"] == actor.id and ban["detail"] == {"reason": "spam"}
    for socket in (back, bystander):
        await socket.close()


async def test_staff_cannot_be_muted_or_banned(api: Api) -> None:
    host, sid = await room(api)
    moderator = await _appoint(api, host, sid)
    for path, body in (("bans", {}), ("mutes", {"seconds": 10})):
        for target in (host, moderator):
            res = await api.call(
                "POST",
                f"/api/sessions/{sid}/chat/{path}",
                moderator,
                json={"user_id": target.id, **body},
                expect=403,
            )
            assert res["error"]["code"] == "target_is_staff"
    res = await api.call(
        "POST", f"/api/sessions/{sid}/chat/bans", host, json={"user_id": 999999}, expect=404
    )
    assert res["error"]["code"] == "user_not_found"


async def test_slow_mode_timing(api: Api, clock: ManualClock, actor_kind: str) -> None:
    host, sid = await room(api)
    actor = await _actor(api, host, sid, actor_kind)
    viewer = await api.signup("viewer")
    ws, _ = await connect(api.client, sid, viewer)
    staff_ws, _ = await connect(api.client, sid, actor)
    res = await api.call(
        "PUT", f"/api/sessions/{sid}/chat/slow-mode", viewer, json={"seconds": 10}, expect=403
    )
    assert res["error"]["code"] == "not_a_moderator"
    clock.advance(1)
    await api.call(
        "PUT", f"/api/sessions/{sid}/chat/slow-mode", actor, json={"seconds": 10}, expect=200
    )
    assert (await next_of(ws, "chat.slow_mode"))["data"] == {"seconds": 10}
    await send(ws, "one")
    await messages(ws, 1)
    clock.advance(9_000)
    error = await refused(ws, {"type": "chat.send", "text": "two"})
    assert error["code"] == "slow_mode"
    assert error["details"]["retry_after_ms"] == 1_000
    for i in range(2):  # staff are exempt
        await send(staff_ws, f"staff {i}")
    assert [m["text"] for m in await messages(ws, 2)] == ["staff 0", "staff 1"]
    clock.advance(1_000)
    await send(ws, "two")
    assert [m["text"] for m in await messages(ws, 1)] == ["two"]
    _late, hello = await connect(api.client, sid)
    assert hello["snapshot"]["chat"]["slow_mode_s"] == 10
    clock.advance(1)
    await api.call(
        "PUT", f"/api/sessions/{sid}/chat/slow-mode", actor, json={"seconds": 0}, expect=200
    )
    await send(ws, "three")
    assert [m["text"] for m in await messages(ws, 1)] == ["three"]
    for socket in (ws, staff_ws, _late):
        await socket.close()


async def test_keyword_list_refuses_messages(api: Api, actor_kind: str) -> None:
    host, sid = await room(api)
    actor = await _actor(api, host, sid, actor_kind)
    viewer = await api.signup("viewer")
    ws, _ = await connect(api.client, sid, viewer)
    res = await api.call(
        "PUT", f"/api/sessions/{sid}/chat/keywords", viewer, json={"words": ["x"]}, expect=403
    )
    assert res["error"]["code"] == "not_a_moderator"
    res = await api.call(
        "PUT",
        f"/api/sessions/{sid}/chat/keywords",
        actor,
        json={"words": ["Spoiler", " scam ", "spoiler", "假货"]},
        expect=200,
    )
    assert res["words"] == ["scam", "spoiler", "假货"]
    for text in ("big SPOILER ahead", "\uff53\uff43\uff41\uff4d site", "这是假货吗"):
        error = await refused(ws, {"type": "chat.send", "text": text})
        assert error["code"] == "blocked_word", text
    await quiet(ws, ("chat.message", "chat.batch"), 0.3)
    await send(ws, "honest question")
    assert [m["text"] for m in await messages(ws, 1)] == ["honest question"]
    settings = await api.call("GET", f"/api/sessions/{sid}/chat/settings", actor, expect=200)
    assert settings["keywords"] == ["scam", "spoiler", "假货"]
    await api.call("GET", f"/api/sessions/{sid}/chat/settings", viewer, expect=403)
    await ws.close()


async def test_moderators_per_session_and_for_all_sessions(api: Api) -> None:
    host, sid = await room(api)
    other_sid = int((await api.live_session(host, "second show"))["id"])
    per_session = await _appoint(api, host, sid)
    everywhere = await api.signup("viewer")
    await api.call(
        "POST",
        f"/api/hosts/{host.id}/moderators",
        host,
        json={"user_id": everywhere.id},
        expect=201,
    )
    viewer = await api.signup("viewer")
    ws, _ = await connect(api.client, other_sid, viewer)
    await send(ws, "hello")
    (message,) = await messages(ws, 1)
    # The host-wide moderator acts in both sessions; the per-session one only in its own.
    await api.call(
        "DELETE",
        f"/api/sessions/{other_sid}/chat/messages/{message['id']}",
        per_session,
        expect=403,
    )
    await api.call(
        "DELETE",
        f"/api/sessions/{other_sid}/chat/messages/{message['id']}",
        everywhere,
        expect=200,
    )
    mod_ws, _ = await connect(api.client, sid, per_session)
    await send(mod_ws, "I moderate here")
    assert (await messages(mod_ws, 1))[0]["user"]["role"] == "moderator"
    listed = await api.call("GET", f"/api/sessions/{sid}/moderators", per_session, expect=200)
    assert {(m["user_id"], m["scope"]) for m in listed["moderators"]} == {
        (per_session.id, "session"),
        (everywhere.id, "host"),
    }
    # Refusals: other hosts, viewers, moderators themselves, guests.
    other_host = await api.signup("host")
    body = {"user_id": viewer.id}
    cases = [
        ("POST", f"/api/sessions/{sid}/moderators", other_host, 403, "not_your_session"),
        ("POST", f"/api/sessions/{sid}/moderators", viewer, 403, "role_not_allowed"),
        ("POST", f"/api/sessions/{sid}/moderators", per_session, 403, "role_not_allowed"),
        ("POST", f"/api/sessions/{sid}/moderators", None, 401, "sign_in_required"),
        ("POST", f"/api/hosts/{host.id}/moderators", other_host, 403, "not_you"),
        ("POST", f"/api/hosts/{host.id}/moderators", viewer, 403, "role_not_allowed"),
        ("GET", f"/api/sessions/{sid}/moderators", viewer, 403, "not_a_moderator"),
    ]
    for method, path, account, status, code in cases:
        res = await api.call(method, path, account, json=body, expect=status)
        assert res["error"]["code"] == code, (path, account)
    # Dismissed moderators lose their powers at once.
    await api.call("DELETE", f"/api/sessions/{sid}/moderators/{per_session.id}", host, expect=204)
    await api.call(
        "PUT", f"/api/sessions/{sid}/chat/slow-mode", per_session, json={"seconds": 5}, expect=403
    )
    await api.call("DELETE", f"/api/hosts/{host.id}/moderators/{everywhere.id}", host, expect=204)
    await api.call(
        "PUT", f"/api/sessions/{sid}/chat/slow-mode", everywhere, json={"seconds": 5}, expect=403
    )
    log = await api.call("GET", f"/api/sessions/{sid}/chat/moderation-log", host, expect=200)
    assert [(a["action"], a["target_user_id"]) for a in log["actions"]][:2] == [
        ("dismiss_moderator", everywhere.id),
        ("dismiss_moderator", per_session.id),
    ]
    for socket in (ws, mod_ws):
        await socket.close()


async def test_guests_cannot_moderate(api: Api) -> None:
    _host, sid = await room(api)
    for method, path, body in (
        ("DELETE", f"/api/sessions/{sid}/chat/messages/1", None),
        ("POST", f"/api/sessions/{sid}/chat/bans", {"user_id": 1}),
        ("PUT", f"/api/sessions/{sid}/chat/keywords", {"words": []}),
    ):
        res = await api.call(method, path, json=body, expect=401)
        assert res["error"]["code"] == "sign_in_required"


async def test_bad_moderation_bodies(api: Api) -> None:
    host, sid = await room(api)
    for path, body in (
        ("chat/mutes", {"user_id": 2, "seconds": 0}),
        ("chat/mutes", {"user_id": "2", "seconds": 5}),
        ("chat/bans", {"user_id": 2, "extra": 1}),
        ("chat/keywords", {"words": ["x" * 51]}),
    ):
        res = await api.call(
            "POST" if "keywords" not in path else "PUT",
            f"/api/sessions/{sid}/{path}",
            host,
            json=body,
            expect=422,
        )
        assert res["error"]["code"] == "invalid_input"
    await api.call(
        "PUT", f"/api/sessions/{sid}/chat/slow-mode", host, json={"seconds": 7200}, expect=400
    )
    settings = await api.call("GET", f"/api/sessions/{sid}/chat/settings", host, expect=200)
    assert settings == {"slow_mode_s": 0, "keywords": [], "mutes": [], "bans": [], "moderators": []}


async def test_host_wide_appointments_need_a_host(api: Api) -> None:
    """An admin may appoint for any host; for an account that is not a host, or none,
    the answer is 404 ``host_not_found`` (not a server error from the foreign key)."""
    boss = await admin(api)
    host = await api.signup("host")
    viewer = await api.signup("viewer")
    brand = await api.signup("brand")
    body = {"user_id": viewer.id}
    for host_id in (brand.id, 2**31 - 1):
        res = await api.call(
            "POST", f"/api/hosts/{host_id}/moderators", boss, json=body, expect=404
        )
        assert res["error"]["code"] == "host_not_found"
    made = await api.call("POST", f"/api/hosts/{host.id}/moderators", boss, json=body, expect=201)
    assert made == {"user_id": viewer.id, "host_id": host.id, "session_id": None}
