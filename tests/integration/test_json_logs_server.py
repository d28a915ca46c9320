"""``LIVESHELF_LOG_FORMAT=json`` through ``python app.py``: every line of standard error
is one JSON object; access lines carry the request id the client sent (and got back),
the route, the session and the caller; a token sent as ``token``, ``%74oken`` or in a
header appears in no line."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
from support import free_port, sqlite_server, wait_until_up
from yarl import URL


async def test_json_lines_with_request_ids_and_no_token(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    errors = tmp_path / "server.log"
    proc = sqlite_server(tmp_path, port, LIVESHELF_LOG_FORMAT="json", LIVESHELF_ACCESS_LOG="-")
    try:
        await wait_until_up(base, proc)
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{base}/api/auth/signup",
                json={"username": "logged-host", "password": "correct horse", "role": "host"},
            ) as answer:
                assert answer.status == 201
                token = (await answer.json())["token"]
            bearer = {"Authorization": f"Bearer {token}"}
            async with http.post(
                f"{base}/api/sessions", json={"title": "Logged"}, headers=bearer
            ) as answer:
                session = (await answer.json())["id"]
            async with http.get(
                f"{base}/api/sessions/{session}",
                headers={**bearer, "X-Request-Id": "support-ticket-1"},
            ) as answer:
                assert answer.status == 200
                assert answer.headers["X-Request-Id"] == "support-ticket-1"
            for target in (
                f"/api/sessions/{session}/ws?token={token}",
                f"/api/sessions/{session}/ws?%74oken={token}",
                f"/api/sessions/{session}?tok%65n={token}",
            ):
                async with http.get(
                    URL(base + target, encoded=True), headers={"Referer": f"{base}{target}"}
                ) as answer:
                    assert answer.status < 500
                    assert len(answer.headers["X-Request-Id"]) == 16
            async with http.get(f"{base}/nowhere", headers={"X-Request-Id": "bad id!"}) as answer:
                assert answer.status == 404 and answer.headers["X-Request-Id"] != "bad id!"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    text = errors.read_text()
    assert token not in text
    assert token.split(".")[2] not in text  # not even the signature alone
    lines: list[dict[str, Any]] = [json.loads(row) for row in text.splitlines() if row.strip()]
    access = [line for line in lines if "status" in line and "method" in line]
    logged = [line for line in lines if "level" in line]
    assert logged, "the server's own log lines are JSON too"
    (read,) = [line for line in access if line.get("request_id") == "support-ticket-1"]
    assert read["route"] == "/api/sessions/{id}" and read["session_id"] == session
    assert read["user_id"] >= 1 and read["status"] == 200 and read["method"] == "GET"
    masked = [line for line in access if "=***" in line["path"]]
    assert len(masked) == 3, access
    assert all(line["referer"] and "=***" in line["referer"] for line in masked)
