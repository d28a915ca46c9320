"""What the media layer needs from, and gives to, the rest of liveshelf."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

PublisherStopReason = Literal["deleted", "ice_failed", "timeout", "ended", "shutdown"]


class MediaLifecycle(Protocol):
    """Told when a session's media goes live and when it stops.

    Calls are made one at a time, in order, from a single task of the media
    service; ``on_publisher_stopped`` follows exactly one earlier
    ``on_publisher_started`` for the same publisher. An exception raised here is
    logged and does not affect media.
    """

    async def on_publisher_started(self, session_id: int) -> None:
        """The publisher's first media arrived; viewers are receiving it."""

    async def on_publisher_stopped(self, session_id: int, reason: str) -> None:
        """The publisher is gone (``reason`` is a ``PublisherStopReason``)."""


@dataclass(frozen=True)
class Resource:
    """A WHIP or WHEP resource, as the HTTP layer needs it for its 201 reply.

    ``id`` is unguessable (the ``Location`` path segment); ``etag`` identifies
    the ICE session for ``If-Match`` on PATCH (RFC 9725 section 4.3).
    """

    id: str
    answer_sdp: str
    etag: str
    session_id: int
    role: Literal["publisher", "viewer"]


@dataclass(frozen=True)
class ViewerStats:
    """One viewer as analytics sees it."""

    resource_id: str
    session_id: int
    connected: bool
    video_frames_forwarded: int
    frames_skipped: int
    keyframe_resets: int
    queued_frames: int
