"""live.settings and live.settings_env: every variable read into one typed model, from
the environment and a ``.env`` file; a bad value is one line naming its variable;
secrets never shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from live.settings import ChatSettings, Settings
from live.settings_env import COMMAND_LINE_ONLY, ConfigError, variable

SECRET = "s" * 40
BASE = {"LIVESHELF_SECRET": SECRET}

#: every variable read, a value other than its default, and the setting it gives
VARIABLES: dict[str, tuple[str, str, Any]] = {
    "LIVESHELF_SECRET": ("t" * 32, "secret", "t" * 32),
    "LIVESHELF_DATABASE_URL": ("postgresql+asyncpg://u@db/x", "database_url", None),
    "LIVESHELF_DEMO_PUBLISHER": ("off", "demo_publisher", False),
    "LIVESHELF_DATABASE_SCHEMA": ("shop", "database_schema", None),
    "REDIS_URL": ("redis://r:6379/1", "redis_url", None),
    "LIVESHELF_REDIS_PREFIX": ("shop", "redis_prefix", None),
    "LIVESHELF_REDIS_MAX_CONNECTIONS": ("8", "redis_max_connections", 8),
    "LIVESHELF_HOST": ("0.0.0.0", "host", None),
    "LIVESHELF_PORT": ("9000", "port", 9000),
    "LIVESHELF_AUTO_MIGRATE": ("1", "auto_migrate", True),
    "LIVESHELF_TOKEN_TTL_S": ("60", "token_ttl_s", 60),
    "LIVESHELF_PASSWORD_TIME_COST": ("1", "password_time_cost", 1),
    "LIVESHELF_PASSWORD_MEMORY_KIB": ("1024", "password_memory_kib", 1024),
    "LIVESHELF_HISTORY_SIZE": ("50", "history_size", 50),
    "LIVESHELF_WS_SEND_LIMIT_BYTES": ("4096", "ws_send_limit_bytes", 4096),
    "LIVESHELF_WS_HEARTBEAT_S": ("5", "ws_heartbeat_s", 5.0),
    "LIVESHELF_PRESENCE_INTERVAL_S": ("0.5", "presence_interval_s", 0.5),
    "LIVESHELF_OUTBOX_POLL_S": ("0.5", "outbox_poll_s", 0.5),
    "LIVESHELF_ICE_SERVERS": ("stun:a, turn:b", "ice_servers", ("stun:a", "turn:b")),
    "LIVESHELF_ICE_ADDRESSES": ("203.0.113.7", "ice_addresses", ("203.0.113.7",)),
    "LIVESHELF_RECORDINGS_DIR": ("/var/rec", "recordings_dir", Path("/var/rec")),
    "LIVESHELF_EVENT_LOOP": ("asyncio", "event_loop", None),
    "LIVESHELF_PLATFORM_FEE_BPS": ("250", "platform_fee_bps", 250),
    "LIVESHELF_COMMISSION_HOLD_DAYS": ("3", "commission_hold_days", 3),
    "LIVESHELF_CORS_ORIGIN": ("https://shop.example", "cors_origin", None),
    "LIVESHELF_AUDIENCE_SAMPLE_S": ("0", "audience_sample_s", 0.0),
    "LIVESHELF_ACCESS_LOG": ("off", "access_log", None),
    "LIVESHELF_DB_POOL_SIZE": ("32", "db_pool_size", 32),
    "LIVESHELF_WORKERS": ("4", "workers", 4),
    "LIVESHELF_MEDIA_PORT": ("9100", "media_port", 9100),
    "LIVESHELF_MEDIA_PULL_LINGER_S": ("1.5", "media_pull_linger_s", 1.5),
    "LIVESHELF_MEDIA_DRAIN_S": ("0", "media_drain_s", 0.0),
    "LIVESHELF_MEDIA_MAX_VIEWERS_PER_WORKER": ("120", "media_max_viewers_per_worker", 120),
    "LIVESHELF_MEDIA_CPU_LIMIT": ("0.7", "media_cpu_limit", 0.7),
    "LIVESHELF_NODE": ("node-b", "node", None),
    "LIVESHELF_NODE_INTERNAL_HOST": ("10.0.0.2", "node_internal_host", None),
    "LIVESHELF_NODE_PUBLIC_URL": ("https://b.example/", "node_public_url", "https://b.example"),
    "LIVESHELF_LIMITS": ("off", "limits", False),
    "LIVESHELF_TRUSTED_PROXIES": ("10.0.0.0/8,::1", "trusted_proxies", ("10.0.0.0/8", "::1")),
    "LIVESHELF_MAX_PEERS_PER_ADDRESS": ("0", "max_peers_per_address", 0),
    "LIVESHELF_MAX_PEERS_PER_USER": ("1", "max_peers_per_user", 1),
    "LIVESHELF_MAX_SOCKETS_PER_ADDRESS": ("0", "max_sockets_per_address", 0),
    "LIVESHELF_MAX_SOCKETS_PER_USER": ("1", "max_sockets_per_user", 1),
    "LIVESHELF_PASSWORD_THREADS": ("1", "password_threads", 1),
    "LIVESHELF_PASSWORD_QUEUE": ("0", "password_queue", 0),
    "LIVESHELF_FLASH_RESERVE_LEAD_S": ("600", "flash_reserve_lead_s", 600),
    "LIVESHELF_ORDER_RECOVERY_EVERY_S": ("1", "order_recovery_every_s", 1.0),
    "LIVESHELF_ORDER_RECOVERY_AFTER_S": ("2", "order_recovery_after_s", 2.0),
    "LIVESHELF_MARKET_FIGURES_EVERY_S": ("60", "market_figures_every_s", 60.0),
    "LIVESHELF_MARKET_FIGURES_BATCH": ("50", "market_figures_batch", 50),
    "LIVESHELF_HEADER_TIMEOUT_S": ("3", "header_timeout_s", 3.0),
    "LIVESHELF_IDLE_TIMEOUT_S": ("4", "idle_timeout_s", 4.0),
    "LIVESHELF_BODY_TIMEOUT_S": ("5", "body_timeout_s", 5.0),
    "LIVESHELF_GC_YOUNG_THRESHOLD": ("700", "gc_young_threshold", 700),
    "LIVESHELF_MAX_CONNECTIONS_PER_ADDRESS": ("0", "max_connections_per_address", 0),
    "LIVESHELF_LOG_FORMAT": ("json", "log_format", None),
    "LIVESHELF_TLS_CERT": ("/etc/tls/cert.pem", "tls_cert", Path("/etc/tls/cert.pem")),
    "LIVESHELF_TLS_KEY": ("/etc/tls/key.pem", "tls_key", Path("/etc/tls/key.pem")),
    "LIVESHELF_TURN_URLS": (
        "turn:t:3478,turns:t:5349",
        "turn_urls",
        ("turn:t:3478", "turns:t:5349"),
    ),
    "LIVESHELF_TURN_SECRET": ("turn-secret-0123456789", "turn_secret", None),
    "LIVESHELF_TURN_TTL_S": ("600", "turn_ttl_s", 600),
    "LIVESHELF_BROWSER_STUN": ("stun:s:3478", "browser_stun", ("stun:s:3478",)),
    "LIVESHELF_METRICS_TOKEN": ("metrics-token", "metrics_token", None),
    "LIVESHELF_METRICS_ALLOW": ("10.1.0.0/16", "metrics_allow", ("10.1.0.0/16",)),
    "LIVESHELF_CHAT_MAX_TEXT_CHARS": ("100", "chat.max_text_chars", 100),
    "LIVESHELF_CHAT_SNAPSHOT_MESSAGES": ("10", "chat.snapshot_messages", 10),
    "LIVESHELF_CHAT_MESSAGE_RATE": ("1.5", "chat.message_rate", 1.5),
    "LIVESHELF_CHAT_MESSAGE_BURST": ("2", "chat.message_burst", 2.0),
    "LIVESHELF_CHAT_LIKE_RATE": ("5", "chat.like_rate", 5.0),
    "LIVESHELF_CHAT_LIKE_BURST": ("8", "chat.like_burst", 8.0),
    "LIVESHELF_CHAT_MAX_LIKE_COUNT": ("9", "chat.max_like_count", 9),
    "LIVESHELF_CHAT_ROOM_MESSAGE_RATE": ("100", "chat.room_message_rate", 100.0),
    "LIVESHELF_CHAT_ROOM_MESSAGE_BURST": ("200", "chat.room_message_burst", 200.0),
    "LIVESHELF_CHAT_LIKES_INTERVAL_S": ("0.5", "chat.likes_interval_s", 0.5),
    "LIVESHELF_CHAT_BATCH_THRESHOLD_PER_S": ("20", "chat.batch_threshold_per_s", 20.0),
    "LIVESHELF_CHAT_BATCH_INTERVAL_S": ("0.3", "chat.batch_interval_s", 0.3),
    "LIVESHELF_CHAT_STATE_REFRESH_S": ("5", "chat.state_refresh_s", 5.0),
    "LIVESHELF_CHAT_MAX_KEYWORDS": ("20", "chat.max_keywords", 20),
    "LIVESHELF_CHAT_MAX_MUTE_S": ("60", "chat.max_mute_s", 60),
    "LIVESHELF_CHAT_MAX_SLOW_MODE_S": ("30", "chat.max_slow_mode_s", 30),
}
#: what must come along for a variable to be valid
COMPANIONS = {
    "LIVESHELF_TLS_CERT": {"LIVESHELF_TLS_KEY": "/k.pem"},
    "LIVESHELF_TLS_KEY": {"LIVESHELF_TLS_CERT": "/c.pem"},
    "LIVESHELF_TURN_URLS": {"LIVESHELF_TURN_SECRET": "turn-secret-0123456789"},
}


def setting(settings: Settings, path: str) -> Any:
    value: Any = settings
    for part in path.split("."):
        value = getattr(value, part)
    return value


def test_the_table_names_every_variable_the_settings_read() -> None:
    fields = [name for name in Settings.model_fields if name not in {"chat", *COMMAND_LINE_ONLY}]
    names = {variable(name) for name in fields}
    names |= {variable("chat", name) for name in ChatSettings.model_fields}
    assert names == set(VARIABLES)


@pytest.mark.parametrize("name", sorted(VARIABLES))
def test_each_variable_is_read(name: str) -> None:
    raw, path, expected = VARIABLES[name]
    settings = Settings.from_env({**BASE, **COMPANIONS.get(name, {}), name: raw})
    assert setting(settings, path) == (raw if expected is None else expected)
    assert setting(settings, path) != setting(Settings(secret=SECRET), path)


def test_every_default_is_kept() -> None:
    settings = Settings.from_env(BASE)
    assert settings == Settings(secret=SECRET)
    assert settings.database_url == "sqlite+aiosqlite:///liveshelf.db"
    assert (settings.host, settings.port, settings.redis_url) == ("127.0.0.1", 8080, None)
    assert settings.ice_servers == () and settings.ice_addresses == ("127.0.0.1",)
    assert settings.access_log == "-" and settings.limits and not settings.auto_migrate
    assert settings.chat == ChatSettings() and settings.chat.max_text_chars == 300


def test_the_command_line_settings_are_not_read_from_the_environment() -> None:
    env = {**BASE, "LIVESHELF_DEMO": "1", "LIVESHELF_MEDIA_WORKER": "3"}
    settings = Settings.from_env({**env, "LIVESHELF_MEDIA_WORKERS": "http://x:1"})
    assert (settings.demo, settings.media_worker, settings.media_workers) == (False, 0, ())


def test_an_empty_variable_counts_as_unset() -> None:
    env = {**BASE, "LIVESHELF_PORT": "", "LIVESHELF_ICE_ADDRESSES": "", "REDIS_URL": ""}
    assert Settings.from_env(env) == Settings(secret=SECRET)


def test_building_the_model_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVESHELF_SECRET", SECRET)
    monkeypatch.setenv("LIVESHELF_PORT", "9999")
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere/0")
    monkeypatch.setenv("LIVESHELF_CHAT_MESSAGE_RATE", "99")
    settings = Settings(secret=SECRET)
    assert (settings.port, settings.redis_url, settings.chat.message_rate) == (8080, None, 3.0)
    assert Settings.from_env().port == 9999  # the process environment, for from_env only


def test_missing_secret_is_a_clear_error_outside_demo() -> None:
    with pytest.raises(ConfigError, match="LIVESHELF_SECRET is not set"):
        Settings.from_env({})


def test_demo_needs_no_secret_and_uses_local_sqlite() -> None:
    settings = Settings.from_env({"LIVESHELF_AUTO_MIGRATE": "0"}, demo=True)
    assert settings.demo and settings.auto_migrate
    assert settings.database_url == "sqlite+aiosqlite:///liveshelf-demo.db"
    assert settings.redis_url is None
    assert len(settings.secret) >= 32
    url = "sqlite+aiosqlite:///elsewhere.db"
    assert Settings.from_env({"LIVESHELF_DATABASE_URL": url}, demo=True).database_url == url


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"LIVESHELF_PORT": "eighty"}, "LIVESHELF_PORT: must be an integer, got 'eighty'"),
        ({"LIVESHELF_DB_POOL_SIZE": "0"}, "LIVESHELF_DB_POOL_SIZE: must be at least 1, got '0'"),
        (
            {"LIVESHELF_MAX_PEERS_PER_USER": "-1"},
            "LIVESHELF_MAX_PEERS_PER_USER: must be 0 or more, got '-1'",
        ),
        (
            {"LIVESHELF_HEADER_TIMEOUT_S": "0"},
            "LIVESHELF_HEADER_TIMEOUT_S: must be above 0, got '0'",
        ),
        (
            {"LIVESHELF_FLASH_RESERVE_LEAD_S": "601"},
            "LIVESHELF_FLASH_RESERVE_LEAD_S: must be at most 600, got '601'",
        ),
        ({"LIVESHELF_MEDIA_CPU_LIMIT": "most"}, "LIVESHELF_MEDIA_CPU_LIMIT: must be a number"),
        ({"LIVESHELF_MEDIA_CPU_LIMIT": "0"}, "LIVESHELF_MEDIA_CPU_LIMIT: must be above 0"),
        (
            {"LIVESHELF_MEDIA_CPU_LIMIT": "999"},
            "LIVESHELF_MEDIA_CPU_LIMIT: must be above 0 and at most the number of cores",
        ),
        (
            {"LIVESHELF_EVENT_LOOP": "trio"},
            "LIVESHELF_EVENT_LOOP: must be 'auto', 'uvloop' or 'asyncio', got 'trio'",
        ),
        ({"LIVESHELF_LIMITS": "maybe"}, "LIVESHELF_LIMITS: must be on or off"),
        (
            {"LIVESHELF_TRUSTED_PROXIES": "10.0.0.0/8, proxy.lan"},
            "LIVESHELF_TRUSTED_PROXIES: 'proxy.lan' is not an address or network",
        ),
        (
            {"LIVESHELF_METRICS_ALLOW": "10.0.0.0/33"},
            "LIVESHELF_METRICS_ALLOW: '10.0.0.0/33' is not an address or network",
        ),
        (
            {"LIVESHELF_NODE_PUBLIC_URL": "b.example"},
            "LIVESHELF_NODE_PUBLIC_URL: must be an http:// or https:// URL, got 'b.example'",
        ),
        (
            {"LIVESHELF_NODE_INTERNAL_HOST": "localhost"},
            "LIVESHELF_NODE_INTERNAL_HOST: must be an IP address, got 'localhost'",
        ),
        ({"LIVESHELF_NODE": "-b"}, "LIVESHELF_NODE: must be 1-32 of a-z, 0-9 and '-'"),
        (
            {"LIVESHELF_TLS_CERT": "/c.pem"},
            "LIVESHELF_TLS_CERT and LIVESHELF_TLS_KEY go together: set both",
        ),
        (
            {"LIVESHELF_TURN_URLS": "turn:t"},
            "LIVESHELF_TURN_SECRET: must be at least 16 characters when LIVESHELF_TURN_URLS is set",
        ),
        (
            {"LIVESHELF_TURN_URLS": "stun:t", "LIVESHELF_TURN_SECRET": "x" * 16},
            "LIVESHELF_TURN_URLS: 'stun:t' is not a turn: or turns: URL",
        ),
        (
            {"LIVESHELF_BROWSER_STUN": "turn:t"},
            "LIVESHELF_BROWSER_STUN: 'turn:t' is not a stun: or stuns: URL",
        ),
        ({"LIVESHELF_TURN_TTL_S": "10"}, "LIVESHELF_TURN_TTL_S: must be at least 60, got '10'"),
        (
            {"LIVESHELF_CHAT_SNAPSHOT_MESSAGES": "many"},
            "LIVESHELF_CHAT_SNAPSHOT_MESSAGES: must be an integer, got 'many'",
        ),
        (
            {"LIVESHELF_CHAT_MESSAGE_RATE": "0"},
            "LIVESHELF_CHAT_MESSAGE_RATE: must be above 0, got '0'",
        ),
        ({"LIVESHELF_CHAT_MESAGE_RATE": "2"}, "LIVESHELF_CHAT_MESAGE_RATE: is not a setting"),
        (
            {"LIVESHELF_PORT": "x", "LIVESHELF_WORKERS": "0"},
            "LIVESHELF_PORT: must be an integer, got 'x'; "
            "LIVESHELF_WORKERS: must be at least 1, got '0'",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_its_variable(env: dict[str, str], line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**BASE, **env})
    assert str(caught.value).startswith(line)
    assert "\n" not in str(caught.value)


def test_an_error_never_shows_a_secret() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"LIVESHELF_SECRET": "hunter2-but-longer"})
    assert str(caught.value) == "LIVESHELF_SECRET: must be at least 32 characters"
    env = {**BASE, "LIVESHELF_TURN_URLS": "turn:t", "LIVESHELF_TURN_SECRET": "tiny-turn"}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert "tiny-turn" not in str(caught.value)


def test_the_env_file_is_read_under_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env(BASE).port == 8080  # no .env: nothing to read
    (tmp_path / ".env").write_text(
        f"LIVESHELF_SECRET={SECRET}\n"
        "# a comment\n"
        "LIVESHELF_PORT=9001\n"
        'LIVESHELF_CORS_ORIGIN="https://shop.example"\n'
        "LIVESHELF_CHAT_MESSAGE_RATE=2.5\n"
        "LIVESHELF_HOST=10.0.0.5\n"
    )
    settings = Settings.from_env({"LIVESHELF_HOST": "10.0.0.9", "LIVESHELF_PORT": ""})
    assert settings.secret == SECRET and settings.cors_origin == "https://shop.example"
    assert settings.chat.message_rate == 2.5
    assert settings.host == "10.0.0.9"  # the environment wins
    assert settings.port == 9001  # an empty variable is unset: the file's value
    (tmp_path / ".env").write_text("LIVESHELF_WORKERS=none\n")
    with pytest.raises(ConfigError, match="LIVESHELF_WORKERS: must be an integer"):
        Settings.from_env(BASE)


def test_liveshelf_env_file_names_another_file(tmp_path: Path) -> None:
    other = tmp_path / "liveshelf.env"
    other.write_text("LIVESHELF_PORT=9002\nLIVESHELF_LIMITS=off\n")
    settings = Settings.from_env({**BASE, "LIVESHELF_ENV_FILE": str(other)})
    assert (settings.port, settings.limits) == (9002, False)
    missing = str(tmp_path / "nowhere.env")
    with pytest.raises(ConfigError, match="LIVESHELF_ENV_FILE: no such file"):
        Settings.from_env({**BASE, "LIVESHELF_ENV_FILE": missing})


def test_the_deployment_example_is_a_valid_env_file() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "liveshelf.env.example"
    settings = Settings.from_env({"LIVESHELF_ENV_FILE": str(example)})
    assert (settings.workers, settings.port, settings.log_format) == (4, 8443, "json")
    assert settings.turn_urls[1] == "turns:turn.example.com:5349?transport=tcp"


def test_describe_masks_the_secrets_and_shows_the_chat() -> None:
    settings = Settings.from_env(
        {
            **BASE,
            "LIVESHELF_DATABASE_URL": "postgresql+asyncpg://shop:pa55word@db/shop",
            "REDIS_URL": "redis://:redispass@127.0.0.1:6379/0",
            "LIVESHELF_TURN_URLS": "turn:t:3478",
            "LIVESHELF_TURN_SECRET": "turn-secret-0123456789",
            "LIVESHELF_CHAT_LIKE_RATE": "4",
        }
    )
    out = settings.describe()
    for secret in (SECRET, "pa55word", "redispass", "turn-secret"):
        assert secret not in out
    lines = dict(line.split(" = ", 1) for line in out.splitlines())
    assert lines["secret"] == lines["turn_secret"] == "***"
    assert lines["metrics_token"] == "(none)"
    assert lines["database_url"] == "postgresql+asyncpg://shop:***@db/shop"
    assert lines["redis_url"] == "redis://:***@127.0.0.1:6379/0"
    assert lines["ice_addresses"] == "127.0.0.1" and lines["trusted_proxies"] == "(none)"
    assert lines["chat.like_rate"] == "4.0" and lines["chat.max_mute_s"] == "604800"
    every = {*Settings.model_fields} - {"chat"} | {f"chat.{n}" for n in ChatSettings.model_fields}
    assert set(lines) == every


def test_a_copy_with_changes() -> None:
    settings = Settings(secret=SECRET)
    changed = settings.model_copy(update={"port": 9000, "chat": ChatSettings(message_rate=1)})
    assert (changed.port, changed.chat.message_rate, changed.secret) == (9000, 1, SECRET)
    assert settings.port == 8080


def test_several_workers_need_postgresql_and_redis() -> None:
    base = {**BASE, "LIVESHELF_WORKERS": "2", "LIVESHELF_MEDIA_PORT": "9100"}
    settings = Settings.from_env(base)
    assert (settings.workers, settings.media_port) == (2, 9100)
    with pytest.raises(ConfigError, match="2 workers need REDIS_URL"):
        settings.check_workers()
    with pytest.raises(ConfigError, match="need PostgreSQL"):
        Settings.from_env({**base, "REDIS_URL": "redis://r:6379/1"}).check_workers()
    Settings.from_env(
        {
            **base,
            "REDIS_URL": "redis://r/1",
            "LIVESHELF_DATABASE_URL": "postgresql+asyncpg://u@db/x",
        }
    ).check_workers()
    Settings.from_env(BASE).check_workers()  # one process: anything
