"""Flash-sale benchmark: 10,000 buy attempts from concurrent clients on 100 units.

    python bench/flash_sale.py [--attempts 10000] [--units 100] [--concurrency 64]
                               [--driver python|wrk] [--seconds N] [--workers N]
                               [--pool-size N] [--repeat N]

The server runs as its own process (`python app.py`, pinned to CPU 0) on PostgreSQL
(TEST_DATABASE_URL or postgresql+asyncpg://postgres@127.0.0.1:5432/test, in a schema
of its own); buyers are aiohttp clients in load processes pinned to the other CPU,
each attempt with its own Idempotency-Key. Reported: attempts/s, p50/p99 latency,
units sold (must be exactly --units), answers by status/code, and, in the same run,
the throughput of a bare `UPDATE ... SET stock = stock - 1 WHERE stock > 0` loop with
the same number of attempts and concurrency on the same database (the physical
reference). Everything stays on 127.0.0.1; every loop is bounded.

``--workers N`` runs the server as ``python app.py --workers N`` (N processes on one
port, not pinned: they share every CPU with the load and PostgreSQL; on Redis, which
several workers need: ``--redis`` or REDIS_URL or the local default). The server's CPU
is then the sum over the supervisor and its workers. ``--pool-size`` sets each
process's ``LIVESHELF_DB_POOL_SIZE``.

``--driver wrk`` sends the same requests from wrk (C, one thread pinned to the load
CPU, a Lua script giving each request its own Idempotency-Key) instead of the Python
load processes, which cannot drive more than a few thousand requests a second from one
core: it measures the server rather than the client. It stops after ``--attempts``
answers (or runs for ``--seconds``); the bare UPDATE loop then runs as many attempts
as wrk made. Needs `wrk` (Debian package, 4.1+).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    ROOT,
    flash_shop,
    free_port,
    load_cpus,
    machine_busy_seconds,
    parent_pid,
    start_server,
    tree_cpu_seconds,
    wait_until_up,
)

DEFAULT_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


# -- load process ----------------------------------------------------------------------


def load_main(
    base: str, sid: int, pid: int, tokens: list[str], attempts: int, conc: int, out: Any
) -> None:
    out.send(asyncio.run(_load(base, sid, pid, tokens, attempts, conc)))


async def _load(
    base: str, sid: int, pid: int, tokens: list[str], attempts: int, conc: int
) -> dict[str, Any]:
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    sold = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(attempts):
        queue.put_nowait(i)
    url = f"{base}/api/sessions/{sid}/orders"
    connector = aiohttp.TCPConnector(limit=conc)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal sold
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                headers = {
                    "Authorization": f"Bearer {tokens[i % len(tokens)]}",
                    "Idempotency-Key": uuid.uuid4().hex,
                }
                t0 = time.perf_counter()
                async with http.post(
                    url, json={"product_id": pid, "quantity": 1}, headers=headers
                ) as res:
                    body = await res.json()
                latencies.append((time.perf_counter() - t0) * 1000)
                if res.status == 201:
                    sold += body["quantity"]
                    answers["201"] += 1
                else:
                    answers[f"{res.status} {body['error']['code']}"] += 1

        t_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        elapsed = time.perf_counter() - t_start
    return {"latencies": latencies, "answers": dict(answers), "sold": sold, "elapsed": elapsed}


# -- the wrk driver ------------------------------------------------------------------------

WRK_SCRIPT = """
local tokens = {%(tokens)s}
local body = '%(body)s'
local limit = %(limit)d
sent, answered, n201, n409, nother = 0, 0, 0, 0, 0
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function request()
  sent = sent + 1
  if sent == 1 then io.write("START\\n"); io.flush() end
  local headers = {
    ["Authorization"] = "Bearer " .. tokens[(sent %% #tokens) + 1],
    ["Idempotency-Key"] = string.format("wrk-%%d-%%d", tid, sent),
    ["Content-Type"] = "application/json",
  }
  return wrk.format("POST", "%(path)s", headers, body)
end

function response(status, headers, body)
  if status == 201 then n201 = n201 + 1
  elseif status == 409 then n409 = n409 + 1
  else nother = nother + 1 end
  answered = answered + 1
  if limit > 0 and answered == limit then
    io.write("LIMIT\\n"); io.flush()  -- the driver times this and stops wrk
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("n201"); b = b + t:get("n409"); c = c + t:get("nother")
  end
  io.write(string.format(
    'WRK {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, '
    .. '"n201": %%d, "n409": %%d, "other": %%d, "socket_errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    a, b, c, summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout))
end
"""


async def wrk_load(
    base: str,
    sid: int,
    pid: int,
    tokens: list[str],
    attempts: int,
    seconds: int,
    conc: int,
    server_pid: int,
    postmaster_pid: int,
) -> dict[str, Any]:
    """wrk for ``seconds``, or (``seconds`` 0) until ``attempts`` answers came back
    (the requests still in flight then are dropped, not counted). Also the server's
    CPU seconds (user + system) from the first request to the last answer counted:
    unlike attempts/s, that does not move when a neighbour on the host steals time."""
    script = Path("/tmp") / f"flash-{uuid.uuid4().hex[:8]}.lua"
    script.write_text(
        WRK_SCRIPT
        % {
            "tokens": ", ".join(f'"{t}"' for t in tokens),
            "body": json.dumps({"product_id": pid, "quantity": 1}),
            "path": f"/api/sessions/{sid}/orders",
            "limit": 0 if seconds else attempts,
        }
    )
    cpus = ",".join(str(c) for c in sorted(load_cpus()))
    cmd = [
        "taskset",
        "-c",
        cpus,
        "wrk",
        "-t1",
        f"-c{conc}",
        f"-d{seconds or 120}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base,
    ]
    # wrk's own duration is the whole -d even when the script stops early: with a
    # limit, time from the first request to the limit-th answer as the script reports.
    started = stopped = 0.0
    # (server, machine busy, wrk, PostgreSQL) CPU seconds at the first request and at the end
    first = last = (0.0, 0.0, 0.0, 0.0)
    lines = []
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        assert proc.stdout is not None

        def cpu() -> tuple[float, float, float, float]:
            return (
                tree_cpu_seconds(server_pid),
                machine_busy_seconds(),
                tree_cpu_seconds(proc.pid),
                tree_cpu_seconds(postmaster_pid),
            )

        while raw := await proc.stdout.readline():
            line = raw.decode().rstrip("\n")
            if line == "START":
                started = time.perf_counter()
                first = cpu()
            elif line == "LIMIT":
                stopped = time.perf_counter()
                last = cpu()
                proc.send_signal(signal.SIGINT)  # wrk prints its summary and exits
            elif line.startswith("WRK ") and not last[0]:
                last = cpu()  # --seconds: wrk is done
            lines.append(line)
        await proc.wait()
    finally:
        script.unlink()
    summary = dict(json.loads(next(x for x in lines if x.startswith("WRK "))[4:]))
    summary["server_cpu_s"] = last[0] - first[0]
    summary["machine_cpu_s"] = last[1] - first[1]
    summary["load_cpu_s"] = last[2] - first[2]
    summary["pg_cpu_s"] = last[3] - first[3]
    if stopped:
        summary["requests"] = attempts  # answers counted, not requests cut off in flight
        summary["duration_us"] = int((stopped - started) * 1e6)
    return summary


async def postmaster_pid(dsn: str) -> int:
    """The PostgreSQL server's main process (its backends are its children), if it runs
    on this machine."""
    conn = await asyncpg.connect(dsn)
    try:  # read while the backend lives
        return parent_pid(await conn.fetchval("SELECT pg_backend_pid()"))
    finally:
        await conn.close()


# -- the bare reference -------------------------------------------------------------------


async def bare_update_loop(
    dsn: str, schema: str, attempts: int, units: int, conc: int
) -> tuple[float, float]:
    """UPDATEs per second, and the machine's busy CPU µs per UPDATE (client and
    PostgreSQL)."""
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE TABLE "{schema}".bare_stock (id int primary key, stock int)')
    await conn.execute(f'INSERT INTO "{schema}".bare_stock VALUES (1, $1)', units)
    await conn.close()
    pool = await asyncpg.create_pool(dsn, min_size=conc, max_size=conc)
    counter = iter(range(attempts))
    sold = 0

    async def worker() -> None:
        nonlocal sold
        async with pool.acquire() as c:
            for _ in counter:
                status = await c.execute(
                    f'UPDATE "{schema}".bare_stock SET stock = stock - 1 WHERE id = 1 AND stock > 0'
                )
                sold += status == "UPDATE 1"

    t0 = time.perf_counter()
    busy0 = machine_busy_seconds()
    await asyncio.gather(*(worker() for _ in range(conc)))
    elapsed = time.perf_counter() - t0
    busy = machine_busy_seconds() - busy0
    await pool.close()
    assert sold == units, sold
    return attempts / elapsed, busy * 1e6 / attempts


# -- driver -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    db_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_DB)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {
        **os.environ,
        "LIVESHELF_SECRET": "bench-secret-0123456789-0123456789-abcdef",
        "LIVESHELF_LIMITS": "off",
        "LIVESHELF_DATABASE_URL": db_url,
        "LIVESHELF_DATABASE_SCHEMA": schema,
        "LIVESHELF_PASSWORD_TIME_COST": "1",
        "LIVESHELF_PASSWORD_MEMORY_KIB": "1024",
    }
    env.pop("REDIS_URL", None)
    redis = args.redis or (
        os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0") if args.workers > 1 else None
    )
    if args.pool_size:
        env["LIVESHELF_DB_POOL_SIZE"] = str(args.pool_size)
    if redis:
        env["REDIS_URL"] = redis
        env["LIVESHELF_REDIS_PREFIX"] = f"bench:{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [sys.executable, "app.py", "migrate"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    log = open(Path("/tmp") / f"{schema}.log", "w")  # noqa: SIM115
    server = start_server(env, port, log, args.workers)
    base = f"http://127.0.0.1:{port}"
    dsn = plain_dsn(db_url)
    try:
        await wait_until_up(base)
        async with aiohttp.ClientSession() as http:
            shop = await flash_shop(http, base, args.units, args.buyers)
        sid, pid, tokens = shop.session_id, shop.product_id, shop.buyer_tokens

        w: dict[str, Any] | None = None
        load: dict[str, Any] = {}
        if args.driver == "wrk":
            w = await wrk_load(
                base,
                sid,
                pid,
                tokens,
                args.attempts,
                args.seconds,
                args.concurrency,
                server.pid,
                await postmaster_pid(dsn),
            )
        else:
            load = await python_load(args, base, sid, pid, tokens)

        conn = await asyncpg.connect(dsn)
        db_sold = await conn.fetchval(
            f'SELECT coalesce(sum(quantity), 0) FROM "{schema}".orders WHERE status = $1', "paid"
        )
        db_stock = await conn.fetchval(f'SELECT stock FROM "{schema}".products WHERE id = $1', pid)
        # How long the units lasted: first order placed to last order paid (the
        # server's clock, ms); the rest of the run is refusals.
        sell_out_ms = await conn.fetchval(
            f'SELECT max(paid_ms) - min(placed_ms) FROM "{schema}".orders WHERE status = $1',
            "paid",
        )
        await conn.close()
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
    try:
        attempts = w["requests"] if w is not None else args.attempts
        bare, bare_cpu = await bare_update_loop(dsn, schema, attempts, args.units, args.concurrency)
    finally:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()

    common = {
        "backend": "postgres+redis" if redis else "postgres+memory",
        "workers": args.workers,
        "pool_size": args.pool_size or "default",
        "driver": args.driver,
        "concurrency": args.concurrency,
        "units": args.units,
        "units_sold_db": int(db_sold),
        "stock_left": int(db_stock),
        "sell_out_ms": sell_out_ms,
        "bare_update_per_s": round(bare),
        "bare_machine_cpu_us_per_update": round(bare_cpu),
    }
    if w is not None:
        rate = w["requests"] / (w["duration_us"] / 1e6)
        return {
            **common,
            "attempts": w["requests"],
            "attempts_per_s": round(rate),
            "p50_ms": round(w["p50_us"] / 1000, 1),
            "p99_ms": round(w["p99_us"] / 1000, 1),
            "units_sold_clients": w["n201"],
            "answers": {"201": w["n201"], "409": w["n409"], "other": w["other"]},
            "socket_errors": w["socket_errors"],
            "server_cpu_us_per_attempt": round(w["server_cpu_s"] * 1e6 / w["requests"]),
            "machine_cpu_us_per_attempt": round(w["machine_cpu_s"] * 1e6 / w["requests"]),
            "wrk_cpu_us_per_attempt": round(w["load_cpu_s"] * 1e6 / w["requests"]),
            "postgres_cpu_us_per_attempt": round(w["pg_cpu_s"] * 1e6 / w["requests"]),
            "ratio_to_bare": round(rate / bare, 3),
        }
    figures = python_figures(load)
    return {**common, **figures, "ratio_to_bare": round(figures["attempts_per_s"] / bare, 3)}


async def python_load(
    args: argparse.Namespace, base: str, sid: int, pid: int, tokens: list[str]
) -> dict[str, Any]:
    """The attempts from ``--procs`` Python load processes pinned to the load CPUs."""
    ctx = mp.get_context("spawn")
    procs, outs = [], []
    per = args.attempts // args.procs
    for i in range(args.procs):
        recv, send = ctx.Pipe(duplex=False)
        share = tokens[i :: args.procs]
        proc = ctx.Process(
            target=load_main,
            args=(base, sid, pid, share, per, args.concurrency // args.procs, send),
        )
        proc.start()
        os.sched_setaffinity(proc.pid, load_cpus())
        procs.append(proc)
        outs.append(recv)
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()
    results = [await loop.run_in_executor(None, o.recv) for o in outs]
    wall = time.perf_counter() - t0
    for proc in procs:
        proc.join(timeout=30)
    return {"results": results, "wall": wall}


def python_figures(load: dict[str, Any]) -> dict[str, Any]:
    results, wall = load["results"], load["wall"]
    latencies = sorted(x for r in results for x in r["latencies"])
    answers: Counter[str] = Counter()
    for r in results:
        answers.update(r["answers"])

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1)

    return {
        "attempts": len(latencies),
        "attempts_per_s": round(len(latencies) / wall),
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
        "units_sold_clients": sum(r["sold"] for r in results),
        "answers": dict(answers),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--attempts", type=int, default=10_000)
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--redis", default=None)
    parser.add_argument("--workers", type=int, default=1, help="server processes (--workers)")
    parser.add_argument(
        "--pool-size", type=int, default=0, help="LIVESHELF_DB_POOL_SIZE of each process"
    )
    parser.add_argument("--driver", choices=("python", "wrk"), default="python")
    parser.add_argument(
        "--seconds", type=int, default=0, help="wrk driver: run this long instead of --attempts"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the whole benchmark (server run + bare loop) this many times, then print "
        "the medians: on a shared host one run says little",
    )
    args = parser.parse_args()
    if args.seconds and args.driver != "wrk":
        parser.error("--seconds needs --driver wrk (the python driver runs --attempts)")
    runs = []
    for _ in range(args.repeat):
        runs.append(asyncio.run(run(args)))
        print(json.dumps(runs[-1]), flush=True)
    if args.repeat > 1:
        print(json.dumps(medians(runs)), flush=True)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the runs, every run's ratio, and how many runs
    sold anything but exactly the units (must be none)."""
    keys = ("attempts_per_s", "bare_update_per_s", "ratio_to_bare", "p50_ms", "p99_ms")
    keys += ("sell_out_ms", "server_cpu_us_per_attempt", "machine_cpu_us_per_attempt")
    keys += ("bare_machine_cpu_us_per_update", "wrk_cpu_us_per_attempt")
    keys += ("postgres_cpu_us_per_attempt",)
    summary: dict[str, Any] = {"runs": len(runs)}
    for key in keys:
        values = [run[key] for run in runs if run.get(key) is not None]
        if values:
            summary[f"median_{key}"] = statistics.median(values)
    ratios = sorted(run["ratio_to_bare"] for run in runs)
    summary["ratios"] = ratios
    summary["runs_at_or_over_half"] = sum(ratio >= 0.5 for ratio in ratios)
    summary["runs_not_selling_exactly_the_units"] = sum(
        run["units_sold_db"] != run["units"] or run["stock_left"] != 0 for run in runs
    )
    return summary


if __name__ == "__main__":
    main()
