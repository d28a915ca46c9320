"""Recording a session's forwarded frames to Matroska, and its JPEG cover.

``SessionRecorder.observe`` is a relay observer: it runs on the event loop, in
the packet path, and only puts the frame on a bounded queue. A thread remuxes
the already-encoded frames (no re-encode) into ``session-<id>.mkv``. A VP8 (or
audio-only) session is written as WebM, the Matroska subset browsers play as
``video/webm``; an H.264 session as plain Matroska, which WebM does not allow.
``recording_mime`` tells them apart by the file's EBML DocType. Closing the
file writes its duration and cues (the seek index), so a finished recording
seeks through Range requests. Every ``cover_interval_s`` the thread decodes
one keyframe, and only that frame, into ``session-<id>.jpg``.

Safari plays no Matroska and Firefox no H.264 in Matroska, so once an H.264
recording is finished (``needs_mp4``), ``remux_to_mp4`` copies its packets (again no
re-encode) into ``session-<id>.mp4``, index first (``faststart``: playback starts
before the whole file arrived), under a temporary name renamed when whole
(``MediaService.copy_to_mp4`` runs it in the background).

Time: recording time 0 is the first frame written (the first video keyframe,
or the first audio frame of an audio-only session). ``media_time()`` is the
seconds since then, so an event stamped with it lands at the same place in
the file. The relay keeps timestamps continuous across publisher reconnects
(gaps are kept as gaps), so one file covers the whole session. A frame in a
codec other than the file's stream (a new publisher switched codec) is
skipped. If the writer falls ``queue_limit`` frames behind, frames are dropped
and video resumes at the next keyframe.

A full disk: the writer stops while ``min_free_bytes`` are still free on the
recordings' disk (checked twice a second), so closing the file can still write its
duration and cues: the recording is cut short but finished and seekable. A writer that
fails anyway (the disk filled faster, an I/O error) closes what it can. Either way
``problem`` says why, and ``session-<id>.incomplete`` holds that reason next to the
file (``incomplete_reason``), so the recording is never served as complete.

A recording is not started (``SessionRecorder`` raises ``OSError``; the show goes live
unrecorded, ``MediaService`` says why) when its folder cannot be made, no file can be
created in it (a read-only file system: the writer would fail at its first frame,
leaving no file and no marker), or its disk already has less than ``min_free_bytes``
free (``DiskFull``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import queue
import shutil
import struct
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
from av.container import OutputContainer
from av.stream import Stream

from .relay import RelayedFrame

logger = logging.getLogger(__name__)

DECODERS = {"video/vp8": "vp8", "video/h264": "h264"}
MUX_CODECS = {"video/vp8": "vp8", "video/h264": "h264", "audio/opus": "opus"}
#: Video codecs WebM allows; anything else is recorded as plain Matroska.
WEBM_VIDEO = frozenset({"video/vp8"})
WEBM_MIME = "video/webm"
MATROSKA_MIME = "video/x-matroska"
MP4_MIME = "video/mp4"
#: The Opus identification header (RFC 7845 5.1) MP4's Opus box is made from; WebRTC
#: never sends one. Version 1, 2 channels (WebRTC's opus/48000/2), no pre-skip (the
#: recording starts mid-stream: no encoder priming to drop), 48 kHz, no gain,
#: mapping family 0.
OPUS_HEAD = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, 0, 48000, 0, 0)
AUDIO_ONLY_AFTER_S = 2.0


class SessionRecorder:
    """Records one session; see the module docstring for the contract."""

    def __init__(
        self,
        session_id: int,
        directory: Path,
        cover_interval_s: float,
        queue_limit: int = 1000,
        min_free_bytes: int = 0,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        _check_writable(directory, min_free_bytes)
        self.session_id = session_id
        self.path = directory / f"session-{session_id}.mkv"
        self.cover_path = directory / f"session-{session_id}.jpg"
        self._min_free = min_free_bytes
        #: why the recording stopped before the session ended (None: it did not)
        self.problem: str | None = None
        self._cover_interval = cover_interval_s
        #: frames for the writer thread: at most ``queue_limit``; past that, new ones
        #: are dropped (``observe``)
        self._queue: queue.Queue[tuple[RelayedFrame, int] | None] = queue.Queue(queue_limit)
        self._thread: threading.Thread | None = None
        self._started_at: float | None = None
        self._first_audio_at: float | None = None
        self._anchors: dict[str, tuple[int, int]] = {}  # kind -> (source pts, recording pts)
        self._video_gap = False
        self._video_mime: str | None = None
        self._closed = False
        self._finishing = False
        self._name = f"SessionRecorder({id(self):#x} session={session_id})"
        self.frames_dropped = 0

    @property
    def started(self) -> bool:
        return self._started_at is not None

    def media_time(self) -> float | None:
        """Seconds into the recording now, or None before it started."""
        if self._started_at is None:
            return None
        return time.monotonic() - self._started_at

    def observe(self, frame: RelayedFrame) -> None:
        """Relay observer: queue a frame for the writer thread (never blocks)."""
        if self._closed:
            return
        if self._started_at is None and not self._start(frame):
            return
        if frame.kind == "video" and self._video_gap:
            if not frame.keyframe:
                return
            self._video_gap = False
        assert self._started_at is not None
        anchor = self._anchors.get(frame.kind)
        if anchor is None:
            rec_pts = max(0, round((frame.received_at - self._started_at) * frame.clock_rate))
            anchor = self._anchors[frame.kind] = (frame.pts, rec_pts)
        pts = anchor[1] + frame.pts - anchor[0]
        try:
            self._queue.put_nowait((frame, pts))
        except queue.Full:
            self.frames_dropped += 1
            if frame.kind == "video":
                self._video_gap = True
            if self.frames_dropped % 100 == 1:
                logger.warning(
                    "%s writer behind, %d frames dropped", self._name, self.frames_dropped
                )

    def _start(self, frame: RelayedFrame) -> bool:
        """Decide whether ``frame`` opens the recording."""
        if frame.kind == "audio":
            if self._first_audio_at is None:
                self._first_audio_at = frame.received_at
            if frame.received_at - self._first_audio_at < AUDIO_ONLY_AFTER_S:
                return False  # wait a moment for a video keyframe
            has_video = False
        elif not frame.keyframe:
            return False
        else:
            has_video = True
        self._started_at = frame.received_at
        video_mime = self._video_mime = frame.mime_type.lower() if has_video else None
        self._thread = threading.Thread(
            target=self._run, args=(video_mime,), name=f"recorder-{self.session_id}", daemon=True
        )
        self._thread.start()
        logger.info("%s recording to %s", self._name, self.path)
        return True

    async def close(self) -> None:
        """Finish the file; waits for the writer thread (off the event loop), also
        when it stopped by itself (a full disk) and is still closing the file."""
        if self._finishing:
            return
        self._finishing = self._closed = True
        if self._thread is not None:
            thread = self._thread

            def finish() -> None:
                while thread.is_alive():  # a writer that stopped reads no more
                    try:
                        self._queue.put(None, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                thread.join()

            await asyncio.to_thread(finish)

    @property
    def needs_mp4(self) -> bool:
        """Whether the finished file should be copied to MP4 (H.264 video)."""
        return self._video_mime is not None and self._video_mime not in WEBM_VIDEO

    # ----------------------------------------------------------- writer thread

    def _run(self, video_mime: str | None) -> None:
        container: OutputContainer | None = None
        streams: dict[str, tuple[Stream, str]] = {}
        last_dts: dict[str, int] = {}
        last_cover = -float("inf")
        next_space_check = 0.0
        try:
            while (item := self._queue.get()) is not None:
                frame, pts = item
                if self._min_free and time.monotonic() >= next_space_check:
                    next_space_check = time.monotonic() + SPACE_CHECK_S
                    free = shutil.disk_usage(self.path.parent).free
                    if free < self._min_free:
                        self._stop(f"disk_full: {free} bytes free, {self._min_free} kept")
                        break
                if container is None:
                    size = _frame_size(frame) if video_mime is not None else None
                    container, streams = self._open(video_mime, size)
                    if size is not None:
                        last_cover = self._write_cover(frame)
                entry = streams.get(frame.kind)
                if entry is None or entry[1] != frame.mime_type.lower():
                    continue
                stream, _ = entry
                if pts <= last_dts.get(frame.kind, -1):
                    pts = last_dts[frame.kind] + 1
                last_dts[frame.kind] = pts
                packet = av.Packet(frame.data)
                packet.pts = packet.dts = pts
                packet.time_base = Fraction(1, frame.clock_rate)
                packet.stream = stream
                packet.is_keyframe = frame.keyframe
                container.mux(packet)
                if (
                    frame.kind == "video"
                    and frame.keyframe
                    and frame.received_at - last_cover >= self._cover_interval
                ):
                    last_cover = self._write_cover(frame)
        except Exception as exc:
            logger.exception("%s writer failed; recording stopped", self._name)
            self._stop(f"writer_failed: {exc!r}")
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception:
                    logger.exception("%s could not finish %s", self._name, self.path)
            if self.problem is not None:
                marker = incomplete_marker(self.path)
                try:
                    marker.write_text(self.problem)
                except OSError:
                    logger.exception("%s could not mark %s incomplete", self._name, self.path)

    def _stop(self, problem: str) -> None:
        """The recording ends here (the writer thread): frames are no longer queued."""
        self.problem = problem
        self._closed = True
        logger.warning("%s recording cut short: %s", self._name, problem)

    def _open(
        self, video_mime: str | None, size: tuple[int, int] | None
    ) -> tuple[OutputContainer, dict[str, tuple[Stream, str]]]:
        webm = video_mime is None or video_mime in WEBM_VIDEO
        container = av.open(str(self.path), "w", format="webm" if webm else "matroska")
        streams: dict[str, tuple[Stream, str]] = {}
        if video_mime is not None and size is not None:
            video = container.add_mux_stream(MUX_CODECS[video_mime], width=size[0], height=size[1])
            video.time_base = Fraction(1, 90000)
            streams["video"] = (video, video_mime)
        audio = container.add_mux_stream("opus", rate=48000)
        audio.time_base = Fraction(1, 48000)
        streams["audio"] = (audio, "audio/opus")
        return container, streams

    def _write_cover(self, frame: RelayedFrame) -> float:
        """Decode this one keyframe to a JPEG; returns its time, even on failure."""
        try:
            image = _decode_one(frame)
            if image is not None:
                encoder = av.CodecContext.create("mjpeg", "w")
                encoder.width, encoder.height = image.width, image.height
                encoder.pix_fmt = "yuvj420p"
                encoder.time_base = Fraction(1, 1)
                data = b"".join(bytes(p) for p in encoder.encode(image.reformat(format="yuvj420p")))
                data += b"".join(bytes(p) for p in encoder.encode(None))
                tmp = self.cover_path.with_suffix(".jpg.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, self.cover_path)
        except Exception:
            logger.exception("%s cover failed", self._name)
        return frame.received_at


#: how often the writer looks at the free space on the recordings' disk
SPACE_CHECK_S = 0.5


class DiskFull(OSError):
    """The recordings' disk has less than ``min_free_bytes`` free: nothing is started."""


def _check_writable(directory: Path, min_free_bytes: int) -> None:
    """Raise ``OSError`` if a recording could not be written in ``directory``: a file
    cannot be made there (a read-only file system, no permission), or its disk has
    less than ``min_free_bytes`` free (the writer would stop at its first frame)."""
    fd, probe = tempfile.mkstemp(prefix=".writable-", dir=directory)
    os.close(fd)
    os.unlink(probe)
    free = shutil.disk_usage(directory).free
    if free < min_free_bytes:
        raise DiskFull(errno.ENOSPC, f"{free} bytes free, {min_free_bytes} kept")


def incomplete_marker(recording: Path) -> Path:
    """The file next to a recording that says it was cut short, and why."""
    return recording.with_suffix(".incomplete")


def incomplete_reason(recording: Path) -> str | None:
    """Why ``recording`` was cut short (``SessionRecorder.problem``), or None."""
    try:
        return incomplete_marker(recording).read_text()[:200]
    except OSError:
        return None


def remux_to_mp4(source: Path, target: Path) -> None:
    """Copy every audio and video packet of ``source`` into an MP4 at ``target``,
    index first, written under a temporary name and renamed when whole (blocking)."""
    partial = target.with_name(target.name + ".tmp")
    try:
        with (
            av.open(str(source)) as recording,
            av.open(str(partial), "w", format="mp4", options={"movflags": "+faststart"}) as mp4,
        ):
            kept = [s for s in recording.streams if s.type in ("video", "audio")]
            streams = {}
            for stream in kept:
                copy = mp4.add_stream_from_template(stream)
                if stream.codec_context.name == "opus" and not stream.codec_context.extradata:
                    copy.codec_context.extradata = OPUS_HEAD
                streams[stream.index] = copy
            for packet in recording.demux(*kept):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.stream = streams[packet.stream.index]
                mp4.mux(packet)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)  # a failed copy leaves nothing behind


def recording_mime(path: Path) -> str:
    """``video/webm`` for a recording written as WebM, else ``video/x-matroska``.

    Reads the EBML header at the start of the file, whose DocType names the
    flavour (blocking: a few bytes of file I/O)."""
    with path.open("rb") as f:
        header = f.read(64)
    return WEBM_MIME if b"\x42\x82\x84webm" in header else MATROSKA_MIME


def _decode_one(frame: RelayedFrame) -> av.VideoFrame | None:
    decoder = av.CodecContext.create(DECODERS[frame.mime_type.lower()], "r")
    assert isinstance(decoder, av.video.codeccontext.VideoCodecContext)
    packet = av.Packet(frame.data)
    frames = list(decoder.decode(packet)) + list(decoder.decode(None))
    first = frames[0] if frames else None
    return first if isinstance(first, av.VideoFrame) else None


def _frame_size(frame: RelayedFrame) -> tuple[int, int] | None:
    image = _decode_one(frame)
    return None if image is None else (image.width, image.height)
