"""``python app.py --workers 2``: two processes on one port, worker 0 the media home.

The real command, on PostgreSQL and Redis: connections spread over both workers; a
publisher and viewers (real aiortc peers) get their media whether the media home took
their request or the other worker forwarded it (each request is sent on a connection
seen, in /proc, to be held by the worker wanted); a killed worker is started again;
SIGTERM stops everything.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
from support import TEST_SECRET, free_port, free_port_run, poster

from app import Settings
from media.clients import PublisherClient, ViewerClient
from media.config import MediaConfig

ROOT = Path(__file__).resolve().parents[2]


def workers_of(supervisor: int) -> list[int]:
    """The worker processes ``supervisor`` spawned (not multiprocessing's tracker); a
    child that exits while we look is none of them."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    workers = []
    for pid in children:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmdline:
            workers.append(int(pid))
    return workers


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def sockets_on(pids: list[int], port: int, state: str) -> dict[int, int]:
    """How many sockets on local ``port`` in ``state`` (/proc/net/tcp: "01" established,
    "0A" listening) each process holds."""
    inodes: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == state:
            inodes.add(fields[9])
    return {pid: len(socket_inodes(pid) & inodes) for pid in pids}


def holder_of(pids: list[int], port: int, client_port: int) -> int | None:
    """Which of ``pids`` holds the server end of the connection from ``client_port``."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == port and int(remote, 16) == client_port:
            for pid in pids:
                if fields[9] in socket_inodes(pid):
                    return pid
    return None


async def session_on(
    base: str, pids: list[int], port: int, want: int
) -> tuple[aiohttp.ClientSession, int]:
    """A client session whose one kept-alive connection the worker ``want`` holds, and
    the connection's local port (the kernel picks the worker per connection: connect
    from new ports until it picks ``want``)."""
    for _ in range(64):
        client_port = free_port()
        connector = aiohttp.TCPConnector(limit=1, local_addr=("127.0.0.1", client_port))
        http = aiohttp.ClientSession(base_url=base, connector=connector)
        async with http.get("/api/sessions") as res:
            assert res.status == 200
        if holder_of(pids, port, client_port) == want:
            return http, client_port
        await http.close()
    raise AssertionError(f"64 connections and none held by worker {want}")


async def wait_for_workers(
    supervisor: subprocess.Popen[bytes], base: str, port: int, n: int
) -> list[int]:
    """The workers' pids once each of them listens on the port and one answers."""
    async with aiohttp.ClientSession() as http:
        for _ in range(400):
            assert supervisor.poll() is None, "the supervisor exited"
            pids = workers_of(supervisor.pid)
            if len(pids) == n and all(sockets_on(pids, port, "0A").values()):
                try:
                    async with http.get(f"{base}/api/sessions") as res:
                        if res.status == 200:
                            return pids
                except aiohttp.ClientError:
                    pass
            await asyncio.sleep(0.05)
    raise TimeoutError("the workers did not come up")


def workers_env(shared: Settings, tmp_path: Path, media_port: int, **more: str) -> dict[str, str]:
    """The environment of ``python app.py --workers N`` on the test's PostgreSQL schema
    and Redis prefix."""
    return {
        **os.environ,
        "LIVESHELF_SECRET": TEST_SECRET,
        "LIVESHELF_LIMITS": "off",
        "LIVESHELF_DATABASE_URL": shared.database_url,
        "LIVESHELF_DATABASE_SCHEMA": shared.database_schema or "",
        "LIVESHELF_AUTO_MIGRATE": "1",  # once, by the supervisor
        "REDIS_URL": shared.redis_url or "",
        "LIVESHELF_REDIS_PREFIX": shared.redis_prefix,
        "LIVESHELF_DB_POOL_SIZE": "4",
        "LIVESHELF_PASSWORD_TIME_COST": "1",
        "LIVESHELF_PASSWORD_MEMORY_KIB": "1024",
        "LIVESHELF_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "LIVESHELF_ACCESS_LOG": "off",
        "LIVESHELF_MEDIA_PORT": str(media_port),
        **more,
    }


def stop(supervisor: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM, as a service manager would; its exit code (killed after 30 s: None)."""
    supervisor.send_signal(signal.SIGTERM)
    try:
        return supervisor.wait(timeout=30)
    except subprocess.TimeoutExpired:
        return None
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


async def test_two_workers_share_the_port_and_the_media(shared: Settings, tmp_path: Path) -> None:
    port, media_port = free_port(), free_port_run(2)  # one media port per worker
    env = workers_env(shared, tmp_path, media_port)
    base = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115
    supervisor = subprocess.Popen(
        [sys.executable, "app.py", "--workers", "2", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    config = MediaConfig(ice_addresses=("127.0.0.1",))
    peers: list[PublisherClient | ViewerClient] = []
    try:
        pids = await wait_for_workers(supervisor, base, port, 2)

        # the media home is the worker listening on the media port as well
        homes = [pid for pid, n in sockets_on(pids, media_port, "0A").items() if n]
        assert len(homes) == 1, homes
        home_pid, other_pid = homes[0], next(pid for pid in pids if pid != homes[0])

        fresh = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(base_url=base, connector=fresh) as http:
            res = await http.post(
                "/api/auth/signup",
                json={"username": "mia", "password": "correct horse", "role": "host"},
            )
            assert res.status == 201, await res.text()
            auth = {"Authorization": f"Bearer {(await res.json())['token']}"}
            res = await http.post("/api/sessions", json={"title": "two cores"}, headers=auth)
            sid = (await res.json())["id"]
            res = await http.post(f"/api/sessions/{sid}/start", headers=auth)
            assert res.status == 200
            # the kernel spreads new connections over both workers
            async with aiohttp.ClientSession() as sockets:
                held = []
                for _ in range(24):
                    held.append(await sockets.ws_connect(f"{base}/api/sessions/{sid}/ws"))
                counts = sockets_on(pids, port, "01")
                assert sum(counts.values()) == 24, counts
                assert all(n > 0 for n in counts.values()), counts
                for ws in held:
                    await ws.close()

        # a client held by the media home, and one by the worker that forwards to it
        home, home_port = await session_on(base, pids, port, home_pid)
        other, other_port = await session_on(base, pids, port, other_pid)
        try:
            async with asyncio.timeout(40):
                publisher = PublisherClient(config)  # forwarded to the home
                peers.append(publisher)
                await publisher.connect(poster(other, f"/whip/{sid}", auth["Authorization"][7:]))
                viewers = [ViewerClient(config) for _ in range(4)]
                peers.extend(viewers)
                for viewer, http in zip(viewers, (other, home, other, home), strict=True):
                    await viewer.connect(poster(http, f"/whep/{sid}"))
                for viewer in viewers:
                    await viewer.wait_for("video", decoded=20, within_s=20)
            # each request went over its client's one connection, still held by the same worker
            assert holder_of(pids, port, home_port) == home_pid
            assert holder_of(pids, port, other_port) == other_pid
        finally:
            await home.close()
            await other.close()

        # a killed worker is started again, and so is the media home
        for victim in (other_pid, home_pid):
            os.kill(victim, signal.SIGKILL)
            for _ in range(300):
                now = workers_of(supervisor.pid)
                if len(now) == 2 and victim not in now:
                    break
                await asyncio.sleep(0.05)
            pids = await wait_for_workers(supervisor, base, port, 2)
            assert victim not in pids
        # the new home takes a new publisher (the old one died with the old home)
        async with aiohttp.ClientSession(
            base_url=base, connector=aiohttp.TCPConnector(force_close=True)
        ) as http:
            async with asyncio.timeout(30):
                while True:
                    again = PublisherClient(config)
                    peers.append(again)
                    try:
                        await again.connect(poster(http, f"/whip/{sid}", auth["Authorization"][7:]))
                        break
                    except AssertionError as refused:  # 503 while the home restarts
                        assert "media_unavailable" in str(refused), refused
                        await asyncio.sleep(0.2)
    finally:
        for peer in peers:
            await peer.close()
        code = stop(supervisor)
        log.close()
    assert code == 0, (tmp_path / "server.log").read_text()[-3000:]
    assert not any(alive(pid) for pid in pids)  # no worker outlives the supervisor
