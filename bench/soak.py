"""Soak: one long show against ``python app.py --demo``; does the server stay flat?

    python bench/soak.py --minutes 30 [--churn-s 20] [--viewers 8] [--sockets 300]
                         [--report-s 30] [--warmup-min 5] [--flash-s 120]
                         [--buyers 20] [--chatters 10] [--vanish-every 4] [--objects]
                         [--types] [--database-url URL]

Issue 27: during a soak ``python app.py --demo`` grew 137 MiB/h. This runs that show
and reads the server from inside (``GET /api/admin/runtime``, ``live/runtime.py``):

- the server: ``python app.py --demo`` pinned to CPU 0, on a SQLite file and a
  recordings folder in a temporary directory (``LIVESHELF_DATABASE_URL``,
  ``LIVESHELF_RECORDINGS_DIR``), so the user's ``liveshelf-demo.db`` is never touched;
  ``--database-url`` serves from that database instead (e.g. an empty PostgreSQL
  database: the soak migrates it; it tells SQLite's page cache apart from the server's
  own growth);
  ``LIVESHELF_LIMITS=off`` (300+ sockets from one address are over the default caps),
  ``LIVESHELF_DEMO_PUBLISHER=off`` (the load's publisher streams the show);
  an admin made with ``python app.py create-admin`` before it starts;
- load processes pinned to the other CPU: one WHIP publisher (aiortc, 640x480 30 fps
  VP8 + Opus, as the demo host); ``--viewers`` WHEP viewers (aiortc, no decoding) each
  leaving and joining again every ``--churn-s`` seconds, staggered (every
  ``--vanish-every``-th leave just closes the peer, the others DELETE the resource
  first); ``--sockets`` guest room sockets (raw protocol, bench/wsload.py), 10 % of
  them closing and resuming with ``since``/``epoch`` every 30 s, each checking that the
  ``seq`` it sees has no gap; ``--chatters`` signed-in sockets sending 5 chat messages
  and 10 likes a second in all;
- the driver (this process): a pin every 5 s, a flash sale every ``--flash-s`` s, an
  order a second (``--buyers`` viewer accounts in turn, products in turn, every
  product's stock set high at the start so the show never sells out), and a runtime
  reading every 5 s; one line every ``--report-s`` s.

At the end: the least-squares RSS slope after ``--warmup-min``, the ranges of fds, UDP
sockets, tasks and held peers after it, the longest collector pause, what the load
cost (CPU share per process), the peer connections left once everyone has gone (held,
alive, alive after a full collection), and every acknowledged (201) order checked
against the host's commission report and ``GET /api/orders/{id}`` to the minor unit.
Everything stays on 127.0.0.1, no STUN; every loop is bounded in count and time; the
publisher, viewers, sockets and server are stopped on the way out, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from harness import (  # noqa: E402
    cpu_times,
    free_port,
    load_cpus,
    raise_nofile,
    signup,
    wait_until_up,
)
from wsload import Viewer  # noqa: E402

SECRET = "soak-secret-0123456789abcdef-0123456789"
ADMIN = ("soak-admin", "long-show-watcher-9q2z")
DEMO_PASSWORD = "liveshelf-demo"  # shelf/demo.py's, for demo-host and demo-brand
POLL_S = 5.0
SOCKET_CHURN_S = 30.0
SOCKET_CHURN_SHARE = 0.10
PIN_EVERY_S = 5.0
ORDER_EVERY_S = 1.0
CHAT_PER_S = 5.0
LIKES_PER_S = 10.0
STOCK = 1_000_000
#: a load process gives up this long after the show's planned end, whatever happens
GRACE_S = 60.0
MIB = 2**20


# ------------------------------------------------------------------ load processes


def _child_start() -> None:
    """In a load process: Ctrl-C is the driver's to handle (it tells us to stop)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_nofile()


def _over(stop: Any, deadline: float, parent: int) -> bool:
    """A load process stops when told, past its deadline, or when the driver is gone."""
    return bool(stop.is_set()) or time.time() > deadline or os.getppid() != parent


async def _nap(seconds: float, stop: Any, deadline: float, parent: int) -> bool:
    """Sleep up to ``seconds`` in short steps; False if it is time to stop."""
    end = time.monotonic() + seconds
    for _ in range(int(seconds / 0.2) + 2):
        if _over(stop, deadline, parent):
            return False
        left = end - time.monotonic()
        if left <= 0:
            return True
        await asyncio.sleep(min(0.2, left))
    return not _over(stop, deadline, parent)


def _media_config() -> Any:
    from media.config import MediaConfig

    return MediaConfig(ice_addresses=("127.0.0.1",))  # no STUN, loopback candidates only


def publisher_main(
    base: str, sid: int, token: str, stop: Any, deadline: float, out: Connection
) -> None:
    _child_start()
    out.send(asyncio.run(_publish(base, sid, token, stop, deadline, os.getppid())))


async def _publish(
    base: str, sid: int, token: str, stop: Any, deadline: float, parent: int
) -> dict[str, Any]:
    """One WHIP publisher for the whole show; publishes again (at most 20 times) if its
    connection fails."""
    from media.clients import PublisherClient

    started, cpu0 = time.monotonic(), time.process_time()
    sent = republished = 0
    failures: Counter[str] = Counter()
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        for attempt in range(21):
            if _over(stop, deadline, parent):
                break
            client = PublisherClient(_media_config(), width=640, height=480)
            location: str | None = None

            async def exchange(offer: str) -> str:
                nonlocal location
                async with http.post(f"{base}/whip/{sid}", data=offer, headers=headers) as res:
                    if res.status != 201:
                        raise RuntimeError(f"WHIP {res.status} {await res.text()}")
                    location = res.headers["Location"]
                    return await res.text()

            try:
                await client.connect(exchange)
                republished += attempt > 0
                for _ in range(int((deadline - time.time()) / 0.5) + 2):
                    if not await _nap(0.5, stop, deadline, parent):
                        break
                    if client.pc.connectionState in ("failed", "closed"):
                        failures["connection " + client.pc.connectionState] += 1
                        break
            except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                failures[str(exc)[:80]] += 1
                await _nap(2.0, stop, deadline, parent)
            finally:
                sent += client.video.frames if client.video is not None else 0
                if location is not None:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with http.delete(f"{base}{location}", headers=headers):
                            pass
                await client.close()
    wall = time.monotonic() - started
    return {
        "kind": "publisher",
        "cpu_s": time.process_time() - cpu0,
        "wall_s": wall,
        "fps": sent / wall if wall else 0.0,
        "republished": republished,
        "failures": dict(failures),
    }


def viewers_main(
    base: str,
    sid: int,
    count: int,
    churn_s: float,
    vanish_every: int,
    stop: Any,
    deadline: float,
    out: Connection,
) -> None:
    _child_start()
    out.send(
        asyncio.run(_viewers(base, sid, count, churn_s, vanish_every, stop, deadline, os.getppid()))
    )


async def _viewers(
    base: str,
    sid: int,
    count: int,
    churn_s: float,
    vanish_every: int,
    stop: Any,
    deadline: float,
    parent: int,
) -> dict[str, Any]:
    """``count`` WHEP viewers, viewer i first joining at i * churn_s / count; each
    watches ``churn_s`` seconds, leaves, and joins again at once."""
    from media.clients import ViewerClient

    started, cpu0 = time.monotonic(), time.process_time()
    tally: Counter[str] = Counter()
    watched_s = 0.0
    frames = 0
    rounds = int((deadline - time.time()) / max(churn_s, 1.0)) + 2
    connector = aiohttp.TCPConnector(limit=count + 2)
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(index: int) -> None:
            nonlocal watched_s, frames
            if not await _nap(index * churn_s / count, stop, deadline, parent):
                return
            for round_ in range(rounds):
                if _over(stop, deadline, parent):
                    return
                viewer = ViewerClient(_media_config(), decode=False)
                location: str | None = None

                async def exchange(offer: str) -> str:
                    nonlocal location
                    async with http.post(
                        f"{base}/whep/{sid}",
                        data=offer,
                        headers={"Content-Type": "application/sdp"},
                    ) as res:
                        if res.status != 201:
                            raise RuntimeError(f"WHEP {res.status}")
                        location = res.headers["Location"]
                        return await res.text()

                try:
                    await viewer.connect(exchange)
                    tally["joins"] += 1
                    joined = time.monotonic()
                    await _nap(churn_s, stop, deadline, parent)
                    got = viewer.stats["video"].encoded
                    frames += got
                    watched_s += time.monotonic() - joined
                    tally["rounds without video"] += got == 0
                except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                    tally[f"join failed: {str(exc)[:60]}"] += 1
                    await _nap(2.0, stop, deadline, parent)
                finally:
                    vanish = vanish_every > 0 and round_ % vanish_every == vanish_every - 1
                    if location is not None and not vanish:
                        try:
                            async with http.delete(f"{base}{location}") as res:
                                tally[f"DELETE {res.status}"] += 1
                        except (aiohttp.ClientError, TimeoutError):
                            tally["DELETE failed"] += 1
                    elif location is not None:
                        tally["vanished"] += 1
                    await viewer.close()

        await asyncio.gather(*(one(i) for i in range(count)))
    wall = time.monotonic() - started
    return {
        "kind": "viewers",
        "cpu_s": time.process_time() - cpu0,
        "wall_s": wall,
        "tally": dict(tally),
        "video_fps_per_viewer": frames / watched_s if watched_s else 0.0,
    }


_HELLO = re.compile(rb'"seq":(\d+),"epoch":"([^"]*)","recovered":(true|false)')


class RoomSocket(Viewer):
    """A guest room socket that follows ``seq``: counts gaps and duplicates, and knows
    where to resume from."""

    def __init__(self, path: str, host: str, tally: Counter[str]) -> None:
        super().__init__(path, host, {})
        self.tally = tally
        self.seq: int | None = None
        self.epoch: str | None = None
        self.by_us = False  # closed by the load, not the server

    def on_text(self, buf: bytearray, start: int, length: int, now: float) -> None:
        if buf.startswith(b'{"seq":', start):
            comma = buf.find(b",", start + 7, start + length)
            seq = int(buf[start + 7 : comma])
            if self.seq is not None and seq != self.seq + 1:
                self.tally["seq gaps" if seq > self.seq + 1 else "seq repeats"] += 1
            self.seq = max(seq, self.seq or 0)
        elif buf.startswith(b'{"type":"hello"', start):
            found = _HELLO.search(bytes(buf[start : start + min(length, 600)]))
            if found is None:
                self.tally["hello unreadable"] += 1
                return
            self.seq, self.epoch = int(found.group(1)), found.group(2).decode()
            self.tally["hello recovered" if found.group(3) == b"true" else "hello snapshot"] += 1

    def leave(self) -> None:
        """Close politely (close frame 1000), as a page that navigates away."""
        self.by_us = True
        if self._transport is not None and not self._transport.is_closing():
            mask = os.urandom(4)
            payload = struct.pack("!H", 1000)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            self._transport.write(bytes([0x88, 0x80 | len(payload)]) + mask + masked)
        self.close()


def room_main(
    port: int,
    sid: int,
    sockets: int,
    tokens: list[str],
    stop: Any,
    deadline: float,
    out: Connection,
) -> None:
    _child_start()
    out.send(asyncio.run(_room(port, sid, sockets, tokens, stop, deadline, os.getppid())))


async def _room(
    port: int, sid: int, count: int, tokens: list[str], stop: Any, deadline: float, parent: int
) -> dict[str, Any]:
    """``count`` guest sockets with churn and resumes; ``tokens`` chatting sockets."""
    loop = asyncio.get_running_loop()
    started, cpu0 = time.monotonic(), time.process_time()
    tally: Counter[str] = Counter()
    host = f"127.0.0.1:{port}"

    async def open_socket(since: int | None, epoch: str | None) -> RoomSocket | None:
        path = f"/api/sessions/{sid}/ws"
        if since is not None and epoch:
            path += f"?since={since}&epoch={epoch}"
        try:
            _, proto = await loop.create_connection(
                lambda: RoomSocket(path, host, tally), "127.0.0.1", port
            )
            await asyncio.wait_for(proto.upgraded, 15)
        except (OSError, ConnectionError, TimeoutError) as exc:
            tally[f"open failed: {type(exc).__name__}"] += 1
            return None
        return proto

    sem = asyncio.Semaphore(50)

    async def first(_: int) -> RoomSocket | None:
        async with sem:
            return await open_socket(None, None)

    socks = [s for s in await asyncio.gather(*(first(i) for i in range(count))) if s is not None]
    tally["opened"] += len(socks)
    chat_task = asyncio.create_task(_chat(port, sid, tokens, stop, deadline, parent, tally))

    async def resume(old: RoomSocket) -> RoomSocket | None:
        new = await open_socket(old.seq, old.epoch)
        tally["resumed" if new is not None else "resume failed"] += 1
        return new

    batch = max(1, int(len(socks) * SOCKET_CHURN_SHARE))
    cursor = 0
    next_churn = time.monotonic() + SOCKET_CHURN_S
    for _ in range(int((deadline - time.time()) / 1.0) + 2):
        if not await _nap(1.0, stop, deadline, parent):
            break
        # sockets the server closed (slow consumer, heartbeat...): resume them
        for i, s in enumerate(socks):
            if s.closed.done() and not s.by_us:
                tally[f"closed by server ({s.close_code})"] += 1
                s.by_us = True
                again = await resume(s)
                if again is not None:
                    socks[i] = again
        if time.monotonic() >= next_churn and socks:
            next_churn += SOCKET_CHURN_S
            for k in range(batch):
                i = (cursor + k) % len(socks)
                socks[i].leave()
                await asyncio.sleep(0.05)
                again = await resume(socks[i])
                if again is not None:
                    socks[i] = again
            cursor = (cursor + batch) % len(socks)
    for s in socks:
        s.leave()
    chat = await chat_task
    wall = time.monotonic() - started
    return {
        "kind": "room",
        "cpu_s": time.process_time() - cpu0,
        "wall_s": wall,
        "tally": dict(tally),
        "chat": chat,
    }


async def _chat(
    port: int,
    sid: int,
    tokens: list[str],
    stop: Any,
    deadline: float,
    parent: int,
    tally: Counter[str],
) -> dict[str, Any]:
    """Signed-in sockets: 5 chat messages and 10 likes a second in all, spread evenly."""
    sent: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    if not tokens:
        return {"sent": {}, "errors": {}}
    n = len(tokens)
    url = f"ws://127.0.0.1:{port}/api/sessions/{sid}/ws"
    async with aiohttp.ClientSession() as http:

        async def chatter(index: int, token: str) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            chat_every, like_every = n / CHAT_PER_S, n / LIKES_PER_S
            for _connection in range(20):  # at most 20 reconnections
                if _over(stop, deadline, parent):
                    return
                try:
                    async with http.ws_connect(url, headers=headers, heartbeat=None) as ws:
                        await ws.receive(timeout=15)  # hello

                        async def drain() -> None:
                            async for msg in ws:
                                text = msg.data if msg.type is aiohttp.WSMsgType.TEXT else ""
                                if text.startswith('{"type":"error"'):
                                    code = re.search(r'"code":"([^"]+)"', text)
                                    errors[code.group(1) if code else "?"] += 1

                        reader = asyncio.create_task(drain())
                        await asyncio.sleep(index * chat_every / n)
                        next_chat = next_like = time.monotonic()
                        for _tick in range(int((deadline - time.time()) / 0.05) + 2):
                            if _over(stop, deadline, parent) or ws.closed:
                                break
                            now = time.monotonic()
                            if now >= next_chat:
                                await ws.send_str(
                                    f'{{"type":"chat.send","text":"soak {sum(sent.values())}"}}'
                                )
                                sent["chat"] += 1
                                next_chat += chat_every
                            if now >= next_like:
                                await ws.send_str('{"type":"like","count":1}')
                                sent["likes"] += 1
                                next_like += like_every
                            await asyncio.sleep(max(0.0, min(next_chat, next_like) - now))
                        reader.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await reader
                        if _over(stop, deadline, parent):
                            return
                        tally["chat socket closed by server"] += 1
                except (aiohttp.ClientError, TimeoutError, ConnectionError):
                    tally["chat socket failed"] += 1
                    await _nap(1.0, stop, deadline, parent)

        await asyncio.gather(*(chatter(i, t) for i, t in enumerate(tokens)))
    return {"sent": dict(sent), "errors": dict(errors)}


# ------------------------------------------------------------------ the server


@dataclass
class Server:
    """``python app.py --demo`` on a temporary SQLite file, and how to stop it."""

    port: int
    tmp: Path
    log_path: Path
    database_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "LIVESHELF_SECRET": SECRET,
            "LIVESHELF_DATABASE_URL": self.database_url
            or f"sqlite+aiosqlite:///{self.tmp / 'soak.db'}",
            "LIVESHELF_RECORDINGS_DIR": str(self.tmp / "recordings"),
            "LIVESHELF_LIMITS": "off",
            # the soak's own publisher streams the show, as in every earlier soak
            "LIVESHELF_DEMO_PUBLISHER": "off",
            "LIVESHELF_ADMIN_PASSWORD": ADMIN[1],
        }
        for key in ("REDIS_URL", "LIVESHELF_DATABASE_SCHEMA", "LIVESHELF_ICE_SERVERS"):
            env.pop(key, None)
        env["LIVESHELF_ICE_ADDRESSES"] = "127.0.0.1"
        return env

    def start(self) -> None:
        """Migrate, create the admin, then serve (its own session: Ctrl-C is ours)."""
        app = [sys.executable, "app.py", "--demo"]
        for command in (["migrate"], ["create-admin", ADMIN[0]]):
            subprocess.run(
                [*app, *command],
                cwd=ROOT,
                env=self.env(),
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=120,
            )
        pin = ["taskset", "-c", "0"] if (os.cpu_count() or 1) >= 2 else []
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*pin, *app, "--port", str(self.port)],
                cwd=ROOT,
                env=self.env(),
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=raise_nofile,
                start_new_session=True,
            )

    def stop(self) -> int | None:
        """SIGTERM (a clean shutdown), SIGKILL after 30 s; the exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode


# ------------------------------------------------------------------ the driver


@dataclass(frozen=True)
class Product:
    id: int
    price_minor: int
    currency: str


@dataclass(frozen=True)
class Show:
    sid: int
    host_id: int
    host: str
    brand: str
    admin: str
    products: list[Product]
    buyers: list[str]


@dataclass(frozen=True)
class Acked:
    """An order the server acknowledged (201), as it answered."""

    id: int
    amount_minor: int
    unit_price_minor: int
    quantity: int
    commission_bps: int
    currency: str


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    all_headers = {**(bearer(token) if token else {}), **(headers or {})}
    async with http.request(method, url, json=body, headers=all_headers) as res:
        text = await res.text()
        data = await res.json() if res.content_type == "application/json" and text else text
        return res.status, data


async def login(http: aiohttp.ClientSession, base: str, username: str, password: str) -> Any:
    status, body = await call(
        http, "POST", f"{base}/api/auth/login", body={"username": username, "password": password}
    )
    assert status == 200, (username, status, body)
    return body


async def prepare(http: aiohttp.ClientSession, base: str, buyers: int) -> Show:
    """The demo's host, brand, live session and shelf; the admin; stock set high; buyers."""
    host = await login(http, base, "demo-host", DEMO_PASSWORD)
    brand = await login(http, base, "demo-brand", DEMO_PASSWORD)
    admin = await login(http, base, *ADMIN)
    host_id = int(host["user"]["id"])
    status, listed = await call(http, "GET", f"{base}/api/sessions?status=live&host_id={host_id}")
    assert status == 200 and listed["sessions"], listed
    sid = int(listed["sessions"][0]["id"])
    status, shelf = await call(http, "GET", f"{base}/api/sessions/{sid}/shelf")
    assert status == 200, shelf
    products = [
        Product(int(i["product_id"]), int(i["price_minor"]), str(i["currency"]))
        for i in shelf["shelf"]
    ]
    for p in products:
        status, body = await call(
            http, "PATCH", f"{base}/api/products/{p.id}", brand["token"], {"stock": STOCK}
        )
        assert status == 200, body
    tokens = []
    for i in range(buyers):
        _, token = await signup(http, base, f"soak-buyer-{i}-{uuid.uuid4().hex[:6]}", "viewer")
        tokens.append(token)
    return Show(sid, host_id, host["token"], brand["token"], admin["token"], products, tokens)


@dataclass
class Commerce:
    """Pins, flash sales and orders, with what the server answered."""

    http: aiohttp.ClientSession
    base: str
    show: Show
    acked: list[Acked] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)
    #: (buyer token, body, key) of orders with no definite answer after the retries
    unresolved: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)
    skipped: int = 0

    async def order(self, n: int) -> None:
        token = self.show.buyers[n % len(self.show.buyers)]
        product = self.show.products[n % len(self.show.products)]
        body = {"product_id": product.id, "quantity": 1}
        await self.place(token, body, uuid.uuid4().hex, tries=4)

    async def place(self, token: str, body: dict[str, Any], key: str, tries: int) -> None:
        """One order, retried with the same key (0.5, 1, 2 s apart) until a definite
        answer, as the watch page does."""
        url = f"{self.base}/api/sessions/{self.show.sid}/orders"
        for attempt in range(tries):
            try:
                status, answer = await call(
                    self.http, "POST", url, token, body, {"Idempotency-Key": key}
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, answer = 0, {"error": {"code": type(exc).__name__}}
            code = answer.get("error", {}).get("code", "") if isinstance(answer, dict) else ""
            if status == 201:
                self.acked.append(
                    Acked(
                        int(answer["id"]),
                        int(answer["amount_minor"]),
                        int(answer["unit_price_minor"]),
                        int(answer["quantity"]),
                        int(answer["commission_bps"]),
                        str(answer["currency"]),
                    )
                )
                self.answers["201"] += 1
                return
            if status and status < 500 and code != "order_in_progress":
                self.answers[f"{status} {code}"] += 1
                return
            if attempt + 1 < tries:
                await asyncio.sleep(0.5 * 2**attempt)
        self.answers[f"unresolved {status} {code}"] += 1
        self.unresolved.append((token, body, key))

    async def pin(self, n: int) -> None:
        product = self.show.products[n % len(self.show.products)]
        url = f"{self.base}/api/sessions/{self.show.sid}/pin"
        try:
            status, _ = await call(
                self.http, "POST", url, self.show.host, {"product_id": product.id}
            )
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        self.answers[f"pin {status}"] += 1

    async def flash(self, n: int) -> None:
        """A 30 s flash sale of 20 units at 60 % of the price, starting in 2 s."""
        product = self.show.products[n % len(self.show.products)]
        now = datetime.now(UTC)
        body = {
            "product_id": product.id,
            "price_minor": max(1, product.price_minor * 60 // 100),
            "quantity": 20,
            "per_buyer_limit": 2,
            "starts_at": (now + timedelta(seconds=2)).isoformat(),
            "ends_at": (now + timedelta(seconds=32)).isoformat(),
        }
        url = f"{self.base}/api/sessions/{self.show.sid}/flash-sales"
        try:
            status, answer = await call(self.http, "POST", url, self.show.host, body)
        except (aiohttp.ClientError, TimeoutError):
            status, answer = 0, {}
        code = answer.get("error", {}).get("code", "") if isinstance(answer, dict) else ""
        self.answers[f"flash sale {status} {code}".rstrip()] += 1


async def every(
    period_s: float,
    first_s: float,
    until: float,
    action: Any,
    *,
    in_flight: int = 1,
    on_skip: Any = None,
) -> None:
    """Call ``action(n)`` every ``period_s`` from ``first_s`` on, on schedule (not
    after the previous one), with at most ``in_flight`` running; until ``until``."""
    start = time.monotonic()
    running: set[asyncio.Task[None]] = set()
    try:
        for n in range(int((until - start - first_s) / period_s) + 1):
            at = start + first_s + n * period_s
            if at >= until:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            if len(running) >= in_flight:
                if on_skip is not None:
                    on_skip()
                continue
            task = asyncio.create_task(action(n))
            running.add(task)
            task.add_done_callback(running.discard)
        if running:
            await asyncio.wait(running, timeout=30)
    finally:
        for task in running:
            task.cancel()


@dataclass
class Sample:
    t: float
    rss: int
    fds: int
    udp: int
    tasks: int
    peers: int
    threads: int


@dataclass
class Monitor:
    """Reads ``/api/admin/runtime`` every ``POLL_S`` and prints a line every ``report_s``."""

    http: aiohttp.ClientSession
    base: str
    admin: str
    report_s: float
    objects: bool
    commerce: Commerce
    started: float = field(default_factory=time.monotonic)
    samples: list[Sample] = field(default_factory=list)
    since: float | None = None
    first: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    line_collections: list[int] = field(default_factory=lambda: [0, 0, 0])
    line_longest_ms: float = 0.0
    line_longest_cpu_ms: float = 0.0
    line_complete: bool = True
    #: (elapsed s at the line, longest pause in it (wall), its longest in CPU time; ms)
    longest_by_line: list[tuple[float, float, float]] = field(default_factory=list)
    failed_polls: int = 0

    async def reading(self, query: str = "") -> dict[str, Any]:
        status, body = await call(
            self.http, "GET", f"{self.base}/api/admin/runtime{query}", self.admin
        )
        if status != 200:
            raise RuntimeError(f"runtime {status} {body}")
        return dict(body)

    async def poll(self) -> dict[str, Any] | None:
        query = f"?since={self.since!r}" if self.since is not None else ""
        if self.objects:
            query += ("&" if query else "?") + "objects=1"
        try:
            body = await self.reading(query)
        except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
            self.failed_polls += 1
            print(f"  (runtime reading failed: {exc})", flush=True)
            return None
        gc_part = body["gc"]
        window = gc_part.get("window")
        if window is not None:
            for g in range(3):
                self.line_collections[g] += window["collections"][g]
            self.line_longest_ms = max(self.line_longest_ms, *window["longest_ms"])
            self.line_longest_cpu_ms = max(self.line_longest_cpu_ms, *window["longest_cpu_ms"])
            self.line_complete &= bool(window["complete"])
        self.since = gc_part["now_s"]
        self.first = self.first or body
        self.last = body
        self.samples.append(
            Sample(
                time.monotonic() - self.started,
                int(body["rss_bytes"]),
                int(body["open_fds"]),
                int(body["udp_sockets"]),
                int(body["asyncio_tasks"]),
                int(body["peer_connections"]),
                int(body["threads"]),
            )
        )
        return body

    def line(self, body: dict[str, Any]) -> None:
        elapsed = time.monotonic() - self.started
        g0, g1, g2 = self.line_collections
        extra = ""
        if "objects" in body:
            o = body["objects"]
            extra = f"  pc alive {o['RTCPeerConnection']} tracked {o['tracked']}"
        mark = "" if self.line_complete else "+"
        print(
            f"{elapsed:6.0f}s  rss {body['rss_bytes'] / MIB:7.1f} MiB  fds {body['open_fds']:4d}"
            f"  udp {body['udp_sockets']:3d}  tasks {body['asyncio_tasks']:4d}"
            f"  peers {body['peer_connections']:3d}  gc {g0:4d}/{g1:3d}/{g2:2d}"
            f"  longest {self.line_longest_ms:6.1f}{mark} ms (cpu {self.line_longest_cpu_ms:5.1f})"
            f"  orders {len(self.commerce.acked):5d}{extra}",
            flush=True,
        )
        self.longest_by_line.append((elapsed, self.line_longest_ms, self.line_longest_cpu_ms))
        self.line_collections = [0, 0, 0]
        self.line_longest_ms = self.line_longest_cpu_ms = 0.0
        self.line_complete = True

    async def run(self, until: float) -> None:
        next_line = self.started + self.report_s
        for _ in range(int((until - time.monotonic()) / POLL_S) + 2):
            now = time.monotonic()
            if now >= until:
                break
            await asyncio.sleep(min(POLL_S, until - now))
            body = await self.poll()
            if body is not None and time.monotonic() >= next_line - 0.5:
                self.line(body)
                next_line += self.report_s


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value), per hour."""
    n = len(points)
    if n < 2:
        return math.nan
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    cov = sum((t - mt) * (v - mv) for t, v in points)
    return cov / var * 3600 if var else math.nan


async def check_orders(
    http: aiohttp.ClientSession, base: str, show: Show, commerce: Commerce
) -> list[str]:
    """Every acknowledged order against the host's commission report (sums per
    currency) and against ``GET /api/orders/{id}`` (each order), to the minor unit."""
    for token, body, key in list(commerce.unresolved):  # a definite answer, same key
        commerce.unresolved.remove((token, body, key))
        await commerce.place(token, body, key, tries=2)
    problems: list[str] = []
    status, report = await call(
        http, "GET", f"{base}/api/hosts/{show.host_id}/commission?session_id={show.sid}", show.host
    )
    if status != 200:
        return [f"commission report: {status} {report}"]
    by_currency: dict[str, dict[str, int]] = {}
    for a in commerce.acked:
        s = by_currency.setdefault(
            a.currency, {"orders": 0, "units": 0, "gmv_minor": 0, "commission_total_minor": 0}
        )
        s["orders"] += 1
        s["units"] += a.quantity
        s["gmv_minor"] += a.amount_minor
        s["commission_total_minor"] += a.unit_price_minor * a.quantity * a.commission_bps // 10_000
    rows = {r["currency"]: r for r in report["rows"] if r["session_id"] == show.sid}
    for currency in sorted(set(by_currency) | set(rows)):
        mine, theirs = by_currency.get(currency, {}), rows.get(currency, {})
        for key in ("orders", "units", "gmv_minor", "commission_total_minor"):
            if mine.get(key, 0) != theirs.get(key, 0):
                problems.append(
                    f"report {currency} {key}: acknowledged {mine.get(key, 0)}, "
                    f"report {theirs.get(key, 0)}"
                )
    sem = asyncio.Semaphore(8)

    async def one(a: Acked) -> None:
        async with sem:
            status, order = await call(http, "GET", f"{base}/api/orders/{a.id}", show.admin)
        if status != 200:
            problems.append(f"order {a.id}: {status}")
            return
        seen = (
            order["status"],
            order["amount_minor"],
            order["unit_price_minor"],
            order["quantity"],
            order["commission_bps"],
            order["currency"],
        )
        wanted = ("paid", a.amount_minor, a.unit_price_minor, a.quantity, a.commission_bps)
        if seen != (*wanted, a.currency):
            problems.append(f"order {a.id}: acknowledged {wanted}, now {seen}")

    await asyncio.gather(*(one(a) for a in commerce.acked))
    return problems


@dataclass
class Loads:
    """The load processes; each runs ``target(*args, stop, deadline, out)``."""

    procs: dict[str, Any] = field(default_factory=dict)
    outs: dict[str, Connection] = field(default_factory=dict)
    stop: Any = None
    #: wall-clock time after which every load process stops by itself
    deadline: float = 0.0

    def start(self, ctx: Any, name: str, target: Any, *args: Any) -> None:
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=target, args=(*args, self.stop, self.deadline, send), name=name)
        proc.start()
        with contextlib.suppress(OSError):
            os.sched_setaffinity(proc.pid, load_cpus())
        self.procs[name] = proc
        self.outs[name] = recv

    def finish(self, within_s: float = 60.0) -> dict[str, dict[str, Any]]:
        """Tell every load process to stop; collect what each sends; end stragglers."""
        if self.stop is not None:
            self.stop.set()
        results: dict[str, dict[str, Any]] = {}
        end = time.monotonic() + within_s
        for name, recv in self.outs.items():
            with contextlib.suppress(EOFError, OSError):
                if recv.poll(max(0.1, end - time.monotonic())):
                    results[name] = recv.recv()
        for proc in self.procs.values():
            proc.join(timeout=max(0.1, end - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        self.procs.clear()
        self.outs.clear()
        return results


def ranges(samples: list[Sample], name: str) -> str:
    values = [getattr(s, name) for s in samples]
    return f"{min(values)}-{max(values)}" if values else "-"


async def run(args: argparse.Namespace, server: Server, loads: Loads) -> int:
    ctx = mp.get_context("spawn")
    main_task = asyncio.current_task()
    if main_task is not None:  # SIGTERM takes the way out Ctrl-C takes
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    total_s = args.minutes * 60.0
    warmup_s = args.warmup_min * 60.0
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, load_cpus())
    print(
        f"machine: {os.cpu_count()} CPUs; server on CPU 0, load on {sorted(load_cpus())}; "
        f"{args.minutes} min, warm-up {args.warmup_min} min; {args.viewers} viewers "
        f"(churn {args.churn_s} s), {args.sockets} sockets, {args.chatters} chatters, "
        f"{args.buyers} buyers; log {server.log_path}",
        flush=True,
    )
    server.start()
    assert server.proc is not None
    await wait_until_up(server.base, 60.0, path="/readyz", proc=server.proc, log=server.log_path)
    timeout = aiohttp.ClientTimeout(total=15)
    interrupted = False
    async with aiohttp.ClientSession(timeout=timeout) as http:
        show = await prepare(http, server.base, args.buyers)
        commerce = Commerce(http, server.base, show)
        monitor = Monitor(http, server.base, show.admin, args.report_s, args.objects, commerce)
        start_reading = await monitor.reading()
        server_cpu0 = sum(cpu_times(server.proc.pid))
        driver_cpu0 = time.process_time()
        loads.stop = ctx.Event()
        loads.deadline = time.time() + total_s + GRACE_S
        loads.start(ctx, "publisher", publisher_main, server.base, show.sid, show.host)
        loads.start(
            ctx,
            "viewers",
            viewers_main,
            server.base,
            show.sid,
            args.viewers,
            args.churn_s,
            args.vanish_every,
        )
        loads.start(
            ctx,
            "room",
            room_main,
            server.port,
            show.sid,
            args.sockets,
            show.buyers[: args.chatters],
        )
        print(
            "   elapsed  RSS           fds       UDP      tasks       peers  gc passes "
            "(gen0/1/2)  longest pause   orders acknowledged",
            flush=True,
        )
        monitor.started = time.monotonic()
        until = monitor.started + total_s
        types_at: list[dict[str, int]] = []

        async def count_types(after_s: float) -> None:
            await asyncio.sleep(max(0.0, after_s))
            types_at.append((await monitor.reading("?types=1"))["types"])

        try:
            await asyncio.gather(
                monitor.run(until),
                *([count_types(warmup_s)] if args.types else []),
                every(PIN_EVERY_S, 3.0, until, commerce.pin),
                every(args.flash_s, 45.0, until, commerce.flash),
                every(
                    ORDER_EVERY_S,
                    1.0,
                    until,
                    commerce.order,
                    in_flight=16,
                    on_skip=lambda: setattr(commerce, "skipped", commerce.skipped + 1),
                ),
            )
        except asyncio.CancelledError:
            interrupted = True
            print("\ninterrupted: stopping the load", flush=True)
        if args.types and types_at:
            types_at.append((await monitor.reading("?types=1"))["types"])
        shown_s = time.monotonic() - monitor.started
        server_cpu = sum(cpu_times(server.proc.pid)) - server_cpu0
        driver_cpu = time.process_time() - driver_cpu0
        loop = asyncio.get_running_loop()
        results = await asyncio.shield(loop.run_in_executor(None, loads.finish))
        # Everyone has gone: what does the server still hold?
        await asyncio.sleep(args.settle_s)
        after = await monitor.reading()
        census = await monitor.reading("?objects=1")
        collected = await monitor.reading("?collect=1&objects=1")
        problems = await asyncio.wait_for(check_orders(http, server.base, show, commerce), 120)
    summary(
        args,
        monitor,
        commerce,
        start_reading,
        results,
        shown_s,
        warmup_s,
        server_cpu,
        driver_cpu,
        after,
        census,
        collected,
        problems,
    )
    if len(types_at) == 2:
        print_growth(types_at[0], types_at[1])
    return 1 if problems or interrupted else 0


def print_growth(before: dict[str, int], after: dict[str, int], shown: int = 20) -> None:
    """The classes whose tracked instances grew most from the warm-up to the end."""
    growth = sorted(
        ((after.get(name, 0) - before.get(name, 0), name) for name in set(before) | set(after)),
        reverse=True,
    )
    print("instances grown from the warm-up to the end (tracked objects, top classes):")
    for grown, name in growth[:shown]:
        if grown > 0:
            print(f"  {grown:+8d}  {name}  ({before.get(name, 0)} -> {after.get(name, 0)})")


def summary(
    args: argparse.Namespace,
    monitor: Monitor,
    commerce: Commerce,
    start_reading: dict[str, Any],
    results: dict[str, dict[str, Any]],
    shown_s: float,
    warmup_s: float,
    server_cpu: float,
    driver_cpu: float,
    after: dict[str, Any],
    census: dict[str, Any],
    collected: dict[str, Any],
    problems: list[str],
) -> None:
    warm = [s for s in monitor.samples if s.t >= warmup_s]
    slope = slope_per_hour([(s.t, s.rss / MIB) for s in warm])
    whole = slope_per_hour([(s.t, s.rss / MIB) for s in monitor.samples])
    print(f"\n--- summary after {shown_s / 60:.1f} min ---")
    if warm:
        print(
            f"RSS after warm-up ({len(warm)} readings, {warm[0].t / 60:.1f}-{warm[-1].t / 60:.1f}"
            f" min): slope {slope:+.1f} MiB/h (least squares), "
            f"{warm[0].rss / MIB:.1f} -> {warm[-1].rss / MIB:.1f} MiB, "
            f"min {min(s.rss for s in warm) / MIB:.1f} max {max(s.rss for s in warm) / MIB:.1f};"
            f" whole run {whole:+.1f} MiB/h"
        )
        print(
            f"after warm-up: fds {ranges(warm, 'fds')}, UDP sockets {ranges(warm, 'udp')}, "
            f"tasks {ranges(warm, 'tasks')}, held peers {ranges(warm, 'peers')}, "
            f"threads {ranges(warm, 'threads')}"
        )
    else:
        print(f"no reading after the warm-up ({len(monitor.samples)} readings in all)")
    last = monitor.last or after
    first_gc, last_gc = start_reading["gc"]["generations"], last["gc"]["generations"]
    passes = [last_gc[g]["collections"] - first_gc[g]["collections"] for g in range(3)]
    longest_all = [g["longest_ms"] for g in last_gc]
    after_warmup = [(ms, cpu) for t, ms, cpu in monitor.longest_by_line if t >= warmup_s]
    longest_warm = max((ms for ms, _ in after_warmup), default=0.0)
    longest_warm_cpu = max((cpu for _, cpu in after_warmup), default=0.0)
    slow = last["gc"]["pauses_over_10ms"] - start_reading["gc"]["pauses_over_10ms"]
    print(
        f"GC during the show: passes per generation {passes}, longest pause per generation "
        f"since the server started {longest_all} ms, longest after warm-up "
        f"{longest_warm:.1f} ms wall / {longest_warm_cpu:.1f} ms CPU time of the pass, "
        f"pauses over 10 ms (wall) {slow}"
    )
    shares = {"server": server_cpu / shown_s, "driver": driver_cpu / shown_s}
    for name, r in results.items():
        shares[name] = r["cpu_s"] / max(r["wall_s"], 1e-9)
    print("CPU (share of one core): " + ", ".join(f"{k} {v:.3f}" for k, v in shares.items()))
    pub = results.get("publisher", {})
    print(
        f"publisher: {pub.get('fps', 0):.1f} fps sent, published again "
        f"{pub.get('republished', '?')} times, failures {pub.get('failures', {})}"
    )
    view = results.get("viewers", {})
    print(
        f"viewers: {view.get('tally', {})}, video {view.get('video_fps_per_viewer', 0):.1f} "
        f"fps per viewer while joined"
    )
    room = results.get("room", {})
    print(f"room sockets: {room.get('tally', {})}")
    print(f"chat: {room.get('chat', {})}")
    print(
        f"commerce: {dict(sorted(commerce.answers.items()))}, orders skipped (16 in flight) "
        f"{commerce.skipped}"
    )
    print(
        f"after everyone left (+{args.settle_s:.0f} s): held peers {after['peer_connections']}, "
        f"UDP sockets {after['udp_sockets']}, fds {after['open_fds']}, tasks "
        f"{after['asyncio_tasks']}, RSS {after['rss_bytes'] / MIB:.1f} MiB; alive: "
        f"{_objects(census)}; after a full collection ({collected['collected']['objects']} "
        f"objects freed in {collected['collected']['pause_ms']:.0f} ms): {_objects(collected)},"
        f" RSS {collected['rss_bytes'] / MIB:.1f} MiB"
    )
    total = sum(a.amount_minor for a in commerce.acked)
    if problems:
        print(f"ORDERS: {len(problems)} problems:")
        for p in problems[:20]:
            print(f"  {p}")
    else:
        print(
            f"orders: all {len(commerce.acked)} acknowledged orders are in the host's "
            f"commission report and GET /api/orders/{{id}} to the minor unit "
            f"(GMV {total} minor units)"
        )


def _objects(reading: dict[str, Any]) -> str:
    o = reading["objects"]
    return ", ".join(f"{k} {v}" for k, v in o.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--warmup-min", type=float, default=5.0)
    parser.add_argument("--churn-s", type=float, default=20.0)
    parser.add_argument("--viewers", type=int, default=8)
    parser.add_argument("--sockets", type=int, default=300)
    parser.add_argument("--report-s", type=float, default=30.0)
    parser.add_argument("--flash-s", type=float, default=120.0, help="a flash sale this often")
    parser.add_argument("--buyers", type=int, default=20, help="viewer accounts that order")
    parser.add_argument("--chatters", type=int, default=10, help="of the buyers, chatting")
    parser.add_argument(
        "--vanish-every",
        type=int,
        default=4,
        help="every Nth leave of a viewer closes its peer without DELETE (0: never)",
    )
    parser.add_argument(
        "--types",
        action="store_true",
        help="count every class's instances after the warm-up and at the end; print growth",
    )
    parser.add_argument("--settle-s", type=float, default=10.0, help="wait after the show")
    parser.add_argument(
        "--database-url",
        help="serve from this (empty) database instead of a temporary SQLite file",
    )
    parser.add_argument(
        "--objects",
        action="store_true",
        help="count RTCPeerConnection instances at every reading (walks every object)",
    )
    args = parser.parse_args()
    if args.minutes <= 0 or args.viewers < 0 or args.sockets < 0 or args.churn_s <= 0:
        parser.error("--minutes and --churn-s must be positive; counts not negative")
    if not 0 < args.chatters <= args.buyers:
        parser.error("--chatters must be 1..--buyers")
    tmp = Path(tempfile.mkdtemp(prefix="liveshelf-soak-"))
    server = Server(
        free_port(), tmp, Path(f"/tmp/liveshelf-soak-{os.getpid()}.log"), args.database_url
    )
    loads = Loads()
    try:
        return asyncio.run(run(args, server, loads))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        loads.finish(within_s=20)  # a second Ctrl-C skipped the orderly way out
        status = server.stop()
        print(f"server stopped (exit status {status}); log {server.log_path}", flush=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
