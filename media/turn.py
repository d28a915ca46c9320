"""ICE servers for browsers, with time-limited TURN credentials (the TURN REST API
convention that coturn's ``use-auth-secret`` implements).

A viewer or host behind a NAT that blocks UDP to the server reaches it through a TURN
relay. liveshelf shares one secret with the TURN server (``LIVESHELF_TURN_SECRET`` and
coturn's ``static-auth-secret``) and hands out credentials that expire:

    username   = "{expires}:{session}-{who}"     expires: Unix seconds; who: "u{user id}"
                                                 or "g{guest id}"
    credential = base64(HMAC-SHA1(secret, username))

The TURN server recomputes the credential from the username and refuses it after
``expires``; nothing is stored on either side, and a leaked credential is worth
``ttl_s`` seconds.

``GET /api/sessions/{id}/ice-servers`` (anyone who may watch: guests too; a session
that ended is ``409 session_ended``) answers::

    {"ice_servers": [{"urls": ["stun:..."]},
                     {"urls": ["turn:...", "turns:..."], "username": "...",
                      "credential": "..."}],
     "expires_at": <Unix seconds>}

ready for ``new RTCPeerConnection({iceServers})`` (the names are the browser's). The
``stun:`` entries are ``LIVESHELF_BROWSER_STUN``; the ``turn:``/``turns:`` entry is
there when ``LIVESHELF_TURN_URLS`` and ``LIVESHELF_TURN_SECRET`` are set. With
neither, the list is empty and browsers use host candidates only, as on a LAN or in
tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from live.errors import Conflict
from live.guests import GUEST_COOKIE, GuestIds
from live.http import json_response, path_id, principal
from live.models import SessionStatus
from live.openapi import Answer, operation
from live.sessions import SessionService

from .answers import IceServersAnswer

TURN_SCHEMES = ("turn:", "turns:")
STUN_SCHEMES = ("stun:", "stuns:")


@dataclass(frozen=True)
class TurnConfig:
    """``urls``: ``turn:``/``turns:`` URLs of one TURN service sharing ``secret``."""

    urls: tuple[str, ...] = ()
    secret: str = ""
    ttl_s: int = 3600
    #: ``stun:`` URLs handed to browsers (never contacted by the server itself)
    browser_stun: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for url in self.urls:
            if not url.startswith(TURN_SCHEMES):
                raise ValueError(f"not a TURN url: {url!r}")
        for url in self.browser_stun:
            if not url.startswith(STUN_SCHEMES):
                raise ValueError(f"not a STUN url: {url!r}")
        if self.urls and len(self.secret) < 16:
            raise ValueError("TURN urls need a TURN secret of at least 16 characters")
        if self.ttl_s < 60:
            raise ValueError("the TURN credential lifetime must be at least 60 s")

    @property
    def enabled(self) -> bool:
        return bool(self.urls)


def turn_credential(secret: str, username: str) -> str:
    """The password the TURN server expects for ``username`` (REST API convention)."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class IceServers:
    """The ``ice-servers`` route (module docstring)."""

    def __init__(
        self,
        config: TurnConfig,
        sessions: SessionService,
        guests: GuestIds,
        wall_s: Callable[[], float],
    ) -> None:
        self._config = config
        self._sessions = sessions
        self._guests = guests
        self._wall_s = wall_s

    def for_caller(self, session_id: int, who: str) -> dict[str, Any]:
        """The answer for one caller (``who``: ``u7`` or ``g<guest id>``)."""
        config = self._config
        expires = int(self._wall_s()) + config.ttl_s
        servers: list[dict[str, Any]] = []
        if config.browser_stun:
            servers.append({"urls": list(config.browser_stun)})
        if config.enabled:
            username = f"{expires}:{session_id}-{who}"
            servers.append(
                {
                    "urls": list(config.urls),
                    "username": username,
                    "credential": turn_credential(config.secret, username),
                }
            )
        return {"ice_servers": servers, "expires_at": expires}

    @operation(
        "ICE servers for the session's WebRTC peers",
        tag="media",
        answers=Answer(200, IceServersAnswer, headers={"Cache-Control": "no-store"}),
        errors=(409,),
    )
    async def handle(self, request: web.Request) -> web.Response:
        """STUN URLs and a TURN credential that expires (TURN REST API), ready for
        ``new RTCPeerConnection({iceServers})``: for anyone who may watch, guests too;
        ``409 session_ended`` after the end."""
        session_id = path_id(request)
        row = await self._sessions.get_row(session_id)
        if row.status == SessionStatus.ENDED.value:
            raise Conflict("session_ended", "the session has ended")
        caller = principal(request)
        if caller is not None:
            who = f"u{caller.user_id}"
        else:
            who = f"g{self._guests.verify(request.cookies.get(GUEST_COOKIE)) or '-'}"
        response = json_response(self.for_caller(session_id, who))
        response.headers["Cache-Control"] = "no-store"
        return response

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/sessions/{id}/ice-servers", self.handle)]
