"""live.workers.supervise: restarts, and gives up on a worker that cannot start."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from live.workers import supervise

MARKS = "LIVESHELF_TEST_MARKS"


def exit_at_once(index: int) -> None:
    raise SystemExit(3)


def run_then_mark(index: int) -> None:
    """Leave a mark per start; worker 1 dies after its first start, then stays up."""
    marks = Path(os.environ[MARKS])
    (marks / f"{index}-{os.getpid()}").touch()
    if index == 1 and len(list(marks.glob("1-*"))) == 1:
        raise SystemExit(1)
    time.sleep(60)


def test_a_worker_that_cannot_start_stops_everything() -> None:
    started = time.monotonic()
    assert supervise(exit_at_once, 2, restart_delay_s=0.05) == 1
    assert time.monotonic() - started < 20


def test_a_dead_worker_is_started_again_and_sigterm_stops_all(tmp_path: Path) -> None:
    os.environ[MARKS] = str(tmp_path)
    returned = threading.Event()
    try:

        def stop_when_restarted() -> None:
            for _ in range(400):
                if len(list(tmp_path.glob("1-*"))) == 2 and list(tmp_path.glob("0-*")):
                    break
                time.sleep(0.05)
            time.sleep(0.5)
            if not returned.is_set():  # never signal pytest itself once supervise is done
                os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=stop_when_restarted, daemon=True).start()
        started = time.monotonic()
        code = supervise(run_then_mark, 2, restart_delay_s=0.05)
        returned.set()
        assert code == 0
        assert time.monotonic() - started < 30  # SIGTERM reached the sleeping workers
    finally:
        returned.set()
        del os.environ[MARKS]
    assert len(list(tmp_path.glob("0-*"))) == 1
    assert len(list(tmp_path.glob("1-*"))) == 2
