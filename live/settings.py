"""The settings: one typed model, read once from the environment.

Every field of ``Settings`` is read from ``LIVESHELF_<FIELD>`` (``REDIS_URL`` has no
prefix), and every field of its ``chat`` part from ``LIVESHELF_CHAT_<FIELD>``; only
``demo``, ``media_workers`` and ``media_worker`` come from the command line instead.
``Settings.from_env()`` reads the environment and an optional ``.env`` file
(``LIVESHELF_ENV_FILE`` names another; a variable set in the environment wins over the
file's, and an empty one counts as unset). Lists are comma-separated. A bad value is a
``ConfigError`` of one line naming the variable::

    LIVESHELF_PORT: must be an integer, got 'abc'

This module is what the settings are (their fields, types, defaults and checks);
``live.settings_env`` is how they are read (variable names, the ``.env`` file, the
error lines, the masking of secrets in ``describe``).

``Settings(secret=..., port=...)`` reads nothing but its arguments: tests build it so,
whatever the environment holds. ``settings.model_copy(update={...})`` is a changed copy.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from secrets import token_urlsafe
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from live.logs import LogFormat
from live.settings_env import (
    PREFIX,
    ConfigError,
    VariablesSource,
    over_env_file,
    problem_line,
    shown,
)

#: a node's name: what ``LIVESHELF_NODE`` may be (``media.nodes``: resource ids start
#: with it)
NODE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
#: the longest a flash sale may hold its units before it starts (``shelf.flash_scheduler``)
MAX_FLASH_RESERVE_LEAD_S = 600
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

DEMO_DATABASE_URL = "sqlite+aiosqlite:///liveshelf-demo.db"
MISSING_SECRET = (
    "LIVESHELF_SECRET is not set: set it to a long random string "
    "(e.g. `export LIVESHELF_SECRET=$(python -c 'import secrets; "
    "print(secrets.token_urlsafe(32))')`), or run `python app.py --demo`"
)


# -- value types: each checks what its variable may hold ---------------------------


def _split(value: object) -> object:
    """A variable's comma-separated items as a tuple (a tuple argument passes as is)."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _networks(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        try:
            ipaddress.ip_network(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an address or network") from None
    return values


def _schemes(*schemes: str) -> AfterValidator:
    def check(values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not value.startswith(schemes):
                raise ValueError(f"{value!r} is not a {' or '.join(schemes)} URL")
        return values

    return AfterValidator(check)


def _address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"must be an IP address, got {value!r}") from None
    return value


def _base_url(value: str) -> str:
    """An http(s) base URL without a trailing slash, or empty."""
    value = value.rstrip("/")
    if value and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", value):
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value


def _node_name(value: str) -> str:
    if value and not NODE_NAME.fullmatch(value):
        raise ValueError(f"must be 1-32 of a-z, 0-9 and '-' (not first), got {value!r}")
    return value


def _core_share(value: float) -> float:
    """A share of one core: above 0, at most the machine's core count."""
    cores = os.cpu_count() or 1
    if not 0 < value <= cores:
        raise ValueError(f"must be above 0 and at most the number of cores ({cores}), got {value}")
    return value


#: a comma-separated variable (pydantic-settings would read a tuple as JSON: NoDecode)
Items = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_split)]
Networks = Annotated[Items, AfterValidator(_networks)]
#: counts and sizes: at least 1, or 0 and more (0: no cap)
Positive = Annotated[int, Field(ge=1)]
AtLeast0 = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(gt=0)]
SecondsOr0 = Annotated[float, Field(ge=0)]
Rate = Annotated[float, Field(gt=0)]


class ChatSettings(BaseModel):
    """The chat's limits and intervals (``chat/``); each field is read from
    ``LIVESHELF_CHAT_<FIELD>`` (e.g. ``LIVESHELF_CHAT_MESSAGE_RATE=2``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Longest message, in characters after control characters are stripped.
    max_text_chars: Positive = 300
    #: Messages in the ``hello`` snapshot.
    snapshot_messages: AtLeast0 = 50
    #: Per viewer (per process): messages a second and the burst saved up.
    message_rate: Rate = 3.0
    message_burst: Rate = 6.0
    #: Per viewer: ``like`` messages a second (each may carry up to ``max_like_count`` taps).
    like_rate: Rate = 10.0
    like_burst: Rate = 20.0
    max_like_count: Positive = 50
    #: Per room (per process): the ceiling on accepted messages a second.
    room_message_rate: Rate = 1000.0
    room_message_burst: Rate = 1000.0
    #: ``likes.updated`` at most once per interval per room.
    likes_interval_s: Seconds = 0.25
    #: Above this many messages in the last second a room switches to ``chat.batch``
    #: frames (and back below half of it), one every ``batch_interval_s``.
    batch_threshold_per_s: Rate = 10.0
    batch_interval_s: Seconds = 0.15
    #: How often cached moderation state (bans, mutes, moderators...) is reloaded from
    #: the database, so changes made through another process apply here too.
    state_refresh_s: Seconds = 2.0
    max_keywords: AtLeast0 = 200
    max_mute_s: Positive = 7 * 86400
    max_slow_mode_s: Positive = 3600


class Settings(BaseSettings):
    """Every setting of one process (module docstring: where each is read from)."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=PREFIX,
        # LIVESHELF_CHAT_MESSAGE_RATE -> chat.message_rate: one level of nesting
        env_nested_delimiter="_",
        env_nested_max_split=1,
        validate_by_name=True,
    )

    secret: str = Field(min_length=32)
    database_url: str = "sqlite+aiosqlite:///liveshelf.db"
    database_schema: str | None = None
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")
    redis_prefix: str = "ls"
    redis_max_connections: Positive = 64
    host: str = "127.0.0.1"
    port: int = 8080
    #: ``--demo``: SQLite, the in-memory bus, demo data, a made-up secret
    demo: bool = False
    #: ``--demo`` only: publish a test picture and tone to the demo show over WHIP
    #: (``media.demo_publisher``); ``LIVESHELF_DEMO_PUBLISHER=off`` or ``--no-publisher``
    demo_publisher: bool = True
    #: apply the database migrations at start-up (``LIVESHELF_AUTO_MIGRATE=1``; demo: on)
    auto_migrate: bool = False
    token_ttl_s: int = 7 * 86400
    password_time_cost: int = 3
    password_memory_kib: int = 65536
    history_size: int = 2000
    ws_send_limit_bytes: int = 256 * 1024
    #: room socket pings (0: none)
    ws_heartbeat_s: SecondsOr0 = 25.0
    presence_interval_s: Seconds = 1.0
    outbox_poll_s: Seconds = 1.0
    ice_servers: Items = ()
    ice_addresses: Items = ("127.0.0.1",)
    recordings_dir: Path = Path("recordings")
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    platform_fee_bps: int = 500
    commission_hold_days: int = 7
    cors_origin: str = "*"
    #: audience sampling period (analytics); 0 = only when sampled explicitly (tests)
    audience_sample_s: SecondsOr0 = 1.0
    #: HTTP access log (``python app.py`` only): "-" standard error, a file path, "off"
    access_log: str = "-"
    #: PostgreSQL connections the server keeps open (a fixed pool, opened at start-up)
    db_pool_size: Positive = 20
    #: worker processes sharing the port (``--workers``; more than 1 needs PostgreSQL
    #: and Redis); worker 0 is the media home, every session's origin (``media.cluster``)
    workers: Positive = 1
    #: worker i's loopback port for the other workers is this + i (0: any free ports)
    media_port: int = 0
    #: set by ``--workers``: every worker's loopback URL (by index), and this one's
    #: index; empty: one process holding all media
    media_workers: tuple[str, ...] = ()
    media_worker: int = 0
    #: an edge worker ends its pull of a session this long after its last viewer left
    media_pull_linger_s: SecondsOr0 = 5.0
    #: with several workers, a worker stopped by SIGTERM (a rolling restart) keeps
    #: serving its WHEP viewers until they have left, at most this long, then closes
    #: the rest (their pages post again and are placed on another worker)
    media_drain_s: SecondsOr0 = 30.0
    #: WHEP viewers one process serves at most (pulls aside; then ``503 media_full``,
    #: or another worker); ~0.3 % of a core each (bench/RESULTS.md, "Media relay"), so
    #: 250 leave room for the rest of the process's work
    media_max_viewers_per_worker: Positive = 250
    #: with several workers: a worker whose CPU share (of one core, averaged with a 3 s
    #: time constant) reached this takes no new viewer (they go to another worker, or 503)
    media_cpu_limit: Annotated[float, AfterValidator(_core_share)] = 0.85
    #: this node's name among several sharing PostgreSQL and Redis (``media.nodes``);
    #: empty: one node
    node: Annotated[str, AfterValidator(_node_name)] = ""
    #: the address this node's workers listen on for each other and the other nodes
    node_internal_host: Annotated[str, AfterValidator(_address)] = "127.0.0.1"
    #: where viewers reach this node (default ``http://{host}:{port}``)
    node_public_url: Annotated[str, AfterValidator(_base_url)] = ""
    #: rate limits and caps against abuse (``live.guard``; ``LIVESHELF_LIMITS=on|off``);
    #: off for benchmarks and tests that open many clients from one address
    limits: bool = True
    #: proxies (CIDRs) whose ``X-Forwarded-For`` names the client
    trusted_proxies: Networks = ()
    #: what one client may hold at once in one show, over all workers (0: no cap)
    max_peers_per_address: AtLeast0 = 60
    max_peers_per_user: AtLeast0 = 5
    max_sockets_per_address: AtLeast0 = 300
    max_sockets_per_user: AtLeast0 = 10
    #: password hashes at once (each holds ``password_memory_kib``), and waiting
    password_threads: Positive = 2
    password_queue: AtLeast0 = 32
    #: a flash sale moves its units out of stock this long before it starts
    flash_reserve_lead_s: Annotated[int, Field(ge=0, le=MAX_FLASH_RESERVE_LEAD_S)] = 60
    #: orders left ``placed`` (a database restart, a lost payment call) are settled by
    #: a background pass every ``order_recovery_every_s`` once they are this old
    order_recovery_every_s: Seconds = 5.0
    order_recovery_after_s: Seconds = 10.0
    #: the creator directory's verified figures (``market.figures``) are recomputed
    #: every this often, this many hosts per computation
    market_figures_every_s: Seconds = 600.0
    market_figures_batch: Annotated[int, Field(ge=1, le=10_000)] = 200
    #: a connection that has not sent a request's headers this long after it opened
    #: is closed, and one idle between requests this long (``live.reaper``)
    header_timeout_s: Seconds = 10.0
    idle_timeout_s: Seconds = 60.0
    #: a request body that has not arrived this long after the handler asked for it
    #: is answered 408 ``body_timeout`` and its connection closed (``live.http``)
    body_timeout_s: Seconds = 10.0
    #: the cyclic collector's youngest-generation threshold while serving
    gc_young_threshold: Positive = GC_YOUNG_THRESHOLD
    #: open connections one client address may hold per process, when ``limits`` is on
    #: (trusted proxies excepted; ``live.conncap``; 0: no cap)
    max_connections_per_address: AtLeast0 = 1000
    #: "text", or "json": one JSON object per log line, with request ids (``live.logs``)
    log_format: LogFormat = "text"
    #: HTTPS on the public port (``live.tls``): a PEM certificate chain and its key
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: TURN for browsers (``media.turn``): URLs, the secret shared with the TURN server,
    #: how long a credential lasts; STUN URLs handed to browsers
    turn_urls: Annotated[Items, _schemes("turn:", "turns:")] = ()
    turn_secret: str = ""
    turn_ttl_s: Annotated[int, Field(ge=60)] = 3600
    browser_stun: Annotated[Items, _schemes("stun:", "stuns:")] = ()
    #: ``/metrics`` beyond loopback (``live.metrics``): a bearer token, allowed networks
    metrics_token: str = ""
    metrics_allow: Networks = ()
    chat: ChatSettings = ChatSettings()

    @model_validator(mode="after")
    def _check_pairs(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("LIVESHELF_TLS_CERT and LIVESHELF_TLS_KEY go together: set both")
        if self.turn_urls and len(self.turn_secret) < 16:
            raise ValueError(
                "LIVESHELF_TURN_SECRET: must be at least 16 characters "
                "when LIVESHELF_TURN_URLS is set"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The arguments only: the environment is read by ``from_env`` alone."""
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, demo: bool = False) -> Settings:
        """The settings from ``env`` (default ``os.environ``) over its ``.env`` file;
        ``ConfigError`` on a missing or bad value. ``demo``: no secret needed (a random
        one), the demo's SQLite file by default, migrations applied."""
        variables = over_env_file(os.environ if env is None else env)
        try:
            values = VariablesSource(cls, variables)()
        except SettingsError as exc:  # a value pydantic-settings could not even read
            raise ConfigError(str(exc)) from None
        if demo:
            values.setdefault("secret", token_urlsafe(32))
            values.setdefault("database_url", DEMO_DATABASE_URL)
            values.update(demo=True, auto_migrate=True)
        elif "secret" not in values:
            raise ConfigError(MISSING_SECRET)
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError("; ".join(map(problem_line, exc.errors()))) from None

    def describe(self) -> str:
        """Every setting and its effective value, one per line (the chat's as
        ``chat.<field>``); secrets (the secret, TURN secret, metrics token, passwords
        in URLs) masked."""
        lines = [f"{name} = {shown(name, value)}" for name, value in self if name != "chat"]
        lines += [f"chat.{name} = {shown(name, value)}" for name, value in self.chat]
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
