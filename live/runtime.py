"""What the process holds, read from inside it: ``GET /api/admin/runtime`` (admins).

For soak tests and for an operator chasing growth in a long show: resident memory,
open file descriptors, UDP sockets (one or more per WebRTC peer), asyncio tasks, the
peer connections the media service holds, and the cyclic garbage collector's passes
and pauses. Answer (sizes in bytes, times in milliseconds unless named ``_s``)::

    {"pid", "rss_bytes", "threads", "open_fds", "sockets", "udp_sockets",
     "asyncio_tasks", "peer_connections",
     "gc": {"now_s", "generations": [{"collections", "total_ms", "longest_ms",
            "longest_cpu_ms", "collected", "uncollectable"} x 3], "pauses_over_10ms", "counts",
            "thresholds", "frozen", "window"?},
     "objects"?: {"tracked", "<class name>": instances, ...},
     "types"?: {"<module.QualName>": instances, ...},
     "collected"?: {"objects", "pause_ms"}}

Query (all optional):

- ``since=<gc.now_s of an earlier answer>`` adds ``gc.window``: the passes per
  generation, the longest pause per generation (wall ``longest_ms`` and the pass's own
  CPU time ``longest_cpu_ms``) and the pauses over 10 ms since then,
  from the recorder's ring of recent passes (``complete: false`` if the ring no longer
  reaches back that far). Soak tests read it every few seconds.
- ``objects=1`` walks ``gc.get_objects()`` (every tracked object outside the frozen
  start-up set: ~0.1 s per million, the loop stands still meanwhile) and counts the
  instances of each ``census`` class, including closed ones only a full collection
  would free. Never done without asking.
- ``types=1`` walks them too and counts the instances of every class, the
  ``TYPES_KEPT`` most numerous (a soak diffs two such readings to find what grows).
- ``collect=1`` runs a full collection first (``collected``: what it freed, its pause):
  with ``objects=1``, instances that survive it are held, not just waiting for the
  collector.

``peer_connections`` is what the media service holds open (a callable handed in by
``app.py``), not an object count: the two differ by the closed peers not yet freed.

The recorder (``GcPauses``) is a ``gc.callbacks`` hook installed for the app's lifetime;
it keeps counters per generation and a fixed ring of the last passes (constant memory)
and adds a few microseconds at most to each pass (measured: bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import gc
import math
import os
import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from aiohttp import web

from live.answers import RuntimeAnswer
from live.errors import InvalidInput
from live.http import json_response, signed_in
from live.models import Role
from live.openapi import Answer, operation, query

GENERATIONS = 3
#: a pause longer than this is counted apart (``pauses_over_10ms``)
SLOW_PAUSE_S = 0.010
#: classes listed by ``types=1``, the most numerous first
TYPES_KEPT = 300
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
#: a ``0``/``1`` query flag's schema
_FLAG = {"type": "integer", "enum": [0, 1]}


class GcPauses:
    """Every pass of the cyclic collector: how long it stood the process still, per
    generation, from ``gc.callbacks`` ("start" and "stop" of each pass).

    Totals per generation (passes, summed and longest pause, objects collected and
    uncollectable), the number of pauses over ``slow_s``, and the last ``ring`` passes
    (end time, pause, generation) in preallocated arrays, so ``window`` can say what
    happened since an earlier reading. Memory does not grow with the passes.

    A pass runs in whichever thread allocated when a threshold was crossed, with the
    GIL held; passes never overlap, so one "start" stamp is enough. ``clock`` is
    ``time.perf_counter`` (CLOCK_MONOTONIC on Linux, the same in every process).

    Each pass is also timed on ``cpu_clock`` (``time.thread_time``: the CPU time of the
    thread running it). Wall time is what the loop waits; CPU time is what the pass
    itself costs. They differ when the kernel takes the CPU away mid-pass (other
    processes on the same cores), so ``longest_cpu_ms`` tells the collector's own cost
    apart from the machine's load.
    """

    def __init__(
        self,
        *,
        ring: int = 1024,
        slow_s: float = SLOW_PAUSE_S,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._cpu_started = math.nan
        self._slow_s = slow_s
        self._size = ring
        self._started = math.nan
        self.collections = [0] * GENERATIONS
        self.total_s = [0.0] * GENERATIONS
        self.longest_s = [0.0] * GENERATIONS
        self.longest_cpu_s = [0.0] * GENERATIONS
        self.collected = [0] * GENERATIONS
        self.uncollectable = [0] * GENERATIONS
        self.slow = 0
        self._ends = array("d", [0.0] * ring)
        self._pauses = array("d", [0.0] * ring)
        self._cpu = array("d", [0.0] * ring)
        self._gens = array("b", [0] * ring)
        self._next = 0  # passes recorded into the ring so far

    def install(self) -> None:
        if self.on_gc not in gc.callbacks:
            gc.callbacks.append(self.on_gc)

    def uninstall(self) -> None:
        if self.on_gc in gc.callbacks:
            gc.callbacks.remove(self.on_gc)

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        """The ``gc.callbacks`` hook."""
        now = self._clock()
        if phase == "start":
            self._started = now
            self._cpu_started = self._cpu_clock()
            return
        pause = now - self._started
        if pause != pause:  # nan: installed during this pass
            return
        cpu = self._cpu_clock() - self._cpu_started
        self._started = self._cpu_started = math.nan
        g = info["generation"]
        self.collections[g] += 1
        self.total_s[g] += pause
        if pause > self.longest_s[g]:
            self.longest_s[g] = pause
        if cpu > self.longest_cpu_s[g]:
            self.longest_cpu_s[g] = cpu
        self.collected[g] += info["collected"]
        self.uncollectable[g] += info["uncollectable"]
        if pause > self._slow_s:
            self.slow += 1
        i = self._next % self._size
        self._ends[i] = now
        self._pauses[i] = pause
        self._cpu[i] = cpu
        self._gens[i] = g
        self._next += 1

    def now(self) -> float:
        return self._clock()

    def totals(self) -> dict[str, Any]:
        return {
            "now_s": self._clock(),
            "generations": [
                {
                    "collections": self.collections[g],
                    "total_ms": round(self.total_s[g] * 1000, 3),
                    "longest_ms": round(self.longest_s[g] * 1000, 3),
                    "longest_cpu_ms": round(self.longest_cpu_s[g] * 1000, 3),
                    "collected": self.collected[g],
                    "uncollectable": self.uncollectable[g],
                }
                for g in range(GENERATIONS)
            ],
            "pauses_over_10ms": self.slow,
        }

    def window(self, since: float) -> dict[str, Any]:
        """Passes that ended after ``since`` (a ``now_s`` of this clock): per
        generation how many and the longest pause, and how many were over ``slow_s``.
        ``complete`` is False when the ring no longer reaches back to ``since``."""
        count = [0] * GENERATIONS
        longest = [0.0] * GENERATIONS
        longest_cpu = [0.0] * GENERATIONS
        slow = 0
        held = min(self._next, self._size)
        oldest_end = math.inf
        for k in range(held):
            i = (self._next - 1 - k) % self._size
            end = self._ends[i]
            oldest_end = end
            if end <= since:
                break
            g, pause = self._gens[i], self._pauses[i]
            count[g] += 1
            longest[g] = max(longest[g], pause)
            longest_cpu[g] = max(longest_cpu[g], self._cpu[i])
            slow += pause > self._slow_s
        complete = self._next <= self._size or oldest_end <= since
        return {
            "since_s": since,
            "collections": count,
            "longest_ms": [round(x * 1000, 3) for x in longest],
            "longest_cpu_ms": [round(x * 1000, 3) for x in longest_cpu],
            "pauses_over_10ms": slow,
            "complete": complete,
        }


def rss_bytes() -> int:
    """Resident set size, from ``/proc/self/statm`` (pages)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE_BYTES


def socket_inodes() -> tuple[int, list[int]]:
    """(open file descriptors, the inodes of those that are sockets)."""
    fds = os.listdir("/proc/self/fd")
    inodes = []
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since the listing (or the listing's own descriptor)
            continue
        if target.startswith("socket:["):
            inodes.append(int(target[8:-1]))
    return len(fds), inodes


def udp_inodes() -> set[int]:
    """Inodes of every UDP socket in this network namespace (``/proc/net/udp``, udp6)."""
    found: set[int] = set()
    for name in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        try:
            with open(name, "rb") as f:
                next(f, None)  # the header
                for line in f:
                    fields = line.split()
                    if len(fields) > 9:
                        found.add(int(fields[9]))
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
    return found


def _class_counts() -> tuple[int, Counter[type]]:
    """How many objects the collector tracks (outside the frozen start-up set), and
    the instances of each class among them (one walk)."""
    objects = gc.get_objects()
    counts = Counter(map(type, objects))
    return len(objects), counts


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def census(qualified_names: Sequence[str]) -> dict[str, int]:
    """The tracked objects, and the instances of each class named ``module.QualName``
    (exact class) among them, by class name."""
    tracked, counts = _class_counts()
    by_name = dict.fromkeys(qualified_names, 0)
    for cls, n in counts.items():
        full = _qualified(cls)
        if full in by_name:
            by_name[full] += n
    return {"tracked": tracked, **{full.rpartition(".")[2]: n for full, n in by_name.items()}}


def type_counts(kept: int = TYPES_KEPT) -> dict[str, int]:
    """Instances of each class among the tracked objects (outside the frozen set),
    the ``kept`` most numerous, by ``module.QualName``."""
    return {_qualified(cls): n for cls, n in _class_counts()[1].most_common(kept)}


class RuntimeStats:
    """The readings and the admin route; ``lifetime`` keeps the GC recorder installed
    while the app runs (a cleanup context)."""

    def __init__(
        self,
        *,
        held_peers: Callable[[], int] = lambda: 0,
        census: Sequence[str] = (),
        pauses: GcPauses | None = None,
    ) -> None:
        self._held_peers = held_peers
        self._census = tuple(census)
        self.pauses = pauses or GcPauses()

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/admin/runtime", self.runtime)]

    async def lifetime(self, _app: web.Application) -> AsyncIterator[None]:
        self.pauses.install()
        yield
        self.pauses.uninstall()

    @operation(
        "What the process holds",
        tag="admin",
        roles=("admin",),
        answers=Answer(200, RuntimeAnswer),
        params=[
            query("since", {"type": "number"}, "gc.now_s of an earlier answer: adds gc.window"),
            query("objects", _FLAG, "1: count the census classes' instances (walks the heap)"),
            query("types", _FLAG, "1: count every class's instances (walks the heap)"),
            query("collect", _FLAG, "1: run a full collection first"),
        ],
    )
    async def runtime(self, request: web.Request) -> web.Response:
        """Admins only (401 guests, 403 every other role)."""
        signed_in(request).require(Role.ADMIN)
        since = _query_float(request, "since")
        objects = _query_flag(request, "objects")
        collect = _query_flag(request, "collect")
        types = _query_flag(request, "types")
        return json_response(
            self.reading(since=since, objects=objects, collect=collect, types=types)
        )

    def reading(
        self,
        *,
        since: float | None = None,
        objects: bool = False,
        collect: bool = False,
        types: bool = False,
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {}
        if collect:
            started = time.perf_counter()
            freed = gc.collect()
            answer["collected"] = {
                "objects": freed,
                "pause_ms": round((time.perf_counter() - started) * 1000, 3),
            }
        fds, sockets = socket_inodes()
        udp = udp_inodes()
        gc_part = self.pauses.totals()
        if since is not None:
            gc_part["window"] = self.pauses.window(since)
        gc_part.update(
            counts=list(gc.get_count()),
            thresholds=list(gc.get_threshold()),
            frozen=gc.get_freeze_count(),
        )
        answer.update(
            pid=os.getpid(),
            rss_bytes=rss_bytes(),
            threads=len(os.listdir("/proc/self/task")),
            open_fds=fds,
            sockets=len(sockets),
            udp_sockets=sum(1 for inode in sockets if inode in udp),
            asyncio_tasks=len(asyncio.all_tasks()),
            peer_connections=self._held_peers(),
            gc=gc_part,
        )
        if objects:
            answer["objects"] = census(self._census)
        if types:
            answer["types"] = type_counts()
        return answer


def _query_flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "0")
    if value not in ("0", "1"):
        raise InvalidInput("invalid_query", f"{name} is 0 or 1")
    return value == "1"


def _query_float(request: web.Request, name: str) -> float | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise InvalidInput("invalid_query", f"{name} is a number (gc.now_s of an earlier answer)")
    return number
