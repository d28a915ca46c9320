"""Offers answered across what can close or replace what they build: the session's end,
the service's close, another node's claim on the session's publisher (the node watcher's
``publisher_moved``), an edge's pull being stopped or ending idle.

Each race is driven in-process at one await of ``publish`` / ``play`` with real aiortc
peers: the step runs there (before the awaited call, or while aiortc is inside it). A
lost race is a clear refusal (``409 session_ended``, ``503 closed``), never an aiortc
error; nothing is left behind (no peer connection, no holding, no session, no task) and
the next offer is answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from functools import partial
from typing import Any

import pytest
from aiortc import RTCPeerConnection

import media.relay
import media.service
from live.errors import Conflict, InvalidInput, LiveshelfError, Unavailable
from live.holdings import MemoryHoldings
from live.http import error_response
from media.config import MediaConfig
from media.pull import MediaProcess, Pulled
from media.relay import ForwardedTrack
from media.service import MediaService

#: what a refused offer gets, per race: (kind, code, HTTP status)
REFUSED: dict[str, tuple[type[LiveshelfError], str, int]] = {
    "ended": (Conflict, "session_ended", 409),
    "closed": (Unavailable, "closed", 503),
}


class Race:
    """Runs ``step`` once, at the await named ``at``: before the awaited call, or (an
    ``at`` ending in ``:during``) in a task of its own, as another request would,
    which starts once the call waits inside aiortc (``finish`` waits for it)."""

    def __init__(self, at: str, step: Callable[[], Awaitable[None]]) -> None:
        self.at = at
        self.step = step
        self.ran = False
        self._task: asyncio.Future[None] | None = None

    async def point(self, name: str, call: Awaitable[Any] | None = None) -> Any:
        if not self.ran and self.at.startswith(name):
            self.ran = True
            if call is not None and self.at.endswith(":during"):
                self._task = asyncio.ensure_future(self.step())
            else:
                await self.step()
        return None if call is None else await call

    async def finish(self) -> None:
        if self._task is not None:
            await self._task


class NodeUpstream:
    """What a node's relay worker sees of the other nodes: nobody else holds the
    session's publisher (``may_publish`` lets it through); claims are recorded; the race
    runs at ``may_publish`` and ``claimed``."""

    def __init__(self) -> None:
        self.race: Race | None = None
        self.claims: list[int] = []

    async def _point(self, name: str) -> None:
        if self.race is not None:
            await self.race.point(name)

    async def remote(self, session_id: int) -> bool:
        return False

    async def may_publish(self, session_id: int) -> None:
        await self._point("may_publish")

    async def claimed(self, session_id: int) -> None:
        await self._point("claimed")
        self.claims.append(session_id)

    async def pull(self, session_id: int, offer_sdp: str) -> Pulled:
        raise Unavailable("media_unavailable", "no other node")

    async def release(self, session_id: int, resource_id: str) -> None:
        return None


class Origin:
    """An edge's way to ``origin``, another service in this process; a pull waits for
    ``go_on`` once set, so a race can run while an edge waits for its pull."""

    ME = MediaProcess("", 1, 1)

    def __init__(self, origin: MediaService) -> None:
        self.origin = origin
        self.asked = asyncio.Event()
        self.go_on: asyncio.Event | None = None

    async def remote(self, session_id: int) -> bool:
        return True

    async def may_publish(self, session_id: int) -> None:
        return None

    async def claimed(self, session_id: int) -> None:
        return None

    async def pull(self, session_id: int, offer_sdp: str) -> Pulled:
        self.asked.set()
        if self.go_on is not None:
            await self.go_on.wait()
        res = await self.origin.play(session_id, offer_sdp, puller=self.ME)
        return Pulled(res.id, res.answer_sdp, self.ME)

    async def release(self, session_id: int, resource_id: str) -> None:
        await self.origin.drop_pull(resource_id, "released")


class SlowHoldings(MemoryHoldings):
    """Memory holdings whose ``take`` is an await where the race may run (Redis's is)."""

    race: Race | None = None

    async def take(self, show: int, caps: Any, token: str) -> bool:
        if self.race is not None:
            await self.race.point("holdings")
        return self.take_now(show, caps, token)


def made_peer_connections(monkeypatch: pytest.MonkeyPatch) -> list[RTCPeerConnection]:
    """Every peer connection the service creates from now on."""
    made: list[RTCPeerConnection] = []
    create = media.service.create_peer_connection

    def recorded(config: MediaConfig) -> RTCPeerConnection:
        made.append(create(config))
        return made[-1]

    monkeypatch.setattr(media.service, "create_peer_connection", recorded)
    return made


def made_tracks(monkeypatch: pytest.MonkeyPatch) -> list[ForwardedTrack]:
    """Every viewer track a relay makes from now on."""
    made: list[ForwardedTrack] = []
    new_track = media.relay.SessionRelay.new_track

    def recorded(relay: media.relay.SessionRelay, kind: str, name: str) -> ForwardedTrack:
        made.append(new_track(relay, kind, name))
        return made[-1]

    monkeypatch.setattr(media.relay.SessionRelay, "new_track", recorded)
    return made


def race_at_negotiation(service: MediaService, race: Race, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race's points ``set_remote`` and ``set_local`` (the offer's SDP steps)."""
    set_remote = service._set_remote
    set_local = media.service.set_local_description

    async def racing_set_remote(*args: Any) -> None:
        await race.point("set_remote", set_remote(*args))

    async def racing_set_local(*args: Any) -> None:
        await race.point("set_local", set_local(*args))

    monkeypatch.setattr(service, "_set_remote", racing_set_remote)
    monkeypatch.setattr(media.service, "set_local_description", racing_set_local)


async def tasks_left(before: Iterable[asyncio.Task[Any]]) -> set[asyncio.Task[Any]]:
    """Tasks started since ``before`` that are still running a moment later (aiortc's
    own end right after a close)."""
    known = {*before, asyncio.current_task()}
    left: set[asyncio.Task[Any]] = set()
    for _ in range(40):
        left = {t for t in asyncio.all_tasks() if t not in known and not t.done()}
        if not left:
            break
        await asyncio.sleep(0.05)
    return left


def assert_refused(err: pytest.ExceptionInfo[LiveshelfError], race: str) -> None:
    kind, code, status = REFUSED[race]
    assert type(err.value) is kind and err.value.code == code, repr(err.value)
    answer = error_response(err.value)
    assert answer.status == status
    assert (answer.headers.get("Retry-After") is not None) == (status == 503)


PUBLISH_POINTS = [
    "may_publish",
    "set_remote",
    "set_remote:during",
    "set_local",
    "set_local:during",
    "claimed",
]


@pytest.mark.parametrize("at", PUBLISH_POINTS)
@pytest.mark.parametrize("race", ["ended", "closed"])
async def test_a_publish_across_the_end_or_the_close_is_refused_and_leaves_nothing(
    media_config: MediaConfig,
    lifecycle: Any,
    peers: Any,
    monkeypatch: pytest.MonkeyPatch,
    race: str,
    at: str,
) -> None:
    """The session ends (or the service closes) while a WHIP offer is being answered:
    ``409 session_ended`` (``503 closed``); the publisher's peer connection is closed,
    its slot, session and tasks are gone, and the next publish is answered (ended:
    on another session; that one is refused ``session_ended`` from now on)."""
    upstream = NodeUpstream()
    service = MediaService(media_config, lifecycle, upstream=upstream)
    try:
        steps = {"ended": partial(service.end_session, 1), "closed": service.close}
        upstream.race = Race(at, steps[race])
        race_at_negotiation(service, upstream.race, monkeypatch)
        made = made_peer_connections(monkeypatch)
        offer = await peers.publisher().offer()
        before = asyncio.all_tasks()
        async with asyncio.timeout(20):
            with pytest.raises(LiveshelfError) as err:
                await service.publish(1, offer)
        await upstream.race.finish()
        assert upstream.race.ran
        assert_refused(err, race)
        assert [pc.connectionState for pc in made] == ["closed"]
        assert service.peer_count() == 0 and service.publisher_total() == 0
        assert service.published_sessions() == [] and service.session_ids() == []
        assert not service._tasks and not await tasks_left(before)
        assert lifecycle.events == []

        monkeypatch.undo()
        upstream.race = None
        if race == "closed":
            with pytest.raises(Unavailable) as err:
                await service.publish(1, await peers.publisher().offer())
            assert err.value.code == "closed"
            return
        with pytest.raises(Conflict) as err:
            await service.publish(1, await peers.publisher().offer())
        assert err.value.code == "session_ended"
        async with asyncio.timeout(20):
            await peers.publisher().connect(partial(service.publish, 2))
            while not service.is_live(2):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert service.published_sessions() == [2]
    finally:
        await service.close()


@pytest.mark.parametrize("at", PUBLISH_POINTS)
async def test_a_publisher_being_answered_is_kept_when_the_claim_seen_is_older(
    media_config: MediaConfig,
    lifecycle: Any,
    peers: Any,
    monkeypatch: pytest.MonkeyPatch,
    at: str,
) -> None:
    """The node watcher sees another node's claim on the session (its publisher, or a
    dead origin's record not yet stale) while a WHIP offer here is being answered:
    the claim still to come here is the later one and wins, so ``publisher_moved``
    leaves the publisher being answered alone (it used to close its peer connection
    under the offer: an aiortc ``InvalidStateError``, HTTP 500). Once claimed, a later
    claim elsewhere takes it (dropped, no ``stopped``)."""
    upstream = NodeUpstream()
    service = MediaService(media_config, lifecycle, upstream=upstream)
    try:
        upstream.race = Race(at, partial(service.publisher_moved, 1))
        race_at_negotiation(service, upstream.race, monkeypatch)
        async with asyncio.timeout(20):
            await peers.publisher().connect(partial(service.publish, 1))
            await upstream.race.finish()
            assert upstream.race.ran
            while not service.is_live(1):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert upstream.claims == [1] and service.published_sessions() == [1]
        await service.publisher_moved(1)  # another node claimed it after this one
        assert service.published_sessions() == [] and service.peer_count() == 0
        await asyncio.sleep(0.1)
        assert lifecycle.events == [("started", 1, None)]
    finally:
        await service.close()


VIEWER_POINTS = ["holdings", "set_remote", "set_remote:during", "set_local", "set_local:during"]


@pytest.mark.parametrize("at", VIEWER_POINTS)
@pytest.mark.parametrize("race", ["ended", "closed"])
async def test_a_viewer_across_the_end_or_the_close_is_refused_and_leaves_nothing(
    media_config: MediaConfig,
    lifecycle: Any,
    peers: Any,
    monkeypatch: pytest.MonkeyPatch,
    race: str,
    at: str,
) -> None:
    """The session ends (or the service closes) while a WHEP offer is being answered
    (or its caps counted): refused as a publish is; its peer connection is closed, its
    tracks stopped, its holding given back, no session is made anew, no task left; the
    client's next offer (another session) is answered within the same caps."""
    holdings = SlowHoldings()
    config = replace(media_config, max_peers_per_address=1)
    service = MediaService(config, lifecycle, holdings=holdings)
    try:
        async with asyncio.timeout(20):
            await peers.publisher().connect(partial(service.publish, 1))
            while not service.is_live(1):  # its transports' tasks are all running  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        steps = {"ended": partial(service.end_session, 1), "closed": service.close}
        holdings.race = Race(at, steps[race])
        race_at_negotiation(service, holdings.race, monkeypatch)
        made, tracks = made_peer_connections(monkeypatch), made_tracks(monkeypatch)
        offer = await peers.viewer(decode=False).offer()
        before = asyncio.all_tasks()
        async with asyncio.timeout(20):
            with pytest.raises(LiveshelfError) as err:
                await service.play(1, offer, address="192.0.2.7")
        await holdings.race.finish()
        assert holdings.race.ran
        assert_refused(err, race)
        assert all(pc.connectionState == "closed" for pc in made)
        assert all(t.readyState == "ended" for t in tracks)
        assert holdings._held == {}
        assert service.peer_count() == 0 and service.viewer_total() == 0
        assert service.session_ids() == []
        assert not service._tasks and not await tasks_left(before)

        monkeypatch.undo()
        holdings.race = None
        if race == "closed":
            return
        async with asyncio.timeout(20):
            await peers.viewer(decode=False).connect(partial(service.play, 2, address="192.0.2.7"))
        assert service.viewer_total() == 1
    finally:
        await service.close()


@pytest.fixture
async def origin(media_config: MediaConfig, lifecycle: Any, peers: Any) -> Any:
    """A service with a publisher of session 1 (what edges pull from)."""
    service = MediaService(media_config, lifecycle)
    async with asyncio.timeout(20):
        await peers.publisher().connect(partial(service.publish, 1))
        while not service.is_live(1):  # its transports' tasks are all running  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    yield service
    await service.close()


async def released(origin: MediaService) -> None:
    async with asyncio.timeout(5):
        while origin.pullers():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("race", ["ended", "closed"])
async def test_an_edge_viewer_waiting_for_its_pull_across_the_end_or_the_close(
    media_config: MediaConfig,
    lifecycle: Any,
    peers: Any,
    origin: MediaService,
    race: str,
) -> None:
    """An edge's first viewer of a session waits for the pull's answer from the origin
    when the session ends (or the edge closes), which stops the pull being made: the
    viewer is refused like any offer across them (it used to get the pull's
    ``CancelledError``: no answer at all), nothing is left on the edge or the origin."""
    upstream = Origin(origin)
    upstream.go_on = asyncio.Event()
    edge = MediaService(media_config, lifecycle, upstream=upstream)
    try:
        before = asyncio.all_tasks()
        viewer = peers.viewer(decode=False)
        playing = asyncio.create_task(viewer.connect(partial(edge.play, 1)))
        async with asyncio.timeout(20):
            await upstream.asked.wait()
            await (edge.end_session(1) if race == "ended" else edge.close())
            upstream.go_on.set()
            with pytest.raises(LiveshelfError) as err:
                await playing
        assert_refused(err, race)
        assert edge.peer_count() == 0 and edge.session_ids() == []
        await released(origin)
        assert not await tasks_left({*before, *origin._tasks})
    finally:
        await edge.close()


async def test_an_edge_viewer_waiting_for_its_pull_when_a_publisher_comes(
    media_config: MediaConfig,
    lifecycle: Any,
    peers: Any,
    origin: MediaService,
) -> None:
    """A node's relay worker: a viewer waits for the pull of a session published on
    another node when the host publishes here (the publish stops the pull being made):
    the viewer is answered and fed by the publisher here."""
    upstream = Origin(origin)
    upstream.go_on = asyncio.Event()
    edge = MediaService(media_config, lifecycle, upstream=upstream)
    try:
        viewer = peers.viewer(decode=False)
        playing = asyncio.create_task(viewer.connect(partial(edge.play, 1)))
        async with asyncio.timeout(20):
            await upstream.asked.wait()
            await peers.publisher().connect(partial(edge.publish, 1))
            upstream.go_on.set()
            await playing
            await viewer.wait_for("video", encoded=10)
        assert edge.published_sessions() == [1] and not edge.is_pulling(1)
        await released(origin)
    finally:
        await edge.close()


async def test_an_edge_pull_does_not_end_idle_under_an_offer(
    media_config: MediaConfig,
    lifecycle: Any,
    peers: Any,
    origin: MediaService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The edge's last viewer left and the pull lingers; a new viewer's offer is being
    answered when the linger ends: the pull is kept for it (it used to be ended with
    the session's media here, and the viewer refused ``session_ended`` while the show
    went on). A refused offer leaves the pull to linger and end."""
    config = replace(media_config, pull_linger_s=0.2)
    edge = MediaService(config, lifecycle, upstream=Origin(origin))
    try:
        async with asyncio.timeout(20):
            first = peers.viewer(decode=False)
            await first.connect(partial(edge.play, 1))
            await first.wait_for("video", encoded=5)
            assert first.resource is not None
            await edge.delete(first.resource.id)  # type: ignore[union-attr]
        set_remote = edge._set_remote

        async def slow_set_remote(*args: Any) -> None:
            await asyncio.sleep(0.5)  # past the linger
            await set_remote(*args)

        monkeypatch.setattr(edge, "_set_remote", slow_set_remote)
        async with asyncio.timeout(20):
            second = peers.viewer(decode=False)
            await second.connect(partial(edge.play, 1))
            await second.wait_for("video", encoded=10)
        assert edge.is_pulling(1) and edge.viewer_total() == 1
        assert second.resource is not None
        await edge.delete(second.resource.id)  # type: ignore[union-attr]

        async def refused_set_remote(*args: Any) -> None:
            await asyncio.sleep(0.5)
            raise InvalidInput("invalid_sdp", "refused for the test")

        monkeypatch.setattr(edge, "_set_remote", refused_set_remote)
        with pytest.raises(InvalidInput):
            await edge.play(1, await peers.viewer(decode=False).offer())
        async with asyncio.timeout(5):
            while edge.session_ids():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await released(origin)
    finally:
        await edge.close()
