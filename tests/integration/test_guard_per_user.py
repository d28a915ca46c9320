"""WHEP offers and room sockets per show and signed-in user (``live/guard.py``, issue
17): one account cannot dodge the per-address rates by switching addresses. The client's
address comes from ``X-Forwarded-For`` (127.0.0.1 is a trusted proxy here)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from support import Api

from app import Settings, create_app
from live.clock import ManualClock


def guarded(settings: Settings, **more: Any) -> Settings:
    return settings.model_copy(
        update={"limits": True, "trusted_proxies": ("127.0.0.1/32",), **more}
    )


def at(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def test_whep_offers_per_user(settings: Settings, aiohttp_client: Any) -> None:
    clock = ManualClock()
    api = Api(await aiohttp_client(create_app(guarded(settings), clock=clock)))
    host, viewer = await api.signup("host"), await api.signup("viewer")
    sid = int((await api.live_session(host))["id"])

    async def offer(address: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        # not a real offer: counted all the same
        return await api.client.post(
            f"/whep/{sid}",
            data="v=0\r\n",
            headers={"Content-Type": "application/sdp", **at(address), **headers},
        )

    statuses = [(await offer(f"198.51.100.{n}", viewer.headers)).status for n in range(11)]
    assert statuses == [400] * 10 + [429]  # one address each: only the user's rate
    res = await offer("198.51.100.99", viewer.headers)
    assert res.status == 429 and res.headers["Retry-After"] == "1"
    assert (await res.json())["error"]["code"] == "too_many_offers"
    assert (await offer("198.51.100.99", {})).status == 400  # a guest there is not held
    clock.advance(1_000)
    assert (await offer("198.51.100.100", viewer.headers)).status == 400


async def test_room_sockets_per_user(settings: Settings, aiohttp_client: Any) -> None:
    clock = ManualClock()
    # no cap on sockets held at once: only the rate of opening them counts here
    app = create_app(guarded(settings, max_sockets_per_user=0), clock=clock)
    api = Api(await aiohttp_client(app))
    host, viewer = await api.signup("host"), await api.signup("viewer")
    sid = int((await api.live_session(host))["id"])
    path = f"/api/sessions/{sid}/ws"
    for n in range(20):
        ws = await api.client.ws_connect(path, headers={**at(f"203.0.113.{n}"), **viewer.headers})
        await ws.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect(path, headers={**at("203.0.113.99"), **viewer.headers})
    assert refused.value.status == 429
    assert refused.value.headers is not None and refused.value.headers["Retry-After"] == "1"
    guest = await api.client.ws_connect(path, headers=at("203.0.113.99"))  # not held back
    await guest.close()
    clock.advance(1_000)
    ws = await api.client.ws_connect(path, headers={**at("203.0.113.100"), **viewer.headers})
    await ws.close()
