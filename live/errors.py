"""Domain errors shared by every package.

Services raise these (media's WHIP/WHEP refusals included); the HTTP layer
(``live.http``) maps each kind to a status code and the JSON shape
``{"error": {"code": ..., "message": ...}}``; the room channel maps them to an ``error``
event. Nothing in a service knows about HTTP. ``code`` is what clients branch on; the
kind only picks the status.

Hierarchy::

    LiveshelfError
     ├── InvalidInput          400/422  malformed or out-of-range input
     ├── Unauthenticated       401      no, bad or expired credentials
     ├── Forbidden             403      signed in, but not allowed
     ├── NotFound              404      no such resource (or not visible to the caller)
     ├── NotAcceptable         406      no common format (an SDP offer without a codec
     │                                  we can send or receive)
     ├── TimedOut              408      the request (its body) did not arrive in time
     ├── Conflict              409      the resource's state forbids the change
     ├── Gone                  410      existed once, no longer
     ├── PreconditionFailed    412      ``If-Match`` is not the resource's ETag
     ├── TooLarge              413      body, SDP or message over its size limit
     ├── UnsupportedMediaType  415      the body's ``Content-Type`` is not the route's
     ├── Unprocessable         422      well-formed, but semantically refused
     ├── RateLimited           429      too many requests; retry later
     └── Unavailable           503      a resource is exhausted for now; retry later

A ``retry_after_ms`` detail becomes the answer's ``Retry-After`` header (seconds,
rounded up; 503 answers carry one in any case).
"""

from __future__ import annotations

from typing import Any


class LiveshelfError(Exception):
    """Base of every error a client may see. ``code`` is stable and machine-readable."""

    default_code = "error"

    def __init__(self, code: str | None = None, message: str = "", **details: Any) -> None:
        self.code = code or self.default_code
        self.message = message or self.code.replace("_", " ")
        self.details = details
        super().__init__(f"{self.code}: {self.message}")

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(LiveshelfError):
    default_code = "invalid_input"


class Unauthenticated(LiveshelfError):
    default_code = "unauthenticated"


class Forbidden(LiveshelfError):
    default_code = "forbidden"


class NotFound(LiveshelfError):
    default_code = "not_found"


class NotAcceptable(LiveshelfError):
    default_code = "not_acceptable"


class TimedOut(LiveshelfError):
    default_code = "timed_out"


class Conflict(LiveshelfError):
    default_code = "conflict"


class Gone(LiveshelfError):
    default_code = "gone"


class PreconditionFailed(LiveshelfError):
    default_code = "precondition_failed"


class TooLarge(LiveshelfError):
    default_code = "too_large"


class UnsupportedMediaType(LiveshelfError):
    default_code = "unsupported_media_type"


class Unprocessable(LiveshelfError):
    default_code = "unprocessable"


class RateLimited(LiveshelfError):
    default_code = "rate_limited"


class Unavailable(LiveshelfError):
    default_code = "unavailable"
