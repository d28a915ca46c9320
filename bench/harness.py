"""What every benchmark needs: a port, the server as a pinned process, /proc readings.

Benchmarks start the real server (`python app.py`) on 127.0.0.1 pinned to CPU 0 and put
their load on the other CPUs; nothing here leaves the machine.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import IO, Any, TypeVar

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_nofile() -> None:
    """Allow as many open sockets as the hard limit does (10,000 viewers need them)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def load_cpus() -> set[int]:
    """The CPUs load processes run on: all but CPU 0 (the server's), if there are two+."""
    ncpu = os.cpu_count() or 1
    return set(range(1, ncpu)) if ncpu >= 2 else {0}


def start_server(env: dict[str, str], port: int, log: IO[Any] | int) -> subprocess.Popen[bytes]:
    """``python app.py --port PORT`` with ``env``, pinned to CPU 0 when there are two+."""
    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) >= 2 else []
    return subprocess.Popen(
        [*pin, sys.executable, "app.py", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        preexec_fn=raise_nofile,
    )


async def wait_until_up(base: str, within_s: float = 15.0) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(int(within_s / 0.05)):
            try:
                async with http.get(f"{base}/api/sessions") as res:
                    if res.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{base} did not come up")


def run_fast(coro: Coroutine[Any, Any, T]) -> T:
    """Run a load process's main coroutine on uvloop when it is installed: the load side
    shares one core, so its per-frame cost bounds what a benchmark can measure."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
