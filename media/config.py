"""Settings of the media layer (ICE, relay bounds, recording)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

SUPPORTED_VIDEO_CODECS = ("video/VP8", "video/H264")


@dataclass(frozen=True)
class MediaConfig:
    """Everything the media layer can be told; read once at start-up.

    ICE: candidates are gathered on, and advertised with, exactly
    ``ice_addresses`` (an SFU's "announced IP": the server must be reachable
    there). ``ice_servers`` are ``stun:``/``turn:`` URLs; the default is empty and
    no public STUN server is ever contacted. Remote candidates outside
    ``ice_remote_networks`` (CIDR strings) are ignored; ``None`` means "loopback
    only when every ICE address is loopback, otherwise any address".
    """

    ice_servers: tuple[str, ...] = ()
    ice_addresses: tuple[str, ...] = ("127.0.0.1",)
    ice_remote_networks: tuple[str, ...] | None = None
    recordings_dir: Path | None = None
    #: Keyframe requests (PLI) to a publisher are coalesced to one per interval.
    pli_interval_s: float = 0.5
    #: Per viewer and per track: bytes its socket may hold unsent. A viewer over
    #: this skips frames (video until the next keyframe) instead of queueing more.
    viewer_backlog_bytes: int = 256 * 1024
    max_sdp_bytes: int = 20_000
    #: A publisher who sends no media this long (counted from its offer, then
    #: from its last frame) is dropped (reason "timeout").
    publisher_timeout_s: float = 15.0
    #: A viewer whose transport is not connected this long after its offer is
    #: dropped (reason "timeout"): an answered offer holds a socket and a slot.
    viewer_connect_timeout_s: float = 8.0
    cover_interval_s: float = 30.0
    #: a recording stops (cut short, finished, marked incomplete) while this much is
    #: still free on its disk, so the file's index can be written
    recording_min_free_bytes: int = 64 * 1024 * 1024
    #: An edge ends its pull of a session this long after its last viewer left.
    pull_linger_s: float = 5.0
    #: An edge whose pull was lost pulls again after 0.25 s, doubling up to this.
    pull_retry_max_s: float = 2.0
    #: Video codec preference when the relay picks (publishers, and viewers that
    #: join before any publisher).
    video_codecs: tuple[str, ...] = SUPPORTED_VIDEO_CODECS
    #: When False, ``play`` on a session without a live publisher raises
    #: ``no_publisher``; when True the viewer is answered and waits for media.
    viewers_wait_for_publisher: bool = True
    #: What one client may hold at once in one session (0: no cap): WHEP peers per
    #: client address and per signed-in user (``too_many_peers``); pulls aside.
    max_peers_per_address: int = 0
    max_peers_per_user: int = 0
    #: Answer WHIP offers as the DTLS server (``a=setup:passive``): encoders with
    #: RSA certificates fail against aiortc's ECDSA-only client hello.
    publisher_dtls_server: bool = True

    def __post_init__(self) -> None:
        if not self.ice_addresses:
            raise ValueError("ice_addresses must not be empty")
        for address in self.ice_addresses:
            ipaddress.ip_address(address)
        for url in self.ice_servers:
            if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
                raise ValueError(f"not a STUN/TURN url: {url!r}")
        for codec in self.video_codecs:
            if codec not in SUPPORTED_VIDEO_CODECS:
                raise ValueError(f"unsupported video codec {codec!r}")
        if self.viewer_backlog_bytes < 2048:
            raise ValueError("viewer_backlog_bytes must be >= 2048")
        if self.pli_interval_s <= 0 or self.cover_interval_s <= 0:
            raise ValueError("intervals must be positive")

    def remote_networks(
        self,
    ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None:
        """Networks remote candidates must fall in; ``None`` = any address."""
        if self.ice_remote_networks is not None:
            return tuple(ipaddress.ip_network(n) for n in self.ice_remote_networks)
        if all(ipaddress.ip_address(a).is_loopback for a in self.ice_addresses):
            return (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
        return None
