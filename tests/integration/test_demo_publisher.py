"""``python app.py --demo`` publishes a test picture and tone to the demo show through
its own WHIP endpoint (``media.demo_publisher``): a viewer plays at once, with no host
action; ``--no-publisher`` (``LIVESHELF_DEMO_PUBLISHER=off``) publishes nothing; the
shutdown leaves no peer and no task."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCPeerConnection
from support import free_port, poster, wait_until_up

from app import Settings, create_app, settings_key
from media import demo_publisher
from media.clients import PublisherClient, ViewerClient
from media.config import MediaConfig
from media.demo_publisher import DemoPublisher
from media.feature import media_key
from shelf.demo import DEMO_PASSWORD

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def backend() -> str:
    return "sqlite-memory"  # the demo's own storage


def open_peers() -> list[RTCPeerConnection]:
    gc.collect()
    return [
        o
        for o in gc.get_objects()
        if isinstance(o, RTCPeerConnection) and o.connectionState != "closed"
    ]


async def watch(base: str, session_id: int) -> ViewerClient:
    """A WHEP viewer of the show, once it decoded 30 video frames and some sound."""
    viewer = ViewerClient(MediaConfig())
    async with aiohttp.ClientSession(base) as http:
        await viewer.connect(poster(http, f"/whep/{session_id}"))
        await viewer.wait_for("video", decoded=30, within_s=20)
        await viewer.wait_for("audio", decoded=10, within_s=5)
    return viewer


async def test_the_demo_show_plays_at_once_and_its_publisher_stops_clean(
    settings: Settings, aiohttp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="media.demo_publisher")
    port = free_port()
    app = create_app(settings.model_copy(update={"demo": True, "port": port}))
    server = await aiohttp_server(app, host="127.0.0.1", port=port)
    viewer = await watch(f"http://127.0.0.1:{port}", 1)
    try:
        assert app[media_key].published_sessions() == [1]
        published = [r.message for r in caplog.records if "publishing" in r.message]
        assert published == [
            f"demo publisher: publishing a test picture and tone to "
            f"http://127.0.0.1:{port}/whip/1 (watch: http://127.0.0.1:{port}/watch/1)"
        ]
    finally:
        await viewer.close()
    await server.close()
    assert app[media_key].peer_count() == 0
    assert [t for t in asyncio.all_tasks() if t.get_name() == "demo-publisher"] == []
    assert open_peers() == []


async def test_the_setting_off_publishes_nothing(settings: Settings, aiohttp_server: Any) -> None:
    port = free_port()
    off = settings.model_copy(update={"demo": True, "port": port, "demo_publisher": False})
    app = create_app(off)
    await aiohttp_server(app, host="127.0.0.1", port=port)
    await asyncio.sleep(1.5)  # the publisher is up within half a second when on
    assert app[media_key].published_sessions() == []
    assert [t for t in asyncio.all_tasks() if t.get_name() == "demo-publisher"] == []


async def until(condition: Callable[[], bool], within_s: float = 15) -> None:
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 -- polls state it does not own
            await asyncio.sleep(0.05)


async def test_the_publisher_backs_off_while_the_host_holds_the_show_then_takes_it_back(
    settings: Settings,
    aiohttp_server: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level("DEBUG", logger="media.demo_publisher")
    monkeypatch.setattr(demo_publisher, "RETRY_FIRST_S", 1.0)  # time for the host to step in
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = create_app(
        settings.model_copy(update={"demo": True, "port": port, "demo_publisher": False})
    )
    async with aiohttp.ClientSession(base) as http:
        token = ""

        async def show() -> tuple[int, str]:
            nonlocal token
            login = {"username": "demo-host", "password": DEMO_PASSWORD}
            async with http.post("/api/auth/login", json=login) as res:
                token = (await res.json())["token"]
            return 1, token

        publisher = DemoPublisher(app[settings_key], show)
        app.cleanup_ctx.append(publisher.lifetime)
        await aiohttp_server(app, host="127.0.0.1", port=port)
        media = app[media_key]
        await until(lambda: publisher.connections == 1)
        assert publisher.pc is not None
        await publisher.pc.close()  # its connection drops ...
        await until(lambda: media.published_sessions() == [])
        host = PublisherClient(MediaConfig())  # ... and the host goes live meanwhile
        await host.connect(poster(http, "/whip/1", token))
        await until(lambda: "409 publisher_exists" in caplog.text)
        assert publisher.connections == 1
        await host.close()  # the host stops: the demo's picture comes back
        await until(lambda: publisher.connections == 2)
        await until(lambda: media.published_sessions() == [1])
    published = [r for r in caplog.records if "demo publisher: publishing" in r.message]
    assert len(published) == 2


def start_demo(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "LIVESHELF_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/demo.db",
        "LIVESHELF_RECORDINGS_DIR": str(tmp_path / "recordings"),
    }
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--demo", "--port", str(port), *args],
        cwd=ROOT,
        env=env,
        stdout=(tmp_path / "out.txt").open("wb"),
        stderr=(tmp_path / "err.txt").open("wb"),
    )
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen[bytes], tmp_path: Path) -> tuple[str, str]:
    """SIGINT, as Ctrl-C; the exit status must be 0; the standard output and error."""
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0
    return (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()


async def test_python_app_demo_is_live_at_once_and_links_the_pages(tmp_path: Path) -> None:
    proc, base = start_demo(tmp_path)
    try:
        await wait_until_up(base, proc, within_s=30)
        viewer = await watch(base, 1)
        await viewer.close()
    finally:
        out, err = stop(proc, tmp_path)
    for page in ("/", "/watch/1", "/studio", "/brand"):
        assert f"{base}{page} " in out or f"{base}{page}\n" in out, out
    assert "/api/" not in out and "ws://" not in out, out
    assert f"demo publisher: publishing a test picture and tone to {base}/whip/1" in err
    for trouble in ("Traceback", "Task was destroyed", "did not stop", "ERROR", "WARNING"):
        assert trouble not in err, err


async def test_python_app_demo_no_publisher_leaves_the_show_to_its_host(tmp_path: Path) -> None:
    proc, base = start_demo(tmp_path, "--no-publisher")
    try:
        await wait_until_up(base, proc, within_s=30)
        await asyncio.sleep(1.5)
        async with aiohttp.ClientSession(base) as http:
            login = {"username": "demo-host", "password": DEMO_PASSWORD}
            async with http.post("/api/auth/login", json=login) as res:
                token = (await res.json())["token"]
            # nobody holds the show: the host's own encoder is answered (201, not 409)
            host = PublisherClient(MediaConfig())
            await host.connect(poster(http, "/whip/1", token))
            await host.close()
    finally:
        _, err = stop(proc, tmp_path)
    assert "demo publisher" not in err
