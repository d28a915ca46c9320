"""The HTTP floor: what one aiohttp process answers per second, and per request costs
in CPU, when the handler does nothing but read the body and refuse.

    python bench/http_floor.py [--seconds 8] [--concurrency 64]

The flash-sale benchmark's refusals (`409 out_of_stock`) cannot be cheaper than this:
the same request (method, path, headers, JSON body) from wrk pinned to the load CPU,
against a bare ``web.Application`` with one route on uvloop, pinned to CPU 0 like the
real server, answering the same-sized 409 body with no middleware, no access log, no
database. Prints requests/s and the server's CPU microseconds per request (user +
system from /proc, which, unlike requests/s, does not move when a neighbour steals
time). Needs `wrk`; stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import cpu_times, free_port, load_cpus

BODY = b'{"error":{"code":"out_of_stock","message":"this product is sold out"}}'


def floor_app() -> web.Application:
    """One route, no middleware: read the body, answer the same-sized 409 as a refused
    attempt."""

    async def refuse(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=409, body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/sessions/{id}/orders", refuse)
    return app


SERVER = f"""
import sys
import uvloop
from aiohttp import web

sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from http_floor import floor_app

web.run_app(
    floor_app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
    loop=uvloop.new_event_loop(),
)
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"product_id": 1, "quantity": 1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
local n = 0
function request()
  n = n + 1
  wrk.headers["Idempotency-Key"] = string.format("wrk-0-%%d", n)
  return wrk.format()
end
"""


async def wait_for(port: int, within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError(f"the floor server did not listen on {port}")


async def run(args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) >= 2 else []
    server = subprocess.Popen([*pin, sys.executable, "-c", SERVER, str(port)])
    script = Path("/tmp") / f"floor-{port}.lua"
    # A token as long as the real server's (a signed JWT of ~170 characters).
    script.write_text(WRK_SCRIPT % {"token": "t" * 170})
    try:
        await wait_for(port)
        cpus = ",".join(str(c) for c in sorted(load_cpus()))
        cmd = ["taskset", "-c", cpus, "wrk", "-t1", f"-c{args.concurrency}"]
        cmd += [f"-d{args.seconds}s", "-s", str(script), "--latency"]
        cmd += [f"http://127.0.0.1:{port}/api/sessions/7/orders"]
        cpu0 = sum(cpu_times(server.pid))
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        cpu1 = sum(cpu_times(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=10)
        script.unlink(missing_ok=True)
    requests = int(next(x for x in out.splitlines() if "requests in" in x).split()[0])
    per_s = float(next(x for x in out.splitlines() if x.startswith("Requests/sec")).split()[1])
    return {
        "requests": requests,
        "requests_per_s": round(per_s),
        "server_cpu_us_per_request": round((cpu1 - cpu0) * 1e6 / requests),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=64)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
