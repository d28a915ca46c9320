"""Chat-room benchmark: N viewers watch, C chatting clients send R messages/s in total.

    python bench/chat_room.py --viewers 10000 --chatters 200 --rate 500 --seconds 30

The server runs as its own process (`python app.py`, pinned to CPU 0 when there are
two or more); viewers are raw-protocol WebSocket clients (bench/wsload.py) in several
load processes pinned to the other CPUs; the chatters are aiohttp clients in the
driver process, each sending ``rate / chatters`` messages a second, text = send time.
Every viewer counts chat frames; ``--sample`` viewers per load process also parse every
message (parsing all 10,000 would saturate the load CPUs, not the server). Reported:
delivered/expected over the sampled viewers, p50/p99 send-to-receipt latency, chat
frames per viewer per second, server CPU (utime+stime over the chat phase / seconds).
Everything stays on 127.0.0.1; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    cpu_times,
    free_port,
    live_session,
    raise_nofile,
    run_fast,
    signup,
    start_loads,
    start_server,
    wait_until_up,
)
from wsload import Viewer

_STAMP = re.compile(rb'"text":"t(\d+\.\d+) (\d+)"')
_CHAT = (b'"type":"chat.message"', b'"type":"chat.batch"')


class ChatViewer(Viewer):
    """Counts chat frames; if ``parse``, records (sender-seq -> receipt time) per message."""

    def __init__(self, path: str, host: str, parse: bool) -> None:
        super().__init__(path, host, {})
        self.parse = parse
        self.frames = 0
        self.got: dict[int, float] = {}
        self.latency: list[float] = []

    def on_text(self, buf: bytearray, start: int, length: int, now: float) -> None:
        window = bytes(buf[start : start + 80])
        if _CHAT[0] in window or _CHAT[1] in window:
            self.frames += 1
            if self.parse:
                payload = bytes(buf[start : start + length])
                for sent, n in _STAMP.findall(payload):
                    self.got[int(n)] = now
                    self.latency.append((now - float(sent)) * 1000)


def load_main(port: int, sid: int, count: int, sample: int, ready: Any, go: Any, out: Any) -> None:
    raise_nofile()
    out.send(run_fast(_load(port, sid, count, sample, ready, go)))


async def _load(
    port: int, sid: int, count: int, sample: int, ready: Any, go: Any
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    viewers: list[ChatViewer] = []
    sem = asyncio.Semaphore(100)

    async def open_one(i: int) -> None:
        async with sem:
            try:
                _, proto = await loop.create_connection(
                    lambda: ChatViewer(f"/api/sessions/{sid}/ws", f"127.0.0.1:{port}", i < sample),
                    "127.0.0.1",
                    port,
                )
                await asyncio.wait_for(proto.upgraded, 30)
                viewers.append(proto)
            except (OSError, ConnectionError, TimeoutError):
                pass

    await asyncio.gather(*(open_one(i) for i in range(count)))
    ready.send(len(viewers))
    await loop.run_in_executor(None, go.recv)  # "chat phase started"
    started = time.monotonic()
    await loop.run_in_executor(None, go.recv)  # "chat phase over"
    elapsed = time.monotonic() - started
    held = sum(1 for v in viewers if not v.closed.done())
    sampled = [v for v in viewers if v.parse]
    result = {
        "opened": len(viewers),
        "held": held,
        "frames": sum(v.frames for v in viewers),
        "elapsed": elapsed,
        "sampled": len(sampled),
        "got": [sorted(v.got) for v in sampled],
        "latency": [x for v in sampled for x in v.latency],
    }
    for v in viewers:
        v.close()
    return result


async def chatter(
    base: str,
    sid: int,
    token: str,
    index: int,
    every: float,
    until: float,
    counter: Any,
    sent: list[int],
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(
            f"{base.replace('http', 'ws')}/api/sessions/{sid}/ws",
            headers={"Authorization": f"Bearer {token}"},
        ) as ws,
    ):
        await ws.receive()  # hello
        errors = 0

        async def drain() -> None:
            nonlocal errors
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT and '"type":"error"' in msg.data:
                    errors += 1

        reader = asyncio.create_task(drain())
        await asyncio.sleep(every * (index / 200))
        next_at = time.monotonic()
        while time.monotonic() < until:
            n = next(counter)
            await ws.send_str(json.dumps({"type": "chat.send", "text": f"t{time.time():.4f} {n}"}))
            sent.append(n)
            next_at += every
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.sleep(2.0)  # let the last batches arrive
        reader.cancel()
        if errors:
            print(f"chatter {index}: {errors} errors", file=sys.stderr)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import itertools

    port = free_port()
    tmp = tempfile.mkdtemp(prefix="lsbench-chat-")
    env = {
        **os.environ,
        "LIVESHELF_SECRET": "bench-secret-0123456789-0123456789-abcdef",
        "LIVESHELF_LIMITS": "off",
        "LIVESHELF_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
        "LIVESHELF_AUTO_MIGRATE": "1",
        # Honest chatters only: the per-viewer limit must admit their steady rate.
        "LIVESHELF_CHAT_MESSAGE_RATE": str(max(3.0, 2 * args.rate / args.chatters)),
    }
    env.pop("REDIS_URL", None)
    server = start_server(env, port, subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(base)
        async with aiohttp.ClientSession() as http:
            sid, _ = await live_session(http, base)
            tokens = []
            for start in range(0, args.chatters, 10):
                made = await asyncio.gather(
                    *(
                        signup(http, base, f"chatter{i}", "viewer")
                        for i in range(start, min(start + 10, args.chatters))
                    )
                )
                tokens += [token for _, token in made]

            loads = start_loads(load_main, port, sid, args.viewers, args.procs, args.sample)
            opened = await loads.opened()
            await asyncio.sleep(2.5)

            counter = itertools.count()
            sent: list[int] = []
            every = args.chatters / args.rate
            user0, sys0 = cpu_times(server.pid)
            loads.signal()
            t0 = time.monotonic()
            until = t0 + args.seconds
            await asyncio.gather(
                *(
                    chatter(base, sid, tokens[i], i, every, until, counter, sent)
                    for i in range(args.chatters)
                )
            )
            chat_s = time.monotonic() - t0
            user1, sys1 = cpu_times(server.pid)
            loads.signal()
            results = await loads.results()
    finally:
        server.terminate()
        server.wait(timeout=10)

    expected_ids = set(sent)
    sampled = [set(got) for r in results for got in r["got"]]
    delivered = sum(len(got & expected_ids) for got in sampled)
    latencies = sorted(x for r in results for x in r["latency"])

    def pct(p: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)
            if latencies
            else float("nan")
        )

    frames = sum(r["frames"] for r in results)
    elapsed = max(r["elapsed"] for r in results)
    return {
        "viewers": args.viewers,
        "opened": opened,
        "held": sum(r["held"] for r in results),
        "chatters": args.chatters,
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "messages_sent": len(sent),
        "sampled_viewers": len(sampled),
        "delivered": delivered,
        "expected": len(sampled) * len(expected_ids),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "frames_per_viewer_s": round(frames / max(1, opened) / elapsed, 2),
        "server_cpu_cores": round((user1 + sys1 - user0 - sys0) / chat_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", type=int, default=10_000)
    parser.add_argument("--chatters", type=int, default=200)
    parser.add_argument("--rate", type=float, default=500.0, help="messages/s in total")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--procs", type=int, default=4, help="load processes")
    parser.add_argument("--sample", type=int, default=25, help="parsing viewers per process")
    args = parser.parse_args()
    print(json.dumps(run_fast(run(args)), indent=2))


if __name__ == "__main__":
    main()
