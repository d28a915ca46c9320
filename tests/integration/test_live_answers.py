"""Answers of the spine's routes that the tests elsewhere do not reach, held to their
OpenAPI models (``live/answers.py``): what schema fuzzing found, and ``/readyz``'s 503
(the ``app`` fixture's checker only sees successful answers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp.test_utils import make_mocked_request
from support import Api

from live.answers import ReadyAnswer
from live.clock import iso
from live.health import Health


def test_a_date_before_the_year_1000_is_still_rfc_3339() -> None:
    """Years are four digits ("0574-..."): strftime's %Y left them short, which no
    client parses as a date-time (bodies now refuse times before 1970, but ``iso``
    writes every answer's times)."""
    assert iso(-44053082307324) == "0574-01-05T08:41:32.676Z"
    assert iso(-1) == "1969-12-31T23:59:59.999Z"
    assert iso(1764320000123) == "2025-11-28T08:53:20.123Z"
    assert iso(253402300799999) == "9999-12-31T23:59:59.999Z"


async def test_a_username_with_nul_is_invalid_input_not_a_server_error(api: Api) -> None:
    res = await api.call(
        "POST",
        "/api/auth/login",
        json={"username": "a\u0000b", "password": "correct horse"},
        expect=422,
    )
    assert res["error"]["code"] == "invalid_input"


class _DownDatabase:
    @asynccontextmanager
    async def read(self) -> AsyncIterator[Any]:
        raise ConnectionRefusedError("down")
        yield  # pragma: no cover


async def test_not_ready_answers_the_documented_body() -> None:
    async def home_gone() -> None:
        raise TimeoutError

    health = Health(
        _DownDatabase(),  # type: ignore[arg-type]
        None,
        lambda: True,
        starting=lambda: ["database"],
        media_home=lambda: home_gone,
    )
    response = await health.ready(make_mocked_request("GET", "/readyz"))
    assert response.status == 503 and response.headers["Retry-After"] == "2"
    assert isinstance(response.body, bytes)
    answer = ReadyAnswer.model_validate_json(response.body, strict=True)
    assert not answer.ready
    assert answer.checks.outbox == "behind" and answer.checks.redis is None
    assert orjson.loads(response.body)["checks"] == {
        "database": "unavailable: ConnectionRefusedError",
        "migrations": "unavailable: ConnectionRefusedError",
        "media": "unavailable: TimeoutError",
        "outbox": "behind",
        "startup": "waiting: database",
    }
