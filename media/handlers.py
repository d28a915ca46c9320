"""WHIP (RFC 9725) and WHEP HTTP routes, recordings and covers (see ``media/README.md``).

The only module of ``media/`` that knows about HTTP: it authenticates the caller,
checks the session's state, bounds and reads the SDP, and turns ``MediaService``
results into WHIP/WHEP responses. Refusals are ``live.errors`` kinds, here and in
``MediaService``; the app's error middleware renders them like any route's
(``live.http.error_response``: ``{"error": {"code", "message"}}``, the kind's status,
``Retry-After`` on a 503 or where the error sets ``retry_after_ms``).

Routes (``{kind}`` is ``whip`` or ``whep``)::

    POST    /{kind}/{session_id}                 offer (application/sdp) -> 201 + answer
    PATCH   /{kind}/{session_id}/{resource_id}   trickle ICE (application/trickle-ice-sdpfrag)
    DELETE  /{kind}/{session_id}/{resource_id}   end the ingest / playback
    OPTIONS both of the above                    CORS preflight, Accept-Post / Accept-Patch
    GET     /api/sessions/{id}/recording         the recording (Range requests; video/webm
                                                 for VP8; for H.264 video/mp4 once its
                                                 copy is written after the session
                                                 ended, video/x-matroska until then)
    GET     /api/sessions/{id}/cover.jpg         the latest cover picture
    GET     /api/sessions/{id}/media-endpoint    the WHEP URL to play from (the node chosen
                                                 for the caller, with a signed token)

and the ``recording`` part of ``GET /api/sessions/{id}`` (``recording_details``).

A WHEP offer may carry ``?token=`` from the media endpoint (or a full node's ``307``):
it stands for the caller's ``Authorization`` (which a browser drops on a cross-origin
redirect), and such requests are answered with ``Access-Control-Allow-Origin: *``
(after a cross-origin redirect the request's ``Origin`` is ``null``).

Every response on a ``/whip/`` or ``/whep/`` path, errors included (also those the
auth middleware renders for a bad token, and the router's 404/405), carries the CORS
headers: WHIP and WHEP are sub-applications (``applications()``) whose own
``on_response_prepare`` adds them, so the rest of the API does not run the hook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import quote

from aiohttp import web
from multidict import CIMultiDict

from live.auth import Principal
from live.errors import Conflict, InvalidInput, NotFound, TooLarge, UnsupportedMediaType
from live.guests import GUEST_COOKIE, GuestIds
from live.http import (
    json_response,
    path_id,
    principal,
    read_body,
    security_headers,
    signed_in,
)
from live.models import Role, SessionStatus
from live.sessions import SessionService

from .config import MediaConfig
from .protocol import Resource
from .recording import MATROSKA_MIME, MP4_MIME, incomplete_reason, recording_mime
from .service import MediaService
from .tokens import MediaTokens

Kind = Literal["whip", "whep"]

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"
ENDPOINT_METHODS = "POST, OPTIONS"
RESOURCE_METHODS = "PATCH, DELETE, OPTIONS"
ALLOW_HEADERS = "Authorization, Content-Type, If-Match"
EXPOSE_HEADERS = "Location, ETag, Link, Accept-Patch, Liveshelf-Recording"
PREFLIGHT_MAX_AGE_S = 600
_ROLE: dict[Kind, Literal["publisher", "viewer"]] = {"whip": "publisher", "whep": "viewer"}
#: what ``GET /api/sessions/{id}`` says of the session's recording (``recording_details``)
RECORDING_STATES = ("none", "recording", "off", "incomplete", "complete")


class ViewerPlacement(Protocol):
    """Where a new WHEP viewer goes when several workers serve media
    (``media.cluster.WorkerGroup``)."""

    async def place(
        self,
        request: web.Request,
        session_id: int,
        offer: bytes,
        user_id: int | None,
        address: str,
        guest_id: str | None = None,
    ) -> web.StreamResponse | None:
        """None: serve the viewer here (``address``: the client's; ``guest_id`` its
        verified guest id, for the token of a redirect). Else the answer
        of the worker that served it (or a refusal: ``media_full``; or a redirect to
        another node); raises a ``live.errors`` kind to refuse."""
        ...

    async def endpoint(self, session_id: int, user_id: int | None) -> tuple[str, str]:
        """The node a new viewer should play from: its name and public URL, or
        ``("", "")`` for this server itself; ``media_full`` if every node is full."""
        ...


class ClientCheck(Protocol):
    """Who a WHEP viewer is, and whether it may offer now (``live.guard``)."""

    def address(self, request: web.Request) -> str:
        """The client's address (as another worker passed it on, for a placed offer)."""
        ...

    async def offered(
        self, request: web.Request, session_id: int, address: str, user_id: int | None
    ) -> None:
        """Count the offer (per address, and per user when ``user_id`` is given);
        ``RateLimited`` (429) past the rate (placed offers were counted by the worker
        that placed them)."""
        ...


class MediaHandlers:
    """WHIP/WHEP endpoints and recording downloads over ``MediaService``."""

    def __init__(
        self,
        media: MediaService,
        sessions: SessionService,
        config: MediaConfig,
        *,
        tokens: MediaTokens,
        node: str = "",
        cors_origin: str = "*",
        placement: ViewerPlacement | None = None,
        clients: ClientCheck | None = None,
        guests: GuestIds | None = None,
    ) -> None:
        """``placement`` (several workers) may send a new viewer to another worker or
        node; ``tokens`` check the media URLs of ``node`` (this one); ``clients`` says
        who a viewer is and how often it may offer; ``guests`` names the person a
        viewer is counted as (``live.guests``; without it, each viewer is one)."""
        self._placement = placement
        self._clients = clients
        self._guests = guests
        self._tokens = tokens
        self._node = node
        self._media = media
        self._sessions = sessions
        self._config = config
        self._cors_origin = cors_origin
        #: each recording's MIME type, once its header was on disk: at most 10,000
        #: recordings, then emptied
        self._mimes: dict[Path, str] = {}

    def applications(self) -> dict[str, web.Application]:
        """``{"/whip": ..., "/whep": ...}``: the WHIP and WHEP routes, each a
        sub-application to mount at its prefix (``app.add_subapp``)."""
        apps = {}
        add_cors = cors_hook(self._cors_origin)
        for kind in ("whip", "whep"):
            post = self.publish if kind == "whip" else self.play
            patch = self.patch_publisher if kind == "whip" else self.patch_viewer
            delete = self.delete_publisher if kind == "whip" else self.delete_viewer
            app = web.Application()
            app.add_routes(
                [
                    web.post("/{session_id}", post),
                    web.route("OPTIONS", "/{session_id}", self.options_endpoint),
                    web.patch("/{session_id}/{resource_id}", patch),
                    web.delete("/{session_id}/{resource_id}", delete),
                    web.route("OPTIONS", "/{session_id}/{resource_id}", self.options_resource),
                ]
            )
            app.on_response_prepare.append(add_cors)
            app.on_response_prepare.append(security_headers)
            apps[f"/{kind}"] = app
        return apps

    def endpoint_routes(self) -> list[web.RouteDef]:
        """The media endpoint (on the main application, in every worker)."""
        return [web.get("/api/sessions/{id}/media-endpoint", self.media_endpoint)]

    async def recording_details(
        self, session_id: int, session: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The ``GET /api/sessions/{id}`` part (``Core.session_details``): ``{"recording":
        {"state": ..., "reason": ...}}``, ``state`` one of ``RECORDING_STATES``, ``reason``
        only for ``off`` and ``incomplete`` (media/README.md, "Recording status")."""
        state, reason = self._media.recording_state(session_id) or (
            await self._recording_on_disk(session_id, str(session["status"]))
        )
        status: dict[str, Any] = {"state": state}
        if reason is not None:
            status["reason"] = reason[:200]
        return {"recording": status}

    def routes(self) -> list[web.RouteDef]:
        """Recordings and covers (on the main application)."""
        return [
            web.get("/api/sessions/{id}/recording", self.recording),
            web.get("/api/sessions/{id}/cover.jpg", self.cover),
        ]

    # -- WHIP: the session's host ------------------------------------------------------

    async def publish(self, request: web.Request) -> web.Response:
        session_id = path_id(request, "session_id")
        caller = signed_in(request)
        row = await self._sessions.owned(caller, session_id)
        _refuse_ended(row.status)
        offer = await self._read_sdp(request, SDP)
        resource = await self._media.publish(session_id, offer)
        # The session may have ended while we negotiated: its end listener has
        # already cleared the media, so this publisher must not survive it.
        if (await self._sessions.get_row(session_id)).status == SessionStatus.ENDED.value:
            await self._media.end_session(session_id)
            raise Conflict("session_ended", "the session has ended")
        return self._created("whip", resource)

    async def patch_publisher(self, request: web.Request) -> web.Response:
        await self._sessions.owned(signed_in(request), path_id(request, "session_id"))
        return await self._patch(request, "whip")

    async def delete_publisher(self, request: web.Request) -> web.Response:
        await self._sessions.owned(signed_in(request), path_id(request, "session_id"))
        return await self._delete(request, "whip")

    # -- WHEP: anyone allowed to watch ---------------------------------------------------

    async def play(self, request: web.Request) -> web.StreamResponse:
        session_id = path_id(request, "session_id")
        token = request.query.get("token")
        guest_id = None
        if token is not None:  # it stands for the caller (a redirect drops Authorization)
            grant = self._tokens.check(token, session_id, self._node)
            user_id, guest_id = grant.user_id, grant.guest_id
        else:
            caller = principal(request)
            user_id = caller.user_id if caller is not None else None
        if guest_id is None and user_id is None:
            guest_id = self._guest_id(request)
        row = await self._sessions.get_row(session_id)
        _refuse_ended(row.status)
        if row.status != SessionStatus.LIVE.value and not (
            _is_host(principal(request), row.host_id) or (user_id and user_id == row.host_id)
        ):
            # A scheduled session: only its host may preview it.
            raise Conflict("session_not_live", "the session has not started yet")
        offer = await self._read_sdp(request, SDP)
        address = ""
        if self._clients is not None:
            address = self._clients.address(request)
            await self._clients.offered(request, session_id, address, user_id)
        if self._placement is not None:
            elsewhere = await self._placement.place(
                request, session_id, offer.encode(), user_id, address, guest_id
            )
            if elsewhere is not None:
                return elsewhere
        person = ""
        if self._guests is not None:
            person = self._guests.person_for(user_id, guest_id, address or request.remote or "")
        resource = await self._media.play(
            session_id, offer, user_id, address=address, person=person
        )
        return self._created("whep", resource)

    async def media_endpoint(self, request: web.Request) -> web.Response:
        """Where the caller plays the session from: ``{"url", "node", "expires_at"}``;
        the URL's token stands for the caller (``Authorization`` is not needed there)."""
        session_id = path_id(request)
        caller = principal(request)
        row = await self._sessions.get_row(session_id)
        _refuse_ended(row.status)
        if row.status != SessionStatus.LIVE.value and not _is_host(caller, row.host_id):
            raise Conflict("session_not_live", "the session has not started yet")
        user_id = caller.user_id if caller is not None else None
        guest_id = None if user_id is not None else self._guest_id(request)
        node, base = self._node, ""  # this server itself: a URL relative to it
        if self._placement is not None:
            chosen, base = await self._placement.endpoint(session_id, user_id)
            node = chosen or node
        token, expires_at = self._tokens.issue(session_id, node, user_id, guest_id)
        url = f"{base}/whep/{session_id}?token={quote(token)}"
        return json_response({"url": url, "node": node, "expires_at": expires_at})

    async def patch_viewer(self, request: web.Request) -> web.Response:
        return await self._patch(request, "whep")

    async def delete_viewer(self, request: web.Request) -> web.Response:
        return await self._delete(request, "whep")

    # -- OPTIONS (CORS preflight) ------------------------------------------------------

    async def options_endpoint(self, _request: web.Request) -> web.Response:
        headers = self._preflight(ENDPOINT_METHODS)
        headers["Accept-Post"] = SDP
        return web.Response(status=204, headers=headers)

    async def options_resource(self, _request: web.Request) -> web.Response:
        headers = self._preflight(RESOURCE_METHODS)
        headers["Accept-Patch"] = SDPFRAG
        return web.Response(status=204, headers=headers)

    # -- recordings: anyone, for live and ended sessions ---------------------------------

    async def recording(self, request: web.Request) -> web.FileResponse:
        session_id = path_id(request)
        row = await self._sessions.get_row(session_id)
        cut_short = self._cut_short(session_id)
        if row.status == SessionStatus.ENDED.value:
            mp4 = self._on_disk(session_id, "mp4")  # whole: renamed when written
            if mp4 is not None:
                return web.FileResponse(mp4, headers={"Content-Type": MP4_MIME, **cut_short})
        path = self._media.recording_path(session_id) or self._on_disk(session_id, "mkv")
        if row.status == SessionStatus.SCHEDULED.value or path is None:
            raise NotFound("no_recording", f"session {session_id} has no recording")
        content_type = self._mimes.get(path)
        if content_type is None:
            try:
                mime, complete = await asyncio.to_thread(_header_mime, path)
            except FileNotFoundError:  # started, but the writer has not created it yet
                raise NotFound("no_recording", f"session {session_id} has no recording") from None
            content_type = mime
            if complete:
                if len(self._mimes) > 10_000:
                    self._mimes.clear()
                self._mimes[path] = content_type
        if (
            content_type == MATROSKA_MIME
            and row.status == SessionStatus.ENDED.value
            and self._media.recording_path(session_id) is None
        ):
            # An ended H.264 show without its MP4 copy: a crash came between; redo it.
            self._media.copy_to_mp4(path)
        return web.FileResponse(path, headers={"Content-Type": content_type, **cut_short})

    async def cover(self, request: web.Request) -> web.FileResponse:
        session_id = path_id(request)
        row = await self._sessions.get_row(session_id)
        path = self._media.cover_path(session_id) or self._on_disk(session_id, "jpg")
        if row.status == SessionStatus.SCHEDULED.value or path is None:
            raise NotFound("no_cover", f"session {session_id} has no cover picture")
        return web.FileResponse(
            path, headers={"Content-Type": "image/jpeg", "Cache-Control": "no-cache"}
        )

    # -- internals ---------------------------------------------------------------------

    async def _patch(self, request: web.Request, kind: Kind) -> web.Response:
        resource_id = self._resource_id(request, kind)
        fragment = await self._read_sdp(request, SDPFRAG)
        await self._media.patch(resource_id, fragment, request.headers.get("If-Match"))
        return web.Response(status=204)

    async def _delete(self, request: web.Request, kind: Kind) -> web.Response:
        await self._media.delete(self._resource_id(request, kind))
        return web.Response(status=200)

    def _resource_id(self, request: web.Request, kind: Kind) -> str:
        """The resource named by the URL, if it is a ``kind`` resource of that
        session; ``not_found`` otherwise (so a WHEP id never works on /whip)."""
        session_id = path_id(request, "session_id")
        resource_id = request.match_info["resource_id"]
        if self._media.resource_owner(resource_id) != (session_id, _ROLE[kind]):
            raise NotFound("not_found", "no such media resource")
        return resource_id

    async def _read_sdp(self, request: web.Request, content_type: str) -> str:
        """The body as text: 415 for another type, 413 past ``max_sdp_bytes``
        (from Content-Length before reading, or while reading a chunked body)."""
        if request.content_type.lower() != content_type:
            raise UnsupportedMediaType("unsupported_media_type", f"send the body as {content_type}")
        limit = self._config.max_sdp_bytes
        too_large = TooLarge("sdp_too_large", f"the body is larger than {limit} bytes")
        body = await read_body(request, limit, too_large)
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("invalid_sdp", "the body is not UTF-8 text") from None

    def _created(self, kind: Kind, resource: Resource) -> web.Response:
        headers: CIMultiDict[str] = CIMultiDict()
        headers["Content-Type"] = SDP
        headers["Location"] = f"/{kind}/{resource.session_id}/{resource.id}"
        headers["ETag"] = resource.etag
        headers["Accept-Patch"] = SDPFRAG
        for url in self._config.ice_servers:  # RFC 9725 section 4.6
            headers.add("Link", f'<{url}>; rel="ice-server"')
        if resource.recording_problem is not None:  # live, but not recorded: say why
            reason = resource.recording_problem.encode("ascii", "replace").decode()
            headers["Liveshelf-Recording"] = f"off; reason={reason[:200]}"
        return web.Response(status=201, body=resource.answer_sdp.encode(), headers=headers)

    def _preflight(self, methods: str) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        headers["Allow"] = methods
        headers["Access-Control-Allow-Methods"] = methods
        headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
        return headers

    def _guest_id(self, request: web.Request) -> str | None:
        """The guest id of the caller's signed guest cookie (``live.guests``), if any."""
        if self._guests is None:
            return None
        return self._guests.verify(request.cookies.get(GUEST_COOKIE))

    def _cut_short(self, session_id: int) -> dict[str, str]:
        """``Liveshelf-Recording: incomplete; reason=...`` for a recording that was cut
        short (a full disk: ``media.recording``); nothing for a whole one."""
        directory = self._config.recordings_dir
        if directory is None:
            return {}
        reason = incomplete_reason(directory / f"session-{session_id}.mkv")
        if reason is None:
            return {}
        text = reason.encode("ascii", "replace").decode().replace("\n", " ")
        return {"Liveshelf-Recording": f"incomplete; reason={text}"}

    async def _recording_on_disk(self, session_id: int, status: str) -> tuple[str, str | None]:
        """A recording this process does not hold (``MediaService.recording_state``),
        from the recordings folder: ``incomplete`` if marked so, else ``complete`` for an
        ended show's file, ``recording`` for a live one's (written by another worker or
        node), ``none`` without a file."""
        directory = self._config.recordings_dir
        if directory is None or status == SessionStatus.SCHEDULED.value:
            return ("none", None)
        mkv = directory / f"session-{session_id}.mkv"

        def look() -> tuple[bool, str | None]:
            return mkv.is_file() or mkv.with_suffix(".mp4").is_file(), incomplete_reason(mkv)

        exists, reason = await asyncio.to_thread(look)
        if reason is not None:
            return ("incomplete", reason)
        if not exists:
            return ("none", None)
        return ("complete" if status == SessionStatus.ENDED.value else "recording", None)

    def _on_disk(self, session_id: int, suffix: str) -> Path | None:
        """A finished session's file (the service forgets ended sessions); the
        name is ``SessionRecorder``'s."""
        directory = self._config.recordings_dir
        if directory is None:
            return None
        path = directory / f"session-{session_id}.{suffix}"
        return path if path.is_file() else None


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


def _header_mime(path: Path) -> tuple[str, bool]:
    """``recording_mime`` and whether the header it read was whole (the file held its
    first 64 bytes already: a recording just started may not have them yet)."""
    complete = path.stat().st_size >= 64
    return recording_mime(path), complete


def _refuse_ended(status: str) -> None:
    if status == SessionStatus.ENDED.value:
        raise Conflict("session_ended", "the session has ended")


def _is_host(caller: Principal | None, host_id: int) -> bool:
    return caller is not None and (caller.user_id == host_id or caller.role is Role.ADMIN)
