"""The media routes' JSON answers as models: what the OpenAPI document
(``live.openapi``) says ``GET /api/sessions/{id}/media-endpoint`` and ``.../ice-servers``
return. The handlers build plain dicts (``MediaHandlers.media_endpoint``,
``IceServers.for_caller``); the tests hold every answer to these models. WHIP and WHEP
answer with SDP, the downloads with the file: those are media types, not models."""

from __future__ import annotations

from live.openapi import AnswerModel


class MediaEndpointAnswer(AnswerModel):
    #: the WHEP URL to offer to, with a token standing for the caller (valid 60 s):
    #: relative to this server when ``node`` is this one, absolute for another node
    url: str
    #: the node that serves it ("" without several nodes)
    node: str
    #: when the URL's token expires (Unix seconds)
    expires_at: int


class StunServer(AnswerModel):
    """A STUN entry of ``RTCPeerConnection``'s ``iceServers``."""

    #: ``stun:``/``stuns:`` URLs
    urls: list[str]


class TurnServer(AnswerModel):
    """The TURN entry of ``iceServers``, with a credential that expires (TURN REST API)."""

    #: ``turn:``/``turns:`` URLs
    urls: list[str]
    #: ``{expires}:{session}-{u<user id>|g<guest id>}``
    username: str
    credential: str


class IceServersAnswer(AnswerModel):
    #: ready for ``new RTCPeerConnection({iceServers})``; empty without STUN or TURN
    #: configured (host candidates only)
    ice_servers: list[StunServer | TurnServer]
    #: when the TURN credential expires (Unix seconds)
    expires_at: int
