"""Two nodes: ``python app.py --workers 2`` twice, on 127.0.0.2 and 127.0.0.3 (their
own HTTP, internal and ICE addresses), sharing PostgreSQL and Redis.

The publisher reaches node A; node B's viewers play through one pull from node A (by
B's relay worker; B's other worker pulls from it); a full node answers a new viewer
with ``307`` to the other node, whose URL carries a signed token, and the redirected
viewer plays; the media endpoint names the node with room; forged and misdirected
tokens are refused; the session's end reaches the viewers on both nodes.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from support import (
    TEST_SECRET,
    Posted,
    free_port,
    guest_cookie,
    poster,
)
from test_media_workers import (
    audience_is,
    free_port_run,
    grows,
    live_session,
    statuses,
    worker_on,
)
from test_workers import ROOT, alive, stop, wait_for_workers, workers_env
from yarl import URL

from app import Settings
from media.clients import PublisherClient, ViewerClient
from media.config import MediaConfig
from media.tokens import MediaTokens

WORKERS = 2


@dataclass
class Node:
    """One running node: ``python app.py --workers 2`` on its own address."""

    name: str
    address: str
    port: int
    media_port: int
    supervisor: subprocess.Popen[bytes]
    pids: list[int]

    @property
    def base(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def internal(self) -> list[str]:
        return [f"http://{self.address}:{self.media_port + i}" for i in range(WORKERS)]


@asynccontextmanager
async def running_node(
    shared: Settings, tmp_path: Path, name: str, address: str, cap: int, *, migrate: bool
) -> AsyncIterator[Node]:
    """A node on ``address`` with ``cap`` viewers per worker; SIGTERM must stop it
    cleanly and leave no worker behind."""
    port, media_port = free_port(), free_port_run(WORKERS)
    env = workers_env(
        shared,
        tmp_path,
        media_port,
        LIVESHELF_HOST=address,
        LIVESHELF_NODE=name,
        LIVESHELF_NODE_INTERNAL_HOST=address,
        LIVESHELF_ICE_ADDRESSES=address,
        LIVESHELF_MEDIA_MAX_VIEWERS_PER_WORKER=str(cap),
        # Placement here is by the viewer cap alone, so these tests choose exactly where
        # each viewer goes: a worker busy for several seconds on a loaded CI machine
        # (publisher ingest, the cover picture) could otherwise reach 0.85 of a core
        # (averaged, media.placement.SteadyCpu). Placement by CPU has its own tests
        # (tests/unit/test_placement.py).
        LIVESHELF_MEDIA_CPU_LIMIT=str(os.cpu_count() or 1),
        LIVESHELF_AUTO_MIGRATE="1" if migrate else "0",
        LIVESHELF_DB_POOL_SIZE="3",
    )
    log_path = tmp_path / f"node-{name}.log"
    with open(log_path, "wb") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "app.py", "--workers", str(WORKERS), "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        node = Node(name, address, port, media_port, supervisor, [])
        try:
            node.pids = await wait_for_workers(supervisor, node.base, port, WORKERS)
            yield node
        finally:
            code = stop(supervisor)
    assert code == 0, log_path.read_text()[-3000:]
    assert not any(alive(pid) for pid in node.pids)


async def two_nodes(
    stack: AsyncExitStack, settings: Settings, tmp_path: Path, caps: tuple[int, int]
) -> tuple[Node, Node, aiohttp.ClientSession]:
    """Node A on 127.0.0.2 and node B on 127.0.0.3 (viewer caps per worker ``caps``),
    and an HTTP client opening a new connection per request."""
    a = await stack.enter_async_context(
        running_node(settings, tmp_path, "a", "127.0.0.2", cap=caps[0], migrate=True)
    )
    b = await stack.enter_async_context(
        running_node(settings, tmp_path, "b", "127.0.0.3", cap=caps[1], migrate=False)
    )
    fresh = aiohttp.TCPConnector(force_close=True)
    http = await stack.enter_async_context(aiohttp.ClientSession(connector=fresh))
    return a, b, http


def following(
    http: aiohttp.ClientSession,
    url: str,
    seen: list[aiohttp.ClientResponse],
    extra: dict[str, str] | None = None,
    redirects: list[aiohttp.ClientResponse] | None = None,
) -> Any:
    """An ``Exchange`` POSTing the offer to ``url`` (with the ``extra`` headers, e.g.
    the node's guest cookie) and following a redirect as a browser does: the offer
    again, without what belonged to the first origin (``seen`` gets the final response,
    ``redirects`` the 307s); the resource's Location is made absolute against the URL
    that answered."""

    async def exchange(offer: str) -> Posted:
        headers = {"Content-Type": "application/sdp", **(extra or {})}
        res = await http.post(url, data=offer, headers=headers, allow_redirects=False)
        while res.status == 307:
            if redirects is not None:
                redirects.append(res)
            plain = {"Content-Type": "application/sdp"}
            location = res.headers["Location"]
            res = await http.post(location, data=offer, headers=plain, allow_redirects=False)
        body = await res.text()
        assert res.status == 201, body
        seen.append(res)
        location = str(res.url.join(URL(res.headers["Location"])))
        return Posted(body, location, res.headers["ETag"], res.headers)

    return exchange


async def published(http: aiohttp.ClientSession, node: Node, sid: int) -> None:
    """Until ``node``'s relay worker holds the publisher and its node record (written
    each second) says so."""
    async with asyncio.timeout(10):
        while not (await statuses(http, node.internal))[0].get(str(sid), {}).get("publisher"):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    await asyncio.sleep(1.2)


async def test_two_nodes_one_pull_between_them_and_a_redirect_when_full(
    shared: Settings, tmp_path: Path
) -> None:
    config = MediaConfig(ice_addresses=("127.0.0.1",))
    peers: list[PublisherClient | ViewerClient] = []
    async with AsyncExitStack() as stack:
        a, b, http = await two_nodes(stack, shared, tmp_path, (2, 1))
        try:
            async with aiohttp.ClientSession(base_url=a.base) as on_a:
                token, sid = await live_session(on_a)
                auth = {"Authorization": f"Bearer {token}"}
                publisher = PublisherClient(config)
                peers.append(publisher)
                async with asyncio.timeout(30):
                    await publisher.connect(poster(on_a, f"/whip/{sid}", token))
            await published(http, a, sid)

            # B has room: its media endpoint names B itself
            res = await http.get(f"{b.base}/api/sessions/{sid}/media-endpoint")
            endpoint = await res.json()
            assert endpoint["node"] == "b", endpoint
            assert endpoint["url"].startswith(f"{b.base}/whep/{sid}?token="), endpoint

            # two viewers at B: one on each of its workers, fed by one pull from A
            viewers = [ViewerClient(config) for _ in range(WORKERS)]
            peers.extend(viewers)
            answered: list[aiohttp.ClientResponse] = []
            cookies = [guest_cookie() for _ in viewers]
            first_cookie = cookies[0]
            async with asyncio.timeout(60):
                for viewer, cookie in zip(viewers, cookies, strict=True):
                    # each browser has its guest cookie: people, not one address
                    url = f"{b.base}/whep/{sid}"
                    await viewer.connect(following(http, url, answered, cookie))
                for viewer in viewers:
                    await viewer.wait_for("video", decoded=60, within_s=30)
                    await viewer.wait_for("audio", decoded=20, within_s=10)
            assert [r.url.host for r in answered] == [b.address] * 2  # not redirected
            on_a, on_b = await statuses(http, a.internal), await statuses(http, b.internal)
            assert [s.get(str(sid), {}).get("viewers", 0) for s in on_b] == [1, 1], on_b
            # A's relay worker feeds B's once; B's feeds B's other worker
            pulled_by_a = on_a[0][str(sid)]["pulled_by"]
            assert [p.rsplit(":", 1)[0] for p in pulled_by_a] == ["b:0"], on_a
            assert on_b[0][str(sid)]["pulling"] and on_b[1][str(sid)]["pulling"], on_b
            assert [p.rsplit(":", 1)[0] for p in on_b[0][str(sid)]["pulled_by"]] == ["b:1"]
            for viewer in viewers:
                video = viewer.stats["video"]
                assert video.first_is_keyframe is True
                steps = {y - x for x, y in itertools.pairwise(video.timestamps)}
                assert steps <= {2999, 3000, 3001}, (viewer.resource, steps)

            # the host publishes to one node at a time: a second publisher at B (through
            # either of its workers) is refused while A's is connected
            for _ in range(WORKERS):
                second = PublisherClient(config)
                peers.append(second)
                with pytest.raises(AssertionError, match="publisher_exists"):
                    await second.connect(poster(http, f"{b.base}/whip/{sid}", token))
            on_b = await statuses(http, b.internal)
            assert not on_b[0][str(sid)].get("publisher") and on_b[0][str(sid)]["pulling"]
            for viewer in viewers:
                await grows(viewer, 30, 10)

            # B is full: its endpoint names A, and an offer to B is redirected to A
            await asyncio.sleep(1.2)  # B's next record counts its viewers
            res = await http.get(f"{b.base}/api/sessions/{sid}/media-endpoint")
            endpoint = await res.json()
            assert endpoint["node"] == "a" and endpoint["url"].startswith(f"{a.base}/whep/")
            third = ViewerClient(config)
            peers.append(third)
            redirects: list[aiohttp.ClientResponse] = []
            async with asyncio.timeout(30):
                # the first viewer's browser again, in another tab: its cookie stays
                # with B's origin, its guest id travels in the redirect's token
                url = f"{b.base}/whep/{sid}"
                exchange = following(http, url, answered, first_cookie, redirects)
                await third.connect(exchange)
                await third.wait_for("video", decoded=60, within_s=20)
            redirect = redirects[0]
            assert redirect.status == 307, redirect
            assert redirect.headers["Location"].startswith(f"{a.base}/whep/{sid}?token=")
            assert redirect.headers["Access-Control-Allow-Origin"] == "*"
            assert third.resource.location.startswith(f"{a.base}/whep/{sid}/a.w")
            assert answered[-1].headers["Access-Control-Allow-Origin"] == "*"

            # a token is a credential for one session at one node, and cannot be forged
            token_for_a = parse_qs(urlsplit(endpoint["url"]).query)["token"][0]
            forged = token_for_a[:-2] + ("AA" if not token_for_a.endswith("AA") else "BB")
            for url, code in (
                (f"{b.base}/whep/{sid}?token={token_for_a}", "invalid_media_token"),
                (f"{a.base}/whep/{sid}?token={forged}", "invalid_media_token"),
                (f"{a.base}/whep/{sid + 1}?token={token_for_a}", "invalid_media_token"),
            ):
                offer = await ViewerClient(config).offer()
                res = await http.post(url, data=offer, headers={"Content-Type": "application/sdp"})
                assert (res.status, (await res.json())["error"]["code"]) == (401, code), url
            stale = MediaTokens(TEST_SECRET, now=lambda: 0.0).issue(sid, "a", None)[0]
            res = await http.post(
                f"{a.base}/whep/{sid}?token={stale}",
                data="v=0\r\n",
                headers={"Content-Type": "application/sdp"},
            )
            assert (await res.json())["error"]["code"] == "media_token_expired"

            # the session's end reaches the viewers on both nodes
            res = await http.post(f"{a.base}/api/sessions/{sid}/end", headers=auth)
            assert res.status == 200, await res.text()
            assert await statuses(http, a.internal) == [{}, {}]
            assert await statuses(http, b.internal) == [{}, {}]
            # analytics counts two people (the first one's second tab, on node A, is
            # the same guest), three at the peak (one person on two processes counts
            # in each, as the curve is summed over processes), and none of the pulls
            await audience_is(http, sid, auth, viewers=2, peak=3, base=a.base)
            async with asyncio.timeout(20):
                while any(  # noqa: ASYNC110
                    v.pc.connectionState not in ("closed", "failed") for v in [*viewers, third]
                ):
                    await asyncio.sleep(0.2)
        finally:
            for peer in peers:
                await peer.close()


async def pulled_by(http: aiohttp.ClientSession, node: Node, sid: int) -> list[str]:
    """Who pulls ``sid`` from ``node``'s relay worker (``NODE:INDEX:PID`` each)."""
    pulled: list[str] = (await statuses(http, node.internal[:1]))[0][str(sid)]["pulled_by"]
    return pulled


def owner(viewer: ViewerClient) -> str:
    """``node.wN`` of the worker holding the viewer's resource."""
    rid = viewer.resource.location.rsplit("/", 1)[1]
    return ".".join(rid.split(".")[:2])


async def republish(
    http: aiohttp.ClientSession, url: str, token: str, config: MediaConfig, peers: list[Any]
) -> None:
    """The host's studio publishes again (503 while a worker restarts: again)."""
    async with asyncio.timeout(30):
        while True:
            publisher = PublisherClient(config)
            peers.append(publisher)
            try:
                await publisher.connect(poster(http, url, token))
                return
            except AssertionError as refused:
                assert "media_unavailable" in str(refused), refused
                await asyncio.sleep(0.3)


async def test_nodes_dying_during_a_show(shared: Settings, tmp_path: Path) -> None:
    """SIGKILL of node B's relay worker: node A frees its pull within 15 s, B's other
    worker's viewer resumes through B's restarted relay worker. SIGKILL of node A's
    relay worker, the origin, and the host publishing again to node B: the session's
    origin moves to B, and the viewers left on both nodes resume without
    renegotiating, their timestamps rising."""
    config = MediaConfig(ice_addresses=("127.0.0.1",))
    peers: list[Any] = []
    async with AsyncExitStack() as stack:
        a, b, http = await two_nodes(stack, shared, tmp_path, (1, 1))
        try:
            async with aiohttp.ClientSession(base_url=a.base) as on_a:
                token, sid = await live_session(on_a)
            await republish(http, f"{a.base}/whip/{sid}", token, config, peers)
            await published(http, a, sid)
            viewers = {}
            async with asyncio.timeout(60):
                for node in (a, a, b, b):  # one viewer on each worker of each node
                    viewer = ViewerClient(config)
                    peers.append(viewer)
                    await viewer.connect(following(http, f"{node.base}/whep/{sid}", []))
                    viewers[owner(viewer)] = viewer
                assert sorted(viewers) == ["a.w0", "a.w1", "b.w0", "b.w1"]
                for viewer in viewers.values():
                    await viewer.wait_for("video", decoded=30, within_s=30)

            # node B's relay worker dies
            b_relay = worker_on(b.pids, b.media_port)
            os.kill(b_relay, signal.SIGKILL)
            killed_at = time.monotonic()
            await grows(viewers["a.w1"], 45, 5)
            async with asyncio.timeout(15):
                while f"b:0:{b_relay}" in (await pulled_by(http, a, sid)):  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
            print(f"node A freed node B's pull {time.monotonic() - killed_at:.1f} s after SIGKILL")
            b.pids = await wait_for_workers(b.supervisor, b.base, b.port, WORKERS)
            await grows(viewers["b.w1"], 30, 20)
            # the dead worker's resource, through the other node, and one of a node
            # that does not exist: 404, nothing made
            dead = viewers["b.w0"].resource.location.removeprefix(b.base)
            for path in (dead, f"/whep/{sid}/zz.w0.abc", f"/whep/{sid}/b.w7.abc"):
                async with http.delete(f"{a.base}{path}") as res:
                    assert (res.status, (await res.json())["error"]["code"]) == (
                        404,
                        "not_found",
                    ), path

            # node A's relay worker, the origin, dies; the host publishes to node B
            survivors = [viewers["a.w1"], viewers["b.w1"]]
            before = [
                (v.stats["video"].decoded, v.stats["video"].last_timestamp) for v in survivors
            ]
            os.kill(worker_on(a.pids, a.media_port), signal.SIGKILL)
            await republish(http, f"{b.base}/whip/{sid}", token, config, peers)
            a.pids = await wait_for_workers(a.supervisor, a.base, a.port, WORKERS)
            async with asyncio.timeout(60):
                for viewer, (decoded, _) in zip(survivors, before, strict=True):
                    await viewer.wait_for("video", decoded=decoded + 60, within_s=30)
            for viewer, (_, last_ts) in zip(survivors, before, strict=True):
                assert viewer.pc.connectionState == "connected"  # never renegotiated
                resumed = viewer.stats["video"].last_timestamp
                assert resumed is not None and last_ts is not None and resumed > last_ts
            on_b = await statuses(http, b.internal)
            assert on_b[0][str(sid)]["publisher"] and not on_b[0][str(sid)]["pulling"], on_b
            on_a = await statuses(http, a.internal)
            assert on_a[0][str(sid)]["pulling"] and on_a[1][str(sid)]["pulling"], on_a
        finally:
            for peer in peers:
                await peer.close()
