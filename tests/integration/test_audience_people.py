"""The audience figures count people, not WHEP connections (``live.guests``): twenty
viewers from one address without a guest cookie are one person in the per-second curve
and in the stats, two guests with their own signed cookies are two, and the watch
intervals stay exact per connection. Real aiortc peers over WHIP/WHEP; the test samples
by hand on a manual clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select
from support import TEST_SECRET, Api, Posted, checked, poster

from app import Settings, create_app, db_key
from live.clock import ManualClock
from live.guests import GUEST_COOKIE, GuestIds
from live.models import WatchInterval
from media.clients import PublisherClient, ViewerClient
from media.config import MediaConfig
from media.feature import audience_key

T0 = 1_764_000_000_000  # a whole second
S0 = T0 // 1000
FAKES = 20


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"audience_sample_s": 0})  # the test samples by hand


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Iterator[web.Application]:
    yield from checked(create_app(settings, clock=clock))


def with_cookie(client: Any, path: str, cookie: str) -> Callable[[str], Any]:
    """``poster`` for a guest whose browser sends its guest cookie."""

    async def exchange(offer: str) -> Posted:
        headers = {"Content-Type": "application/sdp", "Cookie": f"{GUEST_COOKIE}={cookie}"}
        res = await client.post(path, data=offer, headers=headers)
        body = await res.text()
        assert res.status == 201, body
        return Posted(body, res.headers["Location"], res.headers["ETag"], res.headers)

    return exchange


async def test_twenty_cookieless_viewers_from_one_address_are_one_person(
    api: Api, app: web.Application, clock: ManualClock, tmp_path: Path
) -> None:
    client = api.client
    host = await api.signup("host")
    sid = int((await api.live_session(host))["id"])
    audience = app[audience_key]
    config = MediaConfig(ice_addresses=("127.0.0.1",), recordings_dir=tmp_path / "rec")
    pub = PublisherClient(config)
    fakes = [ViewerClient(config, decode=False) for _ in range(FAKES)]
    guests = [ViewerClient(config, decode=False) for _ in range(2)]
    ids = GuestIds(TEST_SECRET)
    try:
        await pub.connect(poster(client, f"/whip/{sid}", host))

        # second 1: twenty WHEP viewers from 127.0.0.1, no cookie (the test client's
        # jar is empty: no page was loaded)
        clock.advance(1000)
        for fake in fakes:
            await fake.connect(poster(client, f"/whep/{sid}"))
        for fake in fakes:
            await fake.wait_for("video", encoded=3, within_s=20)
        await audience.sample()

        # second 2: two guests, each with a signed cookie of their own
        clock.advance(1000)
        for guest in guests:
            await guest.connect(with_cookie(client, f"/whep/{sid}", ids.issue()))
        for guest in guests:
            await guest.wait_for("video", encoded=3, within_s=20)
        await audience.sample()

        # second 3: everyone leaves
        clock.advance(1000)
        for peer in [*fakes, *guests]:
            assert peer.resource is not None
            assert (await client.delete(peer.resource.location)).status == 200
        await audience.sample()
    finally:
        for peer in [*fakes, *guests, pub]:
            await peer.close()

    stats = await api.call("GET", f"/api/sessions/{sid}/stats", host, expect=200)
    aud = stats["audience"]
    curve = [(c["second"] - S0, c["media_viewers"], c["joins"], c["leaves"]) for c in aud["curve"]]
    assert curve == [(1, 1, 1, 0), (2, 3, 2, 0), (3, 0, 0, 3)]
    assert (aud["viewers"], aud["peak_viewers"]) == (3, 3)
    assert aud["leave_reasons"] == {"deleted": FAKES + 2}  # per connection
    assert stats["fans"]["viewers"] == {"returning": 0, "new": 0, "guests": 3}
    async with app[db_key].read() as s:
        rows = (
            await s.execute(select(WatchInterval.viewer).where(WatchInterval.session_id == sid))
        ).all()
    assert len(rows) == FAKES + 2  # the intervals stay exact, one per connection
    people = {r.viewer for r in rows}
    assert len(people) == 3 and all(p.startswith(("a:", "g:")) for p in people)
