"""CORS of the WHIP and WHEP routes (see ``media/README.md``, "CORS").

WHIP and WHEP are sub-applications (``media_application``) whose own
``on_response_prepare`` hook (``cors_hook``) adds the CORS headers to every answer,
errors included (also those the auth middleware renders for a bad token, and the
router's 404/405), so the rest of the API does not run the hook. A URL with a media
token is answered with ``Access-Control-Allow-Origin: *``, whatever the configured
origin: the token is the credential, and after a cross-origin redirect the request's
``Origin`` is ``null``. ``preflight_headers`` are what an ``OPTIONS`` answers with
(``MediaHandlers.options_endpoint`` / ``options_resource``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

from live.http import security_headers

ENDPOINT_METHODS = "POST, OPTIONS"
RESOURCE_METHODS = "PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, If-Match"
EXPOSE_HEADERS = "Location, ETag, Link, Accept-Patch, Liveshelf-Recording"
PREFLIGHT_MAX_AGE_S = 600


def preflight_headers(methods: str) -> CIMultiDict[str]:
    """An ``OPTIONS`` answer's headers for a path allowing ``methods``."""
    headers: CIMultiDict[str] = CIMultiDict()
    headers["Allow"] = methods
    headers["Access-Control-Allow-Methods"] = methods
    headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
    headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
    return headers


def media_application(routes: list[web.RouteDef], cors_origin: str) -> web.Application:
    """A WHIP or WHEP sub-application of ``routes``, whose every answer (errors
    included) carries the CORS and security headers."""
    app = web.Application()
    app.add_routes(routes)
    app.on_response_prepare.append(cors_hook(cors_origin))
    app.on_response_prepare.append(security_headers)
    return app


def cors_hook(origin: str) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """An ``on_response_prepare`` hook adding the WHIP/WHEP CORS headers for ``origin``."""

    async def add_cors(request: web.Request, response: web.StreamResponse) -> None:
        # A URL with a media token: the token is the credential, whatever the origin
        # (after a cross-origin redirect it is "null")
        allowed = "*" if "token" in request.query else origin
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        if allowed != "*":
            response.headers.add("Vary", "Origin")

    return add_cors
