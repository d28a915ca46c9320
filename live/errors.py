"""Domain errors shared by every package.

Services raise these; the HTTP layer (``live.http``) maps each kind to a status code
and the JSON shape ``{"error": {"code": ..., "message": ...}}``; the room channel maps
them to an ``error`` event. Nothing in a service knows about HTTP.

Hierarchy::

    LiveshelfError
     ├── InvalidInput        400/422  malformed or out-of-range input
     ├── Unauthenticated     401      no, bad or expired credentials
     ├── Forbidden           403      signed in, but not allowed
     ├── NotFound            404      no such resource (or not visible to the caller)
     ├── TimedOut            408      the request (its body) did not arrive in time
     ├── Conflict            409      the resource's state forbids the change
     ├── Gone                410      existed once, no longer
     ├── TooLarge            413      body, SDP or message over its size limit
     ├── Unprocessable       422      well-formed, but semantically refused
     ├── RateLimited         429      too many requests; retry later
     └── Unavailable         503      a resource is exhausted for now; retry later

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


class TimedOut(LiveshelfError):
    default_code = "timed_out"


class Conflict(LiveshelfError):
    default_code = "conflict"


class Gone(LiveshelfError):
    default_code = "gone"


class TooLarge(LiveshelfError):
    default_code = "too_large"


class Unprocessable(LiveshelfError):
    default_code = "unprocessable"


class RateLimited(LiveshelfError):
    default_code = "rate_limited"


class Unavailable(LiveshelfError):
    default_code = "unavailable"
