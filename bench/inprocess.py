"""A flash sale's attempts through the real application, without sockets: what one
attempt costs the server in CPU time and, under callgrind, in instructions.

    python bench/inprocess.py [--requests 20000] [--connections 64] [--stock 0]
                              [--target app|floor] [--loop uvloop|asyncio]
    INPROCESS_CALLGRIND=1 valgrind --tool=callgrind --instr-atstart=no \
        /path/to/python3.11 bench/inprocess.py --requests 2000

``--target app`` builds the real application (``create_app``, PostgreSQL from
TEST_DATABASE_URL in a schema of its own, the in-memory bus, the access log written to
/dev/null) and sets up a live session with one product on its shelf over real HTTP on
127.0.0.1, ``--stock`` units of it left (0: sold out, every attempt is refused). It
then feeds ``--requests`` buy attempts (each with its own Idempotency-Key, the bytes
wrk sends) to aiohttp's protocol objects through in-memory transports,
``--connections`` at a time, each connection sending its next request when the last
answer is written. ``--target floor`` does the same against ``bench/http_floor.py``'s
bare one-route app. Prints attempts, wall seconds, process CPU µs per attempt, the
answers by status, the shared reads' database round trips and ``sell_out_ms``.

Without the kernel's socket work, the figures isolate the Python side. Under
callgrind (give valgrind the interpreter itself, not a shim script), with
INPROCESS_CALLGRIND set, only the feeding is counted (``callgrind_control`` switches
collection on and off around it): divide the total by ``--requests``. Instructions do
not move with the neighbours on a shared host; the same code repeats within ~1.5 %
(the rest is timers, which run more often while valgrind is slow).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import flash_shop, free_port
from http_floor import floor_app

DEFAULT_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


class MemoryTransport(asyncio.Transport):
    """A connection whose peer is this bench: it counts the answers written to it."""

    def __init__(self, on_answer: Any) -> None:
        super().__init__()
        self._on_answer = on_answer
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = bytes(data[:12])
        if head.startswith(b"HTTP/1.1 "):
            self._on_answer(self, int(head[9:12]))

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return ("127.0.0.1", 40000)
        if name == "sockname":
            return ("127.0.0.1", 8080)
        return default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def abort(self) -> None:
        self._closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def request_bytes(path: str, token: str, body: bytes, key: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Idempotency-Key: {key}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def feed(
    server: web.Server, path: str, tokens: list[str], body: bytes, requests: int, conns: int
) -> dict[str, Any]:
    """``requests`` attempts over ``conns`` in-memory keep-alive connections."""
    answers: Counter[int] = Counter()
    done = asyncio.Event()
    sent = scheduled = 0
    protocols: dict[MemoryTransport, Any] = {}

    def send(transport: MemoryTransport) -> None:
        nonlocal sent
        sent += 1
        token = tokens[sent % len(tokens)]
        protocols[transport].data_received(request_bytes(path, token, body, f"ip-{sent}"))

    def on_answer(transport: MemoryTransport, status: int) -> None:
        nonlocal scheduled
        answers[status] += 1
        if answers.total() >= requests:
            done.set()
        elif scheduled < requests:
            scheduled += 1
            asyncio.get_running_loop().call_soon(send, transport)

    for _ in range(conns):
        transport = MemoryTransport(on_answer)
        proto = server()
        proto.connection_made(transport)
        protocols[transport] = proto
    _instrument("on")
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for transport in list(protocols)[:requests]:
        scheduled += 1
        send(transport)
    await asyncio.wait_for(done.wait(), timeout=600)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    _instrument("off")
    for transport, proto in protocols.items():
        transport.close()
        proto.connection_lost(None)
    return {
        "attempts": requests,
        "wall_s": round(wall, 3),
        "cpu_us_per_attempt": round(cpu * 1e6 / requests, 1),
        "answers": {str(k): v for k, v in sorted(answers.items())},
    }


def _instrument(state: str) -> None:
    """Under ``valgrind --tool=callgrind --instr-atstart=no``: count only the feeding."""
    if os.environ.get("INPROCESS_CALLGRIND"):
        subprocess.run(["callgrind_control", f"--instr={state}", str(os.getpid())], check=True)


async def run_floor(args: argparse.Namespace) -> dict[str, Any]:
    app = floor_app()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        assert runner.server is not None
        body = b'{"product_id": 1, "quantity": 1}'
        return await feed(
            runner.server,
            "/api/sessions/7/orders",
            ["t" * 170],
            body,
            args.requests,
            args.connections,
        )
    finally:
        await runner.cleanup()


async def run_app(args: argparse.Namespace) -> dict[str, Any]:
    from app import Settings, create_app, metrics_key
    from live.accesslog import AccessLog
    from live.metrics import access_logger
    from shelf.feature import orders_key

    db_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_DB)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    plain = db_url.replace("postgresql+asyncpg://", "postgresql://")
    settings = Settings(
        secret="bench-secret-0123456789-0123456789-abcdef",
        database_url=db_url,
        database_schema=schema,
        auto_migrate=True,
        password_time_cost=1,
        password_memory_kib=1024,
        audience_sample_s=0,
    )
    app = create_app(settings)
    access = AccessLog(open(os.devnull, "w"), close_stream=True)  # noqa: SIM115
    app.cleanup_ctx.append(access.lifetime)
    # as ``python app.py`` serves: the access logger also counts the request (metrics)
    counting = access_logger(app[metrics_key].requests, access.add)
    runner = web.AppRunner(app, access_log_class=counting)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    base = f"http://127.0.0.1:{port}"
    try:
        sid, pid, tokens = await _session(base, args.stock)
        assert runner.server is not None
        body = json.dumps({"product_id": pid, "quantity": 1}).encode()
        reads = app[orders_key].store.reads
        trips = reads.round_trips
        figures = await feed(
            runner.server,
            f"/api/sessions/{sid}/orders",
            tokens,
            body,
            args.requests,
            args.connections,
        )
        conn = await asyncpg.connect(plain)
        sell_out_ms = await conn.fetchval(
            f'SELECT max(paid_ms) - min(placed_ms) FROM "{schema}".orders '
            "WHERE status = 'paid' AND idempotency_key <> 'first'"
        )
        await conn.close()
        return {
            **figures,
            "db_round_trips": reads.round_trips - trips,
            "sell_out_ms": sell_out_ms,
        }
    finally:
        await runner.cleanup()
        conn = await asyncpg.connect(plain)
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


async def _session(base: str, stock: int) -> tuple[int, int, list[str]]:
    """A live session with one product on its shelf, ``stock`` units of it left (a
    first buyer has bought one more)."""
    async with aiohttp.ClientSession() as http:
        shop = await flash_shop(http, base, stock + 1, 8)
        body = {"product_id": shop.product_id, "quantity": 1}
        headers = {"Authorization": f"Bearer {shop.buyer_tokens[0]}", "Idempotency-Key": "first"}
        url = f"{base}/api/sessions/{shop.session_id}/orders"
        async with http.post(url, json=body, headers=headers) as res:
            assert res.status == 201, await res.text()
    return shop.session_id, shop.product_id, shop.buyer_tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--target", choices=("app", "floor"), default="app")
    parser.add_argument(
        "--stock", type=int, default=0, help="units left when the attempts start (app)"
    )
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        runner = uvloop.run
    else:
        runner = asyncio.run
    figures = runner(run_app(args) if args.target == "app" else run_floor(args))
    print(json.dumps({"target": args.target, **figures}), flush=True)


if __name__ == "__main__":
    main()
