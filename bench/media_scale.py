"""One show's viewers over W worker processes, each limited to the same CPU share.

    python bench/media_scale.py [--workers 1,2,3] [--quota 0.2] [--step 10] [--max 160]
                                [--cap 60] [--cpu-limit 1.0]

Needs root (cgroup v1 CPU quotas), PostgreSQL (``TEST_DATABASE_URL``) and Redis
(``REDIS_URL``); everything stays on 127.0.0.1, no STUN.

For each W: ``python app.py --workers W``, each worker process put in its own cgroup with
``--quota`` of a core (cfs_quota_us / cfs_period_us = quota x 10000 / 10000); an aiortc
publisher (640x480, 30 fps VP8 at aiortc's 500 kbps + Opus) over WHIP; two decoding
probes, one served by the origin (worker 0) and, with W > 1, one by worker 1 (an edge;
pinned there with the workers' internal "placed" header); then cheap viewers (aiortc
receivers that never decode) posted to the public port in steps of ``--step``, so the
server's placement spreads them. After each step: 2 s to settle, then a 4 s window in
which each probe's fps and capture-to-decode latency, the keyframe resets and each
worker's CPU are measured. Capacity = the most viewers (probes included) with both
probes >= 29 fps, p95 < 150 ms and no new resets. Every loop is bounded in count and
time. Prints one line per step and a summary per W.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import cpu_times, free_port, live_session, raise_nofile, wait_until_up  # noqa: E402

from media.clients import PublisherClient, ViewerClient  # noqa: E402
from media.config import MediaConfig  # noqa: E402
from media.forward import INTERNAL_HEADER, internal_token  # noqa: E402
from media.viewer_routing import PLACED_HEADER  # noqa: E402

SECRET = "bench-secret-0123456789abcdef-0123456789"
CONFIG = MediaConfig(ice_addresses=("127.0.0.1",))
CGROUP = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 10_000


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------- load processes


def viewers_main(base: str, sid: int, count: int, ready: Connection, stop: Connection) -> None:
    asyncio.run(viewers_serve(base, sid, count, ready, stop))


async def viewers_serve(
    base: str, sid: int, count: int, ready: Connection, stop: Connection
) -> None:
    """``count`` cheap viewers through the public port; stays until told to stop."""
    connector = aiohttp.TCPConnector(force_close=True)
    viewers: list[ViewerClient] = []
    refused = 0
    async with aiohttp.ClientSession(connector=connector) as http:

        async def exchange(offer: str) -> str:
            async with http.post(
                f"{base}/whep/{sid}", data=offer, headers={"Content-Type": "application/sdp"}
            ) as res:
                if res.status != 201:
                    raise RuntimeError(f"{res.status} {await res.text()}")
                return await res.text()

        for _ in range(count):
            viewer = ViewerClient(CONFIG, decode=False)
            try:
                await viewer.connect(exchange)
                viewers.append(viewer)
            except RuntimeError:
                refused += 1
                await viewer.close()
        ready.send(refused)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, stop.recv)
        for viewer in viewers:
            await viewer.close()


def probe_main(url: str, sid: int, placed: bool, conn: Connection) -> None:
    asyncio.run(probe_serve(url, sid, placed, conn))


async def probe_serve(url: str, sid: int, placed: bool, conn: Connection) -> None:
    """A decoding viewer; answers each request on ``conn`` with (fps, p50, p95) of the
    window since the previous one; None ends it."""
    headers = {"Content-Type": "application/sdp"}
    if placed:
        headers.update({PLACED_HEADER: "1", INTERNAL_HEADER: internal_token(SECRET)})
    async with aiohttp.ClientSession() as http:

        async def exchange(offer: str) -> str:
            async with http.post(f"{url}/whep/{sid}", data=offer, headers=headers) as res:
                assert res.status == 201, await res.text()
                return await res.text()

        probe = ViewerClient(CONFIG, measure_latency=True)
        await probe.connect(exchange)
        await probe.wait_for("video", decoded=30, within_s=30)
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, conn.recv):
            video = probe.stats["video"]
            decoded, since = video.decoded, time.monotonic()
            video.latencies_ms.clear()
            await asyncio.sleep(4.0)
            fps = (video.decoded - decoded) / (time.monotonic() - since)
            lat = list(video.latencies_ms)
            conn.send((fps, percentile(lat, 0.5), percentile(lat, 0.95)))
        await probe.close()


# ---------------------------------------------------------------- the server


def limit(pid: int, name: str, quota: float) -> None:
    group = CGROUP / name
    group.mkdir(exist_ok=True)
    (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (group / "cpu.cfs_quota_us").write_text(str(int(quota * PERIOD_US)))
    (group / "cgroup.procs").write_text(str(pid))


def workers_by_index(supervisor: int, media_port: int, count: int) -> list[int]:
    """The worker pids, by index (worker i listens on media_port + i)."""
    found: dict[int, int] = {}
    for _ in range(200):
        children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
        for pid in map(int, children):
            out = subprocess.run(
                ["ss", "-ltnpH", f"sport >= :{media_port} and sport < :{media_port + count}"],
                capture_output=True,
                text=True,
            ).stdout
            for line in out.splitlines():
                if f"pid={pid}," in line:
                    found[int(line.split()[3].rsplit(":", 1)[1]) - media_port] = pid
        if len(found) == count:
            return [found[i] for i in range(count)]
        time.sleep(0.1)
    raise RuntimeError(f"workers not found: {found}")


async def status(http: aiohttp.ClientSession, url: str, sid: int) -> dict[str, Any]:
    async with http.get(
        f"{url}/internal/media/status", headers={INTERNAL_HEADER: internal_token(SECRET)}
    ) as res:
        return dict((await res.json())["sessions"].get(str(sid), {}))


async def run(
    workers: int, quota: float, step: int, most: int, cap: int, cpu_limit: float
) -> dict[str, Any]:
    port, media_port = free_port(), free_port()
    while any(_busy(media_port + i) for i in range(workers)):
        media_port = free_port()
    schema = f"bench_scale_{os.getpid()}_{workers}"
    env = {
        **os.environ,
        "LIVESHELF_SECRET": SECRET,
        "LIVESHELF_LIMITS": "off",
        "LIVESHELF_DATABASE_URL": os.environ["TEST_DATABASE_URL"],
        "LIVESHELF_DATABASE_SCHEMA": schema,
        "LIVESHELF_AUTO_MIGRATE": "1",
        "LIVESHELF_REDIS_PREFIX": schema,
        "LIVESHELF_DB_POOL_SIZE": "3",
        "LIVESHELF_ACCESS_LOG": "off",
        "LIVESHELF_RECORDINGS_DIR": f"/tmp/{schema}",
        "LIVESHELF_MEDIA_PORT": str(media_port),
        "LIVESHELF_MEDIA_MAX_VIEWERS_PER_WORKER": str(cap),
        "LIVESHELF_MEDIA_CPU_LIMIT": str(cpu_limit),
        "LIVESHELF_WORKERS": str(workers),
    }
    await _create_schema(schema)
    supervisor = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(f"/tmp/{schema}.log", "wb"),  # noqa: SIM115
        preexec_fn=raise_nofile,
    )
    base = f"http://127.0.0.1:{port}"
    internal = [f"http://127.0.0.1:{media_port + i}" for i in range(workers)]
    ctx = mp.get_context("spawn")
    stops: list[Connection] = []
    probes: list[tuple[Any, Connection]] = []
    rows: list[dict[str, Any]] = []
    publisher = PublisherClient(CONFIG, width=640, height=480)
    try:
        await wait_until_up(base, within_s=30)
        if workers == 1:  # one process serves everything, on the public port
            pids, internal = [supervisor.pid], [base]
        else:
            pids = workers_by_index(supervisor.pid, media_port, workers)
        for i, pid in enumerate(pids):
            limit(pid, f"liveshelf-bench-w{i}", quota)
        async with aiohttp.ClientSession() as http:
            sid, token = await live_session(http, base)
            async with http.post(
                f"{base}/whip/{sid}",
                data=await _offer(publisher),
                headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
            ) as res:
                assert res.status == 201, await res.text()
                await publisher.pc.setRemoteDescription(_answer(await res.text()))
            await asyncio.sleep(3)
            idle = _cpu(pids)
            await asyncio.sleep(4)
            idle_share = [(b - a) / 4 for a, b in zip(idle, _cpu(pids), strict=True)]
            for index in range(min(workers, 2)):  # the origin's probe, then an edge's
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(target=probe_main, args=(internal[index], sid, True, theirs))
                proc.start()
                probes.append((proc, mine))
            await asyncio.sleep(8)
            before = _cpu(pids)
            await asyncio.sleep(4)
            probed = [(b - a) / 4 for a, b in zip(before, _cpu(pids), strict=True)]
            print(
                f"W={workers} CPU share per worker: idle {[round(x, 3) for x in idle_share]}, "
                f"with the probes (and, on worker 1, its pull) {[round(x, 3) for x in probed]}",
                flush=True,
            )
            viewers = len(probes)
            resets_before = 0
            while viewers < most:
                ready, ready_in = ctx.Pipe(duplex=False)
                stop_out, stop_in = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=viewers_main, args=(base, sid, step, ready_in, stop_out))
                proc.start()
                stops.append(stop_in)
                loop = asyncio.get_running_loop()
                refused = await loop.run_in_executor(None, ready.recv)
                viewers += step - refused
                await asyncio.sleep(2)
                before = _cpu(pids)
                for _, conn in probes:
                    conn.send(True)
                windows = [await loop.run_in_executor(None, conn.recv) for _, conn in probes]
                share = [(b - a) / 4 for a, b in zip(before, _cpu(pids), strict=True)]
                found = [await status(http, url, sid) for url in internal]
                resets = sum(s.get("resets", 0) for s in found)
                good = all(fps >= 29 and p95 < 150 for fps, _, p95 in windows)
                ok = good and resets == resets_before and refused == 0
                resets_before = resets
                row = {
                    "workers": workers,
                    "viewers": viewers,
                    "per_worker": [s.get("viewers", 0) for s in found],
                    "pulls": found[0].get("pulls", 0),
                    "cpu": [round(c, 3) for c in share],
                    "probes": [tuple(round(x, 1) for x in w) for w in windows],
                    "resets": resets,
                    "ok": ok,
                }
                rows.append(row)
                print(
                    f"W={workers} viewers={viewers:4d} per worker {row['per_worker']} "
                    f"pulls {row['pulls']} cpu {row['cpu']} probes (fps, p50, p95) "
                    f"{row['probes']} resets {resets} refused {refused} "
                    f"{'ok' if ok else 'CAP' if good and refused else 'OVER'}",
                    flush=True,
                )
                if not ok:
                    break
        good = [r["viewers"] for r in rows if r["ok"]]
        return {
            "workers": workers,
            "capacity": max(good, default=0),
            "idle": idle_share,
            "probed": probed,
            "rows": rows,
        }
    finally:
        for conn in stops:
            conn.send(True)
        for _, conn in probes:
            conn.send(False)
        await publisher.close()
        supervisor.send_signal(signal.SIGTERM)
        try:
            supervisor.wait(timeout=30)
        except subprocess.TimeoutExpired:
            supervisor.kill()
        for i in range(workers):
            with_group = CGROUP / f"liveshelf-bench-w{i}"
            if with_group.exists():
                with contextlib.suppress(OSError):
                    with_group.rmdir()
        shutil.rmtree(f"/tmp/{schema}", ignore_errors=True)


def _busy(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _cpu(pids: list[int]) -> list[float]:
    return [sum(cpu_times(pid)) for pid in pids]


async def _offer(peer: PublisherClient) -> str:
    return await peer.offer()


def _answer(sdp: str) -> Any:
    from aiortc import RTCSessionDescription

    return RTCSessionDescription(sdp=sdp, type="answer")


async def _create_schema(schema: str) -> None:
    import asyncpg

    url = os.environ["TEST_DATABASE_URL"].replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--quota", type=float, default=0.2, help="share of a core per worker")
    parser.add_argument("--step", type=int, default=10)
    parser.add_argument("--max", type=int, default=160)
    parser.add_argument(
        "--cap",
        type=int,
        default=60,
        help="LIVESHELF_MEDIA_MAX_VIEWERS_PER_WORKER: placement keeps viewers on the workers "
        "that already relay the show until they reach it, so set it near one worker's capacity",
    )
    parser.add_argument(
        "--cpu-limit",
        type=float,
        default=1.0,
        help="LIVESHELF_MEDIA_CPU_LIMIT: a worker at this share of a core takes no new viewer",
    )
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} CPUs; each worker limited to {args.quota} of a core; "
        f"at most {args.cap} viewers per worker; CPU limit {args.cpu_limit}"
    )
    results = [
        asyncio.run(run(int(w), args.quota, args.step, args.max, args.cap, args.cpu_limit))
        for w in args.workers.split(",")
    ]
    base = results[0]["capacity"] or 1
    for r in results:
        print(
            f"W={r['workers']}: capacity {r['capacity']} viewers "
            f"({r['capacity'] / base:.2f} x W=1); idle CPU per worker "
            f"{[round(x, 3) for x in r['idle']]}"
        )


if __name__ == "__main__":
    main()
