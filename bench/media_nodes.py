"""What a second node costs: latency at each depth of the relay tree, and the CPU of the
node's relay worker.

    python bench/media_nodes.py [--windows 5] [--viewers 0]

Needs PostgreSQL (``TEST_DATABASE_URL``) and Redis (``REDIS_URL``); everything stays on
127.0.0.0/8, no STUN. Two nodes, ``python app.py --workers 2`` each: A on 127.0.0.2
(the publisher's, 640x480 30 fps VP8 at aiortc's 500 kbps + Opus, over WHIP) and B on
127.0.0.3. Four decoding probes, each pinned to one worker with the workers' internal
"placed" header:

- ``A.w0``: the origin (publisher -> A.w0, one aiortc hop);
- ``A.w1``: an edge of the origin's node (A.w0 -> A.w1);
- ``B.w0``: node B's relay worker (A.w0 -> B.w0, between nodes);
- ``B.w1``: an edge of node B, depth two (A.w0 -> B.w0 -> B.w1).

``--viewers`` cheap viewers (never decoding) more on node B, placed by it. Then
``--windows`` windows of 4 s: each probe's fps and capture-to-decode latency (p50, p95),
and each worker's CPU share. Prints one line per window and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import free_port, live_session, raise_nofile, wait_until_up  # noqa: E402
from media_scale import (  # noqa: E402
    CONFIG,
    SECRET,
    _answer,
    _cpu,
    _create_schema,
    probe_main,
    status,
    viewers_main,
    workers_by_index,
)

from media.clients import PublisherClient  # noqa: E402

WORKERS = 2
PROBES = ("A.w0", "A.w1", "B.w0", "B.w1")


def start_node(name: str, address: str, schema: str, migrate: bool) -> dict[str, Any]:
    port, media_port = free_port(), free_port()
    env = {
        **os.environ,
        "LIVESHELF_SECRET": SECRET,
        "LIVESHELF_LIMITS": "off",
        "LIVESHELF_DATABASE_URL": os.environ["TEST_DATABASE_URL"],
        "LIVESHELF_DATABASE_SCHEMA": schema,
        "LIVESHELF_AUTO_MIGRATE": "1" if migrate else "0",
        "LIVESHELF_REDIS_PREFIX": schema,
        "LIVESHELF_DB_POOL_SIZE": "3",
        "LIVESHELF_ACCESS_LOG": "off",
        "LIVESHELF_RECORDINGS_DIR": f"/tmp/{schema}",
        "LIVESHELF_MEDIA_PORT": str(media_port),
        "LIVESHELF_WORKERS": str(WORKERS),
        "LIVESHELF_HOST": address,
        "LIVESHELF_NODE": name,
        "LIVESHELF_NODE_INTERNAL_HOST": address,
        "LIVESHELF_ICE_ADDRESSES": address,
    }
    supervisor = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(f"/tmp/{schema}-{name}.log", "wb"),  # noqa: SIM115
        preexec_fn=raise_nofile,
    )
    return {
        "supervisor": supervisor,
        "base": f"http://{address}:{port}",
        "internal": [f"http://{address}:{media_port + i}" for i in range(WORKERS)],
        "media_port": media_port,
    }


async def run(windows: int, viewers: int) -> None:
    schema = f"bench_nodes_{os.getpid()}"
    await _create_schema(schema)
    a = start_node("a", "127.0.0.2", schema, migrate=True)
    await wait_until_up(a["base"], within_s=30)
    b = start_node("b", "127.0.0.3", schema, migrate=False)
    ctx = mp.get_context("spawn")
    probes: list[tuple[Any, Connection]] = []
    stops: list[Connection] = []
    publisher = PublisherClient(CONFIG, width=640, height=480)
    try:
        await wait_until_up(b["base"], within_s=30)
        pids = [
            *workers_by_index(a["supervisor"].pid, a["media_port"], WORKERS),
            *workers_by_index(b["supervisor"].pid, b["media_port"], WORKERS),
        ]
        async with aiohttp.ClientSession() as http:
            sid, token = await live_session(http, a["base"])
            async with http.post(
                f"{a['base']}/whip/{sid}",
                data=await publisher.offer(),
                headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
            ) as res:
                assert res.status == 201, await res.text()
                await publisher.pc.setRemoteDescription(_answer(await res.text()))
            await asyncio.sleep(2.5)  # the origin's node record names the session
            for url in (*a["internal"], *b["internal"]):
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(target=probe_main, args=(url, sid, True, theirs))
                proc.start()
                probes.append((proc, mine))
                await asyncio.sleep(1.0)
            if viewers:
                ready, ready_in = ctx.Pipe(duplex=False)
                stop_out, stop_in = ctx.Pipe(duplex=False)
                proc = ctx.Process(
                    target=viewers_main, args=(b["internal"][1], sid, viewers, ready_in, stop_out)
                )
                proc.start()
                stops.append(stop_in)
                await asyncio.get_running_loop().run_in_executor(None, ready.recv)
            await asyncio.sleep(6)
            found = [await status(http, url, sid) for url in (*a["internal"], *b["internal"])]
            print(
                "viewers per worker (A.w0, A.w1, B.w0, B.w1):",
                [s.get("viewers", 0) for s in found],
                "pulled by:",
                [s.get("pulled_by", []) for s in found],
                flush=True,
            )
            loop = asyncio.get_running_loop()
            rows = []
            for window in range(windows):
                before = _cpu(pids)
                for _, conn in probes:
                    conn.send(True)
                got = [await loop.run_in_executor(None, conn.recv) for _, conn in probes]
                share = [(y - x) / 4 for x, y in zip(before, _cpu(pids), strict=True)]
                rows.append((got, share))
                print(
                    f"window {window + 1}: "
                    + "; ".join(
                        f"{name} {fps:.1f} fps p50 {p50:.0f} p95 {p95:.0f} ms"
                        for name, (fps, p50, p95) in zip(PROBES, got, strict=True)
                    )
                    + f"; CPU {[round(c, 3) for c in share]}",
                    flush=True,
                )
            print("medians over the windows:")
            for i, name in enumerate(PROBES):
                p50 = statistics.median(r[0][i][1] for r in rows)
                p95 = statistics.median(r[0][i][2] for r in rows)
                fps = statistics.median(r[0][i][0] for r in rows)
                cpu = statistics.median(r[1][i] for r in rows)
                print(
                    f"  {name}: {fps:.1f} fps, p50 {p50:.0f} ms, p95 {p95:.0f} ms; "
                    f"worker CPU {cpu:.3f} of a core"
                )
    finally:
        for conn in stops:
            conn.send(True)
        for _, conn in probes:
            conn.send(False)
        await publisher.close()
        for node in (b, a):
            node["supervisor"].send_signal(signal.SIGTERM)
            try:
                node["supervisor"].wait(timeout=30)
            except subprocess.TimeoutExpired:
                node["supervisor"].kill()
        shutil.rmtree(f"/tmp/{schema}", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--viewers", type=int, default=0)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; two nodes of {WORKERS} workers on 127.0.0.2/.3")
    asyncio.run(run(args.windows, args.viewers))


if __name__ == "__main__":
    main()
