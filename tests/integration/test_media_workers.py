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
from pathlib import Path
from typing import Any

import aiohttp
from support import TEST_SECRET, free_port, poster
from test_workers import ROOT, alive, wait_for_workers

from app import Settings
from media.clients import PublisherClient, ViewerClient
from media.config import MediaConfig
from media.forward import INTERNAL_HEADER, internal_token

WORKERS, CAP = 3, 2


def free_port_run(n: int) -> int:
    """A port p such that p .. p + n - 1 are all free now."""
    import socket

    for _ in range(50):
        base = free_port()
        try:
            for port in range(base, base + n):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no run of free ports")


async def statuses(http: aiohttp.ClientSession, internal: list[str]) -> list[dict[str, Any]]:
    """Each worker's media: ``{session id: {viewers, pulls, pulling, publisher}}``."""
    token = {INTERNAL_HEADER: internal_token(TEST_SECRET)}
    found = []
    for url in internal:
        async with http.get(f"{url}/internal/media/status", headers=token) as res:
            assert res.status == 200, await res.text()
            found.append((await res.json())["sessions"])
    return found


async def test_six_viewers_over_three_workers_with_one_pull_each(
    shared: Settings, tmp_path: Path
) -> None:
    port, media_port = free_port(), free_port_run(WORKERS)
    internal = [f"http://127.0.0.1:{media_port + i}" for i in range(WORKERS)]
    env = {
        **os.environ,
        "LIVESHELF_SECRET": TEST_SECRET,
        "LIVESHELF_DATABASE_URL": shared.database_url,
        "LIVESHELF_DATABASE_SCHEMA": shared.database_schema or "",
        "LIVESHELF_AUTO_MIGRATE": "1",
        "REDIS_URL": shared.redis_url or "",
        "LIVESHELF_REDIS_PREFIX": shared.redis_prefix,
        "LIVESHELF_DB_POOL_SIZE": "3",
        "LIVESHELF_PASSWORD_TIME_COST": "1",
        "LIVESHELF_PASSWORD_MEMORY_KIB": "1024",
        "LIVESHELF_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "LIVESHELF_ACCESS_LOG": "off",
        "LIVESHELF_MEDIA_PORT": str(media_port),
        "LIVESHELF_MEDIA_MAX_VIEWERS_PER_WORKER": str(CAP),
    }
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    supervisor = subprocess.Popen(
        [sys.executable, "app.py", "--workers", str(WORKERS), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    config = MediaConfig(ice_addresses=("127.0.0.1",))
    peers: list[PublisherClient | ViewerClient] = []
    pids: list[int] = []
    try:
        pids = await wait_for_workers(supervisor, base, port, WORKERS)
        # a new connection per request: the kernel hands each to any worker
        fresh = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(base_url=base, connector=fresh) as http:
            res = await http.post(
                "/api/auth/signup",
                json={"username": "ana", "password": "correct horse", "role": "host"},
            )
            assert res.status == 201, await res.text()
            token = (await res.json())["token"]
            auth = {"Authorization": f"Bearer {token}"}
            res = await http.post("/api/sessions", json={"title": "three cores"}, headers=auth)
            sid = (await res.json())["id"]
            assert (await http.post(f"/api/sessions/{sid}/start", headers=auth)).status == 200

            async with asyncio.timeout(60):
                publisher = PublisherClient(config)
                peers.append(publisher)
                await publisher.connect(poster(http, f"/whip/{sid}", token))
                while not (await statuses(http, internal))[0].get(str(sid), {}).get("publisher"):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1.1)  # the home's next load report names the session

                viewers = [ViewerClient(config) for _ in range(WORKERS * CAP)]
                peers.extend(viewers)
                await asyncio.gather(*(v.connect(poster(http, f"/whep/{sid}")) for v in viewers))
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
        supervisor.send_signal(signal.SIGTERM)
        try:
            code = supervisor.wait(timeout=30)
        finally:
            if supervisor.poll() is None:
                supervisor.kill()
            log.close()
    assert code == 0, (tmp_path / "server.log").read_text()[-3000:]
    assert not any(alive(pid) for pid in pids)
