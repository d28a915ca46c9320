"""What the media layer needs from, and gives to, the rest of liveshelf."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

PublisherStopReason = Literal["deleted", "ice_failed", "timeout", "ended", "shutdown", "moved"]


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


class AudienceListener(Protocol):
    """Told when a WHEP viewer starts watching and when it leaves (analytics).

    ``viewer_joined`` comes once per viewer, when its transport connects (media flows
    to it from then on), with the person who watches (``live.guests``; "" when unknown:
    the viewer counts alone); ``viewer_left`` follows it exactly once, with why:
    ``deleted`` (DELETE), ``failed`` / ``closed`` (transport), ``codec_changed`` (the
    next publisher's codec), ``ended``, ``shutdown``; ``viewer_identified`` when a guest
    viewer signs in while watching (its person is then the user). All are plain calls on
    the event loop and must not block.
    """

    def viewer_joined(
        self, session_id: int, resource_id: str, user_id: int | None, person: str
    ) -> None: ...

    def viewer_left(self, session_id: int, resource_id: str, reason: str) -> None: ...

    def viewer_identified(self, session_id: int, resource_id: str, user_id: int) -> None:
        """A guest viewer signed in while watching (``MediaService.identify_viewer``)."""


@dataclass(frozen=True)
class Resource:
    """A WHIP or WHEP resource, as the HTTP layer needs it for its 201 reply.

    ``id`` is unguessable (the ``Location`` path segment); ``etag`` identifies
    the ICE session for ``If-Match`` on PATCH (RFC 9725 section 4.3).
    ``recording_problem``: a publisher goes live although its session cannot be
    recorded, and this says why (None: recorded, or recordings are off).
    """

    id: str
    answer_sdp: str
    etag: str
    session_id: int
    role: Literal["publisher", "viewer"]
    recording_problem: str | None = None


@dataclass(frozen=True)
class ViewerStats:
    """One viewer as analytics sees it."""

    resource_id: str
    session_id: int
    connected: bool
    video_frames_forwarded: int
    frames_skipped: int
    keyframe_resets: int
    send_backlog_bytes: int


class MediaControl(Protocol):
    """What the rest of the server asks of media, in this process (``media.internal``)
    or in the media home (``media.forward``: with several workers one process holds
    every peer)."""

    async def end_session(self, session_id: int) -> None:
        """The session ended: drop its publisher and viewers, finish its recording."""

    async def media_time(self, session_id: int) -> float | None:
        """Seconds into the session's recording now; None if it is not recording."""

    async def identify_viewer(self, session_id: int, resource_id: str, user_id: int) -> bool:
        """A guest WHEP viewer of the session is now ``user_id``'s; False if not claimable."""
