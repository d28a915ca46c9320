"""Revoked tokens (live/revocations.py) through the real app, on both backends: a
logout, an admin disabling an account, and (with Redis) the other workers hearing of it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from support import Account, Api, admin

from app import Settings, create_app
from live.clock import ManualClock


async def me(api: Api, who: Account) -> tuple[int, str | None]:
    res = await api.client.get("/api/me", headers=who.headers)
    body = await res.json()
    return res.status, body.get("error", {}).get("code")


async def login(api: Api, who: Account) -> Account:
    res = await api.client.post(
        "/api/auth/login", json={"username": who.username, "password": "correct horse"}
    )
    body = await res.json()
    assert res.status == 200, body
    return Account(who.id, who.username, who.role, body["token"])


async def test_a_logout_revokes_every_token_of_the_account(api: Api) -> None:
    ana = await api.signup("viewer")
    phone = await login(api, ana)
    assert await me(api, ana) == (200, None)
    res = await api.client.post("/api/auth/logout", headers=phone.headers)
    assert res.status == 204
    assert await me(api, ana) == (401, "token_revoked")
    assert await me(api, phone) == (401, "token_revoked")
    again = await login(api, ana)  # signing in again works, with a new token
    assert await me(api, again) == (200, None)
    res = await api.client.post("/api/auth/logout")
    assert res.status == 401  # without a token there is nobody to sign out


async def test_a_disabled_accounts_token_is_refused_at_once(api: Api) -> None:
    boss = await admin(api)
    ana = await api.signup("viewer")
    assert await me(api, ana) == (200, None)
    res = await api.client.post(f"/api/admin/users/{ana.id}/disable", headers=ana.headers)
    assert res.status == 403  # not an admin
    res = await api.client.post(f"/api/admin/users/{ana.id}/disable", headers=boss.headers)
    assert res.status == 200 and (await res.json())["disabled"] is True
    assert await me(api, ana) == (401, "token_revoked")
    res = await api.client.post(
        "/api/auth/login", json={"username": ana.username, "password": "correct horse"}
    )
    assert (res.status, (await res.json())["error"]["code"]) == (403, "account_disabled")
    res = await api.client.post(f"/api/admin/users/{ana.id}/enable", headers=boss.headers)
    assert (await res.json())["disabled"] is False
    assert await me(api, await login(api, ana)) == (200, None)
    res = await api.client.post("/api/admin/users/987654/disable", headers=boss.headers)
    assert res.status == 404


@pytest.mark.parametrize("backend", ["postgres-redis"])
async def test_every_worker_hears_of_a_revocation(settings: Settings, aiohttp_client: Any) -> None:
    settings = settings.model_copy(update={"db_pool_size": 2})  # three apps on one PostgreSQL
    one = Api(await aiohttp_client(create_app(settings)))
    two = Api(await aiohttp_client(create_app(settings)))
    ana = await one.signup("viewer")
    assert await me(two, ana) == (200, None)
    res = await one.client.post("/api/auth/logout", headers=ana.headers)
    assert res.status == 204
    async with asyncio.timeout(2):
        while await me(two, ana) != (401, "token_revoked"):  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    # a worker started later loads what was revoked before
    three = Api(await aiohttp_client(create_app(settings)))
    assert await me(three, ana) == (401, "token_revoked")


async def test_a_room_socket_opens_with_a_ticket_not_a_bearer_token(
    settings: Settings, aiohttp_client: Any
) -> None:
    """A one-minute ticket names the user on the room channel; it is no bearer token,
    a bearer token is no ticket, and a revoked account's tickets stop counting too."""
    clock = ManualClock()
    api = Api(await aiohttp_client(create_app(settings, clock=clock)))
    host = await api.signup("host")
    sid = int((await api.live_session(host))["id"])
    ana = await api.signup("viewer")
    res = await api.client.post("/api/auth/ticket", headers=ana.headers)
    assert res.status == 200
    ticket = (await res.json())["ticket"]
    async with api.client.ws_connect(f"/api/sessions/{sid}/ws?ticket={ticket}") as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello["type"] == "hello" and hello["connection"]["user_id"] == ana.id
    res = await api.client.get("/api/me", headers={"Authorization": f"Bearer {ticket}"})
    assert (res.status, (await res.json())["error"]["code"]) == (401, "invalid_token")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect(f"/api/sessions/{sid}/ws?ticket={ana.token}")
    assert refused.value.status == 401
    assert (await api.client.post("/api/auth/ticket")).status == 401  # guests need none
    clock.advance(61_000)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect(f"/api/sessions/{sid}/ws?ticket={ticket}")
    assert refused.value.status == 401
