"""The batched access log (``live.accesslog``): its lines, redaction and batching."""

from __future__ import annotations

import asyncio
import io

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from live.accesslog import AccessLog, masked

NOON = 1_795_867_200.0  # 2026-11-28 12:00:00 UTC


def request(path: str) -> web.Request:
    return make_mocked_request(
        "POST", path, headers={"User-Agent": "wrk", "Referer": "http://127.0.0.1/watch/7"}
    )


def test_a_line_per_request_in_combined_format_with_the_duration() -> None:
    out = io.StringIO()
    log = AccessLog(out, wall=lambda: NOON)
    response = web.json_response({"error": {"code": "out_of_stock"}}, status=409)
    log.add(request("/api/sessions/7/orders"), response, 0.000412)
    assert out.getvalue() == ""  # batched: nothing written before a flush
    log.flush()
    line = out.getvalue()
    assert line.endswith("\n") and line.count("\n") == 1
    assert line.startswith("- - - [28/Nov/2026:12:00:00 +0000] ")
    assert '"POST /api/sessions/7/orders HTTP/1.1" 409 ' in line
    assert f" {response.body_length} 0.4ms " in line
    assert line.rstrip("\n").endswith('"http://127.0.0.1/watch/7" "wrk"')


def test_tokens_in_the_query_string_are_not_logged() -> None:
    out = io.StringIO()
    log = AccessLog(out, wall=lambda: NOON)
    log.add(request("/api/sessions/7/ws?since=4&token=eyJsecret.part&epoch=x"), web.Response(), 0)
    log.add(request("/api/sessions/7/ws?token=eyJsecret"), web.Response(), 0)
    log.flush()
    text = out.getvalue()
    assert "eyJsecret" not in text
    assert "/api/sessions/7/ws?since=4&token=***&epoch=x " in text
    assert "/api/sessions/7/ws?token=*** " in text


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/ws?%74oken=eyJsecret", "/ws?%74oken=***"),
        ("/ws?TOKEN=eyJsecret&a=1", "/ws?TOKEN=***&a=1"),
        ("/whep/7?token=7.b.0.99.sig", "/whep/7?token=***"),
        ("/ws?ticket=abc&token", "/ws?ticket=***&token"),
        ("/ws?tok%65n=eyJ&tokens=keep", "/ws?tok%65n=***&tokens=keep"),
        ("/ws?x=token%3Dnot-a-key", "/ws?x=token%3Dnot-a-key"),
        ("/plain/path", "/plain/path"),
    ],
)
def test_credentials_are_masked_whatever_their_spelling(target: str, logged: str) -> None:
    assert masked(target) == logged


def test_written_in_one_write_when_the_batch_is_full() -> None:
    writes: list[str] = []

    class Stream(io.StringIO):
        def write(self, s: str) -> int:
            writes.append(s)
            return len(s)

    log = AccessLog(Stream(), max_lines=3, wall=lambda: NOON)
    for _ in range(7):
        log.add(request("/api/sessions"), web.Response(), 0)
    assert [w.count("\n") for w in writes] == [3, 3]
    log.flush()
    assert [w.count("\n") for w in writes] == [3, 3, 1]
    log.flush()  # nothing left: no empty write
    assert len(writes) == 3


async def test_lines_are_written_every_flush_interval_and_at_shutdown() -> None:
    out = io.StringIO()
    log = AccessLog(out, flush_s=0.05, wall=lambda: NOON)
    lifetime = log.lifetime(object())
    await anext(lifetime)  # the app started
    log.add(request("/api/sessions"), web.Response(), 0)
    for _ in range(100):  # bounded: 2 s
        if out.getvalue():
            break
        await asyncio.sleep(0.02)
    assert out.getvalue().count("\n") == 1  # flushed by the interval, the app still running
    log.add(request("/api/me"), web.Response(status=401), 0)
    with pytest.raises(StopAsyncIteration):
        await anext(lifetime)  # the app stops: the rest is written
    assert '"POST /api/me HTTP/1.1" 401 ' in out.getvalue()
