"""A PostgreSQL of a test's own, in a temporary folder on its own port, that the test
may restart (TESTING.md "Faults": never the shared one on 5432). ``initdb`` refuses
to run as root, so as root it runs as the ``postgres`` account."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from support import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        pytest.skip(f"no PostgreSQL {name} in /usr/lib/postgresql/*/bin")
    return found[-1]


class OwnPostgres:
    """``start``, ``restart`` (``-m immediate``: a crash and a recovery) and ``stop``."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="ls-pg-"))
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and no postgres account for initdb")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run(_bin("initdb"), "-D", str(self.folder), "-A", "trust", "-U", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, capture_output=True)

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.folder / "log")
        self._run(_bin("pg_ctl"), "-D", str(self.folder), "-l", log, "-o", options, "-w", *args)

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        """Kill the server at once (no checkpoint) and start it again: crash recovery."""
        self._ctl("-m", "immediate", "restart")

    def halt(self) -> None:
        """Stop the server, keeping its data (``start`` brings it back)."""
        self._ctl("-m", "fast", "stop")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self._ctl("-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
