"""The command line and demo mode: migrate, create-admin, --demo seeding, admin powers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support import TEST_SECRET, Api, free_port, wait_until_up

from app import Settings, accounts_key, create_app
from live.models import Role
from shelf.demo import DEMO_PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def run_app(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "app.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_secret_is_a_clear_startup_error(tmp_path: Path) -> None:
    env = {"LIVESHELF_SECRET": "", "LIVESHELF_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db"}
    result = run_app(["migrate"], env)
    assert result.returncode == 2
    assert "LIVESHELF_SECRET is not set" in result.stderr


def test_config_prints_the_effective_settings_without_secrets(tmp_path: Path) -> None:
    env_file = tmp_path / "liveshelf.env"
    env_file.write_text(
        "LIVESHELF_TURN_SECRET=turn-secret-0123456789\n"
        "LIVESHELF_CHAT_MESSAGE_RATE=2.5\n"
        "LIVESHELF_WORKERS=2\n"
    )
    env = {
        "LIVESHELF_ENV_FILE": str(env_file),
        "LIVESHELF_SECRET": TEST_SECRET,
        "LIVESHELF_DATABASE_URL": "postgresql+asyncpg://shop:pa55word@db.internal/shop",
        "REDIS_URL": "redis://:redispass@127.0.0.1:6379/0",
        "LIVESHELF_TURN_URLS": "turn:turn.example.net:3478",
        "LIVESHELF_METRICS_TOKEN": "metrics-token-0123456789",
        "LIVESHELF_WORKERS": "3",
    }
    result = run_app(["config"], env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for secret in (TEST_SECRET, "pa55word", "redispass", "turn-secret", "metrics-token"):
        assert secret not in out
    lines = dict(line.split(" = ", 1) for line in out.splitlines())
    assert lines["secret"] == lines["turn_secret"] == lines["metrics_token"] == "***"
    assert lines["database_url"] == "postgresql+asyncpg://shop:***@db.internal/shop"
    assert lines["redis_url"] == "redis://:***@127.0.0.1:6379/0"
    assert lines["workers"] == "3" and lines["turn_urls"] == "turn:turn.example.net:3478"
    assert lines["tls_cert"] == "(none)" and lines["log_format"] == "text"
    # the chat's settings too; the file's values under the environment's
    assert lines["chat.message_rate"] == "2.5" and lines["chat.max_text_chars"] == "300"
    bad = run_app(["config"], {**env, "LIVESHELF_LOG_FORMAT": "xml"})
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "configuration error: LIVESHELF_LOG_FORMAT: must be 'text' or 'json', got 'xml'"
    )


def test_migrate_and_create_admin(tmp_path: Path) -> None:
    env = {
        "LIVESHELF_SECRET": TEST_SECRET,
        "LIVESHELF_LIMITS": "off",
        "LIVESHELF_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cmd.db",
        "LIVESHELF_ADMIN_PASSWORD": "admin-password",
    }
    assert run_app(["migrate"], env).returncode == 0
    result = run_app(["create-admin", "root"], env)
    assert result.returncode == 0, result.stderr
    assert "admin 'root' created" in result.stdout


async def test_demo_mode_seeds_accounts_and_a_live_session(
    settings: Settings, aiohttp_client: Any
) -> None:
    api = Api(
        await aiohttp_client(
            create_app(settings.model_copy(update={"demo": True, "demo_publisher": False}))
        )
    )
    live = await api.call("GET", "/api/sessions?status=live", expect=200)
    assert len(live["sessions"]) == 1
    # the live show is the built-in publisher's; a scheduled one with the same shelf is
    # the host's to go live with from the studio
    scheduled = await api.call("GET", "/api/sessions?status=scheduled", expect=200)
    (own,) = scheduled["sessions"]
    assert own["host"]["id"] == live["sessions"][0]["host"]["id"]
    shelves = [
        {
            i["product_id"]
            for i in (await api.call("GET", f"/api/sessions/{s['id']}/shelf"))["shelf"]
        }
        for s in (live["sessions"][0], own)
    ]
    assert len(shelves[0]) == 3 and shelves[0] == shelves[1]
    for username in ("demo-host", "demo-brand", "demo-viewer"):
        await api.call(
            "POST",
            "/api/auth/login",
            json={"username": username, "password": DEMO_PASSWORD},
            expect=200,
        )
    # the brand console's directory lists the demo host, with its rate card
    (creator,) = (await api.call("GET", "/api/creators", expect=200))["creators"]
    assert creator["host_id"] == own["host"]["id"]
    card = await api.call("GET", f"/api/hosts/{own['host']['id']}/rate-card", expect=200)
    assert [s["kind"] for s in card["services"]] == ["live_segment", "shelf_slot"]


async def test_admin_may_act_on_any_session(api: Api) -> None:
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    accounts = api.client.app[accounts_key]
    await accounts.create("boss", "admin-password", Role.ADMIN)
    login = await api.call(
        "POST",
        "/api/auth/login",
        json={"username": "boss", "password": "admin-password"},
        expect=200,
    )
    headers = {"Authorization": f"Bearer {login['token']}"}
    ended = await api.call("POST", f"/api/sessions/{sid}/end", headers=headers, expect=200)
    assert ended["status"] == "ended"


async def test_announcement_refusals(api: Api) -> None:
    host = await api.signup("host")
    other = await api.signup("host")
    viewer = await api.signup("viewer")
    sid = (await api.live_session(host))["id"]
    path = f"/api/sessions/{sid}/announcements"
    await api.call("POST", path, json={"text": "hi"}, expect=401)
    assert (await api.call("POST", path, viewer, json={"text": "hi"}, expect=403))["error"][
        "code"
    ] == "role_not_allowed"
    assert (await api.call("POST", path, other, json={"text": "hi"}, expect=403))["error"][
        "code"
    ] == "not_your_session"
    for body in ({"text": ""}, {"text": "x" * 281}, {"text": 5}, {}):
        await api.call("POST", path, host, json=body, expect=422)
    await api.call("POST", f"/api/sessions/{sid}/end", host, expect=200)
    assert (await api.call("POST", path, host, json={"text": "hi"}, expect=409))["error"][
        "code"
    ] == "session_ended"


@pytest.mark.parametrize("target", ["file", "off"])
async def test_the_server_writes_an_access_log_without_tokens(tmp_path: Path, target: str) -> None:
    access = tmp_path / "access.log"
    env = {
        **os.environ,
        "LIVESHELF_SECRET": TEST_SECRET,
        "LIVESHELF_LIMITS": "off",
        "LIVESHELF_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/access.db",
        "LIVESHELF_AUTO_MIGRATE": "1",
        "LIVESHELF_ACCESS_LOG": str(access) if target == "file" else "off",
    }
    port = free_port()
    stderr = (tmp_path / "stderr.txt").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env, stderr=stderr
    )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_up(base, proc)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/sessions/424242?token=sekrit-token") as res:
                assert res.status == 404
            async with http.get(f"{base}/api/me") as res:
                assert res.status == 401
    finally:
        proc.terminate()  # graceful: the last lines are flushed at shutdown
        assert proc.wait(timeout=15) == 0
        stderr.close()
    logged = (tmp_path / "stderr.txt").read_text()
    assert "GET /api/me" not in logged  # access lines never go through logging
    if target == "off":
        assert not access.exists()
        return
    lines = access.read_text().splitlines()
    assert any('"GET /api/sessions/424242?token=*** HTTP/1.1" 404 ' in line for line in lines)
    assert any('"GET /api/me HTTP/1.1" 401 ' in line for line in lines)
    assert "sekrit-token" not in access.read_text()
