"""Errors raised by the media service.

Hierarchy::

    MediaError                 every refusal of a media request; carries ``code``
                               (machine-readable, see ``ErrorCode``) and a human
                               ``message``; ``http_status`` is a suggestion for
                               the WHIP/WHEP handlers, which own the mapping.

A ``MediaError`` is raised before anything changes: a refused publish or play
leaves no peer connection behind.
"""

from __future__ import annotations

from typing import Final, Literal

ErrorCode = Literal[
    "invalid_sdp",
    "sdp_too_large",
    "codec_mismatch",
    "publisher_exists",
    "not_found",
    "no_publisher",
    "etag_mismatch",
    "ice_restart_unsupported",
    "closed",
    "media_unavailable",
    "media_full",
    "too_many_peers",
    "session_ended",
]

#: Suggested HTTP status per code (RFC 9725 where it says something).
HTTP_STATUS: Final[dict[ErrorCode, int]] = {
    "invalid_sdp": 400,
    "sdp_too_large": 413,
    "codec_mismatch": 406,
    "publisher_exists": 409,
    "not_found": 404,
    "no_publisher": 409,
    "etag_mismatch": 412,
    # RFC 9725 section 4.3.1: an endpoint that supports trickle but not ICE
    # restarts answers the unsupported kind of PATCH with 422.
    "ice_restart_unsupported": 422,
    "closed": 503,
    # the session's origin (another process) cannot be reached right now
    "media_unavailable": 503,
    # every worker serves as many viewers as it may (RFC 9725 s4.5: 503 + Retry-After)
    "media_full": 503,
    # this client holds as many of the show's peers as it may (``MediaConfig`` caps)
    "too_many_peers": 429,
    # the session ended while the offer was being answered
    "session_ended": 409,
}


class MediaError(Exception):
    """A media request was refused; nothing was changed.

    ``code`` is stable and meant for clients; ``message`` is for humans.
    """

    def __init__(self, code: ErrorCode, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code: ErrorCode = code
        self.message = message or code.replace("_", " ")

    @property
    def http_status(self) -> int:
        """The HTTP status the WHIP/WHEP handlers should answer with."""
        return HTTP_STATUS[self.code]
