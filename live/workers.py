"""Serving: one process on one port, or N worker processes sharing it.

``serve(app, binds)`` runs one application on one or more addresses until SIGINT or
SIGTERM, then shuts it down as ``web.run_app`` would (connections closed, cleanup
contexts unwound). ``supervise(target, n)`` starts ``target(index)`` in ``n`` spawned
processes and keeps them running: a worker that dies is started again (after
``restart_delay_s``), a stop signal is passed on to every worker and waited for. The
workers share the public port with ``SO_REUSEPORT``, so the kernel spreads incoming
connections over them; what they share beyond that lives in PostgreSQL and Redis
(see ``media.forward`` for the media).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from aiohttp import web

from .conncap import ConnectionCap, Network
from .reaper import ConnectionReaper

log = logging.getLogger(__name__)


#: connections the kernel holds ready before the server accepts them (capped by
#: net.core.somaxconn). aiohttp's 128 drops the SYNs of a bigger burst (a show going
#: live, a reconnect wave), and each dropped one costs its client a 1 s retransmit.
LISTEN_BACKLOG = 2048


@dataclass(frozen=True)
class Bind:
    host: str
    port: int
    reuse_port: bool = False


def serve(
    app: web.Application,
    binds: list[Bind],
    loop: asyncio.AbstractEventLoop,
    *,
    timeouts: Timeouts | None = None,
    cap: Cap | None = None,
    **runner_options: Any,
) -> None:
    """Serve ``app`` on every bind on ``loop`` until SIGINT or SIGTERM; connections
    that are slow to send a request or idle are closed (``timeouts``, ``live.reaper``),
    and one address may hold only so many (``cap``, ``live.conncap``)."""
    try:
        loop.run_until_complete(
            _serve(app, binds, timeouts or Timeouts(), cap or Cap(), runner_options)
        )
    finally:  # as web.run_app: no task outlives the loop
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())


@dataclass(frozen=True)
class Timeouts:
    """How long a connection may take to send a request's headers, and stay idle
    between requests (``live.reaper``)."""

    header_s: float = 10.0
    idle_s: float = 60.0


@dataclass(frozen=True)
class Cap:
    """How many connections one client address may hold in this process (0: no cap),
    except the trusted proxies' (``live.conncap``)."""

    per_address: int = 0
    exempt: tuple[Network, ...] = ()


#: how long a connection whose handler left its body unread (a ``408`` on a body too
#: slow to arrive, a ``413``) is read from and ignored before it is closed (aiohttp's
#: default is 10 s: a trickling client would keep it that long)
LINGERING_S = 2.0


async def _serve(
    app: web.Application,
    binds: list[Bind],
    timeouts: Timeouts,
    cap: Cap,
    options: dict[str, Any],
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        keepalive_timeout=timeouts.idle_s,
        lingering_time=LINGERING_S,
        **options,
    )
    await runner.setup()
    assert runner.server is not None
    if cap.per_address:
        ConnectionCap(runner.server, cap.per_address, exempt=cap.exempt).install()
    reaper = ConnectionReaper(
        runner.server, header_timeout_s=timeouts.header_s, idle_timeout_s=timeouts.idle_s
    )
    await reaper.start()
    try:
        for bind in binds:
            site = web.TCPSite(
                runner,
                bind.host,
                bind.port,
                reuse_port=bind.reuse_port,
                backlog=LISTEN_BACKLOG,
            )
            await site.start()
        await stop.wait()
    finally:
        await reaper.stop()
        await runner.cleanup()


def supervise(
    target: Callable[[int], None],
    workers: int,
    *,
    restart_delay_s: float = 1.0,
    stop_timeout_s: float = 20.0,
    early_exit_s: float = 10.0,
    early_exits: int = 3,
) -> int:
    """Run ``target(index)`` for index 0..workers-1, each in a spawned process, and
    restart any that exits until SIGINT/SIGTERM; then stop them all and return 0.

    A worker that exits within ``early_exit_s`` of starting ``early_exits`` times in a
    row cannot start (port taken, database down, bad configuration): then everything
    is stopped and 1 returned, instead of restarting it forever."""
    ctx = mp.get_context("spawn")
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}

    def start(index: int) -> BaseProcess:
        process = ctx.Process(target=target, args=(index,), name=f"liveshelf-worker-{index}")
        process.start()
        log.info("worker %d started (pid %s)", index, process.pid)
        return process

    procs = {index: start(index) for index in range(workers)}
    started = dict.fromkeys(procs, time.monotonic())
    failures = dict.fromkeys(procs, 0)
    code = 0
    try:
        while not stopping:
            wait([p.sentinel for p in procs.values()], timeout=0.5)
            for index, process in list(procs.items()):
                if stopping or process.is_alive():
                    continue
                early = time.monotonic() - started[index] < early_exit_s
                failures[index] = failures[index] + 1 if early else 1
                if failures[index] >= early_exits:
                    log.error(
                        "worker %d exited %d times right after starting (last: %s); stopping",
                        index,
                        failures[index],
                        process.exitcode,
                    )
                    stopping, code = True, 1
                    break
                log.error(
                    "worker %d (pid %s) exited with %s; starting it again",
                    index,
                    process.pid,
                    process.exitcode,
                )
                time.sleep(restart_delay_s)
                if not stopping:
                    procs[index] = start(index)
                    started[index] = time.monotonic()
    finally:
        for process in procs.values():
            if process.is_alive():
                process.terminate()  # SIGTERM: each worker shuts down cleanly
        deadline = time.monotonic() + stop_timeout_s
        for process in procs.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error(
                    "worker %s did not stop in %.0f s; killing it", process.pid, stop_timeout_s
                )
                process.kill()
                process.join()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return code
