"""Requests and calls from one media worker of a node to another (``media.cluster``
says who does what).

``MediaForwarder`` is one worker's way to another. ``forward`` passes an HTTP request
on as it came (method, path, the headers that matter, the body streamed, so the other
worker's own limits and answers apply) and streams the answer back: WHIP and the
recording and cover downloads go to the media home, a viewer's PATCH/DELETE to the
worker holding it, a new viewer to the worker placement chose. Its ``MediaControl``
calls (a session ended, a pin's media time, a guest viewer claimed) and its pulls go
to the other worker's ``/internal/media/...`` routes (``media.internal``, the
receiving side), carrying ``X-Liveshelf-Internal`` with a token derived from
``LIVESHELF_SECRET`` (``internal_token``; ``is_internal`` checks it).

A worker that cannot be reached (it is restarting) makes the request a ``503
media_unavailable`` with ``Retry-After``. A pull the origin refuses reaches the viewer
as the media service's own refusal it was (``MEDIA_REFUSALS``), or as ``503
media_unavailable`` when it is none of those.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from live.errors import LiveshelfError, Unavailable
from live.http import Handler, error_from_answer, error_response

from .cors import media_application
from .pull import MediaProcess, Pulled

log = logging.getLogger(__name__)

INTERNAL_HEADER = "X-Liveshelf-Internal"
#: on a pull and its answer: the worker process at that end, ``NODE:INDEX:PID``
WORKER_HEADER = "X-Liveshelf-Worker"

#: Request headers passed on to the home (the rest, e.g. hop-by-hop ones, are not).
_REQUEST_HEADERS = (
    "Authorization",
    "Cookie",  # the guest cookie: a placed WHEP viewer is counted as its person
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Range",
    "Range",
    "Origin",
    "Access-Control-Request-Method",
    "Access-Control-Request-Headers",
)
#: Answer headers not copied back: aiohttp sets its own framing, and the forwarding
#: worker's WHIP/WHEP sub-applications add the CORS headers as the home would.
_DROPPED_ANSWER_HEADERS = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Transfer-Encoding",
        "Content-Length",
        "Date",
        "Server",
        "Access-Control-Allow-Origin",
        "Access-Control-Expose-Headers",
        "Vary",
    )
)
_CHUNK = 64 * 1024


def internal_token(secret: str) -> str:
    """The token workers show each other (not usable as an API token)."""
    return hmac.new(secret.encode(), b"liveshelf internal media v1", hashlib.sha256).hexdigest()


def is_internal(request: web.Request, token: str) -> bool:
    """Whether the request comes from one of liveshelf's own workers."""
    shown = request.headers.get(INTERNAL_HEADER, "")
    return hmac.compare_digest(shown.encode(), token.encode())


class MediaForwarder:
    """A worker's way to another worker (the media home, or a resource's owner): request
    forwarding, ``MediaControl`` calls and, towards the home, ``Upstream`` pulls."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self._url = url.rstrip("/")
        self._token = token
        # No total: a recording download may take longer; a stalled home may not.
        self._timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=timeout_s)
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            # No pooled-connection limit: each forwarded request holds one only while
            # it runs; the home is on this machine.
            connector = aiohttp.TCPConnector(limit=0)
            self._http = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, auto_decompress=False
            )
        return self._http

    # -- HTTP forwarding -------------------------------------------------------------

    def _unavailable(self, request: web.Request, exc: Exception) -> web.Response:
        log.warning(
            "media worker %s did not answer %s %s: %r",
            self._url,
            request.method,
            request.path,
            exc,
        )
        message = "media is restarting; try again in a few seconds"
        return error_response(Unavailable("media_unavailable", message))

    async def forward(
        self,
        request: web.Request,
        extra: dict[str, str] | None = None,
        body: bytes | None = None,
        *,
        unless: str | None = None,
    ) -> web.StreamResponse | None:
        """Send ``request`` to the worker as it came (plus ``extra`` headers; ``body``
        instead of streaming the request's own); answer with what the worker answers.
        With ``unless``, a 503 carrying that error code is not passed on: None; nor,
        with ``unless`` and ``body``, a worker that takes no connection (nothing reached
        it: a restarted worker reports its load before it listens)."""
        headers = CIMultiDict(
            (name, value) for name in _REQUEST_HEADERS for value in request.headers.getall(name, ())
        )
        headers.update(extra or {})
        # The body streams through: the worker applies its own limits to it.
        data: Any = body if body is not None else request.content if request.body_exists else None
        try:
            upstream = await self._client().request(
                request.method,
                self._url + request.path_qs,
                headers=headers,
                data=data,
                allow_redirects=False,
            )
        except aiohttp.ClientConnectorError as exc:
            if unless is not None and body is not None:
                log.info("media worker %s takes no connection: %r", self._url, exc)
                return None
            return self._unavailable(request, exc)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            return self._unavailable(request, exc)
        async with upstream:
            if unless is not None and upstream.status == 503:
                text = await upstream.read()
                if _error_code(text) == unless:
                    return None
                return web.Response(status=503, body=text, headers=self._answer_headers(upstream))
            answer = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            answer.headers.extend(self._answer_headers(upstream))
            if upstream.content_length is not None:
                answer.content_length = upstream.content_length
            await answer.prepare(request)
            async for chunk in upstream.content.iter_chunked(_CHUNK):
                await answer.write(chunk)
            await answer.write_eof()
            return answer

    @staticmethod
    def _answer_headers(upstream: aiohttp.ClientResponse) -> CIMultiDict[str]:
        return CIMultiDict(
            (name, value)
            for name, value in upstream.headers.items()
            if name.lower() not in _DROPPED_ANSWER_HEADERS
        )

    async def pass_on(self, request: web.Request) -> web.StreamResponse:
        """``forward`` as a request handler."""
        answer = await self.forward(request)
        assert answer is not None  # nothing is held back without ``unless``
        return answer

    def forwarding(self, routes: Iterable[web.RouteDef]) -> list[web.RouteDef]:
        """``routes`` (the worker's, e.g. the recording and cover downloads) with
        every request passed on: the same methods and paths, and the same operations
        in the API document (``live.openapi``), as where they are served."""
        return [
            web.RouteDef(route.method, route.path, self._passing_on(route.handler), route.kwargs)
            for route in routes
        ]

    def application(self, routes: Iterable[web.RouteDef], cors_origin: str) -> web.Application:
        """A ``/whip`` or ``/whep`` sub-application forwarding ``routes`` (the worker's
        own), with the CORS headers the worker's add (also on this worker's own errors:
        a 401, or a 404/405 for a path or method none of them takes)."""
        return media_application(self.forwarding(routes), cors_origin)

    def _passing_on(self, served: Handler) -> Handler:
        """``pass_on`` dressed as ``served`` (its name, docstring and operation)."""

        @functools.wraps(served)
        async def pass_on(request: web.Request) -> web.StreamResponse:
            return await self.pass_on(request)

        return pass_on

    # -- MediaControl ----------------------------------------------------------------

    async def end_session(self, session_id: int, *, whole_node: bool = False) -> None:
        """End the session's media in that worker (``whole_node``: in every worker of
        its node, that node's relay worker last, not closing the session's watch
        intervals: the node that ends the session does that after all)."""
        scope = "?scope=node" if whole_node else ""
        try:
            await self._call("POST", f"/internal/media/{session_id}/end{scope}", None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # The session's end is committed; a home that cannot be reached has most
            # likely lost its peers (it restarts empty), and must not fail the request.
            log.warning("media home could not end session %d: %r", session_id, exc)

    async def media_time(self, session_id: int) -> float | None:
        try:
            answer = await self._call("GET", f"/internal/media/{session_id}/time", None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # A pin is still worth placing without its replay offset.
            log.warning("media time of session %d unknown: %r", session_id, exc)
            return None
        value = answer.get("media_time_s")
        return float(value) if value is not None else None

    async def answers(self) -> None:
        """Return once the worker answered its internal status; raise if it did not
        (a worker's ``/readyz`` asks the home; the caller bounds the time)."""
        await self._call("GET", "/internal/media/status", None)

    async def holds_publisher(self, session_id: int) -> bool | None:
        """Whether this worker holds a connected publisher of the session; None when it
        cannot be asked (it is down or restarting)."""
        try:
            answer = await self._call("GET", "/internal/media/status", None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("media worker %s not asked about its publisher: %r", self._url, exc)
            return None
        return bool(answer["sessions"].get(str(session_id), {}).get("holds_publisher"))

    async def identify_viewer(self, session_id: int, resource_id: str, user_id: int) -> bool:
        body = {"resource_id": resource_id, "user_id": user_id}
        try:
            answer = await self._call("POST", f"/internal/media/{session_id}/identify", body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("media home could not identify a viewer of %d: %r", session_id, exc)
            return False
        return bool(answer.get("claimed"))

    # -- Upstream (this worker is an edge; the home is every session's origin) ------

    async def pull(self, session_id: int, offer_sdp: str, puller: MediaProcess) -> Pulled:
        """Pull the session from this worker, as ``puller``."""
        headers = {
            INTERNAL_HEADER: self._token,
            "Content-Type": "application/sdp",
            WORKER_HEADER: puller.header(),
        }
        try:
            async with self._client().post(
                f"{self._url}/internal/media/{session_id}/pull",
                data=offer_sdp.encode(),
                headers=headers,
            ) as res:
                if res.status != 201:
                    raise _refusal(res.status, await res.read())
                resource_id = res.headers.get("X-Resource-Id", "")
                origin = MediaProcess.from_header(res.headers.get(WORKER_HEADER, ""))
                return Pulled(resource_id, await res.text(), origin)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable("media_unavailable", f"the session's origin: {exc!r}") from exc

    async def release(self, session_id: int, resource_id: str) -> None:
        try:
            await self._call("DELETE", f"/internal/media/{session_id}/pull/{resource_id}", None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Unavailable("media_unavailable", f"the session's origin: {exc!r}") from exc

    async def _call(self, method: str, path: str, body: Any) -> dict[str, Any]:
        async with self._client().request(
            method, self._url + path, json=body, headers={INTERNAL_HEADER: self._token}
        ) as res:
            res.raise_for_status()
            answer: dict[str, Any] = await res.json()
            return answer


def _error_code(body: bytes) -> str | None:
    """The ``error.code`` of a JSON error body, if it is one."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code if isinstance(code, str) else None


#: The codes of the media service's own refusals (media/README.md, "Errors"): a pull
#: refused with one of these reaches the viewer as it came (its kind, so its status;
#: its code, message and details, so its ``Retry-After``). Any other refusal (the
#: origin's internal route refusing this worker, a dependency outage there) is no fault
#: of the viewer's: ``503 media_unavailable``.
MEDIA_REFUSALS = frozenset(
    {
        "invalid_sdp",
        "sdp_too_large",
        "codec_mismatch",
        "publisher_exists",
        "not_found",
        "no_publisher",
        "etag_mismatch",
        "ice_restart_unsupported",
        "closed",
        "media_unavailable",
        "media_full",
        "too_many_peers",
        "session_ended",
    }
)


def _refusal(status: int, body: bytes) -> LiveshelfError:
    """The origin's refusal of a pull as the error it was (``MEDIA_REFUSALS``)."""
    refused = error_from_answer(status, body)
    if refused is None:
        return Unavailable("media_unavailable", f"the session's origin answered {status}")
    if refused.code in MEDIA_REFUSALS:
        return refused
    message = f"the session's origin: {refused.code}: {refused.message}"
    return Unavailable("media_unavailable", message)
