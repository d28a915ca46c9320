"""Logs an operator's tools can read: ``LIVESHELF_LOG_FORMAT=text|json``.

``text`` (the default): the ``logging`` lines as ``time level logger: message`` and the
access log in nginx's "combined" format (``live.accesslog``).

``json``: every line written is one JSON object, both the ``logging`` lines and the
access lines, each with the request it belongs to:

- ``request_id``: the client's ``X-Request-Id`` when it is a plausible id (1-64 of
  ``A-Z a-z 0-9 . _ : -``), else a new random one; every answer carries it back in
  ``X-Request-Id`` (WebSocket upgrades and error answers included), so a user's report
  and a proxy's log line find the server's lines;
- ``route`` (the route's pattern, ``/api/sessions/{id}/orders``), ``session_id`` where
  the route names a session, ``user_id`` of the signed-in caller.

A log line written inside a request's handler (or a task it started) carries that
request's fields through a ``ContextVar``; lines written elsewhere carry none.

Secrets are never written, in any encoding: query parameters that carry credentials
(``token``, ``ticket``, ``access_token``, by their decoded name: ``%74oken`` is the same
parameter) are masked as in the text access log, and anything shaped like one of the
server's credentials (a JWT, a signed media URL token) is replaced by ``***``
wherever it appears in a line: message, traceback, path, referrer, user agent.
``Authorization`` and ``Cookie`` headers are never logged.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import unquote_plus

from aiohttp import web

from live.http import principal_key

LogFormat = Literal["text", "json"]
REQUEST_ID_HEADER: Final = "X-Request-Id"
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_PLAUSIBLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
#: a JWT (``eyJ``: base64url of ``{"``), and a signed media token
#: (``media.tokens``: ``{session}.{node}.{user}.{guest}.{expires}.{signature}``)
_CREDENTIALS = re.compile(
    r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]+"
    r"|\b\d+\.[A-Za-z0-9_-]+\.\d+\.[A-Za-z0-9_-]+\.\d{9,}\.[A-Za-z0-9_-]{16,}"
)
#: ``name=value`` in a query string or in prose; the name is compared decoded
_PARAMETER = re.compile(r"(?P<name>[A-Za-z0-9_%+.-]+)=(?P<value>[^&\s\"';,]*)")
#: query parameters that carry credentials (compared decoded and lower-cased; the
#: text access log masks the same ones: ``live.accesslog.masked``)
SECRET_PARAMETERS = frozenset({"token", "ticket", "access_token"})
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',]+")


def scrubbed(text: str) -> str:
    """``text`` with every credential in it replaced by ``***`` (module docstring)."""
    if "=" in text:
        text = _PARAMETER.sub(_mask_parameter, text)
    text = _BEARER.sub(r"\1 ***", text)
    return _CREDENTIALS.sub("***", text)


def _mask_parameter(match: re.Match[str]) -> str:
    name = match["name"]
    decoded = _decoded(name).strip().lower()
    if decoded in SECRET_PARAMETERS and match["value"]:
        return f"{name}=***"
    return match[0]


def _decoded(name: str) -> str:
    return unquote_plus(name) if "%" in name or "+" in name else name


@dataclass(slots=True)
class RequestContext:
    """What a log line says about the request it was written in.

    While the request is handled its fields are read from it (the caller is known once
    the auth middleware has run); when it is done ``close`` keeps a copy and lets the
    request go. A task the request started keeps its context (``asyncio`` copies it),
    so its lines name that request, without holding it in memory."""

    request_id: str
    request: web.BaseRequest | None
    _done: dict[str, Any] | None = None

    def fields(self) -> dict[str, Any]:
        request = self.request
        if request is None:
            return dict(self._done or {"request_id": self.request_id})
        fields: dict[str, Any] = {"request_id": self.request_id}
        info = request.match_info if isinstance(request, web.Request) else None
        route = info.route.resource if info is not None else None
        if route is not None:
            fields["route"] = route.canonical
            session = _session_id(info, route.canonical) if info is not None else None
            if session is not None:
                fields["session_id"] = session
        caller = request.get(principal_key)
        if caller is not None:
            fields["user_id"] = caller.user_id
        return fields

    def close(self) -> None:
        self._done = self.fields()
        self.request = None


def _session_id(info: web.UrlMappingMatchInfo, canonical: str) -> int | None:
    value = info.get("session_id")
    if value is None and canonical.startswith(("/api/sessions/{id}", "/internal/media/{id}")):
        value = info.get("id")
    return int(value) if value is not None and value.isdigit() else None


current_request: ContextVar[RequestContext | None] = ContextVar("liveshelf_request", default=None)
context_key: web.RequestKey[RequestContext] = web.RequestKey("log_context")


def request_id_for(header: str | None) -> str:
    """The client's id when plausible, else a new one (16 hex digits)."""
    if header is not None and _PLAUSIBLE_ID.match(header):
        return header
    return secrets.token_hex(8)


@web.middleware
async def request_context(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The outermost middleware: give the request its id and make it the context of
    every line logged in it."""
    context = RequestContext(request_id_for(request.headers.get(REQUEST_ID_HEADER)), request)
    request[context_key] = context
    token = current_request.set(context)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = context.request_id
        raise
    finally:
        current_request.reset(token)
        context.close()


async def request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """An ``on_response_prepare`` hook: ``X-Request-Id`` on every answer, including
    WebSocket upgrades and streamed files (prepared inside their handlers)."""
    context = request.get(context_key)
    if context is not None:
        response.headers[REQUEST_ID_HEADER] = context.request_id


def install(app: web.Application) -> None:
    """Request ids and their context on ``app`` (JSON logs only: in text mode the
    middleware and the response hook would cost every request for nothing)."""
    app.middlewares.insert(0, request_context)
    app.on_response_prepare.append(request_id_header)


class JsonFormatter(logging.Formatter):
    """One JSON object per ``logging`` record: ``time`` (UTC, ISO 8601 with
    milliseconds), ``level``, ``logger``, ``message``, ``worker`` (with several), the
    request's fields, and ``error`` (the traceback) when there is one; every string
    scrubbed."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self._worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": utc_iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrubbed(record.getMessage()),
        }
        if self._worker is not None:
            entry["worker"] = self._worker
        context = current_request.get()
        if context is not None:
            entry.update(context.fields())
        if record.exc_info:
            entry["error"] = scrubbed(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["error"] = scrubbed(record.exc_text)
        if record.stack_info:
            entry["stack"] = scrubbed(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


def utc_iso(seconds: float) -> str:
    whole = int(seconds)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{stamp}.{int((seconds - whole) * 1000):03d}Z"


def configure(
    log_format: LogFormat, *, worker: int | None = None, level: int = logging.INFO
) -> None:
    """The root logger writes to standard error in ``log_format`` (``worker``: this
    process's index among several, named in every line)."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter(worker))
    elif worker is None:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s [worker {worker}] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
