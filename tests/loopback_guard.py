"""Fails the run when any test sent a packet on loopback whose source or destination is
outside 127.0.0.0/8 (or ::1): the sign of a WebRTC pair over this machine's outside
address, which tests must never use (../shared/TESTING.md).

A session-wide ``tcpdump`` on ``lo`` records only such packets; when the run ends it is
stopped, and if it recorded any, the run's exit status becomes "tests failed" and the
summary lists the first of them. Where tcpdump cannot run (not installed, not root) the
guard says so in the summary and stays out of the way, unless
``LIVESHELF_REQUIRE_LOOPBACK_GUARD=1`` (``.ci/run`` sets it), which makes that an error.
``LIVESHELF_LOOPBACK_GUARD=0`` turns it off (e.g. to see a leak reproduced on purpose).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

#: packets on lo that do not have both ends in the loopback range
CAPTURE_FILTER = (
    "(ip and not (src net 127.0.0.0/8 and dst net 127.0.0.0/8))"
    " or (ip6 and not (src host ::1 and dst host ::1))"
)
SHOWN = 10


class LoopbackGuard:
    def __init__(self, folder: Path) -> None:
        self.pcap = folder / "off-loopback.pcap"
        self._proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-n", "-p", "-U", "-w", str(self.pcap), CAPTURE_FILTER],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stderr is not None
        # tcpdump says "listening on lo" once its filter is in place
        line = self._proc.stderr.readline()
        if "listening on" not in line:
            self._proc.kill()
            raise RuntimeError(f"tcpdump did not start: {line.strip()}")

    def stop(self) -> list[str]:
        """Stops the capture; the packets it recorded, one line each."""
        self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        out = subprocess.run(
            ["tcpdump", "-r", str(self.pcap), "-n", "-tt"],
            capture_output=True,
            text=True,
        ).stdout
        return out.splitlines()


def _unavailable() -> str | None:
    if shutil.which("tcpdump") is None:
        return "tcpdump is not installed (apt-get install tcpdump; .ci/run does)"
    if os.geteuid() != 0:
        return "capturing on lo needs root"
    return None


_guard = pytest.StashKey[LoopbackGuard]()
_skipped = pytest.StashKey[str]()
_leaks = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("LIVESHELF_LOOPBACK_GUARD") == "0" or hasattr(config, "workerinput"):
        return
    reason = _unavailable()
    if reason is None:
        try:
            folder = Path(tempfile.mkdtemp(prefix="liveshelf-guard-"))
            config.stash[_guard] = LoopbackGuard(folder)
            time.sleep(0.1)  # the filter is attached; let the first packets be seen
            return
        except (OSError, RuntimeError) as exc:
            reason = str(exc)
    if os.environ.get("LIVESHELF_REQUIRE_LOOPBACK_GUARD") == "1":
        raise pytest.UsageError(f"the loopback guard cannot run: {reason}")
    config.stash[_skipped] = reason


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    guard = session.config.stash.get(_guard, None)
    if guard is None:
        return
    leaks = guard.stop()
    session.config.stash[_leaks] = leaks
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        shutil.rmtree(guard.pcap.parent, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    skipped = config.stash.get(_skipped, None)
    if skipped is not None:
        terminalreporter.write_line(f"loopback guard not running: {skipped}", yellow=True)
    leaks = config.stash.get(_leaks, None)
    if leaks:
        terminalreporter.section("loopback guard", sep="=", red=True, bold=True)
        terminalreporter.write_line(
            f"FAILED: {len(leaks)} packets on lo had an end outside 127.0.0.0/8 or ::1 "
            f"(all in {config.stash[_guard].pcap}); the first ones:",
            red=True,
        )
        for line in leaks[:SHOWN]:
            terminalreporter.write_line(f"  {line}")
