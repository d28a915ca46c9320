"""WHIP (RFC 9725) and WHEP HTTP routes (see ``media/README.md``).

The media's public HTTP routes, with ``media.recording_handlers`` (the recording and
cover downloads, mounted through ``MediaHandlers.routes``) and ``media.cors`` (the
WHIP/WHEP sub-applications' CORS): they authenticate the caller, check the session's
state, bound and read the SDP, and turn ``MediaService`` results into WHIP/WHEP
responses. Refusals are ``live.errors`` kinds, here and in ``MediaService``; the app's
error middleware renders them like any route's (``live.http.error_response``:
``{"error": {"code", "message"}}``, the kind's status, ``Retry-After`` on a 503 or
where the error sets ``retry_after_ms``). What the API document says of them is in
``media.apidoc``.

Routes (``{kind}`` is ``whip`` or ``whep``)::

    POST    /{kind}/{session_id}                 offer (application/sdp) -> 201 + answer
    PATCH   /{kind}/{session_id}/{resource_id}   trickle ICE (application/trickle-ice-sdpfrag)
    DELETE  /{kind}/{session_id}/{resource_id}   end the ingest / playback
    OPTIONS both of the above                    CORS preflight, Accept-Post / Accept-Patch
    GET     /api/sessions/{id}/media-endpoint    the WHEP URL to play from (the node chosen
                                                 for the caller, with a signed token)

and, from ``RecordingHandlers``, ``GET /api/sessions/{id}/recording`` and
``.../cover.jpg`` and the ``recording`` part of ``GET /api/sessions/{id}``
(``recording_details``).

A WHEP offer may carry ``?token=`` from the media endpoint (or a full node's ``307``):
it stands for the caller's ``Authorization`` (which a browser drops on a cross-origin
redirect), and such requests are answered with ``Access-Control-Allow-Origin: *``
(after a cross-origin redirect the request's ``Origin`` is ``null``).

Every response on a ``/whip/`` or ``/whep/`` path, errors included, carries the CORS
headers (``media.cors``): WHIP and WHEP are sub-applications (``applications()``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

from aiohttp import web
from multidict import CIMultiDict

from live.auth import Principal
from live.errors import Conflict, InvalidInput, NotFound, TooLarge, UnsupportedMediaType
from live.guests import GUEST_COOKIE, GuestIds
from live.http import json_response, path_id, principal, read_body, signed_in
from live.models import Role, SessionStatus
from live.openapi import Answer, operation
from live.sessions import SessionService

from .admission import ClientCheck, ViewerPlacement
from .answers import MediaEndpointAnswer
from .apidoc import (
    DELETED,
    ENDPOINT_PREFLIGHT,
    IF_MATCH,
    MEDIA_TOKEN,
    PATCHED,
    PLAYED,
    PUBLISHED,
    RESOURCE_ID,
    RESOURCE_PREFLIGHT,
    SDP,
    SDP_ERRORS,
    SDPFRAG,
    TAG,
)
from .config import MediaConfig
from .cors import ENDPOINT_METHODS, RESOURCE_METHODS, media_application, preflight_headers
from .protocol import Resource
from .recording_handlers import RecordingHandlers
from .service import MediaService
from .tokens import MediaTokens

Kind = Literal["whip", "whep"]

_ROLE: dict[Kind, Literal["publisher", "viewer"]] = {"whip": "publisher", "whep": "viewer"}


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
        self._recordings = RecordingHandlers(media, sessions, config)

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
        """The ``GET /api/sessions/{id}`` part (``Core.session_details``): the session's
        recording status (``RecordingHandlers.recording_details``)."""
        return await self._recordings.recording_details(session_id, session)

    def routes(self) -> list[web.RouteDef]:
        """Recordings and covers (on the main application; ``RecordingHandlers``)."""
        return self._recordings.routes()

    # -- WHIP: the session's host ------------------------------------------------------

    @operation(
        "WHIP: publish the session's stream",
        tag=TAG,
        roles=("host",),
        body_media_type=SDP,
        answers=PUBLISHED,
        errors=(*SDP_ERRORS, 406, 409),
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
        params=[RESOURCE_ID, IF_MATCH],
        answers=PATCHED,
        errors=(*SDP_ERRORS, 412, 422),
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
        params=[RESOURCE_ID],
        answers=DELETED,
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
        params=[MEDIA_TOKEN],
        answers=PLAYED,
        errors=(*SDP_ERRORS, 401, 406, 409),
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
        params=[RESOURCE_ID, IF_MATCH],
        answers=PATCHED,
        errors=(*SDP_ERRORS, 412, 422),
    )
    async def patch_viewer(self, request: web.Request) -> web.Response:
        """Candidates and/or ``a=end-of-candidates`` for the viewer's ICE session
        (RFC 8840): whoever holds the Location; ICE restarts are not supported."""
        return await self._patch(request, "whep")

    @operation("WHEP: stop playing", tag=TAG, params=[RESOURCE_ID], answers=DELETED)
    async def delete_viewer(self, request: web.Request) -> web.Response:
        """Ends the playback (whoever holds the Location)."""
        return await self._delete(request, "whep")

    # -- OPTIONS (CORS preflight) ------------------------------------------------------

    @operation("CORS preflight of a WHIP or WHEP endpoint", tag=TAG, answers=ENDPOINT_PREFLIGHT)
    async def options_endpoint(self, _request: web.Request) -> web.Response:
        headers = preflight_headers(ENDPOINT_METHODS)
        headers["Accept-Post"] = SDP
        return web.Response(status=204, headers=headers)

    @operation(
        "CORS preflight of a WHIP or WHEP resource",
        tag=TAG,
        params=[RESOURCE_ID],
        answers=RESOURCE_PREFLIGHT,
    )
    async def options_resource(self, _request: web.Request) -> web.Response:
        headers = preflight_headers(RESOURCE_METHODS)
        headers["Accept-Patch"] = SDPFRAG
        return web.Response(status=204, headers=headers)

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

    def _guest_id(self, request: web.Request) -> str | None:
        """The guest id of the caller's signed guest cookie (``live.guests``), if any."""
        if self._guests is None:
            return None
        return self._guests.verify(request.cookies.get(GUEST_COOKIE))


def _refuse_ended(status: str) -> None:
    if status == SessionStatus.ENDED.value:
        raise Conflict("session_ended", "the session has ended")


def _is_host(caller: Principal | None, host_id: int) -> bool:
    return caller is not None and (caller.user_id == host_id or caller.role is Role.ADMIN)
