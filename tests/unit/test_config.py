"""Settings.from_env: defaults, casts and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import ConfigError, Settings

SECRET = "s" * 40


def test_missing_secret_is_a_clear_error_outside_demo() -> None:
    with pytest.raises(ConfigError, match="LIVESHELF_SECRET is not set"):
        Settings.from_env({})


def test_demo_needs_no_secret_and_uses_local_sqlite() -> None:
    settings = Settings.from_env({}, demo=True)
    assert settings.demo and settings.auto_migrate
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.redis_url is None
    assert len(settings.secret) >= 32


def test_values_are_read_and_cast() -> None:
    settings = Settings.from_env(
        {
            "LIVESHELF_SECRET": SECRET,
            "LIVESHELF_DATABASE_URL": "postgresql+asyncpg://u@db/x",
            "REDIS_URL": "redis://r:6379/1",
            "LIVESHELF_PORT": "9000",
            "LIVESHELF_ICE_SERVERS": "stun:stun.example.org:3478, turn:t.example.org",
            "LIVESHELF_ICE_ADDRESSES": "203.0.113.7",
            "LIVESHELF_RECORDINGS_DIR": "/var/rec",
            "LIVESHELF_ACCESS_LOG": "/var/log/liveshelf/access.log",
            "LIVESHELF_DB_POOL_SIZE": "32",
            "LIVESHELF_MEDIA_MAX_VIEWERS_PER_WORKER": "120",
            "LIVESHELF_MEDIA_CPU_LIMIT": "0.7",
        }
    )
    assert settings.db_pool_size == 32
    assert (settings.media_max_viewers_per_worker, settings.media_cpu_limit) == (120, 0.7)
    assert settings.port == 9000
    assert settings.access_log == "/var/log/liveshelf/access.log"
    assert settings.redis_url == "redis://r:6379/1"
    assert settings.ice_servers == ("stun:stun.example.org:3478", "turn:t.example.org")
    assert settings.ice_addresses == ("203.0.113.7",)
    assert settings.recordings_dir == Path("/var/rec")
    assert settings.auto_migrate is False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LIVESHELF_SECRET": "short"}, "at least 32"),
        ({"LIVESHELF_SECRET": SECRET, "LIVESHELF_PORT": "eighty"}, "LIVESHELF_PORT"),
        ({"LIVESHELF_SECRET": SECRET, "LIVESHELF_DB_POOL_SIZE": "0"}, "at least 1"),
        ({"LIVESHELF_SECRET": SECRET, "LIVESHELF_MEDIA_CPU_LIMIT": "most"}, "a number"),
        ({"LIVESHELF_SECRET": SECRET, "LIVESHELF_MEDIA_CPU_LIMIT": "0"}, "above 0"),
        ({"LIVESHELF_SECRET": SECRET, "LIVESHELF_MEDIA_CPU_LIMIT": "999"}, "number of cores"),
    ],
)
def test_bad_values(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_default_ice_list_has_no_public_stun() -> None:
    assert Settings.from_env({"LIVESHELF_SECRET": SECRET}).ice_servers == ()


def test_access_log_goes_to_standard_error_by_default() -> None:
    assert Settings.from_env({"LIVESHELF_SECRET": SECRET}).access_log == "-"


def test_several_workers_need_postgresql_and_redis() -> None:
    base = {"LIVESHELF_SECRET": SECRET, "LIVESHELF_WORKERS": "2", "LIVESHELF_MEDIA_PORT": "9100"}
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
    Settings.from_env({"LIVESHELF_SECRET": SECRET}).check_workers()  # one process: anything
    with pytest.raises(ConfigError, match="LIVESHELF_WORKERS must be at least 1"):
        Settings.from_env({**base, "LIVESHELF_WORKERS": "0"})
