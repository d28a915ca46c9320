"""Real Chromium with several media processes: ``python app.py --workers 2`` (one node,
or two on 127.0.0.2 and 127.0.0.3), all in the loopback-only network namespace
(tests/netns.py), on PostgreSQL over its Unix socket and a Redis of the test's own on a
Unix socket (a socket file belongs to no network, so both are reachable from there).

- A full node's watch page plays from the other node (the media endpoint's URL, cross-
  origin, its token standing for the viewer); an offer a page of node A posts to the
  full node B follows the ``307`` to node A with ``Origin: null`` and plays.
- The worker serving a watch page dies: the page posts again by itself and plays from
  another worker.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from chromium import CHROMIUM, chromium_args
from netns import LoopbackNamespace
from sqlalchemy.engine import make_url
from support import backend_settings, drop_backend_state
from test_media_nodes import (
    WORKERS,
    following,
    published,
    republish,
    running_node,
    two_nodes,
)
from test_media_workers import live_session, statuses, worker_on

from app import Settings
from media.clients import ViewerClient
from media.config import MediaConfig

PG_SOCKETS = Path(os.environ.get("LIVESHELF_TEST_PG_SOCKETS", "/var/run/postgresql"))


@pytest.fixture
async def unix_backend(tmp_path: Path) -> AsyncIterator[Settings]:
    """PostgreSQL and a Redis of the test's own, both over Unix sockets: reachable from
    the loopback-only network namespace (a socket file belongs to no network)."""
    settings = backend_settings("postgres-redis", tmp_path)
    if not (PG_SOCKETS / ".s.PGSQL.5432").exists():
        pytest.skip(f"no PostgreSQL socket in {PG_SOCKETS}")
    url = make_url(settings.database_url)
    # no host or port: the query's socket folder is the only way in
    unix_db = url._replace(host=None, port=None).set(query={"host": str(PG_SOCKETS)})
    folder = Path(tempfile.mkdtemp(prefix="ls-redis-"))  # a socket path has 108 bytes
    socket_path = folder / "redis.sock"
    redis = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(socket_path), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if socket_path.exists():
                break
            await asyncio.sleep(0.05)
        settings = settings.model_copy(
            update={
                "database_url": unix_db.render_as_string(hide_password=False),
                "redis_url": f"unix://{socket_path}",
            }
        )
        yield settings
        await drop_backend_state(settings)
    finally:
        redis.terminate()
        redis.wait()
        shutil.rmtree(folder, ignore_errors=True)


#: In the page: a WHEP viewer that POSTs its offer to ``url`` and follows what it is
#: answered, as ``static/js/webrtc.js`` does; it is kept as ``window.redirectedPc``.
_PLAY_FROM = """async (url) => {
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((done) => {
        pc.addEventListener('icegatheringstatechange', () => {
            if (pc.iceGatheringState === 'complete') done();
        });
        setTimeout(done, 2000);
    });
    const res = await fetch(url, {
        method: 'POST', headers: { 'Content-Type': 'application/sdp' },
        body: pc.localDescription.sdp,
    });
    const text = await res.text();
    if (res.status !== 201) return { status: res.status, text };
    await pc.setRemoteDescription({ type: 'answer', sdp: text });
    window.redirectedPc = pc;
    return { status: res.status, url: res.url, redirected: res.redirected };
}"""

_FRAMES = """async (which) => {
    // no eval: the pages' Content-Security-Policy forbids it
    const pc = which === 'player' ? window.liveshelfWatch.player()?.pc : window.redirectedPc;
    if (!pc) return 0;
    let frames = 0;
    (await pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded || 0;
    });
    return frames;
}"""


async def decodes(page: Any, which: str, frames: int, within_s: float) -> None:
    """Until the page's peer connection (``which``: "player", the watch page's, or
    "redirected", ``_PLAY_FROM``'s) has decoded ``frames``."""
    async with asyncio.timeout(within_s):
        while await page.evaluate(_FRAMES, which) < frames:  # noqa: ASYNC110
            await asyncio.sleep(0.2)


async def launched(stack: AsyncExitStack, chromium: str, *hosts: str) -> Any:
    """Chromium (closed with ``stack``), allowed to reach ``hosts`` too."""
    from playwright.async_api import async_playwright

    pw = await stack.enter_async_context(async_playwright())
    browser = await pw.chromium.launch(executable_path=chromium, args=chromium_args(*hosts))
    stack.push_async_callback(browser.close)
    return browser


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    pytest.importorskip("playwright", reason="pip install -e '.[test]'")
    return CHROMIUM


async def test_a_browser_is_sent_from_a_full_node_to_another(
    unix_backend: Settings, loopback_namespace: LoopbackNamespace, chromium: str, tmp_path: Path
) -> None:
    """Chromium, in a namespace with only loopback: the watch page of a full node plays
    from the other node (the media endpoint's URL, cross-origin, its token standing for
    the viewer); an offer a page of node A posts to the full node B is redirected
    (307) to node A with ``Origin: null``, and plays."""
    config = MediaConfig(ice_addresses=("127.0.0.1",))
    peers: list[Any] = []
    with loopback_namespace.entered():
        async with AsyncExitStack() as stack:
            a, b, http = await two_nodes(stack, unix_backend, tmp_path, (2, 1))
            browser = await launched(stack, chromium, a.address, b.address)
            try:
                async with aiohttp.ClientSession(base_url=a.base) as on_a:
                    token, sid = await live_session(on_a)
                await republish(http, f"{a.base}/whip/{sid}", token, config, peers)
                await published(http, a, sid)
                async with asyncio.timeout(30):  # node B is full: one viewer per worker
                    for _ in range(WORKERS):
                        viewer = ViewerClient(config, decode=False)
                        peers.append(viewer)
                        await viewer.connect(following(http, f"{b.base}/whep/{sid}", []))
                # until B's node record (written every second) says it has no room left
                async with asyncio.timeout(10):
                    while True:
                        res = await http.get(f"{b.base}/api/sessions/{sid}/media-endpoint")
                        if (await res.json())["url"].startswith(a.base):
                            break
                        await asyncio.sleep(0.2)

                # the watch page of node B plays from node A
                watch = await browser.new_page()
                offers: list[Any] = []
                watch.on("request", lambda r: offers.append(r) if "/whep/" in r.url else None)
                await watch.goto(f"{b.base}/watch/{sid}")
                await decodes(watch, "player", 30, 20)
                posts = [r.url for r in offers if r.method == "POST"]
                assert posts and posts[0].startswith(f"{a.base}/whep/{sid}?token="), posts

                # a page of node A posts to the full node B: 307 to A, Origin null
                page = await browser.new_page()
                await page.goto(f"{a.base}/")
                sent: list[Any] = []
                page.on("request", lambda r: sent.append(r) if "/whep/" in r.url else None)
                answer = await page.evaluate(_PLAY_FROM, f"{b.base}/whep/{sid}")
                assert answer["status"] == 201 and answer["redirected"], answer
                assert answer["url"].startswith(f"{a.base}/whep/{sid}?token="), answer
                at_a = [r for r in sent if r.method == "POST" and r.url.startswith(a.base)]
                assert at_a and (await at_a[-1].all_headers()).get("origin") == "null"
                await decodes(page, "redirected", 30, 20)
            finally:
                for peer in peers:
                    await peer.close()


async def test_a_watch_page_whose_worker_dies_plays_again_from_another(
    unix_backend: Settings, loopback_namespace: LoopbackNamespace, chromium: str, tmp_path: Path
) -> None:
    """SIGKILL of the worker serving a watch page: the page posts a new offer by itself
    (placed on a live worker) and plays again, without a reload."""
    config = MediaConfig(ice_addresses=("127.0.0.1",))
    peers: list[Any] = []
    with loopback_namespace.entered():
        async with AsyncExitStack() as stack:
            node = await stack.enter_async_context(
                running_node(unix_backend, tmp_path, "", "127.0.0.1", cap=2, migrate=True)
            )
            http = await stack.enter_async_context(aiohttp.ClientSession())
            browser = await launched(stack, chromium)
            try:
                async with aiohttp.ClientSession(base_url=node.base) as on_node:
                    token, sid = await live_session(on_node)
                await republish(http, f"{node.base}/whip/{sid}", token, config, peers)
                await published(http, node, sid)
                fillers = []  # the relay worker is full: the page goes to the other one
                async with asyncio.timeout(30):
                    for _ in range(2):
                        filler = ViewerClient(config, decode=False)
                        peers.append(filler)
                        await filler.connect(following(http, f"{node.base}/whep/{sid}", []))
                        fillers.append(filler)
                assert all("/w0." in f.resource.location for f in fillers)
                await asyncio.sleep(1.2)  # the relay worker's next report: full

                page = await browser.new_page()
                posted: list[float] = []
                page.on(
                    "request",
                    lambda r: (
                        posted.append(time.monotonic())
                        if r.method == "POST" and "/whep/" in r.url
                        else None
                    ),
                )
                await page.goto(f"{node.base}/watch/{sid}")
                await decodes(page, "player", 30, 20)
                where = "window.liveshelfWatch.player().location"
                assert "/w1." in await page.evaluate(where)

                os.kill(worker_on(node.pids, node.media_port + 1), signal.SIGKILL)
                killed_at = time.monotonic()
                async with http.delete(fillers[0].resource.location) as res:
                    assert res.status == 200  # room on the relay worker
                async with asyncio.timeout(20):
                    while len(posted) < 2:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                reposted_after = posted[1] - killed_at
                await decodes(page, "player", 30, 20)
                playing_after = time.monotonic() - killed_at
                print(
                    f"the page posted again {reposted_after:.1f} s after SIGKILL of its "
                    f"worker and played again {playing_after:.1f} s after it"
                )
                assert "/w0." in await page.evaluate(where)
                assert reposted_after < 2.0  # the page notices a stall in ~1 s
                found = await statuses(http, node.internal[:1])
                assert found[0][str(sid)]["viewers"] == 2, found
            finally:
                for peer in peers:
                    await peer.close()
