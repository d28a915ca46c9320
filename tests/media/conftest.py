"""Fixtures for media tests: a MediaService on 127.0.0.1 and aiortc client peers.

Every peer gathers ICE candidates on 127.0.0.1 only and uses no STUN server.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from media.clients import PublisherClient, ViewerClient
from media.config import MediaConfig
from media.service import MediaService


class RecordingLifecycle:
    """MediaLifecycle that remembers the calls it got."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, str | None]] = []

    async def on_publisher_started(self, session_id: int) -> None:
        self.events.append(("started", session_id, None))

    async def on_publisher_stopped(self, session_id: int, reason: str) -> None:
        self.events.append(("stopped", session_id, reason))


@pytest.fixture
def media_config(tmp_path: Path) -> MediaConfig:
    return MediaConfig(
        ice_addresses=("127.0.0.1",),
        recordings_dir=tmp_path / "recordings",
        pli_interval_s=0.2,
        publisher_timeout_s=5.0,
    )


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``tmpfs(size="2m", read_only=False)``: a folder of its own file system (a disk
    that fills up, or a read-only one; root only, else the test skips), unmounted after
    the test."""
    mounted: list[Path] = []

    def mount(size: str = "2m", *, read_only: bool = False) -> Path:
        folder = tmp_path / f"tmpfs-{len(mounted)}"
        folder.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def lifecycle() -> RecordingLifecycle:
    return RecordingLifecycle()


@pytest.fixture
async def service(
    media_config: MediaConfig, lifecycle: RecordingLifecycle
) -> AsyncIterator[MediaService]:
    svc = MediaService(media_config, lifecycle)
    yield svc
    await svc.close()


@pytest.fixture
async def peers(media_config: MediaConfig) -> AsyncIterator[Peers]:
    made = Peers(media_config)
    yield made
    await made.close()


class Peers:
    """Creates client peers and closes them all at teardown."""

    def __init__(self, config: MediaConfig) -> None:
        self.config = config
        self._all: list[PublisherClient | ViewerClient] = []

    def publisher(self, **kwargs: object) -> PublisherClient:
        p = PublisherClient(self.config, **kwargs)  # type: ignore[arg-type]
        self._all.append(p)
        return p

    def viewer(self, **kwargs: object) -> ViewerClient:
        v = ViewerClient(self.config, **kwargs)  # type: ignore[arg-type]
        self._all.append(v)
        return v

    async def close(self) -> None:
        for peer in self._all:
            await peer.close()


Factory = Callable[..., object]
