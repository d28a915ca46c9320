"""Serving: one process on one port, or N worker processes sharing it.

``serve(app, binds)`` runs one application on one or more addresses until SIGINT or
SIGTERM, then shuts it down as ``web.run_app`` would (connections closed, cleanup
contexts unwound). ``supervise(target, n)`` starts ``target(index)`` in ``n`` spawned
processes and keeps them running: a worker that exits is started again (after
``restart_delay_s``). The workers share the public port with ``SO_REUSEPORT``, so the
kernel spreads incoming connections over them; what they share beyond that lives in
PostgreSQL and Redis (see ``media.forward`` for the media).

``serve`` runs aiohttp's own ``web.AppRunner`` and ``web.TCPSite``s, not
``web.run_app``, which cannot do what it adds: sites of different kinds on one runner
(the public one with ``SO_REUSEPORT`` and TLS, the internal one plain; ``run_app``
gives every site the same), the connection cap and the reaper installed on the
runner's server before any site opens, and SIGTERM told from SIGINT (``run_app``
stops the same way on both) so that a worker can drain.

Stopping, told apart by the signal:

- **SIGTERM to one worker** (a rolling restart: the supervisor starts it again once it
  has exited) *drains* it, if ``serve`` was given a ``drain``: the worker closes its
  public sockets at once (new connections go to the other workers; its internal ones,
  ``Bind.internal``, stay open for the other workers' calls), awaits ``drain()``, then
  shuts down as on SIGINT. The application decides how long ``drain()`` lasts: for the
  media, until the worker's WHEP viewers have left or ``LIVESHELF_MEDIA_DRAIN_S``
  passed, and not at all when no other worker serves (``media.feature``). What is
  already connected (room sockets, kept-alive HTTP connections, requests under way) is
  served meanwhile and closed at the end, as by any stop.
- **SIGINT** stops a worker at once; so does a second signal during a drain.
- **The supervisor's own stop** (SIGINT or SIGTERM to it) sends SIGINT to every worker:
  with all of them stopping there is nowhere to move to, so nobody drains. (A service
  manager that signals the whole process group, as systemd does by default, also
  sends each worker SIGTERM; the supervisor's SIGINT, within half a second, ends those
  drains.)
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import signal
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from aiohttp import web

from .conncap import ConnectionCap, Network
from .reaper import ConnectionReaper
from .settings_env import ConfigError

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
    #: for the other workers only: kept open while the worker drains
    internal: bool = False


#: what a worker does between SIGTERM (its public sockets closed) and its shutdown
Drain = Callable[[], Awaitable[None]]


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """uvloop when installed (its C transports halve the cost of each socket write in
    fan-out; see bench/RESULTS.md), else asyncio's own (``LIVESHELF_EVENT_LOOP``)."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise ConfigError("LIVESHELF_EVENT_LOOP=uvloop: uvloop is not installed") from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def internal_urls(host: str, base_port: int, workers: int) -> tuple[str, ...]:
    """Each worker's URL for the other workers, by index: ``host`` at ``base_port`` + the
    index, or at a free port each when ``base_port`` is 0."""
    ports = [base_port + i if base_port else _free_port(host) for i in range(workers)]
    in_url = f"[{host}]" if ":" in host else host
    return tuple(f"http://{in_url}:{port}" for port in ports)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def serve(
    app: web.Application,
    binds: list[Bind],
    loop: asyncio.AbstractEventLoop,
    *,
    timeouts: Timeouts | None = None,
    cap: Cap | None = None,
    drain: Drain | None = None,
    ssl_context: ssl.SSLContext | None = None,
    **runner_options: Any,
) -> None:
    """Serve ``app`` on every bind on ``loop`` until SIGINT or SIGTERM (SIGTERM with a
    ``drain``: the public binds closed, once ``drain()`` returned; see the module
    docstring); connections that are slow to send a request or idle are closed
    (``timeouts``, ``live.reaper``), and one address may hold only so many (``cap``,
    ``live.conncap``). With ``ssl_context`` the public binds speak HTTPS (``live.tls``);
    the internal ones (loopback, between workers) stay plain HTTP."""
    try:
        loop.run_until_complete(
            _serve(
                app,
                binds,
                timeouts or Timeouts(),
                cap or Cap(),
                runner_options,
                drain,
                ssl_context,
            )
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
    drain: Drain | None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    signals: asyncio.Queue[signal.Signals] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, signals.put_nowait, signum)
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
        public = []
        for bind in binds:
            site = web.TCPSite(
                runner,
                bind.host,
                bind.port,
                reuse_port=bind.reuse_port,
                backlog=LISTEN_BACKLOG,
                ssl_context=None if bind.internal else ssl_context,
            )
            await site.start()
            if not bind.internal:
                public.append(site)
        if await signals.get() == signal.SIGTERM and drain is not None:
            await _drain(public, drain, signals)
    finally:
        await reaper.stop()
        await runner.cleanup()


async def _drain(
    public: list[web.TCPSite], drain: Drain, signals: asyncio.Queue[signal.Signals]
) -> None:
    """Close the public sites, then await ``drain()`` unless another signal comes
    first. (Connections the kernel had queued on a closed ``SO_REUSEPORT`` socket but
    not handed over yet are reset, unless ``net.ipv4.tcp_migrate_req`` is set.)"""
    for site in public:
        await site.stop()
    log.info("SIGTERM: public sockets closed, draining (SIGINT stops at once)")
    draining = asyncio.ensure_future(drain())
    interrupted = asyncio.ensure_future(signals.get())
    await asyncio.wait((draining, interrupted), return_when=asyncio.FIRST_COMPLETED)
    for task in (draining, interrupted):
        task.cancel()
    await asyncio.gather(draining, interrupted, return_exceptions=True)
    if interrupted.done() and not interrupted.cancelled():
        log.info("%s: drain cut short", interrupted.result().name)
    elif not draining.cancelled() and draining.exception() is not None:
        log.error("draining failed; stopping", exc_info=draining.exception())


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
    restart any that exits until SIGINT/SIGTERM; then stop them all (SIGINT: no
    draining, see the module docstring) and return 0.

    A worker that fails (exits with a code other than 0) within ``early_exit_s`` of
    starting ``early_exits`` times in a row cannot start (port taken, database down, bad
    configuration): then everything is stopped and 1 returned, instead of restarting it
    forever. Exiting with 0 is a worker that was stopped (a rolling restart's SIGTERM):
    never a failure."""
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
                if process.exitcode == 0:
                    failures[index] = 0
                    log.info("worker %d (pid %s) stopped; starting it again", index, process.pid)
                else:
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
            if process.is_alive() and process.pid is not None:
                # SIGINT, not SIGTERM: each shuts down cleanly and at once, no draining
                os.kill(process.pid, signal.SIGINT)
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
