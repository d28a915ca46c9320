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
from live.openapi import Answer, Param, operation, query
from live.sessions import SessionService

from .answers import MediaEndpointAnswer
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

# -- the API document (``live.openapi``) -----------------------------------------------

TAG = "media"
_RESOURCE_ID = Param(
    "resource_id",
    "path",
    {"type": "string"},
    "as the offer's answer's Location names it (a random token; with several workers "
    "after ``w<worker>.``, with several nodes after ``<node>.w<worker>.``)",
)
_IF_MATCH = Param(
    "If-Match",
    "header",
    {"type": "string"},
    "the resource's ETag (412 etag_mismatch if not); ``*`` asks for an ICE restart, "
    "which is not supported (422 ice_restart_unsupported)",
)
_MEDIA_TOKEN = query(
    "token",
    {"type": "string"},
    "a media URL's token (``GET /api/sessions/{id}/media-endpoint``, or a full node's "
    "307): it stands for the caller, instead of Authorization",
)
_CREATED_HEADERS = {
    "Location": "the resource, relative to the URL that answered: PATCH and DELETE it",
    "ETag": "the ICE session (If-Match on PATCH)",
    "Accept-Patch": SDPFRAG,
    "Link": 'one per ICE server: ``<url>; rel="ice-server"`` (RFC 9725 s4.6)',
}
_SDP_ERRORS = (400, 408, 413, 415)
_PATCHED = Answer(204, description="the candidates were taken (or ignored: see ICE)")
_DELETED = Answer(200, description="ended (no body)")
_RANGE = Param(
    "Range",
    "header",
    {"type": "string"},
    "one byte range, ``bytes=<first>-[<last>]`` or ``bytes=-<suffix>`` (206); a malformed "
    "or unsatisfiable one is a 416",
)
_FILE_HEADERS = {
    "ETag": "the file's version (If-None-Match, If-Range)",
    "Last-Modified": "when the file was last written",
    "Accept-Ranges": "bytes",
}
_RECORDING_HEADERS = {
    **_FILE_HEADERS,
    "Liveshelf-Recording": "``incomplete; reason=...`` for a recording cut short (a full "
    "disk); absent for a whole one",
}
_RECORDING_TYPES = (
    "``video/webm`` (VP8), ``video/mp4`` (H.264, once its copy was written after the "
    "session ended) or ``video/x-matroska`` (H.264 until then)"
)
_NOT_MODIFIED = Answer(
    304,
    description="If-None-Match / If-Modified-Since: not modified",
    headers={name: _FILE_HEADERS[name] for name in ("ETag", "Last-Modified")},
)
_NO_PRECONDITION = Answer(412, description="If-Match / If-Unmodified-Since failed (no body)")


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
        return {
            f"/{kind}": media_application(self.kind_routes(kind), self._cors_origin)
            for kind in ("whip", "whep")
        }

    def kind_routes(self, kind: Kind) -> list[web.RouteDef]:
        """The routes of the ``/{kind}`` sub-application (paths relative to it)."""
        post = self.publish if kind == "whip" else self.play
        patch = self.patch_publisher if kind == "whip" else self.patch_viewer
        delete = self.delete_publisher if kind == "whip" else self.delete_viewer
        return [
            web.post("/{session_id}", post),
            web.route("OPTIONS", "/{session_id}", self.options_endpoint),
            web.patch("/{session_id}/{resource_id}", patch),
            web.delete("/{session_id}/{resource_id}", delete),
            web.route("OPTIONS", "/{session_id}/{resource_id}", self.options_resource),
        ]

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

    @operation(
        "WHIP: publish the session's stream",
        tag=TAG,
        roles=("host",),
        body_media_type=SDP,
        answers=Answer(
            201,
            media_type=SDP,
            description="the answer SDP (with all the server's candidates)",
            headers={
                **_CREATED_HEADERS,
                "Liveshelf-Recording": "``off; reason=...`` when the show goes live but "
                "cannot be recorded",
            },
        ),
        errors=(*_SDP_ERRORS, 406, 409),
    )
    async def publish(self, request: web.Request) -> web.Response:
        """The session's host (or an admin) offers its WebRTC stream (RFC 9725): one
        Opus audio and one VP8 or H.264 video section at most. Allowed while the
        session is scheduled (a preview) or live; one publisher at a time
        (``409 publisher_exists``)."""
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

    @operation(
        "WHIP: trickle ICE candidates",
        tag=TAG,
        roles=("host",),
        body_media_type=SDPFRAG,
        params=[_RESOURCE_ID, _IF_MATCH],
        answers=_PATCHED,
        errors=(*_SDP_ERRORS, 412, 422),
    )
    async def patch_publisher(self, request: web.Request) -> web.Response:
        """Candidates and/or ``a=end-of-candidates`` for the publisher's ICE session
        (RFC 8840); ICE restarts are not supported."""
        await self._sessions.owned(signed_in(request), path_id(request, "session_id"))
        return await self._patch(request, "whip")

    @operation(
        "WHIP: stop publishing",
        tag=TAG,
        roles=("host",),
        params=[_RESOURCE_ID],
        answers=_DELETED,
    )
    async def delete_publisher(self, request: web.Request) -> web.Response:
        """Ends the ingest: viewers stay connected and resume on the next publisher's
        first keyframe."""
        await self._sessions.owned(signed_in(request), path_id(request, "session_id"))
        return await self._delete(request, "whip")

    # -- WHEP: anyone allowed to watch ---------------------------------------------------

    @operation(
        "WHEP: play the session",
        tag=TAG,
        body_media_type=SDP,
        params=[_MEDIA_TOKEN],
        answers=[
            Answer(201, media_type=SDP, description="the answer SDP", headers=_CREATED_HEADERS),
            Answer(
                307,
                description="this node is full: offer again at Location (another node's "
                "WHEP URL, with a token)",
                headers={"Location": "the other node's WHEP URL"},
            ),
        ],
        errors=(*_SDP_ERRORS, 401, 406, 409),
    )
    async def play(self, request: web.Request) -> web.StreamResponse:
        """A viewer offers to receive the session's stream: anyone (guests too) while
        it is live, its host also before (a preview). The offer must receive; the
        session's video codec is the publisher's."""
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

    @operation(
        "Where to play the session from",
        tag=TAG,
        answers=Answer(200, MediaEndpointAnswer),
        errors=(409,),
    )
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

    @operation(
        "WHEP: trickle ICE candidates",
        tag=TAG,
        body_media_type=SDPFRAG,
        params=[_RESOURCE_ID, _IF_MATCH],
        answers=_PATCHED,
        errors=(*_SDP_ERRORS, 412, 422),
    )
    async def patch_viewer(self, request: web.Request) -> web.Response:
        """Candidates and/or ``a=end-of-candidates`` for the viewer's ICE session
        (RFC 8840): whoever holds the Location; ICE restarts are not supported."""
        return await self._patch(request, "whep")

    @operation("WHEP: stop playing", tag=TAG, params=[_RESOURCE_ID], answers=_DELETED)
    async def delete_viewer(self, request: web.Request) -> web.Response:
        """Ends the playback (whoever holds the Location)."""
        return await self._delete(request, "whep")

    # -- OPTIONS (CORS preflight) ------------------------------------------------------

    @operation(
        "CORS preflight of a WHIP or WHEP endpoint",
        tag=TAG,
        answers=Answer(
            204,
            headers={
                "Allow": ENDPOINT_METHODS,
                "Access-Control-Allow-Methods": ENDPOINT_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
                "Accept-Post": SDP,
            },
        ),
    )
    async def options_endpoint(self, _request: web.Request) -> web.Response:
        headers = self._preflight(ENDPOINT_METHODS)
        headers["Accept-Post"] = SDP
        return web.Response(status=204, headers=headers)

    @operation(
        "CORS preflight of a WHIP or WHEP resource",
        tag=TAG,
        params=[_RESOURCE_ID],
        answers=Answer(
            204,
            headers={
                "Allow": RESOURCE_METHODS,
                "Access-Control-Allow-Methods": RESOURCE_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
                "Accept-Patch": SDPFRAG,
            },
        ),
    )
    async def options_resource(self, _request: web.Request) -> web.Response:
        headers = self._preflight(RESOURCE_METHODS)
        headers["Accept-Patch"] = SDPFRAG
        return web.Response(status=204, headers=headers)

    # -- recordings: anyone, for live and ended sessions ---------------------------------

    @operation(
        "The session's recording",
        tag=TAG,
        params=[_RANGE],
        answers=[
            Answer(
                200,
                media_type="video/*",
                description=f"the whole recording: {_RECORDING_TYPES}",
                headers=_RECORDING_HEADERS,
            ),
            Answer(
                206,
                media_type="video/*",
                description="the range asked for",
                headers={**_RECORDING_HEADERS, "Content-Range": "``bytes <first>-<last>/<size>``"},
            ),
            _NOT_MODIFIED,
            _NO_PRECONDITION,
            Answer(
                416,
                description="the Range is malformed or past the end (no body)",
                headers={"Content-Range": "``bytes */<size>``"},
            ),
        ],
    )
    async def recording(self, request: web.Request) -> web.FileResponse:
        """The recording of a live or ended session, as far as it is written: WebM for
        VP8; for H.264 MP4 once its copy was written after the session ended, Matroska
        until then. ``404 no_recording`` before anything was recorded."""
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

    @operation(
        "The session's latest cover picture",
        tag=TAG,
        answers=[
            Answer(
                200,
                media_type="image/jpeg",
                headers={**_FILE_HEADERS, "Cache-Control": "no-cache"},
            ),
            _NOT_MODIFIED,
        ],
    )
    async def cover(self, request: web.Request) -> web.FileResponse:
        """A frame of the session's video, renewed while it is live (``404 no_cover``
        before the first)."""
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
