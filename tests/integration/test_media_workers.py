"""``python app.py --workers 3``: one show's viewers spread over three processes.

The real command on PostgreSQL and Redis, real aiortc peers, everything on 127.0.0.1:
with a cap of two viewers per worker, six viewers posted to the public port land two on
each worker; the origin (the media home, holding the publisher) feeds the other two
workers through exactly one pull each; every viewer plays; a seventh is told to come
back later; a viewer's resource is deleted through a worker that does not hold it; the
session's end reaches the viewers on every worker.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from support import TEST_SECRET, free_port, free_port_run, guest_cookie, poster
from test_workers import ROOT, alive, sockets_on, stop, wait_for_workers, workers_env

from app import Settings
from media.clients import PublisherClient, ViewerClient
from media.config import MediaConfig
from media.forward import INTERNAL_HEADER, internal_token

WORKERS, CAP = 3, 2


async def statuses(http: aiohttp.ClientSession, internal: list[str]) -> list[dict[str, Any]]:
    """Each worker's media: ``{session id: {viewers, pulls, pulling, publisher}}``."""
    token = {INTERNAL_HEADER: internal_token(TEST_SECRET)}
    found = []
    for url in internal:
        async with http.get(f"{url}/internal/media/status", headers=token) as res:
            assert res.status == 200, await res.text()
            found.append((await res.json())["sessions"])
    return found


@dataclass
class Workers:
    """A running ``python app.py --workers 3`` and how to reach each worker."""

    supervisor: subprocess.Popen[bytes]
    port: int
    media_port: int
    pids: list[int]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def internal(self) -> list[str]:
        return [f"http://127.0.0.1:{self.media_port + i}" for i in range(WORKERS)]

    async def restarted(self) -> None:
        """Until the supervisor has every worker running again."""
        self.pids = await wait_for_workers(self.supervisor, self.base, self.port, WORKERS)


@asynccontextmanager
async def three_workers(shared: Settings, tmp_path: Path, cap: int) -> AsyncIterator[Workers]:
    """The real command with a viewer cap per worker; on the way out, SIGTERM must stop
    it cleanly and leave no worker behind."""
    port, media_port = free_port(), free_port_run(WORKERS)
    env = workers_env(
        shared,
        tmp_path,
        media_port,
        LIVESHELF_DB_POOL_SIZE="3",
        LIVESHELF_MEDIA_MAX_VIEWERS_PER_WORKER=str(cap),
    )
    with open(tmp_path / "server.log", "wb") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "app.py", "--workers", str(WORKERS), "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        workers = Workers(supervisor, port, media_port, [])
        try:
            await workers.restarted()
            yield workers
        finally:
            code = stop(supervisor)
    assert code == 0, (tmp_path / "server.log").read_text()[-3000:]
    assert not any(alive(pid) for pid in workers.pids)  # no worker outlives the supervisor


async def live_session(http: aiohttp.ClientSession) -> tuple[str, int]:
    """A host's token and a live session of theirs."""
    res = await http.post(
        "/api/auth/signup",
        json={"username": f"ana{free_port()}", "password": "correct horse", "role": "host"},
    )
    assert res.status == 201, await res.text()
    token = (await res.json())["token"]
    auth = {"Authorization": f"Bearer {token}"}
    res = await http.post("/api/sessions", json={"title": "three cores"}, headers=auth)
    sid = int((await res.json())["id"])
    assert (await http.post(f"/api/sessions/{sid}/start", headers=auth)).status == 200
    return token, sid


async def reported(http: aiohttp.ClientSession, internal: list[str], sid: int) -> None:
    """Until the origin holds the publisher and its load report says so."""
    while not (await statuses(http, internal))[0].get(str(sid), {}).get("publisher"):  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.1)  # the home's next load report names the session


async def test_six_viewers_over_three_workers_with_one_pull_each(
    shared: Settings, tmp_path: Path
) -> None:
    config = MediaConfig(ice_addresses=("127.0.0.1",))
    peers: list[PublisherClient | ViewerClient] = []
    async with three_workers(shared, tmp_path, cap=CAP) as workers:
        internal = workers.internal
        try:
            # a new connection per request: the kernel hands each to any worker
            fresh = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(base_url=workers.base, connector=fresh) as http:
                token, sid = await live_session(http)
                auth = {"Authorization": f"Bearer {token}"}
                async with asyncio.timeout(60):
                    publisher = PublisherClient(config)
                    peers.append(publisher)
                    await publisher.connect(poster(http, f"/whip/{sid}", token))
                    await reported(http, internal, sid)

                    viewers = [ViewerClient(config) for _ in range(WORKERS * CAP)]
                    peers.extend(viewers)
                    await asyncio.gather(
                        # six people: each browser has its own guest cookie
                        *(
                            v.connect(poster(http, f"/whep/{sid}", None, guest_cookie()))
                            for v in viewers
                        )
                    )
                    for viewer in viewers:
                        await viewer.wait_for("video", decoded=60, within_s=30)
                        await viewer.wait_for("audio", decoded=20, within_s=10)

                # two viewers on each worker; the origin feeds the two others, once each
                found = await statuses(http, internal)
                per_worker = [s.get(str(sid), {}).get("viewers", 0) for s in found]
                assert per_worker == [CAP] * WORKERS, found
                assert found[0][str(sid)]["pulls"] == WORKERS - 1, found
                assert [s[str(sid)]["pulling"] for s in found] == [False, True, True], found
                owners = sorted(v.resource.location.split("/")[3].split(".")[0] for v in viewers)
                assert owners == sorted(f"w{i}" for i in range(WORKERS) for _ in range(CAP))
                for viewer in viewers:
                    video = viewer.stats["video"]
                    assert video.first_is_keyframe is True
                    # 30 fps at 90 kHz: 3000 a frame (the synthetic clock rounds to +-1); no
                    # frame missing after the first keyframe
                    ts = video.timestamps
                    steps = {b - a for a, b in itertools.pairwise(ts)}
                    assert len(ts) >= 60 and steps <= {2999, 3000, 3001}, (viewer.resource, steps)

                # the seventh viewer: every worker is full
                seventh = ViewerClient(config)
                peers.append(seventh)
                res = await http.post(
                    f"/whep/{sid}",
                    data=await seventh.offer(),
                    headers={"Content-Type": "application/sdp"},
                )
                assert res.status == 503, await res.text()
                assert res.headers["Retry-After"] == "2"
                assert (await res.json())["error"]["code"] == "media_full"

                # DELETE through a worker that does not hold the resource
                on_one = next(v for v in viewers if "/w1." in v.resource.location)
                async with http.delete(f"{internal[2]}{on_one.resource.location}") as res:
                    assert res.status == 200, await res.text()
                found = await statuses(http, internal)
                assert [s[str(sid)]["viewers"] for s in found] == [2, 1, 2], found

                # the session's end drops the viewers on every worker
                assert (await http.post(f"/api/sessions/{sid}/end", headers=auth)).status == 200
                assert await statuses(http, internal) == [{}, {}, {}]
                # analytics counts people, wherever they sat: six viewers at the peak,
                # six watchers, no pull among them, nobody "lost"
                await audience_is(http, sid, auth, viewers=6, peak=6)
                async with asyncio.timeout(20):
                    while any(  # noqa: ASYNC110
                        v.pc.connectionState not in ("closed", "failed")
                        for v in viewers
                        if v is not on_one
                    ):
                        await asyncio.sleep(0.2)
        finally:
            for peer in peers:
                await peer.close()


async def audience_is(
    http: aiohttp.ClientSession,
    sid: int,
    auth: dict[str, str],
    *,
    viewers: int,
    peak: int,
    base: str = "",
) -> None:
    """The ended session's stats: ``viewers`` watchers, ``peak`` at once, every watch
    interval closed by its viewer's own leave (none "lost")."""
    async with http.get(f"{base}/api/sessions/{sid}/stats", headers=auth) as res:
        assert res.status == 200, await res.text()
        audience = (await res.json())["audience"]
    assert (audience["viewers"], audience["peak_viewers"]) == (viewers, peak), audience
    assert "lost" not in audience["leave_reasons"] and "watching" not in audience["leave_reasons"]


def worker_on(pids: list[int], internal_port: int) -> int:
    """The worker process listening on ``internal_port`` (its own loopback port)."""
    holders = [pid for pid, n in sockets_on(pids, internal_port, "0A").items() if n]
    assert len(holders) == 1, holders
    return holders[0]


async def grows(viewer: ViewerClient, by: int, within_s: float) -> None:
    """``viewer`` decodes ``by`` more video frames within ``within_s``."""
    await viewer.wait_for("video", decoded=viewer.stats["video"].decoded + by, within_s=within_s)


async def test_workers_dying_during_a_show(shared: Settings, tmp_path: Path) -> None:
    """SIGKILL of an edge: the other workers' viewers see nothing, the origin frees the
    dead edge's pull within 15 s, a viewer posting again is placed and plays. SIGKILL
    of the origin: the edges keep their viewers, which resume on the re-published
    stream without renegotiating, with timestamps that keep rising."""
    config = MediaConfig(ice_addresses=("127.0.0.1",))
    peers: list[PublisherClient | ViewerClient] = []
    async with three_workers(shared, tmp_path, cap=1) as workers:
        internal, media_port = workers.internal, workers.media_port
        try:
            fresh = aiohttp.TCPConnector(force_close=True)
            async with aiohttp.ClientSession(base_url=workers.base, connector=fresh) as http:
                token, sid = await live_session(http)
                publisher = PublisherClient(config)
                peers.append(publisher)
                async with asyncio.timeout(60):
                    await publisher.connect(poster(http, f"/whip/{sid}", token))
                    await reported(http, internal, sid)
                    viewers = [ViewerClient(config) for _ in range(WORKERS)]  # one per worker
                    peers.extend(viewers)
                    for viewer in viewers:
                        await viewer.connect(poster(http, f"/whep/{sid}"))
                    for viewer in viewers:
                        await viewer.wait_for("video", decoded=30, within_s=30)
                by_worker = {v.resource.location.split("/")[3].split(".")[0]: v for v in viewers}
                assert sorted(by_worker) == ["w0", "w1", "w2"]

                # an edge dies
                edge_pid = worker_on(workers.pids, media_port + 2)
                os.kill(edge_pid, signal.SIGKILL)
                killed_at = time.monotonic()
                await asyncio.gather(grows(by_worker["w0"], 45, 5), grows(by_worker["w1"], 45, 5))
                async with asyncio.timeout(15):
                    while (await statuses(http, internal[:2]))[0][str(sid)]["pulls"] != 1:  # noqa: ASYNC110
                        await asyncio.sleep(0.2)
                freed_after = time.monotonic() - killed_at
                print(f"the origin freed the dead edge's pull {freed_after:.1f} s after SIGKILL")
                await workers.restarted()
                again = ViewerClient(config)  # the dead edge's viewer posts again
                peers.append(again)
                async with asyncio.timeout(30):
                    while True:
                        try:
                            await again.connect(poster(http, f"/whep/{sid}"))
                            break
                        except AssertionError as refused:  # placed nowhere yet: all full
                            assert "media_full" in str(refused), refused
                            await asyncio.sleep(0.5)
                            again = ViewerClient(config)
                            peers.append(again)
                    await again.wait_for("video", decoded=30, within_s=20)

                # the origin dies: the edges keep their viewers
                edge_viewer = by_worker["w1"]
                before = edge_viewer.stats["video"]
                last_ts, decoded = before.last_timestamp, before.decoded
                assert last_ts is not None
                os.kill(worker_on(workers.pids, media_port), signal.SIGKILL)
                async with asyncio.timeout(60):
                    await workers.restarted()
                    while True:  # the host's studio publishes again to the new origin
                        republished = PublisherClient(config)
                        peers.append(republished)
                        try:
                            await republished.connect(poster(http, f"/whip/{sid}", token))
                            break
                        except AssertionError as refused:  # 503 while the home restarts
                            assert "media_unavailable" in str(refused), refused
                            await asyncio.sleep(0.3)
                    await edge_viewer.wait_for("video", decoded=decoded + 60, within_s=30)
                assert edge_viewer.pc.connectionState == "connected"  # never renegotiated
                resumed = edge_viewer.stats["video"].last_timestamp
                assert resumed is not None and resumed > last_ts
        finally:
            for peer in peers:
                await peer.close()
