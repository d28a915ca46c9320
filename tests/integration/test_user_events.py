"""The per-user event stream (``GET /api/me/events``, Server-Sent Events): a brand's
proposal and a host's counter-offer arrive live on each party's stream; a client that
reconnects with ``Last-Event-ID`` gets what it missed, in order, once; on both backends,
and across two app instances sharing Redis (two workers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient
from support import Account, Api, checked

from app import Settings, create_app

TIMEOUT_S = 5.0


@dataclass
class Message:
    id: str
    event: str
    data: dict[str, Any]


class Stream:
    """An open ``text/event-stream`` answer, read one message at a time."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.last_id = ""

    async def next(self) -> Message:
        fields: dict[str, str] = {}
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                line = (await self.response.content.readline()).decode()
                if line == "":
                    raise EOFError("the stream ended")
                line = line.rstrip("\n")
                if line == "":
                    if "event" in fields or "data" in fields:
                        break
                    continue
                if line.startswith(":"):
                    continue  # a comment (ping)
                name, _, value = line.partition(": ")
                fields[name] = value
        if "id" in fields:
            self.last_id = fields["id"]
        return Message(fields.get("id", ""), fields.get("event", ""), orjson.loads(fields["data"]))

    async def next_of(self, kind: str) -> Message:
        message = await self.next()
        assert message.event == kind, message
        return message


@asynccontextmanager
async def open_stream(
    client: TestClient[Any, Any],
    who: Account | None,
    *,
    last_id: str | None = None,
    query: str = "",
    status: int = 200,
) -> AsyncIterator[Stream]:
    headers = dict(who.headers) if who else {}
    if last_id:
        headers["Last-Event-ID"] = last_id
    response = await client.get(f"/api/me/events{query}", headers=headers)
    try:
        assert response.status == status, await response.text()
        if status == 200:
            assert response.headers["Content-Type"].startswith("text/event-stream")
        yield Stream(response)
    finally:
        response.close()


async def _product(api: Api, brand: Account) -> int:
    body = {"title": "Tea set", "price_minor": 4500, "currency": "EUR", "stock": 5}
    product = await api.call(
        "POST", "/api/products", brand, json={**body, "commission_bps": 1000}, expect=201
    )
    return int(product["id"])


async def _propose(api: Api, brand: Account, host: Account) -> dict[str, Any]:
    body = {"host_id": host.id, "product_ids": [await _product(api, brand)], "commission_bps": 900}
    return dict(await api.call("POST", "/api/cooperations", brand, json=body, expect=201))


async def test_a_proposal_and_a_counter_arrive_live(api: Api) -> None:
    brand = await api.signup("brand")
    host = await api.signup("host")
    agency = await api.signup("agency")
    await api.call("PUT", "/api/me/agency", host, json={"agency_id": agency.id}, expect=200)
    async with (
        open_stream(api.client, host) as to_host,
        open_stream(api.client, brand) as to_brand,
        open_stream(api.client, agency) as to_agency,
    ):
        for stream in (to_host, to_brand, to_agency):
            hello = await stream.next_of("hello")
            assert hello.data["recovered"] is False
            assert hello.id == f"{hello.data['epoch']}-{hello.data['seq']}"

        coop = await _propose(api, brand, host)
        for stream in (to_host, to_agency, to_brand):
            got = await stream.next_of("cooperation.proposed")
            assert got.data["type"] == "cooperation.proposed"
            assert got.data["data"]["cooperation"]["id"] == coop["id"]
            assert got.data["data"]["cooperation"]["turn"] == "host"
            assert got.data["data"]["step"]["action"] == "proposed"

        await api.call(
            "POST",
            f"/api/cooperations/{coop['id']}/counter",
            agency,
            json={"commission_bps": 1500, "message": "a bit more"},
            expect=200,
        )
        for stream in (to_brand, to_host, to_agency):
            got = await stream.next_of("cooperation.countered")
            step = got.data["data"]["step"]
            assert (step["party"], step["by_user"], step["commission_bps"]) == (
                "host",
                agency.id,
                1500,
            )
            assert step["message"] == "a bit more"
            assert got.data["data"]["cooperation"]["turn"] == "brand"

        await api.call("POST", f"/api/cooperations/{coop['id']}/accept", brand, expect=200)
        got = await to_host.next_of("cooperation.accepted")
        assert got.data["data"]["cooperation"]["status"] == "accepted"
        # seq is gap-free per account
        seqs = [int(to_host.last_id.rpartition("-")[2])]
        assert seqs == [3]


async def test_a_reconnect_resumes_without_loss(api: Api) -> None:
    brand = await api.signup("brand")
    host = await api.signup("host")
    async with open_stream(api.client, host) as stream:
        await stream.next_of("hello")
        first = await _propose(api, brand, host)
        await stream.next_of("cooperation.proposed")
        held = stream.last_id
    # while the host is away: a second proposal and a withdrawal
    second = await _propose(api, brand, host)
    await api.call("POST", f"/api/cooperations/{first['id']}/withdraw", brand, expect=200)
    async with open_stream(api.client, host, last_id=held) as stream:
        hello = await stream.next_of("hello")
        assert hello.data["recovered"] is True
        assert hello.id == held
        missed = [await stream.next(), await stream.next()]
        assert [(m.event, m.data["data"]["cooperation"]["id"]) for m in missed] == [
            ("cooperation.proposed", second["id"]),
            ("cooperation.withdrawn", first["id"]),
        ]
        epoch, _, seq = held.rpartition("-")
        assert [m.id for m in missed] == [f"{epoch}-{int(seq) + 1}", f"{epoch}-{int(seq) + 2}"]
        # and live again
        await api.call(
            "POST",
            f"/api/cooperations/{second['id']}/counter",
            host,
            json={"commission_bps": 2000},
            expect=200,
        )
        live = await stream.next_of("cooperation.countered")
        assert live.id == f"{epoch}-{int(seq) + 3}"
        held = stream.last_id
    # the same position with ?since=&epoch= (no header): nothing missed, nothing repeated
    epoch, _, seq = held.rpartition("-")
    async with open_stream(api.client, host, query=f"?since={seq}&epoch={epoch}") as stream:
        hello = await stream.next_of("hello")
        assert (hello.data["recovered"], hello.data["seq"]) == (True, int(seq))
        await api.call("POST", f"/api/cooperations/{second['id']}/accept", brand, expect=200)
        assert (await stream.next()).event == "cooperation.accepted"
    # a history it cannot serve (another epoch): recovered false, from the end
    async with open_stream(api.client, host, last_id="zzzz0000-1") as stream:
        hello = await stream.next_of("hello")
        assert hello.data["recovered"] is False and hello.data["epoch"] == epoch
        assert hello.data["seq"] == int(seq) + 1


async def test_who_may_open_a_stream(api: Api) -> None:
    host = await api.signup("host")
    async with open_stream(api.client, None, status=401):
        pass
    # a bearer token in the URL is never taken
    async with open_stream(api.client, None, query=f"?token={host.token}", status=401):
        pass
    for bad in ("no-dash-at-end-", "sp ace-1", "x-y"):
        async with open_stream(api.client, host, last_id=bad, status=400):
            pass
    async with open_stream(api.client, host, query="?since=3", status=400):
        pass
    # EventSource cannot send headers: a one-minute ticket in the URL
    ticket = (await api.call("POST", "/api/auth/ticket", host, expect=200))["ticket"]
    async with open_stream(api.client, None, query=f"?ticket={ticket}") as stream:
        assert (await stream.next()).event == "hello"
    async with open_stream(api.client, None, query="?ticket=forged", status=401):
        pass


async def test_two_workers_share_the_streams(
    settings: Settings, api: Api, aiohttp_client: Any
) -> None:
    """A second app instance on the same PostgreSQL and Redis (another worker): an event
    published through one reaches a stream served by the other."""
    if not settings.redis_url:
        pytest.skip("one process without Redis: the in-memory log is per process")
    checking = checked(create_app(settings))
    client_b = await aiohttp_client(next(checking))
    brand = await api.signup("brand")
    host = await api.signup("host")
    async with open_stream(client_b, host) as stream:
        await stream.next_of("hello")
        coop = await _propose(api, brand, host)  # through the first worker
        got = await stream.next_of("cooperation.proposed")
        assert got.data["data"]["cooperation"]["id"] == coop["id"]
        held = stream.last_id
    # missed on one worker, recovered on the other
    await api.call(
        "POST",
        f"/api/cooperations/{coop['id']}/counter",
        host,
        json={"commission_bps": 1234},
        expect=200,
    )
    async with open_stream(api.client, host, last_id=held) as stream:
        assert (await stream.next_of("hello")).data["recovered"] is True
        assert (await stream.next()).event == "cooperation.countered"
    await client_b.close()
    next(checking, None)  # its answers held to the document too


async def test_a_stream_open_at_shutdown_ends_at_once(api: Api) -> None:
    host = await api.signup("host")
    response = await api.client.get("/api/me/events", headers=host.headers)
    stream = Stream(response)
    await stream.next_of("hello")
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(10):
        await api.client.close()  # the server stops with the stream open
    assert asyncio.get_running_loop().time() - started < 5
