"""Room-channel fan-out benchmark: N viewers, the host announces, everyone receives.

    python bench/ws_fanout.py --viewers 10000 --events 20 [--redis redis://127.0.0.1:6379/0]

The server runs as its own process (`python app.py`, pinned to CPU 0 when there are
two or more); viewers are raw-protocol WebSocket clients (bench/wsload.py) spread over
several load processes pinned to the other CPUs. The host posts an announcement
carrying its index; each viewer records when it arrives. Reported:
connections held, delivered/expected, publish-to-receipt latency (POST sent -> frame
parsed by the viewer) p50/p99/max, server CPU µs per delivered message (utime+stime
over the event phase / deliveries) and server RSS growth per connection.
Everything stays on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    cpu_times,
    free_port,
    live_session,
    raise_nofile,
    rss_kib,
    run_fast,
    start_loads,
    start_server,
    wait_until_up,
)
from wsload import Viewer

# -- load process --------------------------------------------------------------------


def load_main(port: int, sid: int, count: int, events: int, ready: Any, go: Any, out: Any) -> None:
    raise_nofile()
    out.send(run_fast(_load(port, sid, count, events, ready, go)))


async def _load(
    port: int, sid: int, count: int, events: int, ready: Any, go: Any
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    received: list[dict[int, float]] = [{} for _ in range(count)]
    viewers: list[Viewer] = []
    sem = asyncio.Semaphore(100)
    failures = 0

    async def open_one(i: int) -> None:
        nonlocal failures
        async with sem:
            try:
                _, proto = await loop.create_connection(
                    lambda: Viewer(f"/api/sessions/{sid}/ws", f"127.0.0.1:{port}", received[i]),
                    "127.0.0.1",
                    port,
                )
                await asyncio.wait_for(proto.upgraded, 30)
                viewers.append(proto)
            except (OSError, ConnectionError, TimeoutError):
                failures += 1

    await asyncio.gather(*(open_one(i) for i in range(count)))
    ready.send(len(viewers))
    # wait for the "events sent" signal, then for the frames to arrive (bounded)
    await loop.run_in_executor(None, go.recv)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if all(len(r) >= events for r in received[: len(viewers)]):
            break
        await asyncio.sleep(0.2)
    held = sum(1 for v in viewers if not v.closed.done())
    codes: dict[str, int] = {}
    for v in viewers:
        if v.closed.done():
            codes[str(v.close_code)] = codes.get(str(v.close_code), 0) + 1
    for v in viewers:
        v.close()
    return {
        "opened": len(viewers),
        "failed": failures,
        "held": held,
        "close_codes": codes,
        "received": [r for r in received if r],
    }


# -- driver ----------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="lsbench-")
    env = {
        **os.environ,
        "LIVESHELF_SECRET": "bench-secret-0123456789-0123456789-abcdef",
        "LIVESHELF_LIMITS": "off",
        "LIVESHELF_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
        "LIVESHELF_AUTO_MIGRATE": "1",
        "LIVESHELF_WS_HEARTBEAT_S": "25",
    }
    env.pop("REDIS_URL", None)
    if args.redis:
        env["REDIS_URL"] = args.redis
        env["LIVESHELF_REDIS_PREFIX"] = f"bench:{uuid.uuid4().hex[:8]}"
    server = start_server(env, port, open(Path(tmp) / "server.log", "w"))  # noqa: SIM115
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(base)
        async with aiohttp.ClientSession() as http:
            sid, token = await live_session(http, base)
            auth = {"Authorization": f"Bearer {token}"}
            rss_before = rss_kib(server.pid)
            t_connect = time.monotonic()
            loads = start_loads(load_main, port, sid, args.viewers, args.procs, args.events)
            opened = await loads.opened()
            connect_s = time.monotonic() - t_connect
            await asyncio.sleep(2.5)  # let presence settle
            rss_after = rss_kib(server.pid)

            user0, sys0 = cpu_times(server.pid)
            sent: dict[int, float] = {}
            for i in range(args.events):
                sent[i] = time.time()
                async with http.post(
                    f"{base}/api/sessions/{sid}/announcements", json={"text": str(i)}, headers=auth
                ) as res:
                    assert res.status == 201, await res.text()
                await asyncio.sleep(args.interval)
            await asyncio.sleep(1.0)
            user1, sys1 = cpu_times(server.pid)
            loads.signal()
            results = await loads.results()
    finally:
        server.terminate()
        server.wait(timeout=10)

    latencies = [
        (at - sent[idx]) * 1000
        for result in results
        for rec in result["received"]
        for idx, at in rec.items()
        if idx in sent
    ]
    delivered = len(latencies)
    expected = opened * args.events
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))]
            if latencies
            else float("nan")
        )

    print(f"server log: {tmp}/server.log", file=sys.stderr)
    return {
        "backend": "redis" if args.redis else "memory",
        "viewers": args.viewers,
        "opened": opened,
        "failed": sum(r["failed"] for r in results),
        "held": sum(r["held"] for r in results),
        "close_codes": [r["close_codes"] for r in results if r["close_codes"]],
        "connect_s": round(connect_s, 1),
        "events": args.events,
        "delivered": delivered,
        "expected": expected,
        "p50_ms": round(pct(0.50), 1),
        "p99_ms": round(pct(0.99), 1),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
        "server_user_s": round(user1 - user0, 3),
        "server_sys_s": round(sys1 - sys0, 3),
        "cpu_us_per_msg": round((user1 + sys1 - user0 - sys0) * 1e6 / delivered, 2)
        if delivered
        else None,
        "kib_per_conn": round((rss_after - rss_before) / opened, 1) if opened else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between events")
    parser.add_argument("--procs", type=int, default=4, help="load processes")
    parser.add_argument("--redis", default=None, help="REDIS_URL to run the Redis room log")
    args = parser.parse_args()
    raise_nofile()
    print(json.dumps(asyncio.run(run(args))), flush=True)


if __name__ == "__main__":
    main()
