"""HTTP plumbing shared by every package's handlers: errors, auth, JSON in and out.

Every error leaves as ``{"error": {"code": "...", "message": "..."}}`` with a fitting
status; every JSON body is read through ``read_json`` (size-limited, schema-checked,
unknown fields refused), so handlers only ever see validated input.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel

from live.auth import Principal, TokenSigner, require_signed_in
from live.errors import (
    Conflict,
    Forbidden,
    Gone,
    InvalidInput,
    LiveshelfError,
    NotAcceptable,
    NotFound,
    PreconditionFailed,
    RateLimited,
    TimedOut,
    TooLarge,
    Unauthenticated,
    Unavailable,
    Unprocessable,
    UnsupportedMediaType,
)
from live.outages import OutageLog, dependency_of
from live.paging import Page
from live.validation import validate_json

log = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

principal_key: web.RequestKey[Principal | None] = web.RequestKey("principal")

#: Largest JSON body any route accepts.
MAX_JSON_BYTES = 64 * 1024

#: how long a request's body may take to arrive once a handler reads it (set on the
#: root application; ``LIVESHELF_BODY_TIMEOUT_S``)
body_timeout_key = web.AppKey("body_timeout_s", float)
DEFAULT_BODY_TIMEOUT_S = 10.0

_STATUS: list[tuple[type[LiveshelfError], int]] = [
    (InvalidInput, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (NotAcceptable, 406),
    (TimedOut, 408),
    (Conflict, 409),
    (Gone, 410),
    (PreconditionFailed, 412),
    (TooLarge, 413),
    (UnsupportedMediaType, 415),
    (Unprocessable, 422),
    (RateLimited, 429),
    (Unavailable, 503),
]
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def status_of(exc: LiveshelfError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 400


_KIND: dict[int, type[LiveshelfError]] = {status: kind for kind, status in _STATUS}


def error_from_answer(status: int, body: bytes) -> LiveshelfError | None:
    """The error an answer of ``error_response`` stands for (a refusal relayed from
    another of our processes): the kind of ``status``, with the body's code, message
    and details, so that ``error_response`` renders it as it came (its
    ``Retry-After`` too). None if ``status`` is none of the kinds' or the body is no
    JSON error."""
    kind = _KIND.get(status)
    try:
        error = orjson.loads(body)["error"]
        code, message, details = error["code"], error["message"], error.get("details", {})
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None
    if kind is None or not isinstance(code, str) or not isinstance(message, str):
        return None
    relayed = kind(code, message)
    relayed.details = details if isinstance(details, dict) else {}
    return relayed


def json_response(
    data: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    headers = {**_JSON_HEADERS, **headers} if headers else _JSON_HEADERS
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


_JSON_HEADERS = {"X-Content-Type-Options": "nosniff"}


def error_response(exc: LiveshelfError) -> web.Response:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else {}
    status = status_of(exc)
    wait_ms = exc.details.get("retry_after_ms")
    if isinstance(wait_ms, int) and wait_ms > 0:
        headers["Retry-After"] = str(math.ceil(wait_ms / 1000))
    elif status == 503:
        headers["Retry-After"] = "2"
    response = json_response({"error": exc.to_dict()}, status=status, headers=headers or None)
    if isinstance(exc, TimedOut):  # the rest of the body may still be on its way
        response.force_close()
    return response


#: how long a client should wait before retrying after a dependency failed
RETRY_AFTER_OUTAGE_S = 2


def error_middleware(outages: OutageLog) -> Any:
    """Errors as JSON: ours with their status; a dependency that cannot be reached
    (``live.outages``) ``503 <dependency>_unavailable`` with ``Retry-After`` and one
    log line per outage; anything else ``500 internal_error`` with its traceback."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except LiveshelfError as exc:
            return error_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400 or exc.content_type == "application/json":
                raise
            code = _HTTP_CODES.get(exc.status, "http_error")
            message = exc.reason.lower() if exc.reason else code
            body = {"error": {"code": code, "message": message}}
            return json_response(body, status=exc.status, headers=_passthrough_headers(exc))
        except Exception as exc:
            dependency = dependency_of(exc)
            if dependency is not None:
                outages.failed(dependency, exc)
                return error_response(
                    Unavailable(
                        f"{dependency}_unavailable",
                        f"the {dependency} is unavailable for a moment; retry shortly",
                        retry_after_ms=RETRY_AFTER_OUTAGE_S * 1000,
                    )
                )
            log.exception("unhandled error on %s %s", request.method, request.path)
            return json_response(
                {
                    "error": {
                        "code": "internal_error",
                        "message": "something went wrong on our side",
                    }
                },
                status=500,
            )

    return middleware


def _passthrough_headers(exc: web.HTTPException) -> dict[str, str]:
    keep = ("Allow", "Location", "Retry-After")
    return {k: v for k, v in exc.headers.items() if k in keep}


#: What every page may load: its own scripts only (no inline script, no eval), styles
#: from here (plotly sets inline styles), pictures from anywhere over HTTPS (product
#: images), media over WHEP from any node (the media endpoint may name another one),
#: never framed.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob: https:",
        "media-src 'self' blob:",
        "connect-src 'self' ws: wss: http: https:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


async def security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """An ``on_response_prepare`` hook: the headers above on every answer."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def auth_middleware(tokens: TokenSigner, *, own_auth: frozenset[str] = frozenset()) -> Any:
    """Resolve ``Authorization: Bearer <token>``, or ``?ticket=`` on a room-socket upgrade.
    Requests for the paths in ``own_auth`` (e.g. ``/metrics``, whose bearer token is not
    an account's) are passed on untouched, as a guest's."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in own_auth:
            request[principal_key] = None
            return await handler(request)
        ticket = _room_ticket(request)
        if ticket is not None:
            request[principal_key] = tokens.verify_ticket(ticket)
        else:
            token = bearer_token(request)
            request[principal_key] = tokens.verify(token) if token else None
        return await handler(request)

    return middleware


def _room_ticket(request: web.Request) -> str | None:
    """``?ticket=`` on a WebSocket upgrade without ``Authorization``."""
    if "Authorization" in request.headers:
        return None
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return None
    return request.query.get("ticket") or None


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("invalid_token", "use 'Authorization: Bearer <token>'")
        return value.strip()
    if "token" in request.query and request.headers.get("Upgrade", "").lower() == "websocket":
        # A bearer token in a URL ends up in logs, history and referrers: a socket
        # opened from a page takes a one-minute ticket (``?ticket=``) instead.
        raise Unauthenticated(
            "token_in_url",
            "send the token as 'Authorization: Bearer <token>'; a WebSocket from a page "
            "takes ?ticket= (POST /api/auth/ticket)",
        )
    return None


def principal(request: web.Request) -> Principal | None:
    """The caller, or None for a guest."""
    return request.get(principal_key)


def signed_in(request: web.Request) -> Principal:
    """The caller; 401 for guests."""
    return require_signed_in(principal(request))


#: the model ``read_json`` read the request's body with (what the OpenAPI test checker
#: compares with the route's documented body, ``live.openapi.AnswerChecker``)
body_model_key: web.RequestKey[type[BaseModel]] = web.RequestKey("body_model")


async def read_json(request: web.Request, model: type[ModelT]) -> ModelT:
    """The request body validated against ``model``; 4xx with a code if it is not."""
    read_as: type[BaseModel] = model
    request[body_model_key] = read_as
    too_large = TooLarge("body_too_large", f"the body is over {MAX_JSON_BYTES} bytes")
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise too_large
    if request.content_type not in ("application/json", ""):
        raise InvalidInput("unsupported_media_type", "send the body as application/json")
    raw = await read_body(request, MAX_JSON_BYTES, too_large)
    return validate_json(model, raw or b"{}")


async def read_body(request: web.Request, limit: int, too_large: Exception) -> bytes:
    """The request body: ``too_large`` past ``limit`` bytes (from Content-Length before
    reading, or while reading a chunked one); ``408 body_timeout`` if it has not all
    arrived within the body timeout (a client trickling its body would hold a handler
    for as long as it likes), and that answer closes the connection."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    timeout_s = request.config_dict.get(body_timeout_key, DEFAULT_BODY_TIMEOUT_S)
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await request.content.read(limit + 1 - len(body)):
                body += chunk
                if len(body) > limit:
                    raise too_large
    except TimeoutError:
        raise TimedOut(
            "body_timeout", f"the request body did not arrive within {timeout_s:g} s"
        ) from None
    return bytes(body)


#: the largest id a table has (ids are 32-bit integer columns)
MAX_ID = 2**31 - 1


def path_id(request: web.Request, name: str = "id") -> int:
    """An integer path parameter; 404 if it is not one, or past any id's range."""
    value = request.match_info.get(name, "")
    if not _is_digits(value) or len(value) > 10 or int(value) > MAX_ID:
        raise NotFound("not_found", f"no such {name}")
    return int(value)


def query_int(
    request: web.Request, name: str, *, minimum: int = 0, maximum: int = 2**53
) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return None
    digits = value.removeprefix("-")
    if not _is_digits(digits) or len(digits) > 18 or not minimum <= int(value) <= maximum:
        raise InvalidInput(
            "invalid_query", f"'{name}' must be an integer in [{minimum}, {maximum}]"
        )
    return int(value)


def page_query(
    request: web.Request, *, maximum: int, default: int = 50, newest_first: bool = True
) -> Page:
    """``?limit=`` (1..``maximum``, else ``default``) and the cursor (``before_id`` for a
    newest-first list, ``after_id`` for an oldest-first one): see ``live.paging``.

    A ``limit`` over ``maximum`` is 422 ``page_too_large`` (``details.max_limit``); one
    that is not a positive integer, or a bad cursor, is 400 ``invalid_query``.
    """
    text = request.query.get("limit", "")
    if _is_digits(text) and (len(text) > 18 or int(text) > maximum):
        raise Unprocessable(
            "page_too_large", f"'limit' is at most {maximum} here", max_limit=maximum
        )
    limit = query_int(request, "limit", minimum=1, maximum=maximum) or default
    cursor_name = "before_id" if newest_first else "after_id"
    cursor = query_int(request, cursor_name, maximum=MAX_ID)
    return Page(limit, cursor, newest_first)


def _is_digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes "²", which ``int`` refuses (a 500),
    and ``int`` refuses any text past 4300 digits (callers bound the length first)."""
    return text.isascii() and text.isdigit()
