"""Short-lived signed WHEP URLs: the credential a viewer carries to another node.

A browser following a cross-origin ``307`` drops the ``Authorization`` header it set
(whatwg/fetch #1544), so the URL a viewer is sent to carries its own credential: a
token naming the session, the node that is to serve it, the viewer (0 for a guest),
the guest's id (``live.guests``; "-" for none: the cookie that names a guest is not sent
to another origin, so it travels in the token and the guest counts once there too) and
an expiry, signed with a key derived from ``LIVESHELF_SECRET`` (every node of a
deployment shares it). ``GET /api/sessions/{id}/media-endpoint`` and a full node's
``307`` hand such URLs out; ``POST /whep/{id}?token=...`` checks them.

Format: ``{session}.{node}.{user}.{guest}.{expires}.{signature}``; the signature is
the first 16 bytes of an HMAC-SHA256 over the rest, base64url without padding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from live.errors import Unauthenticated

_GUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: how long a media URL may be used after it was handed out
TOKEN_TTL_S = 60
_SIGNATURE_BYTES = 16


@dataclass(frozen=True, slots=True)
class MediaGrant:
    """What a valid token allows: one WHEP offer for ``session_id`` at ``node``."""

    session_id: int
    node: str
    #: the viewer the token was issued to; None for a guest
    user_id: int | None
    #: the guest's signed-cookie id when it had one (``live.guests``)
    guest_id: str | None
    expires_at: int


class MediaTokens:
    """Issues and checks media URL tokens."""

    def __init__(
        self, secret: str, *, ttl_s: int = TOKEN_TTL_S, now: Callable[[], float] = time.time
    ) -> None:
        self._key = hmac.new(secret.encode(), b"liveshelf media url v2", hashlib.sha256).digest()
        self._ttl_s = ttl_s
        self._now = now

    def issue(
        self, session_id: int, node: str, user_id: int | None, guest_id: str | None = None
    ) -> tuple[str, int]:
        """A token for one WHEP offer, and when it expires (Unix seconds); ``guest_id``
        a verified guest id (URL-safe characters, no dots)."""
        if guest_id is not None and not _GUEST_ID.fullmatch(guest_id):
            raise ValueError(f"not a guest id: {guest_id!r}")
        expires = int(self._now()) + self._ttl_s
        body = f"{session_id}.{node}.{user_id or 0}.{guest_id or '-'}.{expires}"
        return f"{body}.{self._sign(body)}", expires

    def check(self, token: str, session_id: int, node: str) -> MediaGrant:
        """The grant ``token`` gives for an offer to ``session_id`` at ``node``;
        ``Unauthenticated`` (401) if it is malformed, forged, for another session or
        node, or expired."""
        body, _, signature = token.rpartition(".")
        parts = body.split(".")
        if len(parts) != 5 or not hmac.compare_digest(signature, self._sign(body)):
            raise Unauthenticated("invalid_media_token", "the media URL's token is not valid")
        sid, for_node, user, guest, expires = parts
        if sid != str(session_id) or for_node != node:
            raise Unauthenticated(
                "invalid_media_token", "the media URL was made for another session or node"
            )
        if int(expires) < self._now():
            raise Unauthenticated(
                "media_token_expired", "the media URL has expired; ask for a new one"
            )
        guest_id = None if guest == "-" else guest
        return MediaGrant(session_id, node, int(user) or None, guest_id, int(expires))

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:_SIGNATURE_BYTES]).rstrip(b"=").decode()
