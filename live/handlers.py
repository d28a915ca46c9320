"""HTTP routes of the spine: accounts (sign-up, sign-in, tickets, guest cookies,
sign-out everywhere; admins disable and enable accounts), live sessions (schedule,
list, read with what features add, go live, end, announce) and the room channel's
socket (opened by ``live.roomupgrade``); follows are ``live.follow_handlers``.

Each handler reads its input (``read_json`` with the body model its ``@operation``
names, ``path_id``, ``query_int``...) and its caller (``signed_in``, ``principal``)
and calls a service; every refusal is a ``live.errors`` kind, which the error
middleware (``live.http``) answers in the one error shape. ``give_guest_cookie``
hands a browser its guest id (``live.guests``), from the pages and ``POST
/api/auth/guest``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from live.accounts import AccountService, user_dict
from live.answers import (
    AnnouncementAnswer,
    SessionAnswer,
    SessionDetailAnswer,
    SignedInAnswer,
    TicketAnswer,
    UserAnswer,
)
from live.auth import TokenSigner
from live.clock import to_ms
from live.errors import InvalidInput
from live.guard import Caps, Guard
from live.guests import GUEST_COOKIE, GUEST_COOKIE_MAX_AGE_S, GuestIds
from live.http import (
    MAX_ID,
    json_response,
    page_query,
    path_id,
    query_int,
    read_json,
    signed_in,
)
from live.models import Role, SessionStatus
from live.openapi import Answer, follow, integer, operation, page_of, page_params, query
from live.revocations import Revocations
from live.roomchannel import RoomChannel
from live.roomhub import RoomHub
from live.roomupgrade import ROOM_SOCKET, ROOM_SOCKET_ANSWER, ROOM_SOCKET_PARAMS, RoomUpgrade
from live.schemas import (
    AnnouncementBody,
    CreateSessionBody,
    EditSessionBody,
    LoginBody,
    SignupBody,
)
from live.sessions import KEEP, SessionService

#: A feature's part of ``GET /api/sessions/{id}``: given the session id and the session
#: as already read (its status included, so no part reads it again), what it adds.
SessionDetails = Callable[[int, Mapping[str, Any]], Awaitable[dict[str, Any]]]


#: what a host does with a session just scheduled (the links stateful fuzzing follows)
SESSION_NEXT = (
    "get_api_sessions_id",
    "patch_api_sessions_id",
    "post_api_sessions_id_start",
    "post_api_sessions_id_end",
    "post_api_sessions_id_announcements",
    "get_api_sessions_id_shelf",
    "post_api_sessions_id_shelf",
    "get_api_sessions_id_chat_settings",
    "put_api_sessions_id_chat_slow_mode",
    "put_api_sessions_id_chat_keywords",
    "post_api_sessions_id_chat_mutes",
    "post_api_sessions_id_moderators",
    "get_api_sessions_id_flash_sales",
    "post_api_sessions_id_flash_sales",
    "get_api_sessions_id_pins",
    "get_api_sessions_id_stats",
    "get_api_sessions_id_media_endpoint",
)


class LiveHandlers:
    def __init__(
        self,
        accounts: AccountService,
        sessions: SessionService,
        channel: RoomChannel,
        hub: RoomHub,
        *,
        details: Sequence[SessionDetails] = (),
        send_limit_bytes: int = 256 * 1024,
        guard: Guard,
        revocations: Revocations,
        tokens: TokenSigner,
        guests: GuestIds,
        caps: Caps | None = None,
    ) -> None:
        self._guard = guard
        self._guests = guests
        self._revocations = revocations
        self._tokens = tokens
        self._accounts = accounts
        self._sessions = sessions
        self._details = list(details)
        self._room = RoomUpgrade(
            sessions,
            channel,
            hub,
            guard=guard,
            guests=guests,
            caps=caps or Caps(),
            send_limit_bytes=send_limit_bytes,
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/auth/signup", self.signup),
            web.post("/api/auth/login", self.login),
            web.post("/api/auth/logout", self.logout),
            web.post("/api/auth/ticket", self.ticket),
            web.post("/api/auth/guest", self.guest),
            web.post("/api/admin/users/{id}/disable", self.disable_user),
            web.post("/api/admin/users/{id}/enable", self.enable_user),
            web.get("/api/me", self.me),
            web.post("/api/sessions", self.create_session),
            web.get("/api/sessions", self.list_sessions),
            web.get("/api/sessions/{id}", self.get_session),
            web.patch("/api/sessions/{id}", self.edit_session),
            web.post("/api/sessions/{id}/start", self.start_session),
            web.post("/api/sessions/{id}/end", self.end_session),
            web.post("/api/sessions/{id}/announcements", self.announce),
            web.get("/api/sessions/{id}/ws", self.room_socket),
        ]

    # -- accounts (anyone; /api/me: signed in) ----------------------------------

    @operation(
        "Create an account (and sign in)",
        tag="accounts",
        body=SignupBody,
        answers=Answer(201, SignedInAnswer),
        errors=(409,),
    )
    async def signup(self, request: web.Request) -> web.Response:
        body = await read_json(request, SignupBody)
        await self._guard.signup(self._guard.client_address(request))
        result = await self._accounts.signup(
            body.username, body.password, Role(body.role), body.display_name
        )
        return json_response(result.to_dict(), status=201)

    @operation(
        "Sign in",
        tag="accounts",
        body=LoginBody,
        answers=Answer(200, SignedInAnswer),
        errors=(401, 403),
    )
    async def login(self, request: web.Request) -> web.Response:
        body = await read_json(request, LoginBody)
        await self._guard.login(body.username, self._guard.client_address(request))
        result = await self._accounts.login(body.username, body.password)
        return json_response(result.to_dict())

    @operation(
        "A ticket to open a room socket",
        tag="accounts",
        auth="signed_in",
        answers=Answer(200, TicketAnswer),
    )
    async def ticket(self, request: web.Request) -> web.Response:
        """A one-minute ticket to open a room socket as the caller (``?ticket=``):
        pages put it in the socket's URL instead of their bearer token."""
        ticket, expires = self._tokens.issue_ticket(signed_in(request))
        return json_response({"ticket": ticket, "expires_at": expires})

    @operation(
        "Get a guest cookie",
        tag="accounts",
        answers=Answer(
            204,
            description="the caller holds a guest cookie",
            headers={"Set-Cookie": "the new guest cookie, unless a valid one came"},
        ),
    )
    async def guest(self, request: web.Request) -> web.Response:
        """Anyone: make sure the caller holds a guest cookie (``live.guests``), for
        clients that open room sockets or WHEP without loading a page first. 204; the
        cookie is set unless the request carries a valid one already."""
        response = web.Response(status=204)
        await give_guest_cookie(request, response, self._guests, self._guard)
        return response

    @operation(
        "Sign out everywhere",
        tag="accounts",
        auth="signed_in",
        answers=Answer(204, description="every token of the caller stopped counting"),
    )
    async def logout(self, request: web.Request) -> web.Response:
        """Every token of the caller stops counting (on all their devices)."""
        await self._revocations.revoke(signed_in(request).user_id)
        return web.Response(status=204)

    @operation("Disable an account", tag="admin", roles=("admin",), answers=Answer(200, UserAnswer))
    async def disable_user(self, request: web.Request) -> web.Response:
        """Admin: the account cannot sign in, and its tokens stop counting at once."""
        signed_in(request).require(Role.ADMIN)
        await self._revocations.revoke(path_id(request), disable=True)
        return json_response(user_dict(await self._accounts.get(path_id(request))))

    @operation("Enable an account", tag="admin", roles=("admin",), answers=Answer(200, UserAnswer))
    async def enable_user(self, request: web.Request) -> web.Response:
        """Admin: the account may sign in again (tokens revoked while it was disabled
        stay revoked)."""
        signed_in(request).require(Role.ADMIN)
        await self._revocations.revoke(path_id(request), disable=False)
        return json_response(user_dict(await self._accounts.get(path_id(request))))

    @operation(
        "The caller's account", tag="accounts", auth="signed_in", answers=Answer(200, UserAnswer)
    )
    async def me(self, request: web.Request) -> web.Response:
        user = await self._accounts.get(signed_in(request).user_id)
        return json_response(user_dict(user))

    # -- sessions -------------------------------------------------------------------

    @operation(
        "Schedule a session",
        tag="sessions",
        roles=("host",),
        body=CreateSessionBody,
        answers=Answer(201, SessionAnswer, links=follow(*SESSION_NEXT)),
        description=(
            "``scheduled_at``, when given, is a time in the future (``422 "
            "scheduled_in_past``); the session can be edited (``PATCH``) until it starts."
        ),
    )
    async def create_session(self, request: web.Request) -> web.Response:
        """Host only."""
        caller = signed_in(request)
        body = await read_json(request, CreateSessionBody)
        scheduled = to_ms(body.scheduled_at) if body.scheduled_at else None
        return json_response(await self._sessions.create(caller, body.title, scheduled), status=201)

    @operation(
        "List sessions",
        tag="sessions",
        answers=Answer(200, page_of("sessions", SessionAnswer)),
        params=[
            query("status", {"type": "string", "enum": [s.value for s in SessionStatus]}),
            query("host_id", integer(0), "only this host's sessions"),
            *page_params(200),
        ],
    )
    async def list_sessions(self, request: web.Request) -> web.Response:
        """Anyone. ``?status=scheduled|live|ended&host_id=&limit=&before_id=``: newest
        first, ``limit`` 1..200 (default 50), ``next_before_id`` (``live.paging``)."""
        status_text = request.query.get("status")
        try:
            status = SessionStatus(status_text) if status_text else None
        except ValueError as exc:
            raise InvalidInput("invalid_query", "status is scheduled, live or ended") from exc
        page = page_query(request, maximum=200)
        host_id = query_int(request, "host_id", maximum=MAX_ID)
        sessions = await self._sessions.list(page, status=status, host_id=host_id)
        return json_response(page.answer("sessions", sessions))

    @operation("A session", tag="sessions", answers=Answer(200, SessionDetailAnswer))
    async def get_session(self, request: web.Request) -> web.Response:
        """Anyone. The session plus what features add (e.g. its shelf)."""
        session_id = path_id(request)
        session = await self._sessions.get(session_id)
        for provider in self._details:
            session.update(await provider(session_id, session))
        return json_response(session)

    @operation(
        "Edit a scheduled session",
        tag="sessions",
        roles=("host",),
        body=EditSessionBody,
        answers=Answer(200, SessionAnswer),
        errors=(409,),
        description=(
            "The session's host changes its title and/or ``scheduled_at`` (a time in the "
            "future: ``422 scheduled_in_past``; ``null`` clears it) until it goes live: "
            "then ``409 session_started``, and nothing changes."
        ),
    )
    async def edit_session(self, request: web.Request) -> web.Response:
        """The session's host, while it is scheduled."""
        caller = signed_in(request)
        body = await read_json(request, EditSessionBody)
        scheduled: int | None = KEEP
        if "scheduled_at" in body.model_fields_set:
            scheduled = to_ms(body.scheduled_at) if body.scheduled_at else None
        session = await self._sessions.edit(
            caller, path_id(request), title=body.title, scheduled_ms=scheduled
        )
        return json_response(session)

    @operation(
        "Go live",
        tag="sessions",
        roles=("host",),
        answers=Answer(200, SessionAnswer),
        errors=(409,),
    )
    async def start_session(self, request: web.Request) -> web.Response:
        """The session's host."""
        return json_response(await self._sessions.start(signed_in(request), path_id(request)))

    @operation(
        "End a live session",
        tag="sessions",
        roles=("host",),
        answers=Answer(200, SessionAnswer),
        errors=(409,),
    )
    async def end_session(self, request: web.Request) -> web.Response:
        """The session's host."""
        return json_response(await self._sessions.end(signed_in(request), path_id(request)))

    @operation(
        "Announce to the room",
        tag="sessions",
        roles=("host",),
        body=AnnouncementBody,
        answers=Answer(201, AnnouncementAnswer),
        errors=(409,),
    )
    async def announce(self, request: web.Request) -> web.Response:
        """The session's host: a banner message to every viewer."""
        caller = signed_in(request)
        body = await read_json(request, AnnouncementBody)
        result = await self._sessions.announce(caller, path_id(request), body.text)
        return json_response(result, status=201)

    # -- the room channel (anyone; guests read only) -----------------------------

    @operation(
        "The room channel (WebSocket)",
        tag="sessions",
        answers=ROOM_SOCKET_ANSWER,
        params=ROOM_SOCKET_PARAMS,
        errors=(401,),
        description=ROOM_SOCKET,
    )
    async def room_socket(self, request: web.Request) -> web.StreamResponse:
        """The room channel's socket (``live.roomupgrade``)."""
        return await self._room.open(request)


async def give_guest_cookie(
    request: web.Request, response: web.StreamResponse, guests: GuestIds, guard: Guard
) -> None:
    """Set a new guest cookie on ``response`` unless ``request`` carries a valid one
    (HttpOnly, SameSite=Lax, Path=/; Secure on HTTPS), or its address had as many new
    ones as ``guard`` allows for now (it then counts by its address). Pages call it, so
    a browser has its guest id before it opens a room socket or a WHEP connection."""
    if guests.verify(request.cookies.get(GUEST_COOKIE)) is not None:
        return
    if not await guard.may_issue_guest_id(guard.client_address(request)):
        return
    response.set_cookie(
        GUEST_COOKIE,
        guests.issue(),
        max_age=GUEST_COOKIE_MAX_AGE_S,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=request.secure,
    )
