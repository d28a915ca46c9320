"""liveshelf: wiring, serving and the command line.

``Settings.from_env()`` (``live.settings``) reads the configuration once;
``create_app(settings)`` builds the core (``live.feature.Core``, each part under a typed
``web.AppKey``), then sets up each feature in its list (media, shelf, chat, orders,
stats, market: each package wires itself, ``live/feature.py``) and hands one feature what
another offers; what has a lifetime starts and stops in ``cleanup_ctx``. ``main()`` is
``python app.py [--demo] | config | migrate | create-admin NAME | report --host NAME``;
it serves one process or a group of workers through ``live.workers``.

Longer than ~400 lines because it is the one module allowed to import every feature
(``tests/unit/test_layers.py``), and both of its halves need that: the wiring sets up
each feature and hands one what another offers, and the commands build that app or
read a feature's service (``report``: ``shelf.reports``). Moving the commands out
would make a second module that connects features.
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
import sys
from collections.abc import AsyncIterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from chat.feature import setup_chat
from live.accesslog import AccessLog
from live.accounts import AccountService
from live.auth import PasswordHasher, Principal, TokenSigner
from live.cli import create_admin, migrate
from live.clock import Clock, SystemClock
from live.core_metrics import CountingConnectionPool, register_core_metrics
from live.db import Database
from live.errors import LiveshelfError
from live.feature import Core, Wiring, drain_key
from live.follow_handlers import FollowHandlers
from live.follows import FollowService
from live.guard import Caps, Guard
from live.guests import GuestIds
from live.handlers import LiveHandlers
from live.health import HEALTH_PATHS, Health
from live.holdings import Holdings, MemoryHoldings, RedisHoldings
from live.http import (
    MAX_JSON_BYTES,
    auth_middleware,
    body_timeout_key,
    error_middleware,
)
from live.logs import configure as configure_logging
from live.logs import install as install_request_ids
from live.malloc import limit_arenas
from live.metrics import METRICS_PATHS, Metrics, MetricsEndpoint, access_logger
from live.models import Role
from live.openapi_document import ApiDocs
from live.outages import OutageLog
from live.outbox import Outbox, OutboxRelay
from live.pages import add_pages
from live.presence import MemoryPresence, Presence, RedisPresence
from live.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from live.revocations import Revocations
from live.roomchannel import RoomChannel
from live.roomhub import RoomHub
from live.roomlog import RoomLog
from live.roomlog_memory import MemoryRoomLog
from live.roomlog_redis import RedisRoomLog
from live.runtime import RuntimeStats
from live.schemas import common_passwords
from live.sessions import SessionService
from live.settings import Settings
from live.settings_env import ConfigError
from live.startup import StartUp, wait_for
from live.tls import TlsError, server_context
from live.workers import Bind, Cap, Timeouts, internal_urls, new_event_loop, serve, supervise
from market.demo import demo_market
from market.feature import setup_market
from media.demo_publisher import DemoPublisher
from media.feature import PEER_CLASSES, setup_media
from media.forward import INTERNAL_HEADER
from media.worker_links import HOME
from shelf.demo import DEMO_HOST, demo_data, demo_show
from shelf.feature import setup_orders, setup_shelf, setup_stats
from shelf.order_schemas import parse_instant
from shelf.pin_minutes import PinWindows
from shelf.reports import HOST_COLUMNS, Period, ReportService, to_csv
from shelf.sales_figures import PaidSales

log = logging.getLogger("liveshelf")

ROOT = Path(__file__).resolve().parent
#: Matched before the other routes under the same first segment (``create_app``).
HOT_PATHS = frozenset({"/api/sessions/{id}/orders", "/api/sessions/{id}/ws"})


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
        [
            error_middleware(OutageLog()),
            auth_middleware(core.tokens, own_auth=METRICS_PATHS | HEALTH_PATHS),
        ]
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
    chat = setup_chat(wiring, settings.chat)
    setup_orders(wiring, settings, shelf, gates=[chat.check_not_banned])
    setup_stats(wiring)
    pin_windows = PinWindows(core.db, core.clock)
    cards = setup_market(
        wiring,
        settings,
        agencies=shelf.cooperations,
        sales=PaidSales(core.db),
        pins=pin_windows,
        products=pin_windows,
    )
    routes += FollowHandlers(core.follows).routes()
    runtime = RuntimeStats(held_peers=media.service.peer_count, census=PEER_CLASSES)
    routes += runtime.routes()
    routes += ApiDocs(
        title="liveshelf",
        version=version("liveshelf"),
        page=ROOT / "static" / "api-docs.html",
        script=ROOT / "static" / "js" / "api-docs.js",
    ).routes()
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
    add_pages(app, core, ROOT / "static")
    if settings.demo:
        app.cleanup_ctx.append(demo_data(core, shelf, settings.host, settings.port))
        app.cleanup_ctx.append(demo_market(core, cards, DEMO_HOST))
        if settings.demo_publisher:  # after the seeding: it publishes to the demo's show
            publisher = DemoPublisher(settings, functools.partial(demo_show, core))
            app.cleanup_ctx.append(publisher.lifetime)
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
    # What would otherwise be built at first use and kept is built now, so the freeze
    # covers it: zxcvbn's word lists (~110,000 strings in lists of up to 30,000, read
    # at the first sign-up) cost every collector pass that met them ~3 ms.
    common_passwords()
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(app[settings_key].gc_young_threshold, older, oldest)


# -- command line -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description="liveshelf server")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="SQLite + in-memory bus + demo data, and a test picture published to the demo show",
    )
    parser.add_argument(
        "--no-publisher",
        action="store_true",
        help="with --demo: publish nothing (LIVESHELF_DEMO_PUBLISHER=off)",
    )
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
    if args.no_publisher:
        overrides["demo_publisher"] = False
    settings = settings.model_copy(update=overrides)

    if args.command == "config":
        print(settings.describe())
        return 0
    if args.command == "migrate":
        asyncio.run(migrate(settings))
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
        asyncio.run(create_admin(settings, args.username, password))
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
    limit_arenas()  # before any thread starts (live.malloc)
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
        asyncio.run(migrate(settings, wait=True))
        settings = settings.model_copy(update={"auto_migrate": False})
    urls = internal_urls(settings.node_internal_host, settings.media_port, settings.workers)
    log.info(
        "%d workers on %s:%d%s; media workers at %s (home %s)",
        settings.workers,
        settings.host,
        settings.port,
        f" (node {settings.node}, {settings.public_url})" if settings.node else "",
        ", ".join(urls),
        urls[HOME],
    )
    return supervise(
        functools.partial(_run_worker, settings.model_copy(update={"media_workers": urls})),
        settings.workers,
    )


def _run_worker(settings: Settings, index: int) -> None:
    """One worker process (spawned by ``supervise``)."""
    configure_logging(settings.log_format, worker=index)
    internal = settings.media_workers[index]
    binds = [
        Bind(settings.host, settings.port, reuse_port=True),
        Bind(settings.node_internal_host, int(internal.rsplit(":", 1)[1]), internal=True),
    ]
    _serve(settings.model_copy(update={"media_worker": index}), binds)


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


if __name__ == "__main__":
    sys.exit(main())
