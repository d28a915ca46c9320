"""HTTP routes of the chat (see ``chat/API.md``); chat messages themselves travel over
the room channel (``chat.send``, ``like``)."""

from __future__ import annotations

from aiohttp import web

from chat.moderation import ModerationService
from chat.schemas import BanBody, KeywordsBody, ModeratorBody, MuteBody, SlowModeBody
from chat.service import ChatService
from live.http import json_response, page_query, path_id, read_json, signed_in

_SESSION = "/api/sessions/{id}"
#: The largest ``?limit=`` of the moderators lists and of the moderation log (its
#: default: 200), see ``live.paging``.
MAX_MODERATORS_PAGE = 200
MAX_LOG_PAGE = 1000


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

    async def export_csv(self, request: web.Request) -> web.StreamResponse:
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

    async def session_moderators(self, request: web.Request) -> web.Response:
        session_id = path_id(request)
        caller = signed_in(request)
        page = page_query(request, maximum=MAX_MODERATORS_PAGE, newest_first=False)
        host_id = await self._host_of(session_id)
        moderators = await self._moderation.moderators(caller, host_id, session_id, page)
        return json_response(page.answer("moderators", moderators))

    async def appoint_for_session(self, request: web.Request) -> web.Response:
        session_id = path_id(request)
        caller = signed_in(request)
        body = await read_json(request, ModeratorBody)
        host_id = await self._host_of(session_id)
        result = await self._moderation.appoint(caller, host_id, session_id, body.user_id)
        return json_response(result, status=201)

    async def dismiss_for_session(self, request: web.Request) -> web.Response:
        session_id = path_id(request)
        caller = signed_in(request)
        host_id = await self._host_of(session_id)
        await self._moderation.dismiss(caller, host_id, session_id, path_id(request, "user_id"))
        return web.Response(status=204)

    async def host_moderators(self, request: web.Request) -> web.Response:
        caller = signed_in(request)
        page = page_query(request, maximum=MAX_MODERATORS_PAGE, newest_first=False)
        moderators = await self._moderation.moderators(caller, path_id(request), None, page)
        return json_response(page.answer("moderators", moderators))

    async def appoint_for_host(self, request: web.Request) -> web.Response:
        caller = signed_in(request)
        body = await read_json(request, ModeratorBody)
        result = await self._moderation.appoint(caller, path_id(request), None, body.user_id)
        return json_response(result, status=201)

    async def dismiss_for_host(self, request: web.Request) -> web.Response:
        caller = signed_in(request)
        await self._moderation.dismiss(caller, path_id(request), None, path_id(request, "user_id"))
        return web.Response(status=204)

    # -- moderation (the session's host, its moderators, admins) -------------------------

    async def delete_message(self, request: web.Request) -> web.Response:
        caller = signed_in(request)
        result = await self._moderation.delete_message(
            caller, path_id(request), path_id(request, "message_id")
        )
        return json_response(result)

    async def mute(self, request: web.Request) -> web.Response:
        caller = signed_in(request)
        body = await read_json(request, MuteBody)
        result = await self._moderation.mute(caller, path_id(request), body.user_id, body.seconds)
        return json_response(result, status=201)

    async def unmute(self, request: web.Request) -> web.Response:
        caller = signed_in(request)
        await self._moderation.unmute(caller, path_id(request), path_id(request, "user_id"))
        return web.Response(status=204)

    async def ban(self, request: web.Request) -> web.Response:
        caller = signed_in(request)
        body = await read_json(request, BanBody)
        result = await self._moderation.ban(caller, path_id(request), body.user_id, body.reason)
        return json_response(result, status=201)

    async def unban(self, request: web.Request) -> web.Response:
        caller = signed_in(request)
        await self._moderation.unban(caller, path_id(request), path_id(request, "user_id"))
        return web.Response(status=204)

    async def slow_mode(self, request: web.Request) -> web.Response:
        caller = signed_in(request)
        body = await read_json(request, SlowModeBody)
        return json_response(
            await self._moderation.set_slow_mode(caller, path_id(request), body.seconds)
        )

    async def keywords(self, request: web.Request) -> web.Response:
        caller = signed_in(request)
        body = await read_json(request, KeywordsBody)
        return json_response(
            await self._moderation.set_keywords(caller, path_id(request), list(body.words))
        )

    async def settings(self, request: web.Request) -> web.Response:
        caller = signed_in(request)
        return json_response(await self._moderation.settings(caller, path_id(request)))

    async def moderation_log(self, request: web.Request) -> web.Response:
        caller = signed_in(request)
        page = page_query(request, maximum=MAX_LOG_PAGE, default=200)
        actions = await self._moderation.actions(caller, path_id(request), page)
        return json_response(page.answer("actions", actions))

    async def _host_of(self, session_id: int) -> int:
        return await self._moderation.host_of(session_id)
