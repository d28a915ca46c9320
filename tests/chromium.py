"""Where Chromium is and how every test starts it: headless, and with nothing leaving
127.0.0.0/8 (../shared/TESTING.md). Start it in the loopback-only network namespace
(tests/netns.py) when it does WebRTC."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("LIVESHELF_CHROMIUM", "/usr/bin/chromium")

#: Keep every packet on loopback: no name resolution but 127.0.0.1, no QUIC, no
#: background traffic; fake camera and microphone; WebRTC may use 127.0.0.1.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # see chromium_args
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_args(*hosts: str) -> list[str]:
    """``CHROMIUM_ARGS`` that also let the browser reach ``hosts`` (e.g. 127.0.0.2):
    the resolver rules apply to address literals too."""
    rules = " , ".join(["MAP * ~NOTFOUND", *(f"EXCLUDE {h}" for h in ("127.0.0.1", *hosts))])
    return [
        f"--host-resolver-rules={rules}" if arg.startswith("--host-resolver-rules=") else arg
        for arg in CHROMIUM_ARGS
    ]
