"""Schema fuzzing: Schemathesis builds requests from the server's own OpenAPI document
(``GET /api/openapi.json``) and holds every answer to it, against the real app on each
backend, as a guest and signed in as each role.

Required (issue 20): no server error and no answer that breaks the document (status,
content type, headers, body). Each run is bounded by ``--max-time``; the whole module
takes about ``len(ROLES) * (FUZZ_SECONDS + 1)`` s per backend (~85 s for both at 6 s:
~1,000 requests per role, every operation tested, the stateful phase following the
document's links). The seed is new each run, so CI keeps exploring; a failure prints
its seed and a ``curl`` to reproduce it. ``LIVESHELF_FUZZ_SECONDS=60`` fuzzes longer.

Its hooks (``tests/fuzz_hooks.py``) write WHIP/WHEP's SDP bodies.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from support import Account, Api, admin

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parents[1]
#: seconds of fuzzing per role and backend
FUZZ_SECONDS = int(os.environ.get("LIVESHELF_FUZZ_SECONDS", "6"))
ROLES = ("guest", "viewer", "host", "brand", "agency", "admin")
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    )
)
#: what is not fuzzed, and why: the room socket is a WebSocket upgrade and the account's
#: event stream an answer that never ends (both have their own tests); logging out, or
#: an admin disabling accounts (its own among them), would end the run's tokens (both
#: are tested elsewhere)
EXCLUDED = (
    "get_api_sessions_id_ws",
    "get_api_me_events",
    "post_api_auth_logout",
    "post_api_admin_users_id_disable",
)


async def test_the_api_keeps_to_its_document(
    client: TestClient[Any, Any], api: Api, tmp_path: Path
) -> None:
    st = shutil.which("st") or str(Path(sys.executable).with_name("st"))
    accounts: dict[str, Account | None] = {"guest": None, "admin": await admin(api)}
    for role in ROLES:
        if role not in accounts:
            accounts[role] = await api.signup(role)
    base = str(client.make_url("")).rstrip("/")
    failures = []
    for role in ROLES:
        account = accounts[role]
        args = [
            st,
            "--no-color",
            "run",
            f"{base}/api/openapi.json",
            "--url",
            base,
            "--checks",
            CHECKS,
            "--max-time",
            str(FUZZ_SECONDS),
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--generation-database",
            "none",
            "--suppress-health-check",
            "all",
        ]
        for operation_id in EXCLUDED:
            args += ["--exclude-operation-id", operation_id]
        if account is not None:
            args += ["-H", f"Authorization: Bearer {account.token}"]
        proc = await asyncio.create_subprocess_exec(
            *args,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks", "PYTHONPATH": str(TESTS)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(proc.communicate(), FUZZ_SECONDS * 4 + 60)
        text = output.decode(errors="replace")
        (tmp_path / f"schemathesis-{role}.txt").write_text(text)
        if proc.returncode != 0:
            failures.append(f"--- as {role} (exit {proc.returncode}) ---\n{text[-6000:]}")
            continue
        # the time bound must not leave operations untested
        selected = re.search(r"Selected: (\d+)/(\d+)", text)
        tested = re.search(r"Tested: (\d+)", text)
        assert selected and tested, text[-3000:]
        assert tested[1] == selected[1], f"as {role}: {tested[0]} of {selected[0]}"
    assert not failures, "\n".join(failures)
