"""JSON logs (``live.logs``): request ids, the request's fields on every line, and no
credential in any line, whatever its encoding."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from live.accesslog import AccessLog
from live.auth import TokenSigner
from live.clock import SystemClock
from live.http import auth_middleware
from live.logs import (
    REQUEST_ID_HEADER,
    JsonFormatter,
    RequestContext,
    current_request,
    install,
    request_id_for,
    scrubbed,
)

SECRET = "s" * 40
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI3In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
Client = TestClient[web.Request, web.Application]
MEDIA_TOKEN = "12.node-a.7.-.1796000000.QUJDREVGR0hJSktMTU5PUA"


@pytest.mark.parametrize(
    "text",
    [
        f"GET /api/sessions/7/ws?token={JWT}",
        f"GET /api/sessions/7/ws?%74oken={JWT}&since=3",
        f"GET /ws?tok%65n={JWT}",
        f"Authorization: Bearer {JWT}",
        f"refused {JWT}: expired",
        f"POST /whep/12?token={MEDIA_TOKEN}",
        f"media url https://node-a/whep/12?x=1&token={MEDIA_TOKEN}",
        f"ticket={JWT}",
        f"bearer {MEDIA_TOKEN}",
    ],
)
def test_no_credential_survives(text: str) -> None:
    out = scrubbed(text)
    assert JWT not in out and MEDIA_TOKEN not in out
    assert "eyJhbGci" not in out and "QUJDREVG" not in out
    assert "***" in out


def test_ordinary_text_is_left_alone() -> None:
    for text in (
        "GET /api/sessions/7/orders?since=3&tokens=2",
        "order 42 paid: 3900 minor units",
        "x=token%3Dnot-a-key",
        "1.2.3.4 connected",
    ):
        assert scrubbed(text) == text


def test_request_ids_are_taken_when_plausible() -> None:
    assert request_id_for("abc-123_x.y:z") == "abc-123_x.y:z"
    for bad in (None, "", "x" * 65, "has space", "new\nline", "é"):
        made = request_id_for(bad)
        assert made != bad and len(made) == 16 and int(made, 16) >= 0
    assert request_id_for(None) != request_id_for(None)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("liveshelf.test_json_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
async def client(lines: Lines) -> AsyncIterator[tuple[Client, str]]:
    log = logging.getLogger("liveshelf.test_json_logs")
    tokens = TokenSigner(SECRET, SystemClock())

    async def order(request: web.Request) -> web.Response:
        log.info("placing an order for %s", request.query.get("token", "-"))
        return web.json_response({"ok": True})

    async def refused(_request: web.Request) -> web.Response:
        raise web.HTTPForbidden(text="no")

    async def crash(_request: web.Request) -> web.Response:
        try:
            raise RuntimeError(f"bad token {JWT}")
        except RuntimeError:
            log.exception("it broke")
        return web.Response(status=500)

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.close()
        return ws

    app = web.Application(middlewares=[auth_middleware(tokens)])
    install(app)
    app.router.add_post("/api/sessions/{id}/orders", order)
    app.router.add_get("/api/refused", refused)
    app.router.add_get("/api/crash", crash)
    app.router.add_get("/api/sessions/{id}/ws", socket)
    token = tokens.issue(7, "ann", "viewer", "Ann")
    async with TestClient(TestServer(app)) as test:
        yield test, token


async def test_a_line_logged_in_a_request_carries_the_request(
    client: tuple[Client, str], lines: Lines
) -> None:
    test, token = client
    answer = await test.post(
        f"/api/sessions/12/orders?token={token}",
        headers={"Authorization": f"Bearer {token}", REQUEST_ID_HEADER: "front-1"},
    )
    assert answer.status == 200 and answer.headers[REQUEST_ID_HEADER] == "front-1"
    (line,) = (json.loads(text) for text in lines.lines)
    assert line["request_id"] == "front-1" and line["user_id"] == 7
    assert line["route"] == "/api/sessions/{id}/orders" and line["session_id"] == 12
    assert line["level"] == "info" and line["logger"] == "liveshelf.test_json_logs"
    assert line["message"] == "placing an order for ***"
    assert token not in "".join(lines.lines)


async def test_every_answer_carries_its_id(client: tuple[Client, str], lines: Lines) -> None:
    test, token = client
    refused = await test.get("/api/refused", headers={REQUEST_ID_HEADER: "bad id"})
    made = refused.headers[REQUEST_ID_HEADER]
    assert refused.status == 403 and made != "bad id" and len(made) == 16
    missing = await test.get("/nowhere")
    assert missing.status == 404 and len(missing.headers[REQUEST_ID_HEADER]) == 16
    async with test.ws_connect("/api/sessions/3/ws", headers={REQUEST_ID_HEADER: "ws-9"}) as ws:
        assert ws._response.headers[REQUEST_ID_HEADER] == "ws-9"
    crashed = await test.get("/api/crash", headers={"Authorization": f"Bearer {token}"})
    assert crashed.status == 500
    (line,) = (json.loads(text) for text in lines.lines)
    assert line["message"] == "it broke" and "RuntimeError: bad token ***" in line["error"]
    assert line["user_id"] == 7 and token not in line["error"] and JWT not in line["error"]


async def test_access_lines_are_json_with_the_request_and_no_secret() -> None:
    out = io.StringIO()
    access = AccessLog(out, log_format="json", wall=lambda: 1_795_867_200.25)
    tokens = TokenSigner(SECRET, SystemClock())
    token = tokens.issue(7, "ann", "viewer", "Ann")

    async def order(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True}, status=201)

    app = web.Application(middlewares=[auth_middleware(tokens)])
    install(app)
    app.router.add_post("/api/sessions/{id}/orders", order)
    server = TestServer(app)
    await server.start_server(access_log_class=access.logger_class())
    async with TestClient(server) as test:
        await test.post(
            f"/api/sessions/12/orders?%74oken={token}&since=2",
            headers={
                "Authorization": f"Bearer {token}",
                REQUEST_ID_HEADER: "r-1",
                "Referer": f"http://127.0.0.1/watch/12?token={token}",
                "User-Agent": f"curious {token}",
            },
        )
        await test.get("/nowhere")
    access.flush()
    rows = out.getvalue().splitlines()
    assert len(rows) == 2 and token not in out.getvalue()
    first, second = (json.loads(row) for row in rows)
    assert first["time"] == "2026-11-28T12:00:00.250Z"
    assert first["method"] == "POST" and first["status"] == 201
    assert first["path"] == "/api/sessions/12/orders?token=***&since=2"  # the client decoded %74
    assert first["request_id"] == "r-1" and first["user_id"] == 7
    assert first["route"] == "/api/sessions/{id}/orders" and first["session_id"] == 12
    assert first["referer"] == "http://127.0.0.1/watch/12?token=***"
    assert first["user_agent"] == "curious ***"
    assert first["bytes"] > 0 and first["duration_ms"] >= 0
    assert second["status"] == 404 and "user_id" not in second and "route" not in second
    assert len(second["request_id"]) == 16


async def test_a_task_a_request_started_names_it_without_holding_it(lines: Lines) -> None:
    log = logging.getLogger("liveshelf.test_json_logs")
    tokens = TokenSigner(SECRET, SystemClock())
    go = asyncio.Event()
    started: list[asyncio.Task[RequestContext | None]] = []

    async def later() -> RequestContext | None:
        await go.wait()
        log.info("done later")
        return current_request.get()

    async def order(_request: web.Request) -> web.Response:
        started.append(asyncio.create_task(later()))
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[auth_middleware(tokens)])
    install(app)
    app.router.add_post("/api/sessions/{id}/orders", order)
    token = tokens.issue(9, "bo", "viewer", "Bo")
    async with TestClient(TestServer(app)) as test:
        answer = await test.post(
            "/api/sessions/4/orders",
            headers={"Authorization": f"Bearer {token}", REQUEST_ID_HEADER: "r-later"},
        )
        assert answer.status == 200
        go.set()
        context = await started[0]
    assert context is not None and context.request is None  # the request is let go
    (line,) = (json.loads(text) for text in lines.lines)
    assert line["message"] == "done later" and line["request_id"] == "r-later"
    assert line["user_id"] == 9 and line["session_id"] == 4
