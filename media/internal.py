"""A worker's side of the calls between media workers (``media.forward`` is the
calling side).

``LocalMediaControl`` is ``MediaControl`` over this process's own ``MediaService``:
what a single process calls directly, and what the other workers' calls come to.
``internal_routes`` are the ``/internal/media/...`` routes those calls reach: a
session's media ended (on this worker, or on its whole node), a pin's media time, a
guest viewer claimed by its account, this worker's status, and an edge's (or another
node's) pull of a session and its release. Every route answers 403 ``internal_only``
unless the request carries the workers' token (``media.forward.is_internal``); none is
part of the API document. A refusal of a pull leaves through the error middleware, so
the puller reads it back as the same kind.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from live.errors import Forbidden, InvalidInput
from live.http import json_response, path_id, read_json
from live.openapi import not_in_api

from .forward import WORKER_HEADER, is_internal
from .pull import MediaProcess, Pulled
from .service import MediaService


class LocalMediaControl:
    """``MediaControl`` over this process's own ``MediaService`` (one process, or one
    worker of several), which is ``me`` (node, worker index, pid) to the others.

    ``ended(session_id, last)``, if given, runs after a session's media ended, here in
    the process that held its viewers: analytics commits their leaves and, ``last``,
    closes the session's other watch intervals behind them
    (``AudienceRecorder.close_session``), which another process could only do before
    they were written.
    """

    def __init__(
        self,
        media: MediaService,
        ended: Callable[[int, bool], Awaitable[None]] | None = None,
        me: MediaProcess | None = None,
    ) -> None:
        self.media = media
        self.me = me or MediaProcess("", 0, os.getpid())
        self._ended = ended

    async def end_session(self, session_id: int, *, last: bool = True) -> None:
        await self.media.end_session(session_id)
        if self._ended is not None:
            await self._ended(session_id, last)

    async def media_time(self, session_id: int) -> float | None:
        return self.media.media_time(session_id)

    async def identify_viewer(self, session_id: int, resource_id: str, user_id: int) -> bool:
        return self.media.identify_viewer(session_id, resource_id, user_id)

    def status(self) -> dict[str, Any]:
        """What this process holds, per session: viewers, edges' pulls of it, whether
        it pulls it itself, whether its publisher is here and sending (``publisher``) or
        connected at all (``holds_publisher``)."""
        media = self.media
        held = set(media.published_sessions())
        return {
            "sessions": {
                str(sid): {
                    "viewers": media.viewer_count(sid),
                    "pulls": media.pull_count(sid),
                    "pulling": media.is_pulling(sid),
                    "pulled_by": sorted(p.header() for p in media.pullers(sid).values()),
                    "publisher": media.is_live(sid),
                    "holds_publisher": sid in held,
                    "resets": sum(v.keyframe_resets for v in media.viewer_stats(sid)),
                }
                for sid in media.session_ids()
            }
        }

    async def pull(self, session_id: int, offer_sdp: str, puller: MediaProcess) -> Pulled:
        """``puller`` (an edge, or another node's relay worker) pulls the session from
        this process."""
        resource = await self.media.play(session_id, offer_sdp, puller=puller)
        return Pulled(resource.id, resource.answer_sdp, self.me)

    async def release(self, session_id: int, resource_id: str) -> None:
        if self.media.resource_owner(resource_id) == (session_id, "viewer"):
            await self.media.delete(resource_id)


class _Identify(BaseModel):
    resource_id: str = Field(min_length=1, max_length=200)
    user_id: int = Field(ge=1)


def internal_routes(
    control: LocalMediaControl,
    token: str,
    end_node: Callable[[int], Awaitable[None]] | None = None,
) -> list[web.RouteDef]:
    """A worker's side of ``MediaForwarder``'s calls; ``end_node`` ends a session's
    media on this worker's whole node (on a node's relay worker)."""

    def check(request: web.Request) -> int:
        if not is_internal(request, token):
            raise Forbidden("internal_only", "this route is for liveshelf's own workers")
        return path_id(request)

    @not_in_api("between workers")
    async def end(request: web.Request) -> web.Response:
        session_id = check(request)
        if request.query.get("scope") == "node" and end_node is not None:
            await end_node(session_id)
        else:
            await control.end_session(session_id)
        return json_response({"ended": True})

    @not_in_api("between workers")
    async def media_time(request: web.Request) -> web.Response:
        return json_response({"media_time_s": await control.media_time(check(request))})

    @not_in_api("between workers")
    async def identify(request: web.Request) -> web.Response:
        session_id = check(request)
        body = await read_json(request, _Identify)
        claimed = await control.identify_viewer(session_id, body.resource_id, body.user_id)
        return json_response({"claimed": claimed})

    @not_in_api("between workers")
    async def pull(request: web.Request) -> web.Response:
        session_id = check(request)
        offer = await request.text()
        puller = MediaProcess.from_header(request.headers.get(WORKER_HEADER, ""))
        if puller is None:
            raise InvalidInput("invalid_worker", f"{WORKER_HEADER} must be NODE:INDEX:PID")
        # a refusal leaves through the error middleware; the puller's ``_refusal`` reads
        # it back as the same kind
        pulled = await control.pull(session_id, offer, puller)
        return web.Response(
            status=201,
            text=pulled.answer_sdp,
            content_type="application/sdp",
            headers={
                "X-Resource-Id": pulled.resource_id,
                WORKER_HEADER: control.me.header(),
            },
        )

    @not_in_api("between workers")
    async def status(request: web.Request) -> web.Response:
        if not is_internal(request, token):
            raise Forbidden("internal_only", "this route is for liveshelf's own workers")
        return json_response(control.status())

    @not_in_api("between workers")
    async def release(request: web.Request) -> web.Response:
        await control.release(check(request), request.match_info["resource_id"])
        return json_response({"released": True})

    return [
        web.post("/internal/media/{id}/end", end),
        web.get("/internal/media/{id}/time", media_time),
        web.post("/internal/media/{id}/identify", identify),
        web.get("/internal/media/status", status),
        web.post("/internal/media/{id}/pull", pull),
        web.delete("/internal/media/{id}/pull/{resource_id}", release),
    ]
