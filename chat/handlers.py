"""HTTP routes of the chat (see ``chat/API.md``); chat messages themselves travel over
the room channel (``chat.send``, ``like``)."""

from __future__ import annotations

from aiohttp import web

from chat.answers import (
    AppointmentAnswer,
    BanAnswer,
    ChatSettingsAnswer,
    DeletedMessageAnswer,
    KeywordsAnswer,
    ModerationActionAnswer,
    ModeratorAnswer,
    MuteAnswer,
    SlowModeAnswer,
)
from chat.moderation import ModerationService
from chat.schemas import BanBody, KeywordsBody, ModeratorBody, MuteBody, SlowModeBody
from chat.service import ChatService
from live.http import json_response, page_query, path_id, read_json, signed_in
from live.openapi import Answer, operation, page_of, page_params

_SESSION = "/api/sessions/{id}"
#: The largest ``?limit=`` of the moderators lists and of the moderation log (its
#: default: 200), see ``live.paging``.
MAX_MODERATORS_PAGE = 200
MAX_LOG_PAGE = 1000
_TAG = "chat"
#: the moderators lists' answer (oldest appointment first)
_MODERATORS = page_of("moderators", ModeratorAnswer, newest_first=False)


class ChatHandlers:
    def __init__(self, chat: ChatService, moderation: ModerationService) -> None:
        self._chat = chat
        self._moderation = moderation

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(_SESSION + "/chat.csv", self.export_csv),
            web.get(_SESSION + "/moderators", self.session_moderators),
            web.post(_SESSION + "/moderators", self.appoint_for_session),
            web.delete(_SESSION + "/moderators/{user_id}", self.dismiss_for_session),
            web.get("/api/hosts/{id}/moderators", self.host_moderators),
            web.post("/api/hosts/{id}/moderators", self.appoint_for_host),
            web.delete("/api/hosts/{id}/moderators/{user_id}", self.dismiss_for_host),
            web.delete(_SESSION + "/chat/messages/{message_id}", self.delete_message),
            web.post(_SESSION + "/chat/mutes", self.mute),
            web.delete(_SESSION + "/chat/mutes/{user_id}", self.unmute),
            web.post(_SESSION + "/chat/bans", self.ban),
            web.delete(_SESSION + "/chat/bans/{user_id}", self.unban),
            web.put(_SESSION + "/chat/slow-mode", self.slow_mode),
            web.put(_SESSION + "/chat/keywords", self.keywords),
            web.get(_SESSION + "/chat/settings", self.settings),
            web.get(_SESSION + "/chat/moderation-log", self.moderation_log),
        ]

    # -- export (the session's host, admins) ------------------------------------------

    @operation(
        "Export the chat as CSV",
        tag=_TAG,
        roles=("host",),
        answers=Answer(
            200,
            media_type="text/csv; charset=utf-8",
            description="id,sent_at,user_id,display_name,role,text,deleted_at,deleted_by",
            headers={"Content-Disposition": 'attachment; filename="chat-<id>.csv"'},
        ),
    )
    async def export_csv(self, request: web.Request) -> web.StreamResponse:
        """The session's host, admins: every message, deleted ones marked; cells starting
        with ``= + - @`` are prefixed with ``'``."""
        session_id = path_id(request)
        chunks = await self._chat.export_csv(signed_in(request), session_id)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="chat-{session_id}.csv"',
            }
        )
        await response.prepare(request)
        async for chunk in chunks:
            await response.write(chunk)
        await response.write_eof()
        return response

    # -- moderators (the host; lists: also the session's staff) -----------------------

    @operation(
        "A session's moderators",
        tag=_TAG,
        auth="signed_in",
        answers=Answer(200, _MODERATORS),
        params=page_params(MAX_MODERATORS_PAGE, newest_first=False),
        errors=(403,),
    )
    async def session_moderators(self, request: web.Request) -> web.Response:
        """Staff (the session's host, its moderators, admins): the session's and the
        host-wide moderators, in the order they were appointed."""
        session_id = path_id(request)
        caller = signed_in(request)
        page = page_query(request, maximum=MAX_MODERATORS_PAGE, newest_first=False)
        host_id = await self._host_of(session_id)
        moderators = await self._moderation.moderators(caller, host_id, session_id, page)
        return json_response(page.answer("moderators", moderators))

    @operation(
        "Appoint a moderator for a session",
        tag=_TAG,
        roles=("host",),
        body=ModeratorBody,
        answers=Answer(201, AppointmentAnswer),
    )
    async def appoint_for_session(self, request: web.Request) -> web.Response:
        """The session's host: ``user_id`` moderates this session."""
        session_id = path_id(request)
        caller = signed_in(request)
        body = await read_json(request, ModeratorBody)
        host_id = await self._host_of(session_id)
        result = await self._moderation.appoint(caller, host_id, session_id, body.user_id)
        return json_response(result, status=201)

    @operation(
        "Dismiss a session's moderator",
        tag=_TAG,
        roles=("host",),
        answers=Answer(204, description="dismissed"),
    )
    async def dismiss_for_session(self, request: web.Request) -> web.Response:
        """The session's host (404 ``not_a_moderator``)."""
        session_id = path_id(request)
        caller = signed_in(request)
        host_id = await self._host_of(session_id)
        await self._moderation.dismiss(caller, host_id, session_id, path_id(request, "user_id"))
        return web.Response(status=204)

    @operation(
        "A host's host-wide moderators",
        tag=_TAG,
        roles=("host",),
        answers=Answer(200, _MODERATORS),
        params=page_params(MAX_MODERATORS_PAGE, newest_first=False),
    )
    async def host_moderators(self, request: web.Request) -> web.Response:
        """That host: the host-wide moderators, in the order they were appointed."""
        caller = signed_in(request)
        page = page_query(request, maximum=MAX_MODERATORS_PAGE, newest_first=False)
        moderators = await self._moderation.moderators(caller, path_id(request), None, page)
        return json_response(page.answer("moderators", moderators))

    @operation(
        "Appoint a moderator for all of a host's sessions",
        tag=_TAG,
        roles=("host",),
        body=ModeratorBody,
        answers=Answer(201, AppointmentAnswer),
    )
    async def appoint_for_host(self, request: web.Request) -> web.Response:
        """That host (others: 403 ``not_you``): ``user_id`` moderates all their sessions."""
        caller = signed_in(request)
        body = await read_json(request, ModeratorBody)
        result = await self._moderation.appoint(caller, path_id(request), None, body.user_id)
        return json_response(result, status=201)

    @operation(
        "Dismiss a host-wide moderator",
        tag=_TAG,
        roles=("host",),
        answers=Answer(204, description="dismissed"),
    )
    async def dismiss_for_host(self, request: web.Request) -> web.Response:
        """That host (404 ``not_a_moderator``)."""
        caller = signed_in(request)
        await self._moderation.dismiss(caller, path_id(request), None, path_id(request, "user_id"))
        return web.Response(status=204)

    # -- moderation (the session's host, its moderators, admins) -------------------------

    @operation(
        "Delete a chat message",
        tag=_TAG,
        auth="signed_in",
        answers=Answer(200, DeletedMessageAnswer),
        errors=(403,),
    )
    async def delete_message(self, request: web.Request) -> web.Response:
        """Staff: the message is hidden everywhere (``chat.deleted``)."""
        caller = signed_in(request)
        result = await self._moderation.delete_message(
            caller, path_id(request), path_id(request, "message_id")
        )
        return json_response(result)

    @operation(
        "Mute a user in a session",
        tag=_TAG,
        auth="signed_in",
        body=MuteBody,
        answers=Answer(201, MuteAnswer),
        errors=(403,),
    )
    async def mute(self, request: web.Request) -> web.Response:
        """Staff: ``user_id`` may not chat for ``seconds`` (staff cannot be muted: 403
        ``target_is_staff``)."""
        caller = signed_in(request)
        body = await read_json(request, MuteBody)
        result = await self._moderation.mute(caller, path_id(request), body.user_id, body.seconds)
        return json_response(result, status=201)

    @operation(
        "Unmute a user",
        tag=_TAG,
        auth="signed_in",
        answers=Answer(204, description="unmuted"),
        errors=(403,),
    )
    async def unmute(self, request: web.Request) -> web.Response:
        """Staff (404 ``not_muted``)."""
        caller = signed_in(request)
        await self._moderation.unmute(caller, path_id(request), path_id(request, "user_id"))
        return web.Response(status=204)

    @operation(
        "Ban a user from a session",
        tag=_TAG,
        auth="signed_in",
        body=BanBody,
        answers=Answer(201, BanAnswer),
        errors=(403,),
    )
    async def ban(self, request: web.Request) -> web.Response:
        """Staff: ``user_id``'s sockets close, and they may not rejoin, chat or buy."""
        caller = signed_in(request)
        body = await read_json(request, BanBody)
        result = await self._moderation.ban(caller, path_id(request), body.user_id, body.reason)
        return json_response(result, status=201)

    @operation(
        "Lift a ban",
        tag=_TAG,
        auth="signed_in",
        answers=Answer(204, description="unbanned"),
        errors=(403,),
    )
    async def unban(self, request: web.Request) -> web.Response:
        """Staff (404 ``not_banned``)."""
        caller = signed_in(request)
        await self._moderation.unban(caller, path_id(request), path_id(request, "user_id"))
        return web.Response(status=204)

    @operation(
        "Set slow mode",
        tag=_TAG,
        auth="signed_in",
        body=SlowModeBody,
        answers=Answer(200, SlowModeAnswer),
        errors=(403,),
    )
    async def slow_mode(self, request: web.Request) -> web.Response:
        """Staff: at most one message per ``seconds`` per viewer (0: off); ``chat.slow_mode``."""
        caller = signed_in(request)
        body = await read_json(request, SlowModeBody)
        return json_response(
            await self._moderation.set_slow_mode(caller, path_id(request), body.seconds)
        )

    @operation(
        "Replace the blocked keywords",
        tag=_TAG,
        auth="signed_in",
        body=KeywordsBody,
        answers=Answer(200, KeywordsAnswer),
        errors=(403,),
    )
    async def keywords(self, request: web.Request) -> web.Response:
        """Staff: messages containing one of ``words`` are refused (``blocked_word``)."""
        caller = signed_in(request)
        body = await read_json(request, KeywordsBody)
        return json_response(
            await self._moderation.set_keywords(caller, path_id(request), list(body.words))
        )

    @operation(
        "The session's chat settings",
        tag=_TAG,
        auth="signed_in",
        answers=Answer(200, ChatSettingsAnswer),
        errors=(403,),
    )
    async def settings(self, request: web.Request) -> web.Response:
        """Staff: slow mode, keywords, running mutes, bans and moderators."""
        caller = signed_in(request)
        return json_response(await self._moderation.settings(caller, path_id(request)))

    @operation(
        "The session's moderation log",
        tag=_TAG,
        auth="signed_in",
        answers=Answer(200, page_of("actions", ModerationActionAnswer)),
        params=page_params(MAX_LOG_PAGE, default=200),
        errors=(403,),
    )
    async def moderation_log(self, request: web.Request) -> web.Response:
        """Staff: every moderation action, newest first."""
        caller = signed_in(request)
        page = page_query(request, maximum=MAX_LOG_PAGE, default=200)
        actions = await self._moderation.actions(caller, path_id(request), page)
        return json_response(page.answer("actions", actions))

    async def _host_of(self, session_id: int) -> int:
        return await self._moderation.host_of(session_id)
