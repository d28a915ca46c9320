"""Start-up steps that wait for a dependency instead of stopping the server.

A step that needs PostgreSQL or Redis (warming the pools, settling orders a crash left
half-done, loading token revocations, a feature's first load) runs once at start-up.
If it fails because a dependency is unavailable (``live.outages.dependency_of``), the
server starts anyway: one warning says what waits for what, the step is retried every
``every_s`` in the background, and one line says when it is done. Until then
``pending`` names it (``/readyz`` reports not ready, ``live.health``). Any other error
is a bug or a bad configuration and still stops the start.

A step nothing may run before (the migrations, with ``LIVESHELF_AUTO_MIGRATE=1``)
is waited for instead: ``wait_for`` retries it in place with the same lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .outages import dependency_of
from .tasks import reraise_if_cancelling, stop_task

log = logging.getLogger("liveshelf.startup")

Step = Callable[[], Awaitable[object]]


class StartUp:
    def __init__(self, *, every_s: float = 2.0) -> None:
        self._every_s = every_s
        self._waiting: dict[str, asyncio.Task[None]] = {}

    @property
    def pending(self) -> list[str]:
        """The steps still waiting for a dependency."""
        return [name for name, task in self._waiting.items() if not task.done()]

    async def run(self, name: str, step: Step) -> None:
        """Run ``step`` now; if a dependency is down, retry it in the background."""
        if not await _first_try(name, step, self._every_s, "retried every"):
            self._waiting[name] = asyncio.create_task(
                self._retry(name, step), name=f"start-up: {name}"
            )

    async def _retry(self, name: str, step: Step) -> None:
        await _until_done(name, step, self._every_s, tries=1)

    async def stop(self) -> None:
        """Stop retrying (shutdown)."""
        for task in self._waiting.values():
            await stop_task(task, within_s=2.0)
        self._waiting.clear()


async def wait_for(name: str, step: Step, *, every_s: float = 2.0) -> None:
    """Run ``step``, retrying it every ``every_s`` while a dependency is down; an error
    that is not an outage is raised."""
    if not await _first_try(name, step, every_s, "nothing starts before it, retried every"):
        await _until_done(name, step, every_s, tries=1, raise_bugs=True)


async def _first_try(name: str, step: Step, every_s: float, then: str) -> bool:
    """Run ``step`` once: True if it ran; False (and one warning) if a dependency is
    down; any other error is raised."""
    try:
        await step()
    except Exception as exc:
        reraise_if_cancelling()
        dependency = dependency_of(exc)
        if dependency is None:
            raise
        log.warning(
            "start-up: %s waits for the %s (%r); %s %.0f s", name, dependency, exc, then, every_s
        )
        return False
    return True


async def _until_done(
    name: str, step: Step, every_s: float, *, tries: int, raise_bugs: bool = False
) -> None:
    while True:
        await asyncio.sleep(every_s)
        tries += 1
        try:
            await step()
        except Exception as exc:
            reraise_if_cancelling()
            if dependency_of(exc) is None:
                if raise_bugs:
                    raise
                log.exception("start-up: %s failed (try %d)", name, tries)
            continue
        log.warning("start-up: %s done (try %d)", name, tries)
        return
