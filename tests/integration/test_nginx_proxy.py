"""``deploy/nginx.conf`` in front of ``python app.py``: nginx (Debian's, started here on
127.0.0.1 with a self-signed certificate) terminates TLS and passes the API, the room
WebSocket and WHIP/WHEP through as they are: an aiortc host publishes and a viewer
plays through the proxy (media itself goes straight to the server), their resources'
``Location``/``ETag`` work through it, and a room socket over ``wss:`` gets its events.
The file under test is the example itself, with only its addresses, ports and paths
replaced."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest
from support import free_port, poster, sqlite_server, wait_until_up
from tls_support import self_signed

from media.clients import PublisherClient, ViewerClient
from media.config import MediaConfig

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "deploy" / "nginx.conf"


def rendered(folder: Path, https: int, http: int, upstream: int, cert: Path, key: Path) -> Path:
    """The example with this test's ports and files, inside a main configuration."""
    site = EXAMPLE.read_text()
    replacements = {
        "listen 443 ssl;": f"listen 127.0.0.1:{https} ssl;",
        "listen 80;": f"listen 127.0.0.1:{http};",
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream};",
        "/etc/letsencrypt/live/live.example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/live.example.com/privkey.pem": str(key),
    }
    for old, new in replacements.items():
        assert site.count(old) == 1, f"the example no longer has {old!r}"
        site = site.replace(old, new)
    (folder / "site.conf").write_text(site)
    main = folder / "nginx.conf"
    main.write_text(
        f"""daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/site.conf;
}}
"""
    )
    return main


@pytest.fixture
def nginx() -> str:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.skip("the nginx example needs nginx (apt-get install nginx-light; .ci/run does)")
    return binary


async def test_the_nginx_example_proxies_the_api_the_room_and_whip_whep(
    tmp_path: Path, nginx: str
) -> None:
    binary = nginx
    pair = self_signed(tmp_path)
    upstream, https, http = free_port(), free_port(), free_port()
    server = sqlite_server(tmp_path, upstream, LIVESHELF_TRUSTED_PROXIES="127.0.0.1/32")
    config = rendered(tmp_path, https, http, upstream, pair.cert, pair.key)
    check = subprocess.run([binary, "-t", "-c", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proxy = subprocess.Popen(
        [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"https://127.0.0.1:{https}"
    trust = ssl.create_default_context(cafile=str(pair.cert))
    media = MediaConfig(ice_addresses=("127.0.0.1",))
    peers: list[PublisherClient | ViewerClient] = []
    try:
        await wait_until_up(f"http://127.0.0.1:{upstream}", server)
        await wait_until_up(base, server, ssl=trust)
        connector = aiohttp.TCPConnector(ssl=trust)
        async with aiohttp.ClientSession(base, connector=connector) as client:
            async with client.get(f"http://127.0.0.1:{http}/studio", allow_redirects=False) as res:
                assert res.status == 301
                assert res.headers["Location"].startswith("https://")
            async with client.post(
                "/api/auth/signup",
                json={"username": "proxied-host", "password": "correct horse", "role": "host"},
            ) as res:
                assert res.status == 201, await res.text()
                token = (await res.json())["token"]
            bearer = {"Authorization": f"Bearer {token}"}
            async with client.post(
                "/api/sessions", json={"title": "Behind nginx"}, headers=bearer
            ) as res:
                sid = (await res.json())["id"]
            async with client.post(f"/api/sessions/{sid}/start", headers=bearer) as res:
                assert res.status == 200

            async with asyncio.timeout(40):
                publisher = PublisherClient(media)
                peers.append(publisher)
                await publisher.connect(poster(client, f"/whip/{sid}", token))
                location = publisher.resource.location  # type: ignore[union-attr]
                assert re.fullmatch(rf"/whip/{sid}/[\w-]+", location), location
                viewer = ViewerClient(media)
                peers.append(viewer)
                await viewer.connect(poster(client, f"/whep/{sid}"))
                await viewer.wait_for("video", decoded=30, within_s=20)

                # the room socket over wss through the proxy: hello, then a live event
                async with client.ws_connect(f"/api/sessions/{sid}/ws") as ws:
                    hello = await ws.receive_json()
                    assert hello["type"] == "hello"
                    async with client.post(
                        f"/api/sessions/{sid}/announcements",
                        json={"text": "through the proxy"},
                        headers=bearer,
                    ) as res:
                        assert res.status in (200, 201), await res.text()
                    while (event := await ws.receive_json())["type"] != "announcement":
                        pass
                    assert event["data"]["text"] == "through the proxy"

                # the WHEP resource's DELETE, by its Location, through the proxy
                whep = viewer.resource.location  # type: ignore[union-attr]
                async with client.delete(whep) as res:
                    assert res.status == 200
                async with client.delete(location, headers=bearer) as res:
                    assert res.status == 200
        access = (tmp_path / "access.log").read_text()
        assert f'POST /whip/{sid} HTTP/1.1" 201' in access
        assert f'GET /api/sessions/{sid}/ws HTTP/1.1" 101' in access
    finally:
        for peer in peers:
            await peer.close()
        proxy.send_signal(signal.SIGQUIT)
        server.send_signal(signal.SIGINT)
        for proc in (proxy, server):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
