"""liveshelf: configuration, wiring and the command line.

``Settings.from_env()`` reads the configuration once; ``create_app(settings)`` builds
the core (``live.feature.Core``, each part under a typed ``web.AppKey``), then sets up
each feature in its list (media, shelf, chat, orders, stats: each package wires itself,
``live/feature.py``) and hands one feature what another offers; what has a lifetime
starts and stops in ``cleanup_ctx``. ``main()`` is ``python app.py [--demo] | config |
migrate | create-admin NAME | report --host NAME``.

Over 400 lines because the settings live here (~350 of them: every field, its
variable, parser and check) until they become one typed settings model of their own
(issue 20); the wiring itself is ~200 lines.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import getpass
import ipaddress
import logging
import os
import re
import secrets
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from chat.feature import setup_chat
from live.accesslog import AccessLog
from live.accounts import AccountService
from live.auth import PasswordHasher, Principal, TokenSigner
from live.clock import Clock, SystemClock
from live.core_metrics import CountingConnectionPool, register_core_metrics
from live.db import Database
from live.errors import LiveshelfError
from live.feature import Core, Wiring, drain_key
from live.follows import FollowService
from live.guard import Caps, Guard
from live.guests import GuestIds
from live.handlers import FollowHandlers, LiveHandlers, give_guest_cookie
from live.health import Health
from live.holdings import Holdings, MemoryHoldings, RedisHoldings
from live.http import (
    MAX_JSON_BYTES,
    SECURITY_HEADERS,
    auth_middleware,
    body_timeout_key,
    error_middleware,
    security_headers,
)
from live.logs import LOG_FORMATS, LogFormat
from live.logs import configure as configure_logging
from live.logs import install as install_request_ids
from live.metrics import METRICS_PATHS, Metrics, MetricsEndpoint, access_logger
from live.models import Role
from live.outages import OutageLog
from live.outbox import Outbox, OutboxRelay
from live.presence import MemoryPresence, Presence, RedisPresence
from live.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from live.revocations import Revocations
from live.roomchannel import RoomChannel
from live.roomhub import RoomHub
from live.roomlog import RoomLog
from live.roomlog_memory import MemoryRoomLog
from live.roomlog_redis import RedisRoomLog
from live.runtime import RuntimeStats
from live.schemas import password_problem
from live.sessions import SessionService
from live.startup import StartUp, wait_for
from live.tls import TlsError, server_context
from live.workers import Bind, Cap, Timeouts, serve, supervise
from media.cluster import HOME
from media.feature import PEER_CLASSES, setup_media
from media.forward import INTERNAL_HEADER
from media.nodes import NODE_NAME
from media.turn import TurnConfig
from shelf.demo import demo_data
from shelf.feature import setup_orders, setup_shelf, setup_stats
from shelf.flash_scheduler import MAX_RESERVE_LEAD_MS
from shelf.order_schemas import parse_instant
from shelf.reports import HOST_COLUMNS, Period, ReportService, to_csv

log = logging.getLogger("liveshelf")

ROOT = Path(__file__).resolve().parent
#: The cyclic collector's youngest-generation threshold while serving (CPython's
#: default is 700). A request allocates a few hundred container objects, which
#: reference counting frees at once; at 700 the collector still made a pass about every
#: other request: ~5 % of a refused flash-sale attempt's instructions (callgrind,
#: bench/RESULTS.md). But a pass scans every young object still alive, so its pause
#: grows with the threshold: in the soak (bench/soak.py, RESULTS "Soak") 20,000 gave
#: young passes of 13-20 ms and a middle one of 30 ms, 5,000 gave 4-7 ms (6 ms for the
#: middle one) for the same server CPU (0.127 against 0.134 of a core): the fan-out
#: never stalls for more than a few milliseconds.
GC_YOUNG_THRESHOLD = 5_000

#: Matched before the other routes under the same first segment (``create_app``).
HOT_PATHS = frozenset({"/api/sessions/{id}/orders", "/api/sessions/{id}/ws"})


class ConfigError(Exception):
    """The configuration is missing or wrong; the message says what to set."""


# -- settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    secret: str
    database_url: str = "sqlite+aiosqlite:///liveshelf.db"
    database_schema: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "ls"
    redis_max_connections: int = 64
    host: str = "127.0.0.1"
    port: int = 8080
    demo: bool = False
    auto_migrate: bool = False
    token_ttl_s: int = 7 * 86400
    password_time_cost: int = 3
    password_memory_kib: int = 65536
    history_size: int = 2000
    ws_send_limit_bytes: int = 256 * 1024
    ws_heartbeat_s: float = 25.0
    presence_interval_s: float = 1.0
    outbox_poll_s: float = 1.0
    ice_servers: tuple[str, ...] = ()
    ice_addresses: tuple[str, ...] = ("127.0.0.1",)
    recordings_dir: Path = field(default_factory=lambda: Path("recordings"))
    event_loop: str = "auto"
    platform_fee_bps: int = 500
    commission_hold_days: int = 7
    cors_origin: str = "*"
    #: audience sampling period (analytics); 0 = only when sampled explicitly (tests)
    audience_sample_s: float = 1.0
    #: HTTP access log (``python app.py`` only): "-" standard error, a file path, "off"
    access_log: str = "-"
    #: PostgreSQL connections the server keeps open (a fixed pool, opened at start-up)
    db_pool_size: int = 20
    #: worker processes sharing the port (``--workers``; more than 1 needs PostgreSQL
    #: and Redis); worker 0 is the media home, every session's origin (``media.cluster``)
    workers: int = 1
    #: worker i's loopback port for the other workers is this + i (0: any free ports)
    media_port: int = 0
    #: set by ``--workers``: every worker's loopback URL (by index), and this one's
    #: index; empty: one process holding all media
    media_workers: tuple[str, ...] = ()
    media_worker: int = 0
    #: an edge worker ends its pull of a session this long after its last viewer left
    media_pull_linger_s: float = 5.0
    #: with several workers, a worker stopped by SIGTERM (a rolling restart) keeps
    #: serving its WHEP viewers until they have left, at most this long, then closes
    #: the rest (their pages post again and are placed on another worker)
    media_drain_s: float = 30.0
    #: WHEP viewers one process serves at most (pulls aside; then ``503 media_full``,
    #: or another worker); ~0.3 % of a core each (bench/RESULTS.md, "Media relay"), so
    #: 250 leave room for the rest of the process's work
    media_max_viewers_per_worker: int = 250
    #: with several workers: a worker whose CPU share (of one core, last second)
    #: reached this takes no new viewer (they go to another worker, or 503)
    media_cpu_limit: float = 0.85
    #: this node's name among several sharing PostgreSQL and Redis (``media.nodes``);
    #: empty: one node
    node: str = ""
    #: the address this node's workers listen on for each other and the other nodes
    node_internal_host: str = "127.0.0.1"
    #: where viewers reach this node (default ``http://{host}:{port}``)
    node_public_url: str = ""
    #: rate limits and caps against abuse (``live.guard``); off for benchmarks and tests
    #: that open many clients from one address
    limits: bool = True
    #: proxies (CIDRs) whose ``X-Forwarded-For`` names the client
    trusted_proxies: tuple[str, ...] = ()
    #: what one client may hold at once in one show, over all workers (0: no cap)
    max_peers_per_address: int = 60
    max_peers_per_user: int = 5
    max_sockets_per_address: int = 300
    max_sockets_per_user: int = 10
    #: password hashes at once (each holds ``password_memory_kib``), and waiting
    password_threads: int = 2
    password_queue: int = 32
    #: a flash sale moves its units out of stock this long before it starts (0..600)
    flash_reserve_lead_s: int = 60
    #: orders left ``placed`` (a database restart, a lost payment call) are settled by
    #: a background pass every ``order_recovery_every_s`` once they are this old
    order_recovery_every_s: float = 5.0
    order_recovery_after_s: float = 10.0
    #: a connection that has not sent a request's headers this long after it opened
    #: is closed, and one idle between requests this long (``live.reaper``)
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 60.0
    #: a request body that has not arrived this long after the handler asked for it
    #: is answered 408 ``body_timeout`` and its connection closed (``live.http``)
    body_timeout_s: float = 10.0
    #: the cyclic collector's youngest-generation threshold while serving (``_tune_gc``)
    gc_young_threshold: int = GC_YOUNG_THRESHOLD
    #: open connections one client address may hold per process, when ``limits`` is on
    #: (trusted proxies excepted; ``live.conncap``; 0: no cap)
    max_connections_per_address: int = 1000
    #: "text", or "json": one JSON object per log line, with request ids (``live.logs``)
    log_format: LogFormat = "text"
    #: HTTPS on the public port (``live.tls``): a PEM certificate chain and its key
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: TURN for browsers (``media.turn``): URLs, the secret shared with the TURN server,
    #: how long a credential lasts; STUN URLs handed to browsers
    turn_urls: tuple[str, ...] = ()
    turn_secret: str = ""
    turn_ttl_s: int = 3600
    browser_stun: tuple[str, ...] = ()
    #: ``/metrics`` beyond loopback (``live.metrics``): a bearer token, allowed networks
    metrics_token: str = ""
    metrics_allow: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("LIVESHELF_TLS_CERT and LIVESHELF_TLS_KEY go together: set both")
        try:
            self.turn_config()
        except ValueError as exc:
            raise ConfigError(f"TURN settings (LIVESHELF_TURN_*): {exc}") from None

    def turn_config(self) -> TurnConfig:
        return TurnConfig(self.turn_urls, self.turn_secret, self.turn_ttl_s, self.browser_stun)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, demo: bool = False) -> Settings:
        """Read ``LIVESHELF_*`` and ``REDIS_URL``; ``ConfigError`` on a missing/bad value."""
        env = os.environ if env is None else env
        secret = env.get("LIVESHELF_SECRET", "")
        if not secret:
            if not demo:
                raise ConfigError(
                    "LIVESHELF_SECRET is not set: set it to a long random string "
                    "(e.g. `export LIVESHELF_SECRET=$(python -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))')`), or run `python app.py --demo`"
                )
            secret = secrets.token_urlsafe(32)
        if len(secret) < 32:
            raise ConfigError("LIVESHELF_SECRET must be at least 32 characters")
        default_db = "sqlite+aiosqlite:///liveshelf-demo.db" if demo else cls.database_url
        return cls(
            secret=secret,
            database_url=env.get("LIVESHELF_DATABASE_URL", default_db),
            database_schema=env.get("LIVESHELF_DATABASE_SCHEMA") or None,
            redis_url=env.get("REDIS_URL") or None,
            redis_prefix=env.get("LIVESHELF_REDIS_PREFIX", "ls"),
            host=env.get("LIVESHELF_HOST", "127.0.0.1"),
            port=_int(env, "LIVESHELF_PORT", 8080),
            demo=demo,
            auto_migrate=demo or env.get("LIVESHELF_AUTO_MIGRATE", "") == "1",
            token_ttl_s=_int(env, "LIVESHELF_TOKEN_TTL_S", 7 * 86400),
            password_time_cost=_int(env, "LIVESHELF_PASSWORD_TIME_COST", 3),
            password_memory_kib=_int(env, "LIVESHELF_PASSWORD_MEMORY_KIB", 65536),
            history_size=_int(env, "LIVESHELF_HISTORY_SIZE", 2000),
            ws_send_limit_bytes=_int(env, "LIVESHELF_WS_SEND_LIMIT_BYTES", 256 * 1024),
            ws_heartbeat_s=float(_int(env, "LIVESHELF_WS_HEARTBEAT_S", 25)),
            ice_servers=_list(env, "LIVESHELF_ICE_SERVERS", ()),
            ice_addresses=_list(env, "LIVESHELF_ICE_ADDRESSES", ("127.0.0.1",)),
            recordings_dir=Path(env.get("LIVESHELF_RECORDINGS_DIR", "recordings")),
            event_loop=_choice(env, "LIVESHELF_EVENT_LOOP", ("auto", "uvloop", "asyncio")),
            platform_fee_bps=_int(env, "LIVESHELF_PLATFORM_FEE_BPS", 500),
            commission_hold_days=_int(env, "LIVESHELF_COMMISSION_HOLD_DAYS", 7),
            cors_origin=env.get("LIVESHELF_CORS_ORIGIN") or "*",
            access_log=env.get("LIVESHELF_ACCESS_LOG") or "-",
            db_pool_size=_positive(env, "LIVESHELF_DB_POOL_SIZE", 20),
            workers=_positive(env, "LIVESHELF_WORKERS", 1),
            media_port=_int(env, "LIVESHELF_MEDIA_PORT", 0),
            media_max_viewers_per_worker=_positive(
                env, "LIVESHELF_MEDIA_MAX_VIEWERS_PER_WORKER", 250
            ),
            media_cpu_limit=_share(env, "LIVESHELF_MEDIA_CPU_LIMIT", 0.85),
            media_drain_s=float(_at_least_0(env, "LIVESHELF_MEDIA_DRAIN_S", 30)),
            node=_node_name(env),
            node_internal_host=_address(env, "LIVESHELF_NODE_INTERNAL_HOST", "127.0.0.1"),
            node_public_url=_url(env, "LIVESHELF_NODE_PUBLIC_URL"),
            limits=_choice(env, "LIVESHELF_LIMITS", ("on", "off")) == "on",
            trusted_proxies=_networks(env, "LIVESHELF_TRUSTED_PROXIES"),
            max_peers_per_address=_at_least_0(env, "LIVESHELF_MAX_PEERS_PER_ADDRESS", 60),
            max_peers_per_user=_at_least_0(env, "LIVESHELF_MAX_PEERS_PER_USER", 5),
            max_sockets_per_address=_at_least_0(env, "LIVESHELF_MAX_SOCKETS_PER_ADDRESS", 300),
            max_sockets_per_user=_at_least_0(env, "LIVESHELF_MAX_SOCKETS_PER_USER", 10),
            password_threads=_positive(env, "LIVESHELF_PASSWORD_THREADS", 2),
            password_queue=_at_least_0(env, "LIVESHELF_PASSWORD_QUEUE", 32),
            flash_reserve_lead_s=_flash_lead(env),
            header_timeout_s=float(_positive(env, "LIVESHELF_HEADER_TIMEOUT_S", 10)),
            idle_timeout_s=float(_positive(env, "LIVESHELF_IDLE_TIMEOUT_S", 60)),
            body_timeout_s=float(_positive(env, "LIVESHELF_BODY_TIMEOUT_S", 10)),
            gc_young_threshold=_positive(env, "LIVESHELF_GC_YOUNG_THRESHOLD", GC_YOUNG_THRESHOLD),
            max_connections_per_address=_at_least_0(
                env, "LIVESHELF_MAX_CONNECTIONS_PER_ADDRESS", 1000
            ),
            log_format=_log_format(env),
            tls_cert=_path(env, "LIVESHELF_TLS_CERT"),
            tls_key=_path(env, "LIVESHELF_TLS_KEY"),
            turn_urls=_list(env, "LIVESHELF_TURN_URLS", ()),
            turn_secret=env.get("LIVESHELF_TURN_SECRET", ""),
            turn_ttl_s=_positive(env, "LIVESHELF_TURN_TTL_S", 3600),
            browser_stun=_list(env, "LIVESHELF_BROWSER_STUN", ()),
            metrics_token=env.get("LIVESHELF_METRICS_TOKEN", ""),
            metrics_allow=_networks(env, "LIVESHELF_METRICS_ALLOW"),
        )

    def describe(self) -> str:
        """Every setting and its effective value, one per line; secrets (the secret,
        TURN secret, metrics token, passwords in URLs) masked."""
        lines = []
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name in SECRET_SETTINGS:
                shown = "***" if value else "(none)"
            elif isinstance(value, str) and "://" in value:
                shown = _without_password(value)
            elif isinstance(value, tuple):
                shown = ",".join(map(str, value)) or "(none)"
            else:
                shown = "(none)" if value is None else str(value)
            lines.append(f"{item.name} = {shown}")
        return "\n".join(lines)

    @property
    def public_url(self) -> str:
        """Where viewers reach this node."""
        return self.node_public_url or f"http://{self.host}:{self.port}"

    @property
    def several_workers(self) -> bool:
        """Whether this runs as a group of workers (``--workers`` > 1, or a node of
        several: its worker 0 is the node's relay even alone)."""
        return self.workers > 1 or bool(self.node)

    def check_workers(self) -> None:
        """``ConfigError`` unless this configuration can run ``workers`` processes (or
        be one node of several)."""
        if not self.several_workers:
            return
        what = f"node {self.node!r}" if self.node else f"{self.workers} workers"
        if self.redis_url is None:
            raise ConfigError(f"{what} need REDIS_URL: rooms are shared through Redis")
        if self.database_url.startswith("sqlite"):
            raise ConfigError(f"{what} need PostgreSQL (LIVESHELF_DATABASE_URL), not SQLite")


#: settings never printed (``Settings.describe``)
SECRET_SETTINGS = frozenset({"secret", "turn_secret", "metrics_token"})


def _without_password(url: str) -> str:
    """``url`` with the password of its user part as ``***``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


def _log_format(env: Mapping[str, str]) -> LogFormat:
    return "json" if _choice(env, "LIVESHELF_LOG_FORMAT", LOG_FORMATS) == "json" else "text"


def _path(env: Mapping[str, str], key: str) -> Path | None:
    value = env.get(key, "")
    return Path(value) if value else None


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    value = env.get(key)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {value!r}") from None


def _flash_lead(env: Mapping[str, str]) -> int:
    key = "LIVESHELF_FLASH_RESERVE_LEAD_S"
    value = _at_least_0(env, key, 60)
    if value > MAX_RESERVE_LEAD_MS // 1000:
        raise ConfigError(f"{key} must be at most {MAX_RESERVE_LEAD_MS // 1000}, got {value}")
    return value


def _at_least_0(env: Mapping[str, str], key: str, default: int) -> int:
    value = _int(env, key, default)
    if value < 0:
        raise ConfigError(f"{key} must be 0 or more, got {value}")
    return value


def _networks(env: Mapping[str, str], key: str) -> tuple[str, ...]:
    networks = _list(env, key, ())
    for network in networks:
        try:
            ipaddress.ip_network(network)
        except ValueError:
            raise ConfigError(f"{key}: {network!r} is not an address or network") from None
    return networks


def _node_name(env: Mapping[str, str]) -> str:
    value = env.get("LIVESHELF_NODE", "")
    if value and not NODE_NAME.fullmatch(value):
        raise ConfigError(
            f"LIVESHELF_NODE must be 1-32 of a-z, 0-9 and '-' (not first), got {value!r}"
        )
    return value


def _address(env: Mapping[str, str], key: str, default: str) -> str:
    value = env.get(key) or default
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(f"{key} must be an IP address, got {value!r}") from None
    return value


def _url(env: Mapping[str, str], key: str) -> str:
    """An http(s) base URL without a trailing slash, or empty."""
    value = (env.get(key) or "").rstrip("/")
    if value and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", value):
        raise ConfigError(f"{key} must be an http:// or https:// URL, got {value!r}")
    return value


def _positive(env: Mapping[str, str], key: str, default: int) -> int:
    value = _int(env, key, default)
    if value < 1:
        raise ConfigError(f"{key} must be at least 1, got {value}")
    return value


def _share(env: Mapping[str, str], key: str, default: float) -> float:
    """A share of one core: a number above 0, at most the machine's core count."""
    value = env.get(key)
    if value is None or value == "":
        return default
    try:
        share = float(value)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if not 0 < share <= (os.cpu_count() or 1):
        raise ConfigError(f"{key} must be above 0 and at most the number of cores, got {value}")
    return share


def _choice(env: Mapping[str, str], key: str, choices: tuple[str, ...]) -> str:
    value = env.get(key) or choices[0]
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _list(env: Mapping[str, str], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = env.get(key)
    if value is None:
        return default
    return tuple(item.strip() for item in value.split(",") if item.strip())


# -- app keys ---------------------------------------------------------------------

settings_key = web.AppKey("settings", Settings)
clock_key = web.AppKey("clock", Clock)
db_key = web.AppKey("db", Database)
redis_key: web.AppKey[Redis | None] = web.AppKey("redis")
room_log_key = web.AppKey("room_log", RoomLog)
presence_key = web.AppKey("presence", Presence)
hub_key = web.AppKey("hub", RoomHub)
channel_key = web.AppKey("channel", RoomChannel)
outbox_key = web.AppKey("outbox", Outbox)
outbox_relay_key = web.AppKey("outbox_relay", OutboxRelay)
tokens_key = web.AppKey("tokens", TokenSigner)
accounts_key = web.AppKey("accounts", AccountService)
sessions_key = web.AppKey("sessions", SessionService)
guard_key = web.AppKey("guard", Guard)
startup_key = web.AppKey("startup", StartUp)
metrics_key = web.AppKey("metrics", Metrics)


# -- wiring -----------------------------------------------------------------------


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """Build the whole application. Nothing touches the network until startup.

    Lifetimes are cleanup contexts, in order: storage (migrations), the room bus, then
    each feature; so features start after and stop before what they stand on.
    """
    core = build_core(settings, clock or SystemClock())
    app = web.Application(client_max_size=MAX_JSON_BYTES)
    app[body_timeout_key] = settings.body_timeout_s
    app.middlewares.extend(
        [error_middleware(OutageLog()), auth_middleware(core.tokens, own_auth=METRICS_PATHS)]
    )
    _register_core(app, settings, core)
    app.cleanup_ctx.append(_storage)
    app.cleanup_ctx.append(_room_bus)

    async def revocations_and_holdings(_app: web.Application) -> AsyncIterator[None]:
        # after the migrations; both stop before Redis closes
        await core.startup.run("loading token revocations", core.revocations.start)
        await core.holdings.start()
        yield
        await core.holdings.stop()
        await core.revocations.stop()

    app.cleanup_ctx.append(revocations_and_holdings)

    routes: list[web.RouteDef] = Health(
        core.db,
        core.redis,
        lambda: core.relay.behind,
        starting=lambda: core.startup.pending,
        media_home=lambda: media.home_reachable,  # the media is set up below
    ).routes()
    if settings.log_format == "json":
        install_request_ids(app)
    register_core_metrics(core.metrics, core, database_wide=settings.media_worker == 0)
    routes += MetricsEndpoint(
        core.metrics,
        secret=settings.secret,
        token=settings.metrics_token,
        allow=settings.metrics_allow,
        workers=settings.media_workers,
        worker=settings.media_worker,
    ).routes()
    # The features (``live.feature``), in start-up order; they stop in reverse.
    wiring = Wiring(app, core, routes)
    media = setup_media(wiring, settings)
    shelf = setup_shelf(wiring, settings, media_time=media.control.media_time)
    chat = setup_chat(wiring)
    setup_orders(wiring, settings, shelf, gates=[chat.check_not_banned])
    setup_stats(wiring)
    routes += FollowHandlers(core.follows).routes()
    runtime = RuntimeStats(held_peers=media.service.peer_count, census=PEER_CLASSES)
    routes += runtime.routes()
    app.cleanup_ctx.append(runtime.lifetime)
    # Last, after every feature's listener: the shelf closes the open pin window while
    # the recording still tells its media time.
    core.sessions.add_listener(media.on_session_status)

    routes += LiveHandlers(
        core.accounts,
        core.sessions,
        core.channel,
        core.hub,
        details=core.session_details,
        send_limit_bytes=settings.ws_send_limit_bytes,
        guard=core.guard,
        revocations=core.revocations,
        tokens=core.tokens,
        guests=core.guests,
        caps=core.caps,
    ).routes()
    # aiohttp tries the routes that share a first segment ("/api/sessions") one regex
    # at a time, in the order they were added: the ones a crowd hits go first (the
    # order route was 22nd of 30, ~8 % of a flash sale's CPU).
    hot_first: list[web.RouteDef] = sorted(routes, key=lambda route: route.path not in HOT_PATHS)
    app.add_routes(hot_first)
    # Pages and static files carry the security headers (``live.http``); the API's JSON
    # answers carry ``nosniff`` only (a response hook on every answer cost the order
    # path ~3 us of ~120: bench/RESULTS.md, "Flash sale", session 9).
    static = web.Application()
    static.router.add_static("/", ROOT / "static")
    static.on_response_prepare.append(security_headers)
    app.add_subapp("/static", static)
    for path, page in PAGES.items():
        app.router.add_get(path, _page(page, core.guests, core.guard))
    if settings.demo:
        app.cleanup_ctx.append(demo_data(core, shelf, settings.host, settings.port))
    app.on_startup.append(_tune_gc)
    return app


def build_core(settings: Settings, clock: Clock) -> Core:
    tokens = TokenSigner(settings.secret, clock, ttl_s=settings.token_ttl_s)
    db = Database(
        settings.database_url, schema=settings.database_schema, pool_size=settings.db_pool_size
    )
    redis = None
    if settings.redis_url:
        # Blocking pool: a crowd joining at once waits for a connection instead of
        # failing with "too many connections".
        pool = CountingConnectionPool.from_url(
            settings.redis_url, max_connections=settings.redis_max_connections, timeout=20
        )
        redis = Redis.from_pool(pool)
    room_log: RoomLog
    presence: Presence
    if redis is not None:
        room_log = RedisRoomLog(
            redis, prefix=settings.redis_prefix, history_size=settings.history_size
        )
        presence = RedisPresence(
            redis,
            clock,
            prefix=settings.redis_prefix,
            interval_ms=int(settings.presence_interval_s * 1000),
        )
    else:
        room_log = MemoryRoomLog(clock, history_size=settings.history_size)
        presence = MemoryPresence()
    holdings: Holdings = (
        MemoryHoldings()
        if redis is None
        else RedisHoldings(redis, f"{settings.redis_prefix}:hold", clock)
    )
    hub = RoomHub(
        room_log,
        presence,
        send_limit_bytes=settings.ws_send_limit_bytes,
        presence_interval_s=settings.presence_interval_s,
        heartbeat_s=settings.ws_heartbeat_s,
        holdings=holdings,
    )
    channel = RoomChannel(
        hub, room_log, presence, clock, max_replay_bytes=settings.ws_send_limit_bytes // 2
    )
    outbox = Outbox(clock)
    relay = OutboxRelay(db, room_log, poll_interval_s=settings.outbox_poll_s)
    hasher = PasswordHasher(
        time_cost=settings.password_time_cost,
        memory_cost_kib=settings.password_memory_kib,
        threads=settings.password_threads,
        queue=settings.password_queue,
    )
    limiter: RateLimiter = (
        MemoryRateLimiter(clock)
        if redis is None
        else RedisRateLimiter(redis, settings.redis_prefix, clock)
    )
    guard = Guard(
        limiter,
        enabled=settings.limits,
        trusted_proxies=[ipaddress.ip_network(n) for n in settings.trusted_proxies],
    )
    caps = (
        Caps(
            peers_per_address=settings.max_peers_per_address,
            peers_per_user=settings.max_peers_per_user,
            sockets_per_address=settings.max_sockets_per_address,
            sockets_per_user=settings.max_sockets_per_user,
        )
        if settings.limits
        else Caps(0, 0, 0, 0)
    )
    sessions = SessionService(db, clock, outbox, relay, room_log)
    core = Core(
        clock=clock,
        db=db,
        redis=redis,
        room_log=room_log,
        presence=presence,
        hub=hub,
        channel=channel,
        outbox=outbox,
        relay=relay,
        tokens=tokens,
        accounts=AccountService(db, hasher, tokens, clock),
        sessions=sessions,
        follows=FollowService(db, clock),
        guard=guard,
        caps=caps,
        holdings=holdings,
        guests=GuestIds(settings.secret),
        revocations=Revocations(db, tokens, clock, redis, settings.redis_prefix),
        startup=StartUp(),
        metrics=Metrics(skip_header=INTERNAL_HEADER),
    )
    channel.add_snapshot(_session_snapshot(sessions))
    return core


def _register_core(app: web.Application, settings: Settings, core: Core) -> None:
    app[settings_key] = settings
    app[clock_key] = core.clock
    app[db_key] = core.db
    app[redis_key] = core.redis
    app[room_log_key] = core.room_log
    app[presence_key] = core.presence
    app[hub_key] = core.hub
    app[channel_key] = core.channel
    app[outbox_key] = core.outbox
    app[outbox_relay_key] = core.relay
    app[tokens_key] = core.tokens
    app[accounts_key] = core.accounts
    app[sessions_key] = core.sessions
    app[guard_key] = core.guard
    app[startup_key] = core.startup
    app[metrics_key] = core.metrics


def _session_snapshot(sessions: SessionService) -> Any:
    async def snapshot(room: int) -> dict[str, Any]:
        return {"session": await sessions.get(room)}

    return snapshot


#: The web apps: each path serves one static page; the page's ES modules do the rest.
PAGES = {
    "/": "index.html",
    "/watch/{id:\\d+}": "watch.html",
    "/replay/{id:\\d+}": "replay.html",
    "/studio": "studio.html",
    "/brand": "brand.html",
    "/studio/{id:\\d+}/stats": "stats.html",
}


def _page(name: str, guests: GuestIds, guard: Guard) -> Any:
    """A page's handler; it also hands the browser its guest cookie (``live.guests``)."""
    path = ROOT / "static" / name

    async def page(request: web.Request) -> web.FileResponse:
        response = web.FileResponse(path, headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})
        await give_guest_cookie(request, response, guests, guard)
        return response

    return page


async def _storage(app: web.Application) -> AsyncIterator[None]:
    db, startup = app[db_key], app[startup_key]
    if app[settings_key].auto_migrate:
        await wait_for("applying the database migrations", db.migrate)
    await startup.run("opening the database pools", db.warm_up)
    yield
    await startup.stop()  # first: the steps still waiting need what stops next
    await db.dispose()


async def _room_bus(app: web.Application) -> AsyncIterator[None]:
    hub, relay, room_log = app[hub_key], app[outbox_relay_key], app[room_log_key]
    await hub.start()
    await relay.start()
    yield
    await relay.stop()
    await hub.stop()
    await room_log.close()
    redis = app[redis_key]
    if redis is not None:
        await redis.aclose()


async def _tune_gc(app: web.Application) -> None:
    # Long-lived objects created at start-up never become garbage; keep the cyclic
    # collector from rescanning them on every pass (see STYLE.md's measured facts).
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(app[settings_key].gc_young_threshold, older, oldest)


# -- command line -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description="liveshelf server")
    parser.add_argument("--demo", action="store_true", help="SQLite + in-memory bus + demo data")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8080)")
    parser.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port, e.g. one per core (default 1; more need "
        "PostgreSQL and Redis)",
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the server (the default)")
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("config", help="print the effective configuration (secrets masked)")
    admin = sub.add_parser("create-admin", help="create an admin account")
    admin.add_argument("username")
    report = sub.add_parser("report", help="print a host's commission report")
    report.add_argument("--host", required=True, help="the host's username")
    report.add_argument("--from", dest="start", help="date or ISO datetime (default: ever)")
    report.add_argument("--to", dest="end", help="date or ISO datetime (default: now)")
    report.add_argument("--csv", action="store_true", help="CSV instead of a table")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(demo=args.demo)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)
    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    if args.workers is not None:
        overrides["workers"] = args.workers
    settings = replace(settings, **overrides)

    if args.command == "config":
        print(settings.describe())
        return 0
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        print("database is at the newest revision")
        return 0
    if args.command == "report":
        try:
            print(asyncio.run(_report(settings, args.host, args.start, args.end, args.csv)))
        except LiveshelfError as exc:
            print(f"{exc.code}: {exc.message}", file=sys.stderr)
            return 2
        return 0
    if args.command == "create-admin":
        password = os.environ.get("LIVESHELF_ADMIN_PASSWORD") or getpass.getpass("password: ")
        asyncio.run(_create_admin(settings, args.username, password))
        print(f"admin {args.username!r} created")
        return 0
    try:
        settings.check_workers()
        if settings.tls_cert is not None and settings.tls_key is not None:
            server_context(settings.tls_cert, settings.tls_key)  # readable before serving
    except (ConfigError, TlsError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if settings.several_workers:
        return _serve_workers(settings)
    _serve(settings, [Bind(settings.host, settings.port)])
    return 0


def _serve(settings: Settings, binds: list[Bind]) -> None:
    loop = new_event_loop(settings.event_loop)
    asyncio.set_event_loop(loop)
    app = create_app(settings)
    tls = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        try:
            tls = server_context(settings.tls_cert, settings.tls_key)
        except TlsError as exc:
            raise SystemExit(f"configuration error: {exc}") from None
    access = AccessLog.open(settings.access_log, settings.log_format)
    if access is not None:
        app.cleanup_ctx.append(access.lifetime)
    # aiohttp calls the access logger for every request anyway: it also counts them
    counting = access_logger(app[metrics_key].requests, access.add if access else None)
    try:
        timeouts = Timeouts(settings.header_timeout_s, settings.idle_timeout_s)
        cap = Cap(
            settings.max_connections_per_address if settings.limits else 0,
            tuple(ipaddress.ip_network(n) for n in settings.trusted_proxies),
        )
        drain = app.get(drain_key)
        serve(
            app,
            binds,
            loop,
            timeouts=timeouts,
            cap=cap,
            drain=drain,
            ssl_context=tls,
            access_log_class=counting,
        )
    finally:
        loop.close()


def _serve_workers(settings: Settings) -> int:
    """``settings.workers`` processes on one port (``live.workers``); each also listens
    on a loopback port of its own for the others (``media.cluster``); worker 0 is the
    media home."""
    if settings.auto_migrate:  # once, before any worker starts
        asyncio.run(_migrate(settings, wait=True))
        settings = replace(settings, auto_migrate=False)
    base = settings.media_port
    internal = settings.node_internal_host
    ports = [base + i if base else _free_port(internal) for i in range(settings.workers)]
    urls = tuple(f"http://{_host_in_url(internal)}:{port}" for port in ports)
    log.info(
        "%d workers on %s:%d%s; media workers on %s ports %s (home %d)",
        settings.workers,
        settings.host,
        settings.port,
        f" (node {settings.node}, {settings.public_url})" if settings.node else "",
        internal,
        ports,
        ports[HOME],
    )
    return supervise(
        functools.partial(_run_worker, replace(settings, media_workers=urls)), settings.workers
    )


def _run_worker(settings: Settings, index: int) -> None:
    """One worker process (spawned by ``supervise``)."""
    configure_logging(settings.log_format, worker=index)
    internal = settings.media_workers[index]
    binds = [
        Bind(settings.host, settings.port, reuse_port=True),
        Bind(settings.node_internal_host, int(internal.rsplit(":", 1)[1]), internal=True),
    ]
    _serve(replace(settings, media_worker=index), binds)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _host_in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """uvloop when installed (its C transports halve the cost of each socket write in
    fan-out; see bench/RESULTS.md), else asyncio's own."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise ConfigError("LIVESHELF_EVENT_LOOP=uvloop: uvloop is not installed") from None
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def _migrate(settings: Settings, *, wait: bool = False) -> None:
    """Apply the migrations; ``wait``: while the database is down, wait for it."""
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        if wait:
            await wait_for("applying the database migrations", db.migrate)
        else:
            await db.migrate()
    finally:
        await db.dispose()


async def _report(
    settings: Settings, host: str, start: str | None, end: str | None, as_csv: bool
) -> str:
    """The host's commission report, as CSV or an aligned table with totals."""
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        clock = SystemClock()
        accounts = AccountService(db, PasswordHasher(), TokenSigner(settings.secret, clock), clock)
        user = await accounts.by_username(host)
        period = Period(
            parse_instant("from", start, 0), parse_instant("to", end, clock.now_ms() + 1)
        )
        operator = Principal(0, "cli", Role.ADMIN, "command line")
        result = await ReportService(db, clock).host_commission(operator, user.id, period)
    finally:
        await db.dispose()
    if as_csv:
        return to_csv(HOST_COLUMNS, result["rows"])
    rows = [*result["rows"], *({"session_title": "TOTAL", **t} for t in result["totals"])]
    table = [HOST_COLUMNS] + [[str(r.get(c, "")) for c in HOST_COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HOST_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in table
    ]
    title = f"commission of {host} ({result['period']['from']} .. {result['period']['to']})"
    return "\n".join([title, *lines])


async def _create_admin(settings: Settings, username: str, password: str) -> None:
    problem = password_problem(username, password)
    if problem is not None:
        raise SystemExit(problem)
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        clock = SystemClock()
        hasher = PasswordHasher(time_cost=settings.password_time_cost)
        accounts = AccountService(db, hasher, TokenSigner(settings.secret, clock), clock)
        await accounts.create(username, password, Role.ADMIN, username)
    finally:
        await db.dispose()


if __name__ == "__main__":
    sys.exit(main())
