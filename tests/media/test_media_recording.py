"""Recording: remuxed Matroska file with the published streams, and a cover.

VP8 sessions are written as WebM (browsers play them as ``video/webm``), H.264
sessions as plain Matroska; both end with a duration and cues (seekable)."""

from __future__ import annotations

import asyncio
import time
from functools import partial

import av
import pytest

from media.recording import MATROSKA_MIME, WEBM_MIME, recording_mime
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
