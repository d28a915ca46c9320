"""A network namespace whose only interface is loopback, for tests whose peers would
otherwise pair over this machine's outside address.

Why a namespace: Chromium (and libnice, in GStreamer's webrtcbin) binds a socket on
every interface and sends ICE checks from each of them to every remote candidate, so
with our 127.0.0.1 candidate it sends from the outside address to 127.0.0.1; aioice
then learns that source as a peer-reflexive candidate and answers it. Filtering
candidates on the server cannot stop the browser from *sending* those checks. In a
namespace with only ``lo`` there is no other address to send from, so every datagram
has both ends in 127.0.0.0/8 (../shared/TESTING.md, "WebRTC without leaving loopback").

How: a holder process (``unshare --net``) owns the namespace and brings ``lo`` up;
``entered`` moves the *calling thread* into it with ``setns(2)`` and back afterwards.
Sockets keep the namespace they were created in, and a child process starts in its
parent thread's namespace, so the test's server, its aiortc peers, its HTTP client and
the browser (started from this thread) all live in the namespace while it is entered.
PostgreSQL and Redis on the host are out of reach from there: such tests use SQLite and
the in-memory room log. Needs root (CAP_SYS_ADMIN) and util-linux's ``unshare``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def unavailable() -> str | None:
    """Why a loopback-only namespace cannot be made here, or None if it can."""
    if os.geteuid() != 0:
        return "needs root to create a network namespace (CI runs as root)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs util-linux's unshare and iproute2's ip"
    return None


class LoopbackNamespace:
    """A network namespace with only ``lo`` (up), alive until ``close``."""

    def __init__(self) -> None:
        self._holder = subprocess.Popen(
            [
                "unshare",
                "--net",
                "sh",
                "-c",
                "ip link set lo up && echo ready && exec sleep infinity",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._holder.stdout is not None
        if self._holder.stdout.readline().strip() != "ready":
            self._holder.kill()
            raise RuntimeError("could not bring up lo in a new network namespace")
        self._fd = os.open(f"/proc/{self._holder.pid}/ns/net", os.O_RDONLY)

    def interfaces(self) -> list[str]:
        """The namespace's interface names (as ``ip`` sees them from inside)."""
        out = subprocess.run(
            ["nsenter", f"--net=/proc/{self._holder.pid}/ns/net", "ip", "-o", "link"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread is in the namespace inside this block."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns(self._fd)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)

    def close(self) -> None:
        os.close(self._fd)
        self._holder.kill()
        self._holder.wait()
