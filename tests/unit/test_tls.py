"""``live.tls``: a usable certificate and key, or one clear line naming the file."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from aiohttp import web
from tls_support import self_signed

from live.tls import TlsError, server_context


def test_a_certificate_and_its_key_make_a_server_context(tmp_path: Path) -> None:
    pair = self_signed(tmp_path)
    context = server_context(pair.cert, pair.key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_what_cannot_be_used_is_named(tmp_path: Path) -> None:
    pair = self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    other = self_signed(tmp_path / "other")
    with pytest.raises(TlsError, match="LIVESHELF_TLS_CERT: no such file"):
        server_context(tmp_path / "missing.pem", pair.key)
    with pytest.raises(TlsError, match="LIVESHELF_TLS_KEY: no such file"):
        server_context(pair.cert, tmp_path / "missing.pem")
    with pytest.raises(TlsError, match="are not a PEM certificate and its private key"):
        server_context(pair.cert, other.key)  # another certificate's key
    with pytest.raises(TlsError, match="are not a PEM certificate"):
        server_context(pair.key, pair.key)


async def test_a_client_trusting_the_certificate_gets_https(tmp_path: Path) -> None:
    pair = self_signed(tmp_path)

    async def secure(_request: web.Request) -> web.Response:
        return web.Response(text="secure")

    app = web.Application()
    app.router.add_get("/", secure)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context(pair.cert, pair.key))
    await site.start()
    port = runner.addresses[0][1]
    try:
        trusting = ssl.create_default_context(cafile=str(pair.cert))
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trusting)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"secure")
        strict = ssl.create_default_context()  # the system's roots: not this certificate
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("127.0.0.1", port, ssl=strict)
    finally:
        await runner.cleanup()
