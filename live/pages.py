"""The web apps' pages: each path serves one static page whose ES modules do the rest;
the static files; the site's icon; and the HTML not-found page for every path outside
``/api`` that nothing else serves (an unknown path under ``/api`` stays a JSON 404).

Pages and static files carry the security headers (``live.http``). A page hands the
browser its guest cookie (``live.guests``). A page about one session whose id names no
session is the not-found page at once (``SESSION_PAGES``; the watch page shows its own
not-found state)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from live.errors import NotFound
from live.feature import Core
from live.guard import Guard
from live.guests import GuestIds
from live.handlers import give_guest_cookie
from live.http import SECURITY_HEADERS, path_id, security_headers
from live.openapi import not_in_api
from live.sessions import SessionService

log = logging.getLogger(__name__)

#: The web apps: each path serves one static page; the page's ES modules do the rest.
PAGES = {
    "/": "index.html",
    "/watch/{id:\\d+}": "watch.html",
    "/replay/{id:\\d+}": "replay.html",
    "/studio": "studio.html",
    "/brand": "brand.html",
    "/studio/{id:\\d+}/stats": "stats.html",
}
#: Pages about one session whose id is looked up before the page is sent: an id with no
#: session gets the not-found page (404) at once. (``/watch/{id}`` shows its own state.)
SESSION_PAGES = frozenset({"/replay/{id:\\d+}", "/studio/{id:\\d+}/stats"})
#: Every path outside ``/api`` (an unknown one under ``/api`` stays a JSON 404).
OUTSIDE_API = "/{path:(?!api(?:/|$)).*}"


def add_pages(app: web.Application, core: Core, static_dir: Path) -> None:
    """The static files, the pages, the favicon, and last (so any other route matches
    first) the HTML not-found page for what none of them is; all with the security
    headers (``live.http``)."""
    not_found = _not_found_page((static_dir / "notfound.html").read_bytes())
    static = web.Application()
    static.router.add_static("/", static_dir)
    static.on_response_prepare.append(security_headers)
    static.middlewares.append(_missing_file_page(not_found, static_dir))
    app.add_subapp("/static", static)
    for path, page in PAGES.items():
        sessions = core.sessions if path in SESSION_PAGES else None
        handler = _page(static_dir / page, core.guests, core.guard, sessions, not_found)
        app.router.add_get(path, handler)
    app.router.add_get("/favicon.ico", _favicon(static_dir / "favicon.svg"))
    app.router.add_get(OUTSIDE_API, not_found)


def _page(
    path: Path,
    guests: GuestIds,
    guard: Guard,
    sessions: SessionService | None = None,
    not_found: Any = None,
) -> Any:
    """A page's handler; it also hands the browser its guest cookie (``live.guests``).
    With ``sessions``, the path's id must be a session's, else ``not_found`` answers."""

    @not_in_api("a page of the web app")
    async def page(request: web.Request) -> web.StreamResponse:
        if sessions is not None and not await _session_exists(sessions, request):
            return await not_found(request)  # type: ignore[no-any-return]
        response = web.FileResponse(path, headers={"Cache-Control": "no-cache", **SECURITY_HEADERS})
        await give_guest_cookie(request, response, guests, guard)
        return response

    return page


async def _session_exists(sessions: SessionService, request: web.Request) -> bool:
    try:
        await sessions.get_row(path_id(request))
    except NotFound:
        return False
    except Exception:  # the database is unwell: the page's scripts say so
        log.debug("could not look up the session of %s", request.path, exc_info=True)
    return True


def _not_found_page(body: bytes) -> Any:
    """The HTML 404 page (``static/notfound.html``) for any path outside the API."""

    @not_in_api("the not-found page of the web app")
    async def not_found(_request: web.Request) -> web.Response:
        return web.Response(
            body=body,
            status=404,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-cache", **SECURITY_HEADERS},
        )

    return not_found


def _missing_file_page(not_found: Any, static_dir: Path) -> Any:
    """A middleware of the static files: a missing one is the not-found page too."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        # aiohttp answers a missing file with an empty 404 when it sends the answer,
        # too late to swap it: look first (off the loop, as aiohttp does).
        name = request.match_info.get("filename", "")
        if not await asyncio.to_thread(_static_file_exists, static_dir, name):
            return await not_found(request)  # type: ignore[no-any-return]
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except web.HTTPNotFound:
            return await not_found(request)  # type: ignore[no-any-return]

    return middleware


def _static_file_exists(static_dir: Path, name: str) -> bool:
    """Whether ``name`` is a file under ``static_dir`` (nothing outside it is looked at)."""
    file = (static_dir / name).resolve()
    return file.is_relative_to(static_dir.resolve()) and file.is_file()


def _favicon(icon: Path) -> Any:
    @not_in_api("the site's icon (an SVG, also at /static/favicon.svg)")
    async def favicon(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(
            icon,
            headers={
                "Content-Type": "image/svg+xml",
                "Cache-Control": "public, max-age=86400",
                **SECURITY_HEADERS,
            },
        )

    return favicon
