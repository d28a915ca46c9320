"""The loopback-only namespace the browser and GStreamer tests run in (tests/netns.py)."""

from __future__ import annotations

import os
import socket
import subprocess

from netns import LoopbackNamespace


def test_only_loopback_inside_and_the_host_is_out_of_reach(
    loopback_namespace: LoopbackNamespace,
) -> None:
    home = os.stat("/proc/thread-self/ns/net").st_ino
    assert loopback_namespace.interfaces() == ["lo"]
    with loopback_namespace.entered():
        # a child process starts in the namespace of the thread that starts it
        inside = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        assert {line.split()[1] for line in inside.splitlines()} == {"lo"}
        # the listener lives in the namespace: the host's 127.0.0.1 is another loopback
        refused = False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except ConnectionRefusedError:
            refused = True
        assert refused
        with loopback_namespace.entered():
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        listener.close()
    # and the thread is back in the namespace it started in
    assert os.stat("/proc/thread-self/ns/net").st_ino == home
