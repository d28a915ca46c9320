"""Slow and idle connections are closed (issue 18): ``python app.py`` with a 1 s header
timeout and a 4 s idle timeout; 500 connections that send nothing and 500 that trickle
a header byte every 0.3 s are closed by the header timeout (aiohttp alone would keep
them until its keep-alive timeout), 100 idle keep-alive connections by the idle one,
while a normal client's requests keep a p99 under 100 ms."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from support import free_port, wait_until_up
from test_workers import ROOT, stop, workers_env

from app import Settings

EACH = 500


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection within ``seconds`` (EOF or reset)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def test_slow_and_idle_connections_are_closed_in_time(
    shared: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = workers_env(
        shared,
        tmp_path,
        0,
        LIVESHELF_PORT=str(port),
        LIVESHELF_WORKERS="1",
        LIVESHELF_HEADER_TIMEOUT_S="1",
        LIVESHELF_IDLE_TIMEOUT_S="4",
    )
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    writers: list[asyncio.StreamWriter] = []
    try:
        await wait_until_up(base, server)
        first_opened = time.monotonic()
        silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(EACH)]
        trickling = [await asyncio.open_connection("127.0.0.1", port) for _ in range(EACH)]
        idle = []
        for _ in range(100):  # one request each, then nothing (keep-alive)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await reader.readuntil(b"\r\n\r\n")
            idle.append((reader, writer))
        writers = [w for _, w in silent + trickling + idle]
        opened = time.monotonic()

        async def trickle() -> None:
            header = b"GET /api/sessions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
            for byte in header:
                for _, writer in trickling:
                    if not writer.is_closing():
                        writer.write(bytes([byte]))
                await asyncio.sleep(0.3)

        latencies: list[float] = []

        async def normal_client() -> None:
            async with aiohttp.ClientSession() as http:
                while time.monotonic() - opened < 5:
                    started = time.perf_counter()
                    async with http.get(f"{base}/api/sessions") as res:
                        assert res.status == 200
                        await res.read()
                    latencies.append(time.perf_counter() - started)
                    await asyncio.sleep(0.02)

        trickler = asyncio.create_task(trickle())
        normal = asyncio.create_task(normal_client())
        # header timeout 1 s, swept every 0.25 s: closed within ~1.5 s of opening, well
        # before the 4 s idle timeout could have closed them
        left = 2.5 - (time.monotonic() - first_opened)
        silent_closed = await asyncio.gather(*(closed_within(r, left) for r, _ in silent))
        trickle_closed = await asyncio.gather(*(closed_within(r, left) for r, _ in trickling))
        # idle timeout 4 s: within ~5 s of their request
        idle_closed = await asyncio.gather(*(closed_within(r, 3.0) for r, _ in idle))
        await normal
        trickler.cancel()
        assert sum(silent_closed) == EACH, sum(silent_closed)
        assert sum(trickle_closed) == EACH, sum(trickle_closed)
        assert sum(idle_closed) == 100, sum(idle_closed)
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        assert len(latencies) > 50 and p99 < 0.1, (len(latencies), p99)
    finally:
        for writer in writers:
            writer.close()
        assert stop(server) == 0
