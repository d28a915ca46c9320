"""TURN: the credentials ``GET /api/sessions/{id}/ice-servers`` hands out are what a
real coturn (``use-auth-secret``, started here on 127.0.0.1) accepts, until they
expire; a viewer forced to relay-only candidates plays a show through it."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioice
import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCIceTransportPolicy
from support import Api, free_port, guest_cookie, poster

import media.clients
from app import Settings, create_app
from media.config import MediaConfig
from media.turn import TurnConfig, turn_credential

TURN_SECRET = "turn-secret-for-tests-" + "x" * 16


@dataclass(frozen=True)
class Turn:
    url: str
    port: int
    secret: str


def _relay_ports() -> tuple[int, int]:
    low = free_port()
    return low, low + 20


@pytest.fixture
def turn(tmp_path: Path) -> Iterator[Turn]:
    """coturn on 127.0.0.1 with the TURN REST API secret; relays only on 127.0.0.1."""
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.skip("TURN tests need coturn (apt-get install coturn; .ci/run does)")
    port = free_port()
    low, high = _relay_ports()
    log = (tmp_path / "turn.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            "-n",  # no configuration file: everything is here
            "--listening-ip=127.0.0.1",
            f"--listening-port={port}",
            "--relay-ip=127.0.0.1",
            f"--min-port={low}",
            f"--max-port={high}",
            "--use-auth-secret",
            f"--static-auth-secret={TURN_SECRET}",
            "--realm=liveshelf.test",
            "--allow-loopback-peers",  # the relayed peer (the server) is on 127.0.0.1
            "--no-cli",
            "--no-tls",
            "--no-dtls",
            "--fingerprint",
            f"--pidfile={tmp_path / 'turn.pid'}",
            f"--db={tmp_path / 'turndb'}",
            "--log-file=stdout",
            "--simple-log",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_answering(port, proc)
        yield Turn(f"turn:127.0.0.1:{port}?transport=udp", port, TURN_SECRET)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def wait_until_answering(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Until coturn answers a STUN binding request on ``port`` (at most 10 s)."""
    request = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, os.urandom(12))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.1)
        for _ in range(100):
            if proc.poll() is not None:
                raise RuntimeError(f"turnserver exited with {proc.returncode}")
            probe.sendto(request, ("127.0.0.1", port))
            try:
                answer = probe.recv(2048)
            except OSError:  # a timeout, or refused while nothing listens yet
                continue
            if answer[8:20] == request[8:20]:
                return
    raise TimeoutError("coturn did not answer")


async def relay_candidates(turn: Turn, username: str, credential: str) -> list[Any]:
    """What aioice gathers through the TURN server with these credentials (relay only)."""
    connection = aioice.Connection(
        ice_controlling=True,
        components=1,
        turn_server=("127.0.0.1", turn.port),
        turn_username=username,
        turn_password=credential,
        transport_policy=aioice.TransportPolicy.RELAY,
        use_ipv6=False,
    )
    try:
        await asyncio.wait_for(connection.gather_candidates(), 10)
        return list(connection.local_candidates)
    finally:
        await connection.close()


async def test_coturn_accepts_our_credentials_until_they_expire(turn: Turn) -> None:
    now = int(time.time())
    fresh = f"{now + 600}:5-u7"
    got = await relay_candidates(turn, fresh, turn_credential(turn.secret, fresh))
    assert [(c.type, c.host) for c in got] == [("relay", "127.0.0.1")]
    assert await relay_candidates(turn, fresh, turn_credential("another secret!!", fresh)) == []
    expired = f"{now - 5}:5-u7"
    assert await relay_candidates(turn, expired, turn_credential(turn.secret, expired)) == []


def test_turn_settings_are_checked() -> None:
    for bad in (
        {"urls": ("stun:x",), "secret": TURN_SECRET},
        {"urls": ("turn:x",), "secret": "short"},
        {"urls": ("turn:x",), "secret": TURN_SECRET, "ttl_s": 10},
        {"browser_stun": ("turn:x",)},
    ):
        with pytest.raises(ValueError):
            TurnConfig(**bad)  # type: ignore[arg-type]


async def test_ice_servers_for_each_caller(settings: Settings, aiohttp_client: Any) -> None:
    turned = settings.model_copy(
        update={
            "turn_urls": ("turn:turn.example.net:3478", "turns:turn.example.net:5349"),
            "turn_secret": TURN_SECRET,
            "turn_ttl_s": 600,
            "browser_stun": ("stun:stun.example.net:3478",),
        }
    )
    api = Api(await aiohttp_client(create_app(turned)))
    host = await api.signup("host")
    session = int((await api.live_session(host))["id"])
    viewer = await api.signup("viewer")
    before = int(time.time())
    got = await api.call("GET", f"/api/sessions/{session}/ice-servers", viewer, expect=200)
    stun, relay = got["ice_servers"]
    assert stun == {"urls": ["stun:stun.example.net:3478"]}
    assert relay["urls"] == ["turn:turn.example.net:3478", "turns:turn.example.net:5349"]
    assert before + 600 <= got["expires_at"] <= int(time.time()) + 600
    assert relay["username"] == f"{got['expires_at']}:{session}-u{viewer.id}"
    assert relay["credential"] == turn_credential(TURN_SECRET, relay["username"])
    res = await api.client.get(f"/api/sessions/{session}/ice-servers", headers=guest_cookie())
    guest = (await res.json())["ice_servers"][1]["username"]
    assert res.status == 200 and res.headers["Cache-Control"] == "no-store"
    assert guest.split(":", 1)[1].startswith(f"{session}-g") and len(guest) > 20
    body = await api.call("GET", "/api/sessions/999999/ice-servers", expect=404)
    assert body["error"]["code"] == "session_not_found"
    await api.call("POST", f"/api/sessions/{session}/end", host, expect=200)
    body = await api.call("GET", f"/api/sessions/{session}/ice-servers", viewer, expect=409)
    assert body["error"]["code"] == "session_ended"


async def test_without_turn_the_list_is_empty(api: Api) -> None:
    host = await api.signup("host")
    session = int((await api.live_session(host))["id"])
    got = await api.call("GET", f"/api/sessions/{session}/ice-servers", expect=200)
    assert got["ice_servers"] == []


async def test_a_relay_only_viewer_plays_through_coturn(
    turn: Turn, settings: Settings, aiohttp_client: Any, peers: Any, monkeypatch: Any
) -> None:
    client = await aiohttp_client(
        create_app(
            settings.model_copy(update={"turn_urls": (turn.url,), "turn_secret": turn.secret})
        )
    )
    api = Api(client)
    host = await api.signup("host")
    session = int((await api.live_session(host))["id"])
    got = await api.call("GET", f"/api/sessions/{session}/ice-servers", expect=200)
    (relay,) = got["ice_servers"]

    def relay_only(_config: MediaConfig) -> RTCPeerConnection:
        server = RTCIceServer(relay["urls"], relay["username"], relay["credential"])
        policy = RTCIceTransportPolicy.RELAY
        return RTCPeerConnection(RTCConfiguration(iceServers=[server], iceTransportPolicy=policy))

    async with asyncio.timeout(40):
        publisher = peers.publisher()
        await publisher.connect(poster(client, f"/whip/{session}", host))
        monkeypatch.setattr(media.clients, "create_peer_connection", relay_only)
        viewer = peers.viewer()
        await viewer.connect(poster(client, f"/whep/{session}"))
        assert " typ relay" in viewer.pc.localDescription.sdp
        assert " typ host" not in viewer.pc.localDescription.sdp
        await viewer.wait_for("video", decoded=30, within_s=20)
        await viewer.wait_for("audio", decoded=10, within_s=5)
        pair = viewer.pc.getTransceivers()[0].receiver.transport.transport.iceGatherer
        local = pair.getLocalCandidates()
        assert local and all(c.type == "relay" for c in local)
