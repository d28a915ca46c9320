"""live.workers: SIGTERM drains (the public sockets closed, the internal one open, the
application's ``drain`` awaited), SIGINT cuts a drain short, and a worker that exits
with 0 (it was stopped) is started again however soon it exits.

A small aiohttp app in a spawned process; the media's own drain is
tests/integration/test_media_drain.py.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from pathlib import Path

from aiohttp import web
from support import free_port

from live.workers import Bind, serve, supervise

MARKS = "LIVESHELF_TEST_MARKS"


def serve_draining(marks: str, public: int, internal: int) -> None:
    """Serve ``GET /`` on both ports; the drain leaves a mark and takes a minute."""

    async def drain() -> None:
        (Path(marks) / "draining").touch()
        await asyncio.sleep(60)

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    binds = [Bind("127.0.0.1", public), Bind("127.0.0.1", internal, internal=True)]
    try:
        serve(app, binds, loop, drain=drain, access_log=None)
    finally:
        loop.close()


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return sock.recv(100).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def until(condition: object, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_drains_on_the_internal_socket_and_sigint_cuts_it_short(tmp_path: Path) -> None:
    public, internal = free_port(), free_port()
    process = mp.get_context("spawn").Process(
        target=serve_draining, args=(str(tmp_path), public, internal)
    )
    process.start()
    try:
        until(lambda: answers(public) and answers(internal), within_s=20)
        assert process.pid is not None
        os.kill(process.pid, signal.SIGTERM)
        until(lambda: (tmp_path / "draining").exists(), within_s=5)
        assert not answers(public)  # closed before the drain began
        assert answers(internal)
        time.sleep(0.5)
        assert process.is_alive()  # the drain takes its time
        interrupted = time.monotonic()
        os.kill(process.pid, signal.SIGINT)
        process.join(5)
        assert process.exitcode == 0
        assert time.monotonic() - interrupted < 3
    finally:
        process.kill()
        process.join()


def test_sigint_does_not_drain(tmp_path: Path) -> None:
    public, internal = free_port(), free_port()
    process = mp.get_context("spawn").Process(
        target=serve_draining, args=(str(tmp_path), public, internal)
    )
    process.start()
    try:
        until(lambda: answers(public), within_s=20)
        assert process.pid is not None
        os.kill(process.pid, signal.SIGINT)
        process.join(5)
        assert process.exitcode == 0
        assert not (tmp_path / "draining").exists()
    finally:
        process.kill()
        process.join()


def stop_twice_then_stay(index: int) -> None:
    """Exit with 0 (as a drained worker does) right after each of the first two starts."""
    marks = Path(os.environ[MARKS])
    (marks / f"{index}-{os.getpid()}").touch()
    if len(list(marks.glob(f"{index}-*"))) <= 2:
        return
    time.sleep(60)


def test_a_worker_stopped_soon_after_starting_is_no_failed_start(tmp_path: Path) -> None:
    os.environ[MARKS] = str(tmp_path)
    returned = threading.Event()
    try:

        def stop_when_up_again() -> None:
            for _ in range(600):
                if len(list(tmp_path.glob("0-*"))) == 3:
                    break
                time.sleep(0.05)
            time.sleep(0.5)
            if not returned.is_set():  # never signal pytest itself once supervise is done
                os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=stop_when_up_again, daemon=True).start()
        code = supervise(
            stop_twice_then_stay, 1, restart_delay_s=0.05, early_exit_s=60, early_exits=2
        )
        returned.set()
    finally:
        returned.set()
        del os.environ[MARKS]
    assert code == 0  # not 1: two early exits, both with 0, are no failed start
    assert len(list(tmp_path.glob("0-*"))) == 3
