"""Which worker serves a new WHEP viewer (``--workers N``).

Every worker writes its media load to one Redis hash each second (``LoadBoard``):
viewers, pulls (edges pulling from it, plus its own), the share of a core it used,
whether it is serving or draining, and the sessions it relays (holds the publisher of,
or pulls). A record older than ``stale_s`` is ignored (its worker is dead or stuck).

The worker that receives ``POST /whep/{id}`` places the viewer (``Placement.choose``):

1. itself, if it already relays the session and has room;
2. else the least-loaded worker that relays the session and has room;
3. else the least-loaded worker with room (it will start a pull);
4. else nobody: ``503`` with ``Retry-After``.

A worker has room while it serves fewer viewers than its cap and its CPU share is under
``cpu_limit``: the cap alone would have to be tuned to the machine, and relaying
workers are filled first. The share is smoothed over a few seconds (``SteadyCpu``): a
worker busy for a moment (starting up, a burst of handshakes) has room; one that stays
busy has none.

A worker counts its own choices as reservations until the chosen worker's next report
covers them, so a burst of joins spreads instead of piling onto the worker that looked
emptiest a moment ago. The chosen worker serves the forwarded request without placing
it again, and refuses it (503) if it is full by then.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from typing import Generic, Literal, Protocol, TypeVar

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from live.errors import Unavailable

log = logging.getLogger(__name__)

State = Literal["serving", "draining"]


@dataclass(frozen=True, slots=True)
class WorkerLoad:
    """One worker's media load, as it reports it."""

    worker: int
    viewers: int
    pulls: int
    cpu: float
    state: State
    sessions: tuple[int, ...]
    #: the worker's process: a restarted worker has another (its peers died with it)
    pid: int = field(default_factory=os.getpid)
    at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> WorkerLoad:
        data = json.loads(text)
        data["sessions"] = tuple(data["sessions"])
        return cls(**data)


class Stamped(Protocol):
    @property
    def at(self) -> float:
        """When it was made (Unix seconds)."""
        ...


R = TypeVar("R", bound=Stamped)


class FreshRecords(Generic[R]):
    """JSON records in one Redis hash, a field each, read back without those older than
    ``stale_s`` (their writer is dead or stuck) or unreadable."""

    def __init__(
        self, redis: Redis, key: str, parse: Callable[[str | bytes], R], stale_s: float
    ) -> None:
        self._redis = redis
        self._key = key
        self._parse = parse
        self._stale_s = stale_s

    async def put(self, name: str, record: str) -> None:
        await self._redis.hset(self._key, name, record)

    async def remove(self, name: str) -> None:
        await self._redis.hdel(self._key, name)

    async def fresh(self) -> list[R]:
        raw = await self._redis.hgetall(self._key)
        now = time.time()
        found = []
        for value in raw.values():
            try:
                record = self._parse(value)
            except (ValueError, TypeError, KeyError):
                continue
            if now - record.at <= self._stale_s:
                found.append(record)
        return found


class LoadBoard:
    """The workers' load records in Redis (one hash; a field per worker)."""

    def __init__(self, redis: Redis, prefix: str, *, node: str = "", stale_s: float = 5.0) -> None:
        """``node``: its workers' loads only (one board per node)."""
        self._key = f"{prefix}:media:load:{node}" if node else f"{prefix}:media:load"
        self._records = FreshRecords(redis, self._key, WorkerLoad.from_json, stale_s)

    async def report(self, load: WorkerLoad) -> None:
        await self._records.put(str(load.worker), load.to_json())

    async def withdraw(self, worker: int) -> None:
        await self._records.remove(str(worker))

    async def loads(self) -> dict[int, WorkerLoad]:
        """The fresh records by worker (stale or unreadable ones left out)."""
        return {load.worker: load for load in await self._records.fresh()}


class CpuMeter:
    """The share of one core this process used since the last reading."""

    def __init__(self) -> None:
        self._wall = time.monotonic()
        self._cpu = _process_cpu()

    def share(self) -> float:
        return self.sample()[0]

    def sample(self) -> tuple[float, float]:
        """The share since the last reading, and the seconds that reading covers."""
        wall, cpu = time.monotonic(), _process_cpu()
        spent, elapsed = cpu - self._cpu, wall - self._wall
        self._wall, self._cpu = wall, cpu
        return (spent / elapsed if elapsed > 0 else 0.0), elapsed


class SteadyCpu:
    """The share of one core this process uses, averaged with exponentially less weight
    on older seconds (time constant ``window_s``); it starts at zero. With the default
    3 s, one second at full load reads 0.28, and a worker reaches a limit of 0.85 after
    6 s at full load."""

    def __init__(
        self, window_s: float = 3.0, sample: Callable[[], tuple[float, float]] | None = None
    ) -> None:
        self.window_s = window_s
        self._sample = sample or CpuMeter().sample
        self.value = 0.0

    def reading(self) -> float:
        """Take a sample and fold it in; the smoothed share."""
        share, elapsed = self._sample()
        weight = 1.0 - math.exp(-elapsed / self.window_s) if elapsed > 0 else 0.0
        self.value += (share - self.value) * weight
        return self.value


def _process_cpu() -> float:
    times = os.times()
    return times.user + times.system


class Placement:
    """Chooses the worker for a new viewer of a session (see the module docstring)."""

    def __init__(self, me: int, cap: int, board: LoadBoard, cpu_limit: float = 1.0) -> None:
        """``cap``: viewers per worker; ``cpu_limit``: a worker whose last reported
        share of a core reached it counts as full, whatever its viewer count."""
        self.me = me
        self.cap = cap
        self.cpu_limit = cpu_limit
        self._board = board
        #: worker -> (viewers placed there, time of the first) not yet in its report:
        #: one per worker of this node at most
        self._reserved: dict[int, tuple[int, float]] = {}

    async def choose(
        self, session_id: int, mine: WorkerLoad, tried: Collection[int] = ()
    ) -> int | None:
        """The worker to serve the viewer, or None if every worker is full. ``mine``
        is this worker's load now (exact, not as last reported); workers in ``tried``
        refused the viewer already."""
        if self.has_room(mine) and session_id in mine.sessions and self.me not in tried:
            return self.me
        try:
            loads = await self._board.loads()
        except RedisError as exc:  # without the board, place here if there is room
            log.warning("media load board unreadable: %r", exc)
            loads = {}
        loads[self.me] = mine
        open_ = [
            load
            for load in loads.values()
            if self.has_room(load, self._viewers(load)) and load.worker not in tried
        ]
        relaying = [load for load in open_ if session_id in load.sessions]
        pool = relaying or open_
        if not pool:
            return None
        # least loaded by viewers, then by CPU; this worker wins a tie (no forwarding)
        best = min(pool, key=lambda w: (self._viewers(w), w.cpu, w.worker != self.me))
        if best.worker != self.me:
            self._reserve(best.worker)
        return best.worker

    def has_room(self, load: WorkerLoad, viewers: int | None = None) -> bool:
        """Whether a worker with this load takes one more viewer (``viewers`` instead
        of the load's own count, e.g. with this worker's reservations)."""
        count = load.viewers if viewers is None else viewers
        return load.state == "serving" and count < self.cap and load.cpu < self.cpu_limit

    def _viewers(self, load: WorkerLoad) -> int:
        """Its reported viewers plus what this worker placed there since the report."""
        if load.worker == self.me:
            return load.viewers
        count, since = self._reserved.get(load.worker, (0, 0.0))
        if count and load.at > since + 1.0:  # a report made after them counts them
            del self._reserved[load.worker]
            count = 0
        return load.viewers + count

    def _reserve(self, worker: int) -> None:
        count, since = self._reserved.get(worker, (0, time.time()))
        self._reserved[worker] = (count + 1, since)


class ProcessCap:
    """One process serving all media: no other worker to send a viewer to, so a viewer
    past the cap is refused (``media_full``, 503 with ``Retry-After``)."""

    def __init__(self, viewers: Callable[[], int], cap: int) -> None:
        self._viewers = viewers
        self._cap = cap

    async def place(
        self,
        request: web.Request,
        session_id: int,
        offer: bytes,
        user_id: int | None,
        address: str,
        guest_id: str | None = None,
    ) -> web.StreamResponse | None:
        if self._viewers() >= self._cap:
            raise Unavailable("media_full", "this server serves as many viewers as it may")
        return None

    async def endpoint(self, session_id: int, user_id: int | None) -> tuple[str, str]:
        """This server itself, unless it is full."""
        if self._viewers() >= self._cap:
            raise Unavailable("media_full", "this server serves as many viewers as it may")
        return "", ""
