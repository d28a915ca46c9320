"""Prometheus metrics: ``GET /metrics`` in the text exposition format.

Counting costs the hot paths an integer increment they mostly do anyway: services keep
plain counters and gauges, and register *readings* here (a name, a help text, a kind
and a callable); a scrape reads them all, builds the families and renders them with
``prometheus-client``. Only the HTTP request histogram is kept here, fed by the access
logger aiohttp calls for every request anyway (``RequestStats``, ``access_logger``):
no middleware, no response hook.

Labels stay bounded: routes are the route's pattern (``/api/sessions/{id}/orders``),
requests no route matched are ``route="unmatched"``; refusal reasons are the API's
error codes.

Several workers (``--workers N``): any worker answering ``/metrics`` asks the others
over their loopback ports (``GET /internal/metrics`` with a token derived from
``LIVESHELF_SECRET``) and answers every worker's samples, each with a ``worker`` label;
sum over it (``sum without (worker)``). A worker that does not answer within a second
is ``liveshelf_metrics_worker_up{worker="i"} 0`` and its samples are missing from that
scrape. Counters restart at 0 with their worker, as Prometheus expects.

Who may read: clients on loopback (the default; a scraper on the node), clients in
``LIVESHELF_METRICS_ALLOW`` (CIDR list), or anyone with ``Authorization: Bearer
<LIVESHELF_METRICS_TOKEN>``. A request that came through a proxy (``X-Forwarded-For``)
counts as the proxy's client, not as loopback: it needs the token or the list.
Everyone else gets ``403 metrics_forbidden``.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import hmac
import ipaddress
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse
from aiohttp.web_urldispatcher import AbstractResource
from multidict import istr
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from live.errors import Forbidden
from live.openapi import Answer, not_in_api, operation

log = logging.getLogger(__name__)

Kind = Literal["counter", "gauge"]
Value = float
#: a reading's value: one number, or one per label values
Read = Callable[[], float | Mapping[tuple[str, ...], float]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

PREFIX = "liveshelf_"
INTERNAL_HEADER = "Liveshelf-Internal-Metrics"
#: request duration buckets, seconds (an order takes ~0.1-5 ms; a WHEP offer ~10-100 ms)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIBLING_TIMEOUT_S = 1.0
#: paths whose ``Authorization`` is the metrics token, not an account's
#: (``live.http.auth_middleware``'s ``own_auth``)
METRICS_PATHS = frozenset({"/metrics", "/internal/metrics"})


@dataclass(frozen=True)
class Reading:
    name: str
    help: str
    kind: Kind
    read: Read
    labels: tuple[str, ...] = ()


class Histogram:
    """Observations in fixed buckets (not cumulative until read), their count and sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def plus(self, other: Histogram) -> Histogram:
        """A new histogram holding both (same bounds)."""
        both = Histogram(self.bounds)
        both.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        both.total = self.total + other.total
        return both

    def samples(
        self, name: str, labels: Mapping[str, str]
    ) -> Iterator[tuple[str, dict[str, str], float]]:
        """The ``_bucket`` (cumulative), ``_count`` and ``_sum`` samples."""
        running = 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += n
            le = "+Inf" if bound == math.inf else repr(bound)
            yield f"{name}_bucket", {**labels, "le": le}, float(running)
        yield f"{name}_count", dict(labels), float(running)
        yield f"{name}_sum", dict(labels), self.total


class RequestStats:
    """Requests by method, route and status: a count and a duration histogram each.

    Counted per request in the access logger, so kept cheap (~0.5 us): series are
    keyed by the route's resource object and the status as an int; the route's
    pattern and the status text are made only when read."""

    def __init__(self, buckets: Sequence[float] = BUCKETS, *, skip_header: str = "") -> None:
        """``skip_header``: requests carrying it are not counted (a request one worker
        forwards to another is counted where it arrived, once)."""
        self._bounds = tuple(buckets)
        self._skip = istr(skip_header) if skip_header else None
        #: (method, resource or None, status) -> its durations
        self._series: dict[tuple[str, AbstractResource | None, int], Histogram] = {}

    def observe(
        self, method: str, resource: AbstractResource | None, status: int, seconds: float
    ) -> None:
        key = (method, resource, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Histogram(self._bounds)
        series.observe(seconds)

    def observe_request(
        self, request: BaseRequest, response: StreamResponse, seconds: float
    ) -> None:
        if self._skip is not None and self._skip in request.headers:
            return
        info = request.match_info if isinstance(request, web.Request) else None
        self.observe(
            request.method,
            info.route.resource if info is not None else None,
            response.status,
            seconds,
        )

    def families(self) -> Iterator[Metric]:
        total = Metric(f"{PREFIX}http_requests", "HTTP requests answered", "counter")
        duration = Metric(
            f"{PREFIX}http_request_duration_seconds",
            "Time from the request's arrival to its answer, by route",
            "histogram",
        )
        merged: dict[tuple[str, str, str], Histogram] = {}
        for (method, resource, code), series in self._series.items():
            route = resource.canonical if resource is not None else "unmatched"
            key = (method, route, str(code))
            into = merged.get(key)
            # two resources with one pattern (rare): one series
            merged[key] = series if into is None else into.plus(series)
        for (method, pattern, status), series in sorted(merged.items()):
            labels = {"method": method, "route": pattern, "status": status}
            total.add_sample(f"{PREFIX}http_requests_total", labels, float(sum(series.counts)))
            for point in series.samples(duration.name, labels):
                duration.add_sample(*point)
        yield total
        yield duration


class Metrics:
    """This process's readings and request statistics (module docstring)."""

    def __init__(self, *, skip_header: str = "") -> None:
        self._readings: dict[str, Reading] = {}
        self._histograms: dict[str, tuple[str, Histogram]] = {}
        self._refreshers: list[Callable[[], Awaitable[None]]] = []
        self.requests = RequestStats(skip_header=skip_header)

    def counter(self, name: str, help: str, read: Read, labels: tuple[str, ...] = ()) -> None:
        """A value that only grows (``name`` without ``liveshelf_`` and ``_total``)."""
        self._add(Reading(name, help, "counter", read, labels))

    def gauge(self, name: str, help: str, read: Read, labels: tuple[str, ...] = ()) -> None:
        """A value that goes up and down."""
        self._add(Reading(name, help, "gauge", read, labels))

    def histogram(self, name: str, help: str, histogram: Histogram) -> None:
        """A distribution a service observes into (``Histogram.observe``)."""
        if name in self._histograms or name in self._readings:
            raise ValueError(f"metric {name!r} registered twice")
        self._histograms[name] = (help, histogram)

    def refresh_with(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """``refresh`` runs before each scrape (for values that need a query, e.g.
        the outbox's backlog); a failure is logged and the scrape goes on."""
        self._refreshers.append(refresh)

    def _add(self, reading: Reading) -> None:
        if reading.name in self._readings or reading.name in self._histograms:
            raise ValueError(f"metric {reading.name!r} registered twice")
        self._readings[reading.name] = reading

    async def refresh(self) -> None:
        for refresh in self._refreshers:
            try:
                await refresh()
            except Exception:  # a reading's dependency is down: the rest still count
                log.warning("a metrics refresh failed", exc_info=True)

    def families(self) -> list[Metric]:
        out = list(self.requests.families())
        for reading in self._readings.values():
            name = PREFIX + reading.name
            family = Metric(name, reading.help, reading.kind)
            sample = f"{name}_total" if reading.kind == "counter" else name
            value = reading.read()
            if isinstance(value, Mapping):
                for values, number in sorted(value.items()):
                    labels = dict(zip(reading.labels, values, strict=True))
                    family.add_sample(sample, labels, float(number))
            else:
                family.add_sample(sample, {}, float(value))
            out.append(family)
        for name, (help, histogram) in self._histograms.items():
            family = Metric(PREFIX + name, help, "histogram")
            for point in histogram.samples(family.name, {}):
                family.add_sample(*point)
            out.append(family)
        return out


def render(families: Iterable[Metric]) -> bytes:
    """The text exposition of ``families``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(list(families)))
    return generate_latest(registry)


class _Fixed:
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


def parse(text: str) -> list[Metric]:
    return list(text_string_to_metric_families(text))


def with_workers(per_worker: Mapping[int, list[Metric] | None]) -> list[Metric]:
    """Every worker's families merged, each sample labelled with its ``worker``; a
    worker without families (it did not answer) is ``metrics_worker_up 0``."""
    merged: dict[str, Metric] = {}
    up = Metric(f"{PREFIX}metrics_worker_up", "Whether the worker answered this scrape", "gauge")
    for worker, families in sorted(per_worker.items()):
        label = str(worker)
        up.add_sample(up.name, {"worker": label}, 0.0 if families is None else 1.0)
        for family in families or ():
            into = merged.get(family.name)
            if into is None:
                into = merged[family.name] = Metric(family.name, family.documentation, family.type)
            for s in family.samples:
                into.add_sample(s.name, {**s.labels, "worker": label}, s.value)
    return [*merged.values(), up]


def internal_metrics_token(secret: str) -> str:
    """What workers show each other to read ``/internal/metrics``."""
    return hmac.new(secret.encode(), b"liveshelf internal metrics v1", hashlib.sha256).hexdigest()


class MetricsEndpoint:
    """``GET /metrics`` and, between workers, ``GET /internal/metrics``."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        secret: str,
        token: str = "",
        allow: Sequence[str] = (),
        workers: Sequence[str] = (),
        worker: int = 0,
    ) -> None:
        """``workers``: every worker's internal base URL (empty: one process);
        ``worker``: this one's index in it."""
        self._metrics = metrics
        self._token = token
        self._allow: tuple[Network, ...] = tuple(ipaddress.ip_network(n) for n in allow)
        self._workers = tuple(workers)
        self._worker = worker
        self._internal = internal_metrics_token(secret)

    def may_read(self, request: web.Request) -> bool:
        if self._token:
            header = request.headers.get("Authorization", "")
            scheme, _, shown = header.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                shown.strip().encode(), self._token.encode()
            ):
                return True
        if "X-Forwarded-For" in request.headers:
            return False  # a proxy's client: not this machine, whatever the proxy is
        try:
            address = ipaddress.ip_address(request.remote or "")
        except ValueError:
            return False
        return address.is_loopback or any(address in n for n in self._allow)

    @operation(
        "Prometheus metrics",
        tag="health",
        answers=Answer(
            200,
            media_type=CONTENT_TYPE_LATEST,
            description="the text exposition format (every worker's samples, by worker)",
        ),
        errors=(403,),
    )
    async def public(self, request: web.Request) -> web.Response:
        """Prometheus's text exposition format. For clients on loopback, in
        ``LIVESHELF_METRICS_ALLOW``, or with ``Authorization: Bearer
        <LIVESHELF_METRICS_TOKEN>`` (the metrics token, not an account's); everyone
        else: 403 ``metrics_forbidden``."""
        if not self.may_read(request):
            raise Forbidden(
                "metrics_forbidden",
                "metrics are read from this machine, an allowed network "
                "(LIVESHELF_METRICS_ALLOW) or with the metrics token",
            )
        await self._metrics.refresh()
        own = self._metrics.families()
        if len(self._workers) < 2:
            return _exposition(render(own))
        others = await asyncio.gather(
            *(self._ask(url) for i, url in enumerate(self._workers) if i != self._worker)
        )
        indexes = [i for i in range(len(self._workers)) if i != self._worker]
        per_worker: dict[int, list[Metric] | None] = dict(zip(indexes, others, strict=True))
        per_worker[self._worker] = own
        return _exposition(render(with_workers(per_worker)))

    @not_in_api("between the workers of a group only (a token derived from the secret)")
    async def internal(self, request: web.Request) -> web.Response:
        shown = request.headers.get(INTERNAL_HEADER, "")
        if not hmac.compare_digest(shown.encode(), self._internal.encode()):
            raise Forbidden("metrics_forbidden", "for liveshelf's own workers")
        await self._metrics.refresh()
        return _exposition(render(self._metrics.families()))

    async def _ask(self, base: str) -> list[Metric] | None:
        timeout = aiohttp.ClientTimeout(total=SIBLING_TIMEOUT_S)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as http,
                http.get(
                    f"{base}/internal/metrics", headers={INTERNAL_HEADER: self._internal}
                ) as res,
            ):
                if res.status != 200:
                    return None
                return parse(await res.text())
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/metrics", self.public), web.get("/internal/metrics", self.internal)]


def _exposition(body: bytes) -> web.Response:
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    response.headers["Cache-Control"] = "no-store"
    return response


def access_logger(
    stats: RequestStats, then: Callable[[BaseRequest, StreamResponse, float], None] | None
) -> type[AbstractAccessLogger]:
    """The access logger class aiohttp instantiates per connection: it counts the
    request in ``stats``, then hands it to ``then`` (the access log's ``add``)."""

    class _Counting(AbstractAccessLogger):
        __slots__ = ()

        def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
            stats.observe_request(request, response, time)
            if then is not None:
                then(request, response, time)

    return _Counting
