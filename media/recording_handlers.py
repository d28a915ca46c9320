"""Recording and cover downloads, and a session's recording status (media/README.md,
"Recordings" and "Recording status").

Routes (on the main application; with several workers the others forward them to the
media home, which records)::

    GET     /api/sessions/{id}/recording         the recording (Range requests; video/webm
                                                 for VP8; for H.264 video/mp4 once its
                                                 copy is written after the session
                                                 ended, video/x-matroska until then)
    GET     /api/sessions/{id}/cover.jpg         the latest cover picture

and the ``recording`` part of ``GET /api/sessions/{id}`` (``recording_details``).

Anyone may download, for a live or an ended session (``404 no_recording`` /
``no_cover`` before anything was written, and for a scheduled session). What
``MediaService`` no longer holds (an ended session, or one recorded by another worker
or node) is read from the recordings folder, under ``SessionRecorder``'s names; a
recording cut short (a full disk) says so in ``Liveshelf-Recording``. An ended H.264
show found without its MP4 copy (a crash came between) has the copy made again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from live.errors import NotFound
from live.http import path_id
from live.models import SessionStatus
from live.openapi import operation
from live.sessions import SessionService

from .apidoc import COVER_ANSWERS, RANGE, RECORDING_ANSWERS, TAG
from .config import MediaConfig
from .recording import MATROSKA_MIME, MP4_MIME, incomplete_reason, recording_mime
from .service import MediaService

#: what ``GET /api/sessions/{id}`` says of the session's recording (``recording_details``)
RECORDING_STATES = ("none", "recording", "off", "incomplete", "complete")


class RecordingHandlers:
    """The recording and cover downloads over ``MediaService`` and the recordings
    folder."""

    def __init__(self, media: MediaService, sessions: SessionService, config: MediaConfig) -> None:
        self._media = media
        self._sessions = sessions
        self._config = config
        #: each recording's MIME type, once its header was on disk: at most 10,000
        #: recordings, then emptied
        self._mimes: dict[Path, str] = {}

    def routes(self) -> list[web.RouteDef]:
        """Recordings and covers (on the main application)."""
        return [
            web.get("/api/sessions/{id}/recording", self.recording),
            web.get("/api/sessions/{id}/cover.jpg", self.cover),
        ]

    async def recording_details(
        self, session_id: int, session: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The ``GET /api/sessions/{id}`` part (``Core.session_details``): ``{"recording":
        {"state": ..., "reason": ...}}``, ``state`` one of ``RECORDING_STATES``, ``reason``
        only for ``off`` and ``incomplete`` (media/README.md, "Recording status")."""
        state, reason = self._media.recording_state(session_id) or (
            await self._recording_on_disk(session_id, str(session["status"]))
        )
        status: dict[str, Any] = {"state": state}
        if reason is not None:
            status["reason"] = reason[:200]
        return {"recording": status}

    # -- recordings: anyone, for live and ended sessions ---------------------------------

    @operation("The session's recording", tag=TAG, params=[RANGE], answers=RECORDING_ANSWERS)
    async def recording(self, request: web.Request) -> web.FileResponse:
        """The recording of a live or ended session, as far as it is written: WebM for
        VP8; for H.264 MP4 once its copy was written after the session ended, Matroska
        until then. ``404 no_recording`` before anything was recorded."""
        session_id = path_id(request)
        row = await self._sessions.get_row(session_id)
        cut_short = self._cut_short(session_id)
        if row.status == SessionStatus.ENDED.value:
            mp4 = self._on_disk(session_id, "mp4")  # whole: renamed when written
            if mp4 is not None:
                return web.FileResponse(mp4, headers={"Content-Type": MP4_MIME, **cut_short})
        path = self._media.recording_path(session_id) or self._on_disk(session_id, "mkv")
        if row.status == SessionStatus.SCHEDULED.value or path is None:
            raise NotFound("no_recording", f"session {session_id} has no recording")
        content_type = self._mimes.get(path)
        if content_type is None:
            try:
                mime, complete = await asyncio.to_thread(_header_mime, path)
            except FileNotFoundError:  # started, but the writer has not created it yet
                raise NotFound("no_recording", f"session {session_id} has no recording") from None
            content_type = mime
            if complete:
                if len(self._mimes) > 10_000:
                    self._mimes.clear()
                self._mimes[path] = content_type
        if (
            content_type == MATROSKA_MIME
            and row.status == SessionStatus.ENDED.value
            and self._media.recording_path(session_id) is None
        ):
            # An ended H.264 show without its MP4 copy: a crash came between; redo it.
            self._media.copy_to_mp4(path)
        return web.FileResponse(path, headers={"Content-Type": content_type, **cut_short})

    @operation("The session's latest cover picture", tag=TAG, answers=COVER_ANSWERS)
    async def cover(self, request: web.Request) -> web.FileResponse:
        """A frame of the session's video, renewed while it is live (``404 no_cover``
        before the first)."""
        session_id = path_id(request)
        row = await self._sessions.get_row(session_id)
        path = self._media.cover_path(session_id) or self._on_disk(session_id, "jpg")
        if row.status == SessionStatus.SCHEDULED.value or path is None:
            raise NotFound("no_cover", f"session {session_id} has no cover picture")
        return web.FileResponse(
            path, headers={"Content-Type": "image/jpeg", "Cache-Control": "no-cache"}
        )

    # -- the recordings folder ---------------------------------------------------------

    def _cut_short(self, session_id: int) -> dict[str, str]:
        """``Liveshelf-Recording: incomplete; reason=...`` for a recording that was cut
        short (a full disk: ``media.recording``); nothing for a whole one."""
        directory = self._config.recordings_dir
        if directory is None:
            return {}
        reason = incomplete_reason(directory / f"session-{session_id}.mkv")
        if reason is None:
            return {}
        text = reason.encode("ascii", "replace").decode().replace("\n", " ")
        return {"Liveshelf-Recording": f"incomplete; reason={text}"}

    async def _recording_on_disk(self, session_id: int, status: str) -> tuple[str, str | None]:
        """A recording this process does not hold (``MediaService.recording_state``),
        from the recordings folder: ``incomplete`` if marked so, else ``complete`` for an
        ended show's file, ``recording`` for a live one's (written by another worker or
        node), ``none`` without a file."""
        directory = self._config.recordings_dir
        if directory is None or status == SessionStatus.SCHEDULED.value:
            return ("none", None)
        mkv = directory / f"session-{session_id}.mkv"

        def look() -> tuple[bool, str | None]:
            return mkv.is_file() or mkv.with_suffix(".mp4").is_file(), incomplete_reason(mkv)

        exists, reason = await asyncio.to_thread(look)
        if reason is not None:
            return ("incomplete", reason)
        if not exists:
            return ("none", None)
        return ("complete" if status == SessionStatus.ENDED.value else "recording", None)

    def _on_disk(self, session_id: int, suffix: str) -> Path | None:
        """A finished session's file (the service forgets ended sessions); the
        name is ``SessionRecorder``'s."""
        directory = self._config.recordings_dir
        if directory is None:
            return None
        path = directory / f"session-{session_id}.{suffix}"
        return path if path.is_file() else None


def _header_mime(path: Path) -> tuple[str, bool]:
    """``recording_mime`` and whether the header it read was whole (the file held its
    first 64 bytes already: a recording just started may not have them yet)."""
    complete = path.stat().st_size >= 64
    return recording_mime(path), complete
