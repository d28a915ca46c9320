"""Background-task hygiene: loops that survive errors but not cancellation.

A long-running loop catches ``Exception`` to keep going after a failed iteration. Some
libraries (redis-py's connection handling among them) turn a ``CancelledError`` that
hits them mid-command into an ordinary exception; such a loop would then swallow its own
cancellation and shutdown would wait for it forever. ``reraise_if_cancelling`` goes in
every such ``except`` block, and ``stop_task`` bounds the wait anyway.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


def reraise_if_cancelling() -> None:
    """Inside ``except Exception``: if this task is being cancelled, stop swallowing."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_task(task: asyncio.Task[Any] | None, *, within_s: float = 5.0) -> None:
    """Cancel ``task`` and wait for it to end, at most ``within_s`` seconds."""
    if task is None or task.done():
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=within_s)
    if not done:
        log.warning("task %s did not stop within %.1f s", task.get_name(), within_s)
    elif not task.cancelled() and task.exception() is not None:
        log.warning("task %s ended with %r", task.get_name(), task.exception())
