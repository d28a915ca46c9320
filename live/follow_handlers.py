"""HTTP routes of follows: viewers follow and unfollow hosts; anyone reads a host's
follower count (``live.follows``). Like the spine's other routes (``live.handlers``),
each handler reads its input and caller and calls the service; refusals are
``live.errors`` kinds.
"""

from __future__ import annotations

from aiohttp import web

from live.answers import FollowersAnswer, FollowStatusAnswer
from live.follows import FollowService
from live.http import json_response, path_id, principal, signed_in
from live.models import Role
from live.openapi import Answer, operation


class FollowHandlers:
    """Viewers follow hosts; anyone may read a host's follower count."""

    def __init__(self, follows: FollowService) -> None:
        self._follows = follows

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/hosts/{id}/followers", self.followers),
            web.post("/api/hosts/{id}/follow", self.follow),
            web.delete("/api/hosts/{id}/follow", self.unfollow),
        ]

    @operation("A host's followers", tag="follows", answers=Answer(200, FollowersAnswer))
    async def followers(self, request: web.Request) -> web.Response:
        """``{host_id, followers, following}``; its host and admins also get ``over_time``."""
        caller = principal(request)
        host_id = path_id(request)
        body = await self._follows.status(caller, host_id)
        if caller is not None and (caller.user_id == host_id or caller.role is Role.ADMIN):
            body["over_time"] = await self._follows.over_time(host_id)
        return json_response(body)

    @operation(
        "Follow a host",
        tag="follows",
        auth="signed_in",
        answers=Answer(200, FollowStatusAnswer),
        errors=(403,),
    )
    async def follow(self, request: web.Request) -> web.Response:
        """Viewers only (others: 403 ``role_not_allowed``); following a host twice
        changes nothing."""
        return json_response(await self._follows.follow(signed_in(request), path_id(request)))

    @operation(
        "Stop following a host",
        tag="follows",
        auth="signed_in",
        answers=Answer(200, FollowStatusAnswer),
    )
    async def unfollow(self, request: web.Request) -> web.Response:
        return json_response(await self._follows.unfollow(signed_in(request), path_id(request)))
