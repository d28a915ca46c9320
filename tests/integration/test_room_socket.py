"""The room socket's own WebSocket layer, driven by a raw client: after the upgrade the
socket leaves aiohttp, so pings, closes, fragments, malformed frames and the heartbeat
are ours to get right.

Transport behaviour does not depend on the storage backend: these run on SQLite + the
in-memory bus only.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import struct
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient
from aiohttp.web_protocol import RequestHandler
from support import Api
from test_room_channel import announce, connect, events
from wsclient import client_frame

from app import Settings, create_app, hub_key
from live.protocol import MAX_FRAME_BYTES, CloseCode
from live.wsframe import Opcode

TIMEOUT = 10.0


@pytest.fixture
def backend() -> str:
    return "sqlite-memory"


def handshake(client: TestClient[Any, Any], path: str, extra_headers: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {client.host}:{client.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    ).encode()


class RawClient:
    """Just enough of a WebSocket client to send what a browser never would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, client: TestClient[Any, Any], path: str, early: bytes = b""
    ) -> RawClient:
        """Handshake; ``early`` goes out in the same write as the request."""
        reader, writer = await asyncio.open_connection(client.host, client.port)
        writer.write(handshake(client, path) + early)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101 "), head
        return cls(reader, writer)

    def send(self, opcode: int, payload: bytes = b"", **kwargs: Any) -> None:
        self.writer.write(client_frame(opcode, payload, **kwargs))

    async def frame(self) -> tuple[int, bytes]:
        """The next server frame: (opcode, payload). Server frames are never masked."""
        async with asyncio.timeout(TIMEOUT):
            first, second = await self.reader.readexactly(2)
            assert not second & 0x80, "server frames are not masked"
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            return first & 0x0F, await self.reader.readexactly(length)

    async def message(self) -> dict[str, Any]:
        """The next text message that is not a room event (hello, pong, error)."""
        while True:
            opcode, payload = await self.frame()
            if opcode == Opcode.TEXT:
                message = orjson.loads(payload)
                if "ts" not in message:  # room events carry ts, hello does not
                    return dict(message)

    async def close_code(self) -> int | None:
        """Read until the server's close frame and then the end of the connection."""
        while True:
            opcode, payload = await self.frame()
            if opcode == Opcode.CLOSE:
                break
        async with asyncio.timeout(TIMEOUT):
            assert await self.reader.read() == b"", "the server closes the TCP connection"
        return struct.unpack("!H", payload[:2])[0] if payload else None


async def room(api: Api) -> int:
    host = await api.signup("host")
    return int((await api.live_session(host))["id"])


async def until(predicate: Any) -> None:
    """Poll ``predicate`` (the hub's socket count changes without an event to wait on)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.02)


async def test_aiohttp_lets_go_of_upgraded_sockets(api: Api) -> None:
    """The point of the raw socket: no request handler per open room socket."""
    host = await api.signup("host")
    sid = (await api.live_session(host))["id"]
    sockets = [(await connect(api.client, sid))[0] for _ in range(20)]
    gc.collect()
    assert api.client.server.runner is not None
    server = api.client.server.runner.server
    assert server is not None
    assert len(server.connections) < 5  # the API client's keep-alive connections only
    assert sum(isinstance(o, RequestHandler) for o in gc.get_objects()) < 5
    (seq,) = await announce(api, host, sid, 1)
    for ws in sockets:
        assert (await events(ws, 1, "announcement"))[0]["seq"] == seq
        await ws.close()


async def test_closed_sockets_are_freed_without_the_cyclic_collector(api: Api) -> None:
    """A room socket and its ``Connection`` point at each other; once the channel has
    closed it, the link is cut and reference counting frees them (they waited for a
    full collection: 1,500 of each in a 30-minute soak)."""
    sid = await room(api)
    hub = api.client.app[hub_key]
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            sockets = [(await connect(api.client, sid))[0] for _ in range(20)]
            for ws in sockets:
                await ws.close()
        await until(lambda: hub.local_sockets(sid) == 0)
        await asyncio.sleep(0.1)  # the spawned closes finish
        left = sum(type(o).__name__ == "RoomSocket" for o in gc.get_objects())
    finally:
        gc.enable()
    assert left == 0


async def test_ping_pong_fragments_and_binary(api: Api) -> None:
    sid = await room(api)
    raw = await RawClient.connect(api.client, f"/api/sessions/{sid}/ws")
    assert (await raw.message())["type"] == "hello"
    raw.send(Opcode.PING, b"abc")
    while (frame := await raw.frame())[0] != Opcode.PONG:
        pass
    assert frame == (Opcode.PONG, b"abc")
    raw.send(Opcode.TEXT, b'{"type":"pi', fin=False)
    raw.send(Opcode.PING, b"between")  # control frames may come between fragments
    raw.send(Opcode.CONTINUATION, b'ng","ref":5}')
    assert (await raw.message())["ref"] == 5
    raw.send(Opcode.BINARY, b"\x00\x01")
    assert (await raw.message())["code"] == "binary_not_supported"
    raw.send(Opcode.TEXT, b'{"type":"ping","ref":6}')
    pong = await raw.message()
    assert (pong["type"], pong["ref"]) == ("pong", 6)
    raw.writer.close()


async def test_frames_sent_with_the_handshake_are_read_after_hello(api: Api) -> None:
    sid = await room(api)
    early = client_frame(Opcode.TEXT, b'{"type":"ping","ref":"early"}')
    raw = await RawClient.connect(api.client, f"/api/sessions/{sid}/ws", early=early)
    assert (await raw.message())["type"] == "hello"
    assert (await raw.message())["ref"] == "early"
    raw.writer.close()


async def test_an_upgrade_whose_body_is_still_coming_is_refused(api: Api) -> None:
    """aiohttp parses HTTP until the body a request announced has come, so what follows
    it would not reach the room socket: no 101 (``aiohttp_hooks.passed_through``)."""
    sid = await room(api)
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    writer.write(handshake(api.client, f"/api/sessions/{sid}/ws", "Content-Length: 5\r\n"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    assert head.startswith(b"HTTP/1.1 400 "), head
    writer.close()


async def test_client_close_is_echoed_and_the_socket_leaves(api: Api) -> None:
    sid = await room(api)
    hub = api.client.app[hub_key]
    raw = await RawClient.connect(api.client, f"/api/sessions/{sid}/ws")
    assert (await raw.message())["type"] == "hello"
    assert hub.local_sockets(sid) == 1
    raw.send(Opcode.CLOSE, struct.pack("!H", 1000) + b"bye")
    assert await raw.close_code() == 1000
    await until(lambda: hub.local_sockets(sid) == 0)


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(Opcode.TEXT, b'{"type":"ping"}', masked=False), 1002),
        (client_frame(Opcode.CONTINUATION, b"x"), 1002),
        (client_frame(Opcode.TEXT, b"\xff\xfe"), 1007),
        (struct.pack("!BBQ", 0x81, 0x80 | 127, MAX_FRAME_BYTES + 1) + b"mask", 1009),
        (client_frame(Opcode.CLOSE, b"\x03"), 1002),
    ],
    ids=["unmasked", "continuation", "bad-utf8", "too-big", "bad-close"],
)
async def test_protocol_errors_fail_the_socket(api: Api, frame: bytes, code: int) -> None:
    sid = await room(api)
    hub = api.client.app[hub_key]
    raw = await RawClient.connect(api.client, f"/api/sessions/{sid}/ws")
    assert (await raw.message())["type"] == "hello"
    raw.writer.write(frame)
    assert await raw.close_code() == code
    await until(lambda: hub.local_sockets(sid) == 0)


async def test_heartbeat_drops_silent_clients_only(settings: Settings, aiohttp_client: Any) -> None:
    api = Api(await aiohttp_client(create_app(settings.model_copy(update={"ws_heartbeat_s": 0.2}))))
    sid = await room(api)
    hub = api.client.app[hub_key]
    silent = await RawClient.connect(api.client, f"/api/sessions/{sid}/ws")
    answering = await api.client.ws_connect(f"/api/sessions/{sid}/ws")

    async def read_answering() -> None:
        async for _ in answering:  # aiohttp answers pings while it reads
            pass

    reading = asyncio.create_task(read_answering())
    await until(lambda: hub.local_sockets(sid) == 2)
    # The silent client gets pings, answers none, and is dropped after a second interval.
    async with asyncio.timeout(TIMEOUT):
        while True:
            opcode, _ = await silent.frame()
            if opcode == Opcode.PING:
                break
        while await silent.reader.read(65536):
            pass  # room events already on their way, then the end of the connection
    await until(lambda: hub.local_sockets(sid) == 1)
    await asyncio.sleep(0.6)  # three more intervals: the answering client stays
    assert not answering.closed
    assert hub.local_sockets(sid) == 1
    await answering.close()
    await reading


async def test_server_shutdown_closes_with_going_away(
    settings: Settings, aiohttp_client: Any
) -> None:
    client = await aiohttp_client(create_app(settings))
    api = Api(client)
    sid = await room(api)
    ws, _ = await connect(client, sid)

    async def until_closed() -> None:
        while (await ws.receive(timeout=TIMEOUT)).type not in (WSMsgType.CLOSE, WSMsgType.CLOSED):
            pass

    reader = asyncio.create_task(until_closed())
    await client.server.close()
    await asyncio.wait_for(reader, TIMEOUT)
    assert ws.close_code == CloseCode.GOING_AWAY
