"""The room channel end to end: hello, ordering, replay, slow readers, presence, bad input."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from support import Account, Api

from app import Settings, create_app, hub_key, room_log_key
from live.protocol import CloseCode
from live.roomhub import Connection
from live.roomsocket import RoomSocket

TIMEOUT = 10.0


async def connect(
    client: TestClient[Any, Any], sid: int, account: Account | None = None, **query: Any
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    params = {k: str(v) for k, v in query.items()}
    headers = {} if account is None else account.headers
    ws = await client.ws_connect(f"/api/sessions/{sid}/ws", params=params, headers=headers)
    hello = await receive(ws)
    assert hello["type"] == "hello", hello
    return ws, hello


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=TIMEOUT)
    assert msg.type is WSMsgType.TEXT, msg
    return dict(orjson.loads(msg.data))


async def direct(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next message sent to this socket alone (error, pong), skipping room events."""
    while True:
        message = await receive(ws)
        if "seq" not in message:
            return message


async def events(
    ws: aiohttp.ClientWebSocketResponse, n: int, type_: str | None = None
) -> list[dict[str, Any]]:
    """The next ``n`` room events (of ``type_`` if given), skipping viewer counts."""
    out: list[dict[str, Any]] = []
    while len(out) < n:
        message = await receive(ws)
        if "seq" not in message or message["type"] == "viewers.updated":
            continue
        if type_ is None or message["type"] == type_:
            out.append(message)
    return out


async def announce(api: Api, host: Account, sid: int, n: int) -> list[int]:
    seqs = []
    for i in range(n):
        res = await api.call(
            "POST", f"/api/sessions/{sid}/announcements", host, json={"text": f"a{i}"}, expect=201
        )
        seqs.append(res["seq"])
    return seqs


async def test_hello_snapshot(api: Api) -> None:
    host = await api.signup("host")
    session = await api.live_session(host)
    ws, hello = await connect(api.client, session["id"])
    assert hello["recovered"] is False
    assert hello["connection"]["role"] == "guest"
    assert hello["snapshot"]["session"]["id"] == session["id"]
    assert hello["snapshot"]["session"]["status"] == "live"
    assert isinstance(hello["snapshot"]["viewers"], int)
    assert hello["seq"] >= 1  # session.started is in the log
    assert isinstance(hello["epoch"], str) and hello["epoch"]
    await ws.close()


async def test_two_viewers_same_events_same_order(api: Api) -> None:
    host = await api.signup("host")
    viewer = await api.signup("viewer")
    sid = (await api.live_session(host))["id"]
    ws1, h1 = await connect(api.client, sid, viewer)
    ws2, _ = await connect(api.client, sid)
    seqs = await announce(api, host, sid, 30)
    got1 = await events(ws1, 30, "announcement")
    got2 = await events(ws2, 30, "announcement")
    assert got1 == got2
    assert [e["seq"] for e in got1] == seqs
    assert [e["data"]["text"] for e in got1] == [f"a{i}" for i in range(30)]
    assert all(e["seq"] > h1["seq"] for e in got1)
    await ws1.close()
    await ws2.close()


async def test_every_event_after_hello_arrives_gap_free(api: Api) -> None:
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    ws, hello = await connect(api.client, sid)
    await announce(api, host, sid, 10)
    seen = [hello["seq"]]
    while len(seen) < 11:
        message = await receive(ws)
        if "seq" in message:
            seen.append(message["seq"])
    assert seen == list(range(hello["seq"], hello["seq"] + 11))
    await ws.close()


async def test_reconnect_with_since_replays_exactly_the_missed(api: Api) -> None:
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    ws, hello = await connect(api.client, sid)
    await ws.close()
    missed = await announce(api, host, sid, 200)
    ws, again = await connect(api.client, sid, since=hello["seq"], epoch=hello["epoch"])
    assert again["recovered"] is True
    assert again["snapshot"] is None
    assert again["seq"] == hello["seq"]
    replayed = []
    while len(replayed) < len(missed):
        message = await receive(ws)
        if message["type"] == "announcement":
            replayed.append(message)
    assert [m["seq"] for m in replayed] == missed
    assert [m["data"]["text"] for m in replayed] == [f"a{i}" for i in range(200)]
    # live events continue right after the replay
    (after,) = await announce(api, host, sid, 1)
    assert (await events(ws, 1, "announcement"))[0]["seq"] == after
    await ws.close()


async def test_unknown_epoch_or_too_old_since_gets_a_snapshot(
    settings: Settings, aiohttp_client: Any
) -> None:
    api = Api(await aiohttp_client(create_app(settings.model_copy(update={"history_size": 50}))))
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    ws, hello = await connect(api.client, sid)
    await ws.close()
    await announce(api, host, sid, 120)
    ws, stale = await connect(api.client, sid, since=hello["seq"], epoch=hello["epoch"])
    assert stale["recovered"] is False
    assert stale["snapshot"]["session"]["id"] == sid
    assert stale["seq"] >= hello["seq"] + 120
    await ws.close()
    ws, other = await connect(api.client, sid, since=stale["seq"], epoch="deadbeef")
    assert other["recovered"] is False and other["snapshot"] is not None
    await ws.close()
    ws, future = await connect(api.client, sid, since=stale["seq"] + 1000, epoch=stale["epoch"])
    assert future["recovered"] is False
    await ws.close()


async def test_a_replay_too_big_for_the_socket_becomes_a_snapshot(api: Api) -> None:
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    ws, hello = await connect(api.client, sid)
    await ws.close()
    room_log = api.client.app[room_log_key]
    for _ in range(300):  # ~1.2 MB missed, still in history, over the 256 KB send bound
        last = await room_log.append(sid, "test.blob", {"blob": "x" * 4000})
    ws, again = await connect(api.client, sid, since=hello["seq"], epoch=hello["epoch"])
    assert again["recovered"] is False
    assert again["snapshot"]["session"]["id"] == sid
    # At least the last blob: a presence tick may add a viewers.updated on either side.
    assert again["seq"] >= last.seq
    (after,) = await announce(api, host, sid, 1)  # and the socket stays open and live
    assert (await events(ws, 1, "announcement"))[0]["seq"] == after
    await ws.close()


async def test_slow_reader_is_closed_and_others_keep_receiving(api: Api) -> None:
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    fast, _ = await connect(api.client, sid)
    slow, _ = await connect(api.client, sid)
    room_log = api.client.app[room_log_key]
    hub = api.client.app[hub_key]
    payload = {"blob": "x" * 16_000}
    total = 1500  # 24 MB: far beyond every socket buffer on the way
    received = 0

    async def read_fast() -> None:
        nonlocal received
        while received < total:
            message = await receive(fast)
            if message.get("type") == "test.blob":
                received += 1

    reader = asyncio.create_task(read_fast())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    for i in range(total):
        await room_log.append(sid, "test.blob", payload)
        # Pace the producer by the fast reader alone (at most 8 blobs = 128 KB ahead,
        # half the send limit), so only the reader that never reads can fall behind,
        # however slow the machine is.
        while i + 1 - received > 8:
            assert loop.time() < deadline, f"fast reader stuck at {received}/{i + 1}"
            await asyncio.sleep(0.001)
    await asyncio.wait_for(reader, TIMEOUT)
    assert received == total
    assert hub.local_sockets(sid) == 1  # the slow one was dropped
    # the slow reader drains what was buffered, then sees the documented close code
    while True:
        msg = await slow.receive(timeout=TIMEOUT)
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
            break
    assert slow.close_code in (CloseCode.SLOW_CONSUMER, 1006)
    await fast.close()


async def test_viewer_count_is_unique_and_coalesced(api: Api) -> None:
    host = await api.signup("host")
    viewer = await api.signup("viewer")
    sid = (await api.live_session(host))["id"]
    watcher, _ = await connect(api.client, sid, host)  # the host is not a viewer
    sockets = [
        (await connect(api.client, sid, viewer))[0],
        (await connect(api.client, sid, viewer))[0],  # same account, second tab
        (await connect(api.client, sid))[0],  # a guest
    ]
    counts: list[int] = []
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not counts or counts[-1] != 2:
        message = await receive(watcher)
        if message["type"] == "viewers.updated":
            counts.append(message["data"]["count"])
        assert asyncio.get_running_loop().time() < deadline
    assert len(counts) <= 3  # coalesced: not one event per join
    for ws in sockets:
        await ws.close()
    while counts[-1] != 0:
        message = await receive(watcher)
        if message["type"] == "viewers.updated":
            counts.append(message["data"]["count"])
    await watcher.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2]", "invalid_input"),
        ('{"type": "no.such.thing"}', "unknown_type"),
        ('{"no_type": 1}', "invalid_input"),
        ('{"type": "ping", "ref": {"x": 1}}', "invalid_input"),
        ('{"type": "ping", "pad": "' + "x" * 5000 + '"}', "message_too_large"),
    ],
)
async def test_bad_messages_get_error_events(api: Api, frame: str, code: str) -> None:
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    ws, hello = await connect(api.client, sid)
    await ws.send_str(frame)
    error = await direct(ws)
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["message"]
    await ws.send_str('{"type": "ping", "ref": 7}')
    pong = await direct(ws)
    assert pong == {"type": "pong", "ref": 7, "server_time": pong["server_time"]}
    room_log = api.client.app[room_log_key]
    since = await room_log.read_since(sid, hello["seq"], hello["epoch"])
    assert since is not None
    assert {orjson.loads(raw)["type"] for raw in since} <= {"viewers.updated"}  # nothing else
    await ws.close()


async def test_binary_frames_and_rate_limit(api: Api) -> None:
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    ws, _ = await connect(api.client, sid)
    await ws.send_bytes(b"\x00\x01")
    assert (await direct(ws))["code"] == "binary_not_supported"
    for i in range(80):
        await ws.send_str(orjson.dumps({"type": "ping", "ref": i}).decode())
    answers = [await direct(ws) for _ in range(80)]
    limited = [a for a in answers if a["type"] == "error"]
    assert limited and all(a["code"] == "rate_limited" for a in limited)
    assert sum(a["type"] == "pong" for a in answers) >= 40
    assert not ws.closed  # honest-but-fast clients are not dropped
    await ws.close()


async def test_handshake_refusals(api: Api) -> None:
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    for path, status in (
        ("/api/sessions/999999/ws", 404),
        (f"/api/sessions/{sid}/ws?ticket=garbage", 401),
        (f"/api/sessions/{sid}/ws?token={host.token}", 401),  # a bearer token in a URL
        (f"/api/sessions/{sid}/ws?since=-5&epoch=x", 400),
        (f"/api/sessions/{sid}/ws?since=1&epoch=not-an-epoch!", 400),
    ):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await api.client.ws_connect(path)
        assert info.value.status == status, path


async def test_server_pings(settings: Settings, aiohttp_client: Any) -> None:
    api = Api(await aiohttp_client(create_app(settings.model_copy(update={"ws_heartbeat_s": 0.3}))))
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    ws = await api.client.ws_connect(f"/api/sessions/{sid}/ws", autoping=False)
    kinds = set()
    for _ in range(5):
        msg = await ws.receive(timeout=TIMEOUT)
        kinds.add(msg.type)
        if msg.type is WSMsgType.PING:
            await ws.pong(msg.data)
            break
    assert WSMsgType.PING in kinds
    await ws.close()


async def test_a_socket_that_never_completes_a_frame_is_closed(
    settings: Settings, aiohttp_client: Any
) -> None:
    """Issue 18: a socket trickling one byte of a frame now and then used to count as
    alive for ever. Only whole frames (a pong included) keep a socket open: the
    trickler is cut off after two heartbeats while a client that answers pings stays."""
    client = await aiohttp_client(create_app(settings.model_copy(update={"ws_heartbeat_s": 0.3})))
    api = Api(client)
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    polite, polite_hello = await connect(client, sid)
    polite_ended: list[WSMsgType] = []

    async def read_polite() -> None:
        # autoping answers the server's pings only inside receive(): keep receiving
        while (msg := await polite.receive()).type is WSMsgType.TEXT:
            pass
        polite_ended.append(msg.type)

    polite_reader = asyncio.create_task(read_polite())
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(
        (
            f"GET /api/sessions/{sid}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        ).encode()
    )
    assert (await reader.readline()).startswith(b"HTTP/1.1 101")
    # a masked text frame of 100 bytes, sent a byte every 0.1 s: never complete in time
    frame = bytes([0x81, 0x80 | 100, 1, 2, 3, 4]) + bytes(100)
    started = asyncio.get_running_loop().time()
    closed_after = None
    async with asyncio.timeout(5):
        for byte in frame:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed_after = asyncio.get_running_loop().time() - started
                break
            if reader.at_eof():
                closed_after = asyncio.get_running_loop().time() - started
                break
            await asyncio.sleep(0.1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(4096), 0.001)  # pings, hello
    assert closed_after is not None and closed_after < 2.0, closed_after
    # answering pings keeps a socket: the server still holds it (and only it)
    hub = client.app[hub_key]
    polite_id = polite_hello["connection"]["id"]
    await until(lambda: [c.id for c in hub.connections(sid)] == [polite_id])
    assert not polite_ended and not polite.closed
    await polite.close()
    await asyncio.wait_for(polite_reader, TIMEOUT)
    writer.close()


async def until(predicate: Callable[[], bool], within: float = TIMEOUT) -> None:
    """Poll ``predicate`` (what it reads changes without an event to wait on)."""
    async with asyncio.timeout(within):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.005)


def upgrade_request(sid: int) -> bytes:
    return (
        f"GET /api/sessions/{sid}/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    ).encode()


def server_opcodes(data: bytes) -> list[int]:
    """The opcodes of the whole (unmasked) server frames at the start of ``data``."""
    opcodes, at = [], 0
    while at + 2 <= len(data):
        length, head = data[at + 1] & 0x7F, 2
        if length >= 126:
            head = 4 if length == 126 else 10
            if at + head > len(data):
                break
            length = int.from_bytes(data[at + 2 : at + head], "big")
        if at + head + length > len(data):
            break
        opcodes.append(data[at] & 0x0F)
        at += head + length
    return opcodes


def tcp_state(local_port: int, remote_port: int) -> str | None:
    """The kernel's state of the IPv4 TCP socket local_port -> remote_port on 127.0.0.1
    (``/proc/net/tcp``: "01" established, "04" FIN_WAIT1...), None if there is none."""
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if int(local.split(":")[1], 16) == local_port and (
                int(remote.split(":")[1], 16) == remote_port
            ):
                return state
    return None


async def test_a_stuck_reader_with_full_buffers_is_cut_off_after_the_close_grace(
    settings: Settings, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: a reader that never reads is closed as a slow consumer (4008) even when
    every buffer on the way is full. Its close frame then waits behind what the client
    never read and cannot be sent, nor can the client's close frame come back, so the
    hub aborts the transport after its close grace: the server lets go of the
    connection, and the room's other socket keeps receiving all along."""
    # No heartbeat (0 = off): only the slow-consumer close can end the stuck socket.
    client = await aiohttp_client(create_app(settings.model_copy(update={"ws_heartbeat_s": 0})))
    api = Api(client)
    hub = client.app[hub_key]
    room_log = client.app[room_log_key]
    # RoomHub's default (5 s): app.py has no setting for it
    grace = hub._close_grace
    closes: list[tuple[Connection, int]] = []
    close = hub.close

    def recording_close(conn: Connection, code: CloseCode, reason: str) -> None:
        closes.append((conn, code))
        close(conn, code, reason)

    monkeypatch.setattr(hub, "close", recording_close)
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    reading, hello = await connect(client, sid)
    seqs: list[int] = []

    async def read() -> None:
        while True:
            msg = await reading.receive()
            if msg.type is not WSMsgType.TEXT:
                return
            message = orjson.loads(msg.data)
            if "seq" in message:
                seqs.append(message["seq"])

    reader = asyncio.create_task(read())
    loop = asyncio.get_running_loop()
    payload = {"blob": "x" * 16_000}

    async def push() -> int:
        """One 16 KB event, paced by the reading socket alone (at most 8 events ahead),
        so only the one that never reads falls behind, however slow the machine."""
        seq = (await room_log.append(sid, "test.blob", payload)).seq
        await until(lambda: seq - (seqs[-1] if seqs else hello["seq"]) <= 8)
        return seq

    stuck_client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # a small receive buffer (locked: no autotuning) fills sooner
    stuck_client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck_client.setblocking(False)
    try:
        await loop.sock_connect(stuck_client, ("127.0.0.1", client.port))
        await loop.sock_sendall(stuck_client, upgrade_request(sid))
        head = b""
        async with asyncio.timeout(TIMEOUT):
            while not head.endswith(b"\r\n\r\n"):  # byte by byte: not one more
                head += await loop.sock_recv(stuck_client, 1)
            assert head.startswith(b"HTTP/1.1 101"), head
        await until(lambda: hub.local_sockets(sid) == 2)
        (stuck,) = [c for c in hub.connections(sid) if c.id != hello["connection"]["id"]]
        assert isinstance(stuck.socket, RoomSocket)
        transport = stuck.socket.transport
        server_side = transport.get_extra_info("socket")
        client_port = stuck_client.getsockname()[1]
        assert tcp_state(client.port, client_port) == "01"
        # From here on the stuck client reads nothing at all.

        pushed = 0
        async with asyncio.timeout(30):
            while not stuck.closing:
                assert pushed < 2000, "2000 events (32 MB) and the stuck socket still open"
                await push()
                pushed += 1
        closing_at = loop.time()
        assert closes == [(stuck, CloseCode.SLOW_CONSUMER)]
        # Over its send bound in user space: the kernel's buffers (the server's send
        # buffer, the client's receive buffer) are full, and the close frame is queued
        # behind what they hold.
        assert transport.get_write_buffer_size() > settings.ws_send_limit_bytes
        assert not transport.is_closing()

        # The room goes on while the stuck socket waits out its close grace; then the
        # hub aborts its transport.
        async with asyncio.timeout(grace + 5):
            while not transport.is_closing():
                await push()
                await asyncio.sleep(0.05)
        waited = loop.time() - closing_at
        print(f"stuck reader: 4008 after {pushed} events, cut off {waited:.3f} s later")
        assert grace - 0.5 < waited < grace + 2.0, (grace, waited)

        # The server lets go of the connection: its socket is closed (the transport
        # lost its connection, the hub's leave ran) and the kernel's is no longer
        # established (gone, or an orphan in FIN_WAIT1 holding what was never read).
        await until(lambda: server_side.fileno() == -1 and not stuck.joined, 2)
        assert hub.local_sockets(sid) == 1
        assert tcp_state(client.port, client_port) != "01"
        assert closes == [(stuck, CloseCode.SLOW_CONSUMER)]  # the reading one never was

        # The reading socket received every event, in order and without a gap, and
        # still does.
        last = await push()
        await until(lambda: seqs[-1] >= last)
        assert seqs == list(range(hello["seq"] + 1, last + 1))
        assert not reading.closed

        # What the stuck client can still read ends without the close frame (it never
        # left the server's user-space buffer) in EOF or a reset.
        received = bytearray()
        async with asyncio.timeout(TIMEOUT):
            with contextlib.suppress(ConnectionResetError):
                while chunk := await loop.sock_recv(stuck_client, 65536):
                    received += chunk
        assert 0x8 not in server_opcodes(bytes(received))
    finally:
        stuck_client.close()
        await reading.close()
        await asyncio.wait_for(reader, TIMEOUT)
