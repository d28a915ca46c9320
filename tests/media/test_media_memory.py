"""Closed peers are freed at once (issue 27): a viewer that leaves (DELETE, its session
ending) and a publisher that goes leave nothing behind for the cyclic garbage
collector. The collector is off throughout, so whatever is freed is freed by reference
counting alone: no ``RTCPeerConnection``, ``RTCIceTransport``, ``RTCDtlsTransport`` or
task of theirs is alive afterwards, and the process's memory after 50 viewers came and
went is within a few MiB of what it was after the first 10."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCDtlsTransport, RTCIceTransport, RTCPeerConnection

from media.clients import PublisherClient, ViewerClient
from media.service import MediaService

PAGE = 4096


def rss_mib() -> float:
    """The resident set, after glibc gave back the free memory it keeps (so the figure
    is what is held, not what the allocator caches after other tests' peaks)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE / 2**20


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Watched:
    """Weak references to a server-side peer and everything it is made of."""

    def __init__(self) -> None:
        self.refs: list[weakref.ref[Any]] = []

    def add(self, pc: RTCPeerConnection) -> None:
        self.refs.append(weakref.ref(pc))
        for transceiver in pc.getTransceivers():
            dtls = transceiver.sender.transport
            self.refs += [weakref.ref(dtls), weakref.ref(dtls.transport)]

    def alive(self) -> list[str]:
        return [type(o).__name__ for ref in self.refs if (o := ref()) is not None]


async def viewer_comes_and_goes(
    service: MediaService, peers: Any, watched: Watched, *, leave: bool = True
) -> Any:
    # not peers.viewer(): the fixture keeps its clients (and their peers) to the end
    viewer = ViewerClient(peers.config, decode=False)
    resource_ids: list[str] = []

    async def play(offer: str) -> Any:
        resource = await service.play(1, offer)
        resource_ids.append(resource.id)
        watched.add(service._viewers[resource.id].pc)
        return resource

    await viewer.connect(play)
    await viewer.wait_for("video", encoded=5, within_s=10)
    if leave:
        await service.delete(resource_ids[0])
        await viewer.close()
    return viewer


async def test_viewers_and_a_publisher_that_leave_are_freed_without_the_collector(
    service: MediaService, peers: Any, no_collector: None
) -> None:
    async with asyncio.timeout(120):
        publisher = PublisherClient(peers.config)
        published: list[str] = []

        async def publish(offer: str) -> Any:
            resource = await service.publish(1, offer)
            published.append(resource.id)
            return resource

        await publisher.connect(publish)
        await asyncio.sleep(0.5)
        assert service.peer_count() == 1  # what GET /api/admin/runtime reports
        tasks_before = len(asyncio.all_tasks())
        watched = Watched()
        for _ in range(10):
            await viewer_comes_and_goes(service, peers, watched)
        await asyncio.sleep(0.5)
        after_10 = rss_mib()
        for _ in range(40):
            await viewer_comes_and_goes(service, peers, watched)
        await asyncio.sleep(0.5)  # aiortc's closing tasks end
        assert watched.alive() == [], watched.alive()
        assert len(asyncio.all_tasks()) <= tasks_before, asyncio.all_tasks()
        grew = rss_mib() - after_10
        assert grew < 4, f"{grew:.1f} MiB more after 40 more viewers"

        # the session ends under 5 watching viewers; then the publisher goes
        staying = [
            await viewer_comes_and_goes(service, peers, watched, leave=False) for _ in range(5)
        ]
        publisher_pc = service._publishers[published[0]].pc
        watched.add(publisher_pc)
        del publisher_pc
        await service.end_session(1)
        for viewer in staying:
            await viewer.close()
        await publisher.close()
        del staying, publisher, viewer  # the clients are freed as well
        await asyncio.sleep(0.5)
        assert watched.alive() == [], watched.alive()
        assert service.peer_count() == 0
        peers_alive = [o for o in gc.get_objects() if isinstance(o, RTCPeerConnection)]
        assert peers_alive == [], len(peers_alive)
        kinds = (RTCIceTransport, RTCDtlsTransport)
        assert not [o for o in gc.get_objects() if isinstance(o, kinds)]


async def test_a_viewer_holds_no_receive_state_for_the_collector_to_scan(
    service: MediaService, peers: Any
) -> None:
    """A viewer's transceivers only send: its receivers keep no REMB estimator (1,000
    ``RateBucket`` objects a video receiver would otherwise hold, all scanned by each
    collector pass until promoted) and no NACK generator."""
    async with asyncio.timeout(60):
        publisher = PublisherClient(peers.config)
        await publisher.connect(lambda offer: service.publish(1, offer))
        watched = Watched()
        viewers = [
            await viewer_comes_and_goes(service, peers, watched, leave=False) for _ in range(3)
        ]
        for resource_id, viewer in service._viewers.items():
            for transceiver in viewer.pc.getTransceivers():
                receiver = transceiver.receiver
                assert receiver._RTCRtpReceiver__remote_bitrate_estimator is None, resource_id  # type: ignore[attr-defined]
                assert receiver._RTCRtpReceiver__nack_generator is None, resource_id  # type: ignore[attr-defined]
        # the publisher's video receiver keeps its estimator: it receives
        (publisher_entry,) = service._publishers.values()
        kinds = {t.kind: t.receiver for t in publisher_entry.pc.getTransceivers()}
        assert kinds["video"]._RTCRtpReceiver__remote_bitrate_estimator is not None  # type: ignore[attr-defined]
        for viewer in viewers:
            await viewer.close()
        await publisher.close()
