"""Recording: remuxed Matroska file with the published streams, and a cover.

VP8 sessions are written as WebM (browsers play them as ``video/webm``), H.264
sessions as plain Matroska; both end with a duration and cues (seekable). An H.264
recording is then copied to MP4 (index first) for browsers without Matroska."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import av
import pytest

from media.recording import (
    MATROSKA_MIME,
    WEBM_MIME,
    incomplete_reason,
    recording_mime,
    remux_to_mp4,
)
from media.service import MediaService

CUES_ID = b"\x1c\x53\xbb\x6b"  # the Matroska Cues element: the seek index


@pytest.mark.parametrize("codec", ["video/VP8", "video/H264"])
async def test_recording_holds_streams_and_plausible_duration(
    service: MediaService, peers, codec: str
) -> None:
    async with asyncio.timeout(30):
        assert service.media_time(1) is None
        pub = peers.publisher(video_codec=codec)
        await pub.connect(partial(service.publish, 1))
        viewer = peers.viewer(decode=False)
        await viewer.connect(partial(service.play, 1))
        await viewer.wait_for("video", encoded=5, within_s=10)
        started = time.monotonic()
        await asyncio.sleep(2.0)
        media_time = service.media_time(1)
        assert media_time is not None and 1.9 <= media_time <= 2.0 + (time.monotonic() - started)
        path = service.recording_path(1)
        assert path is not None
        cover = service.cover_path(1)
        assert cover is not None and cover.stat().st_size > 500
        await service.end_session(1)

    vp8 = codec == "video/VP8"
    assert recording_mime(path) == (WEBM_MIME if vp8 else MATROSKA_MIME)
    assert CUES_ID in path.read_bytes()
    with av.open(str(path)) as container:
        assert container.format.name == "matroska,webm"
        kinds = {s.type: s.codec_context.name for s in container.streams}
        assert kinds == {"video": codec.split("/")[1].lower(), "audio": "opus"}
        assert container.streams.video[0].codec_context.width == 320
        assert container.duration is not None
        duration = container.duration / 1_000_000
        assert 1.5 <= duration <= media_time + 1.0
        frames = sum(1 for _ in container.decode(video=0))
        assert frames >= 45  # ~2 s at 30 fps, decodable from the first frame
        # seeking (what a browser does with the cues) lands on a decodable frame
        container.seek(int(duration / 2 * 1_000_000))
        assert next(container.decode(video=0)).width == 320
    with av.open(str(cover)) as image:
        frame = next(image.decode(video=0))
        assert (frame.width, frame.height) == (320, 240)


async def test_h264_recording_is_copied_to_mp4_and_vp8_is_not(service: MediaService, peers) -> None:
    async with asyncio.timeout(30):
        for session_id, codec in ((1, "video/H264"), (2, "video/VP8")):
            pub = peers.publisher(video_codec=codec)
            await pub.connect(partial(service.publish, session_id))
        viewer = peers.viewer(decode=False)
        await viewer.connect(partial(service.play, 1))
        await viewer.wait_for("video", encoded=5, within_s=10)
        await asyncio.sleep(1.5)
        paths = [service.recording_path(1), service.recording_path(2)]
        await service.end_session(1)
        await service.end_session(2)
        await service.close()  # waits for the MP4 copies
    h264, vp8 = (p for p in paths if p is not None)
    assert not vp8.with_suffix(".mp4").exists()
    mp4 = h264.with_suffix(".mp4")
    data = mp4.read_bytes()
    assert data[4:8] == b"ftyp" and data.index(b"moov") < data.index(b"mdat")  # index first
    assert not list(h264.parent.glob("*.tmp"))

    with av.open(str(h264)) as source, av.open(str(mp4)) as copy:
        assert "mp4" in copy.format.name
        kinds = {s.type: s.codec_context.name for s in copy.streams}
        assert kinds == {"video": "h264", "audio": "opus"}
        assert source.duration is not None and copy.duration is not None
        assert abs(copy.duration - source.duration) < 100_000  # within 0.1 s
        # the same pictures: every frame decodes, from the first one
        assert sum(1 for _ in copy.decode(video=0)) == sum(1 for _ in source.decode(video=0))
        copy.seek(copy.duration // 2)
        assert next(copy.decode(video=0)).width == 320
    with av.open(str(mp4)) as copy:
        assert sum(1 for _ in copy.decode(audio=0)) > 50  # Opus plays (its header is there)


def test_a_failed_mp4_copy_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "session-9.mkv"
    source.write_bytes(b"\x1a\x45\xdf\xa3 not really a recording" * 20)
    target = tmp_path / "session-9.mp4"
    with pytest.raises(av.error.FFmpegError):
        remux_to_mp4(source, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["session-9.mkv"]


async def test_no_mp4_copy_while_the_ending_session_still_writes(
    service: MediaService, peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the session leaving the service and its file being closed, a request
    for the recording asks for the MP4 copy (the show is ended and the service no longer
    knows it): nothing may copy the half-written file then; the copy comes after."""
    async with asyncio.timeout(30):
        pub = peers.publisher(video_codec="video/H264")
        await pub.connect(partial(service.publish, 1))
        viewer = peers.viewer(decode=False)
        await viewer.connect(partial(service.play, 1))
        await viewer.wait_for("video", encoded=5, within_s=10)
        await asyncio.sleep(1.0)
        path = service.recording_path(1)
        assert path is not None
        dropping, release = asyncio.Event(), asyncio.Event()
        drop = service._drop_publisher

        async def slow_drop(*args: Any) -> None:
            dropping.set()
            await release.wait()
            await drop(*args)

        monkeypatch.setattr(service, "_drop_publisher", slow_drop)
        ending = asyncio.create_task(service.end_session(1))
        await dropping.wait()
        assert service.recording_path(1) is None  # what the handler checks
        service.copy_to_mp4(path)  # what the handler does for an ended show
        assert not service._mp4_copies
        release.set()
        await ending
        await service.close()  # waits for the session's own copy
    with av.open(str(path)) as source, av.open(str(path.with_suffix(".mp4"))) as copy:
        assert sum(1 for _ in copy.decode(video=0)) == sum(1 for _ in source.decode(video=0))


@pytest.fixture
def small_disk(tmpfs: Any) -> Path:
    """A 2 MiB tmpfs (a disk that fills up in seconds); root only."""
    return Path(tmpfs("2m"))


async def test_a_full_disk_cuts_the_recording_short_finished_and_marked(
    media_config: Any, lifecycle: Any, peers: Any, small_disk: Path
) -> None:
    """Issue 18: a disk filling up mid-show used to leave a truncated file served as a
    complete one. The writer stops while 1.5 MiB are still free: the file is finished
    (duration, cues: it plays and seeks up to the cut) and marked incomplete."""
    config = replace(
        media_config, recordings_dir=small_disk, recording_min_free_bytes=2 * 2**20 - 96 * 1024
    )
    service = MediaService(config, lifecycle)
    try:
        async with asyncio.timeout(30):
            pub = peers.publisher(video_codec="video/VP8")
            await pub.connect(partial(service.publish, 1))
            viewer = peers.viewer(decode=False)
            await viewer.connect(partial(service.play, 1))
            await viewer.wait_for("video", encoded=5, within_s=10)
            path = service.recording_path(1)
            assert path is not None
            while incomplete_reason(path) is None:  # noqa: ASYNC110 -- it stops by itself
                await asyncio.sleep(0.1)
            await viewer.wait_for("video", encoded=60, within_s=10)  # the show goes on
            await service.end_session(1)
    finally:
        await service.close()
    reason = incomplete_reason(path)
    assert reason is not None and reason.startswith("disk_full"), reason
    assert CUES_ID in path.read_bytes()  # finished: the index was written
    with av.open(str(path)) as container:
        assert container.duration is not None and container.duration > 0
        assert sum(1 for _ in container.decode(video=0)) > 5  # plays up to the cut


@pytest.mark.parametrize("disk", ["read-only", "full"])
async def test_a_recording_that_cannot_be_written_is_not_started(
    media_config: Any, lifecycle: Any, peers: Any, tmpfs: Any, disk: str
) -> None:
    """Issue 18 item 7: a recordings folder on a read-only file system (the writer
    thread used to fail at the first frame, leaving no file and no reason), or on a disk
    already below the space the writer keeps free: no recording is started, the show
    goes on, and the service says why."""
    if disk == "read-only":
        config = replace(media_config, recordings_dir=tmpfs("1m", read_only=True))
        expected = "OSError: Read-only file system"
    else:
        config = replace(media_config, recordings_dir=tmpfs("1m"), recording_min_free_bytes=2**21)
        expected = "DiskFull: 1048576 bytes free, 2097152 kept"
    service = MediaService(config, lifecycle)
    try:
        async with asyncio.timeout(30):
            pub = peers.publisher()
            await pub.connect(partial(service.publish, 1))
            assert pub.resource.recording_problem == expected
            viewer = peers.viewer()
            await viewer.connect(partial(service.play, 1))
            await viewer.wait_for("video", decoded=30, within_s=10)  # the show goes on
            assert service.recording_state(1) == ("off", expected)
            assert service.recording_path(1) is None and service.media_time(1) is None
            await service.end_session(1)
    finally:
        await service.close()
    assert config.recordings_dir is not None and not list(config.recordings_dir.iterdir())


async def test_the_recording_state_while_live(service: MediaService, peers: Any) -> None:
    assert service.recording_state(1) is None  # nothing here
    async with asyncio.timeout(30):
        pub = peers.publisher()
        await pub.connect(partial(service.publish, 1))
        assert service.recording_state(1) == ("recording", None)
        await service.end_session(1)
    assert service.recording_state(1) is None  # ended: the folder tells (the handler reads it)
