"""What every benchmark needs: a port, the server as a pinned process, /proc readings.

Benchmarks start the real server (`python app.py`) on 127.0.0.1 pinned to CPU 0 and put
their load on the other CPUs; nothing here leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import socket
import subprocess
import sys
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
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


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and of its living descendants (the
    ``--workers`` supervisor and its workers)."""
    total = sum(cpu_times(pid))
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in children:
            with contextlib.suppress(FileNotFoundError):  # it exited meanwhile
                total += tree_cpu_seconds(int(child))
    return total


def machine_busy_seconds() -> float:
    """CPU seconds every CPU of the machine spent busy (not idle, not waiting on I/O):
    server, load, PostgreSQL and all."""
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]
    )
    return (user + nice + system + irq + softirq) / CLK_TCK


def parent_pid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise RuntimeError(f"process {pid} has no parent")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def load_cpus() -> set[int]:
    """The CPUs load processes run on: all but CPU 0 (the server's), if there are two+."""
    ncpu = os.cpu_count() or 1
    return set(range(1, ncpu)) if ncpu >= 2 else {0}


def start_server(
    env: dict[str, str], port: int, log: IO[Any] | int, workers: int = 1
) -> subprocess.Popen[bytes]:
    """``python app.py --port PORT`` with ``env``, pinned to CPU 0 when there are two+;
    with ``workers`` > 1, ``--workers N`` on every CPU (the kernel schedules them)."""
    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) >= 2 and workers == 1 else []
    more = ["--workers", str(workers)] if workers > 1 else []
    return subprocess.Popen(
        [*pin, sys.executable, "app.py", "--port", str(port), *more],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        preexec_fn=raise_nofile,
    )


async def wait_until_up(
    base: str,
    within_s: float = 15.0,
    *,
    path: str = "/api/sessions",
    proc: subprocess.Popen[bytes] | None = None,
    log: object = "",
) -> None:
    """Until ``GET base+path`` answers 200; fails at once if ``proc`` exits (``log``
    says where to look)."""
    async with aiohttp.ClientSession() as http:
        for _ in range(int(within_s / 0.05)):
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {log}")
            try:
                async with http.get(f"{base}{path}") as res:
                    if res.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{base} did not come up; see {log}")


def run_fast(coro: Coroutine[Any, Any, T]) -> T:
    """Run a load process's main coroutine on uvloop when it is installed: the load side
    shares one core, so its per-frame cost bounds what a benchmark can measure."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def signup(
    http: aiohttp.ClientSession, base: str, username: str, role: str
) -> tuple[int, str]:
    """A new account: (user id, bearer token)."""
    body = {"username": username, "password": "bench-password", "role": role}
    async with http.post(f"{base}/api/auth/signup", json=body) as res:
        assert res.status == 201, await res.text()
        answer = await res.json()
    return int(answer["user"]["id"]), str(answer["token"])


@dataclass(frozen=True)
class Shop:
    """A live session with one product on its shelf, and viewers to buy it."""

    session_id: int
    product_id: int
    buyer_tokens: list[str]


async def flash_shop(http: aiohttp.ClientSession, base: str, stock: int, buyers: int) -> Shop:
    """A brand's product (``stock`` units) on a live host's shelf, and ``buyers``
    signed-up viewers."""

    async def post(path: str, token: str, body: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{base}{path}", json=body, headers=headers) as res:
            assert res.status < 300, await res.text()
            return await res.json()

    async def account(role: str) -> tuple[int, str]:
        return await signup(http, base, f"{role}-{uuid.uuid4().hex[:10]}", role)

    _, brand = await account("brand")
    host_id, host = await account("host")
    product = {
        "title": "Limited sneaker",
        "price_minor": 12900,
        "currency": "EUR",
        "stock": stock,
        "commission_bps": 1000,
    }
    pid = (await post("/api/products", brand, product))["id"]
    coop = {
        "host_id": host_id,
        "product_ids": [pid],
        "commission_bps": 1000,
        "flash_min_price_bps": 1,
    }
    coop_id = (await post("/api/cooperations", brand, coop))["id"]
    await post(f"/api/cooperations/{coop_id}/accept", host, {})
    sid = (await post("/api/sessions", host, {"title": "drop"}))["id"]
    await post(f"/api/sessions/{sid}/start", host, {})
    await post(f"/api/sessions/{sid}/shelf", host, {"product_id": pid})
    tokens = [(await account("viewer"))[1] for _ in range(buyers)]
    return Shop(sid, pid, tokens)


async def live_session(http: aiohttp.ClientSession, base: str) -> tuple[int, str]:
    """A host and a started session: (session id, host token)."""
    _, token = await signup(http, base, "benchhost", "host")
    auth = {"Authorization": f"Bearer {token}"}
    async with http.post(f"{base}/api/sessions", json={"title": "bench"}, headers=auth) as res:
        sid = int((await res.json())["id"])
    async with http.post(f"{base}/api/sessions/{sid}/start", headers=auth) as res:
        assert res.status == 200, await res.text()
    return sid, token


@dataclass
class Loads:
    """Load processes started by ``start_loads``, and the pipe ends to talk to them."""

    procs: list[Any] = field(default_factory=list)
    ready: list[Any] = field(default_factory=list)  # each sends how many sockets it opened
    go: list[Any] = field(default_factory=list)  # ``signal()`` writes to each
    outs: list[Any] = field(default_factory=list)  # each sends its results

    async def opened(self) -> int:
        loop = asyncio.get_running_loop()
        return sum([await loop.run_in_executor(None, r.recv) for r in self.ready])

    def signal(self) -> None:
        """Tell every load process to move to its next phase."""
        for g in self.go:
            g.send(True)

    async def results(self) -> list[Any]:
        loop = asyncio.get_running_loop()
        out = [await loop.run_in_executor(None, o.recv) for o in self.outs]
        for proc in self.procs:
            proc.join(timeout=30)
        return out


def start_loads(target: Any, port: int, sid: int, total: int, procs: int, extra: Any) -> Loads:
    """``procs`` spawned processes running ``target(port, sid, count, extra, ready, go,
    out)`` with ``total`` split evenly, pinned to the load CPUs."""
    ctx = mp.get_context("spawn")
    loads = Loads()
    for i in range(procs):
        count = total // procs + (1 if i < total % procs else 0)
        r_recv, r_send = ctx.Pipe(duplex=False)
        g_recv, g_send = ctx.Pipe(duplex=False)
        o_recv, o_send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=target, args=(port, sid, count, extra, r_send, g_recv, o_send))
        proc.start()
        os.sched_setaffinity(proc.pid, load_cpus())
        loads.procs.append(proc)
        loads.ready.append(r_recv)
        loads.go.append(g_send)
        loads.outs.append(o_recv)
    return loads
