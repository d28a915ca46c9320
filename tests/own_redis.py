"""A Redis of a test's own, on its own port, that the test may kill and start again
(TESTING.md "Faults": never the shared one on 6379)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError
from support import free_port


class OwnRedis:
    """``redis-server`` on 127.0.0.1:``port`` without persistence: ``kill`` is a crash
    that loses everything, ``start`` brings an empty one back on the same port."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self._proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        client = Redis(host="127.0.0.1", port=self.port)
        try:
            async with asyncio.timeout(10):
                while True:
                    try:
                        await client.ping()
                        return
                    except RedisError:
                        await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def kill(self) -> None:
        """SIGKILL, and wait until the port is closed."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
