"""A worker stopped with SIGTERM drains (issue 16): ``python app.py --workers 3``.

The real command on PostgreSQL and Redis, real aiortc peers, everything on 127.0.0.1,
with a cap of one viewer per worker, so the first viewer sits on the media home and
the next ones on the edges. SIGTERM to one edge (a rolling restart): it stops
listening on the public port at once and reports ``draining``; its viewer keeps
playing, a new viewer is placed on another worker, and after ``LIVESHELF_MEDIA_DRAIN_S``
the viewer left is closed and plays again once it posts a new offer (as the watch page
does). An edge whose viewers leave stops before the drain time is up. Stopping the
supervisor stops every worker at once, a draining one included.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from support import guest_cookie, poster
from test_media_workers import Workers, grows, live_session, reported, three_workers, worker_on
from test_workers import alive, sockets_on, stop

from app import Settings
from media.clients import PublisherClient, ViewerClient
from media.config import MediaConfig

CONFIG = MediaConfig(ice_addresses=("127.0.0.1",))


def owner(viewer: ViewerClient) -> int:
    """The index of the worker holding ``viewer`` (its resource is ``w{index}.``)."""
    return int(viewer.resource.location.split("/")[3].split(".")[0][1:])


@dataclass
class Show:
    """A live session published to the home, one viewer on it and one on each edge."""

    workers: Workers
    http: aiohttp.ClientSession
    sid: int
    publisher: PublisherClient
    #: by the index of the worker holding each
    viewers: dict[int, ViewerClient]
    peers: list[PublisherClient | ViewerClient]

    def pid(self, index: int) -> int:
        return worker_on(self.workers.pids, self.workers.media_port + index)

    async def viewer(self) -> ViewerClient:
        """A new viewer (a person of their own), placed wherever the server says."""
        viewer = ViewerClient(CONFIG)
        self.peers.append(viewer)
        await viewer.connect(poster(self.http, f"/whep/{self.sid}", None, guest_cookie()))
        return viewer

    async def sigterm(self, index: int) -> int:
        """SIGTERM to worker ``index``; its pid once its public socket is closed (it
        still listens on its internal one)."""
        pid = self.pid(index)
        os.kill(pid, signal.SIGTERM)
        async with asyncio.timeout(3):
            while sockets_on([pid], self.workers.port, "0A")[pid]:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert self.pid(index) == pid  # the internal listener stays open
        return pid


@asynccontextmanager
async def show(
    shared: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, drain_s: int, edges: int
) -> AsyncIterator[Show]:
    """Three workers draining for ``drain_s``, a publisher, and a viewer on the home
    and on ``edges`` of the edges; the peers are closed on the way out."""
    monkeypatch.setenv("LIVESHELF_MEDIA_DRAIN_S", str(drain_s))
    async with three_workers(shared, tmp_path, cap=1) as workers:
        peers: list[PublisherClient | ViewerClient] = []
        try:
            fresh = aiohttp.TCPConnector(force_close=True)  # each request to any worker
            async with aiohttp.ClientSession(base_url=workers.base, connector=fresh) as http:
                token, sid = await live_session(http)
                publisher = PublisherClient(CONFIG)
                peers.append(publisher)
                it = Show(workers, http, sid, publisher, {}, peers)
                async with asyncio.timeout(60):
                    await publisher.connect(poster(http, f"/whip/{sid}", token))
                    await reported(http, workers.internal, sid)
                    for _ in range(1 + edges):  # the home first: it relays the show
                        viewer = await it.viewer()
                        it.viewers[owner(viewer)] = viewer
                        await viewer.wait_for("video", decoded=30, within_s=20)
                        await asyncio.sleep(1.1)  # its worker's next load report has it
                assert 0 in it.viewers and len(it.viewers) == 1 + edges, it.viewers
                yield it
        finally:
            for peer in peers:
                await peer.close()


async def closed(viewer: ViewerClient, within_s: float) -> None:
    async with asyncio.timeout(within_s):
        while viewer.pc.connectionState not in ("closed", "failed"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_a_stopped_edge_keeps_its_viewer_for_the_drain_then_it_moves(
    shared: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drain_s = 5
    async with show(shared, tmp_path, monkeypatch, drain_s, edges=1) as it:
        edge = next(i for i in it.viewers if i)
        other = 3 - edge
        staying = it.viewers[edge]
        decoded = staying.stats["video"].decoded
        pid = await it.sigterm(edge)
        stopped_at = time.monotonic()

        # (a) the draining edge's viewer plays on
        await staying.wait_for("video", decoded=decoded + 45, within_s=drain_s - 1)
        # (b) a new viewer meanwhile goes to a serving worker (the home is full)
        newcomer = await it.viewer()
        assert alive(pid) and time.monotonic() - stopped_at < drain_s
        assert owner(newcomer) == other
        await newcomer.wait_for("video", decoded=30, within_s=10)

        # (c) once the drain is over, the viewer left is closed ...
        await closed(staying, within_s=drain_s + 10)
        closed_after = time.monotonic() - stopped_at
        print(f"the draining edge closed its viewer {closed_after:.1f} s after SIGTERM")
        assert closed_after > drain_s - 0.5
        # ... and its page posts again: placed once a worker has room (the edge, back)
        async with asyncio.timeout(30):
            while True:
                try:
                    moved = await it.viewer()
                    break
                except AssertionError as refused:
                    # every worker is full until the edge is back; while it starts, an
                    # offer placed on it may find it not listening yet (the page tries
                    # again 2 s later)
                    assert "media_full" in str(refused) or "media_unavailable" in str(refused)
                    await asyncio.sleep(0.3)
            await moved.wait_for("video", decoded=30, within_s=20)
        print(f"re-posted viewer plays on worker {owner(moved)}")
        assert not alive(pid)
        for viewer in (it.viewers[0], newcomer):  # the others saw nothing of it
            await grows(viewer, 30, within_s=5)


async def test_an_edge_whose_viewers_leave_stops_before_the_drain_is_up(
    shared: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drain_s = 30
    async with show(shared, tmp_path, monkeypatch, drain_s, edges=1) as it:
        edge = next(i for i in it.viewers if i)
        leaving = it.viewers[edge]
        pid = await it.sigterm(edge)
        stopped_at = time.monotonic()
        await grows(leaving, 30, within_s=3)  # draining, not stopped
        assert alive(pid)
        # the viewer leaves: its DELETE reaches the edge through its internal listener
        async with it.http.delete(leaving.resource.location) as res:
            assert res.status == 200, await res.text()
        left_at = time.monotonic()
        async with asyncio.timeout(10):
            while alive(pid):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        print(
            f"the drained edge exited {time.monotonic() - left_at:.1f} s after its last "
            f"viewer left ({time.monotonic() - stopped_at:.1f} s after SIGTERM)"
        )
        await it.workers.restarted()
    log = (tmp_path / "server.log").read_text()
    assert f"worker {edge} (pid {pid}) stopped; starting it again" in log  # exit code 0


async def test_stopping_the_supervisor_waits_for_no_drain(
    shared: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drain_s = 30
    async with show(shared, tmp_path, monkeypatch, drain_s, edges=2) as it:
        draining = it.viewers[1]
        pid = await it.sigterm(1)
        await grows(draining, 30, within_s=3)
        assert alive(pid)
        # every worker holds a viewer, one of them drains: the stop waits for none
        started = time.monotonic()
        code = stop(it.workers.supervisor)
        took = time.monotonic() - started
        print(f"the supervisor stopped in {took:.1f} s")
        assert code == 0
        assert took < 10  # a drain would take 30 s (20 s, and then SIGKILL)
        assert not any(alive(p) for p in it.workers.pids)
