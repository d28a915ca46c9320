"""ICE policy: which addresses we gather on and which remote candidates we accept.

aiortc has no setting for the host addresses its ICE agent (aioice) binds to:
``aioice.Connection.gather_candidates`` asks the module function
``aioice.ice.get_host_addresses`` for every interface address and always skips
127.0.0.1. We replace that one function, once per process, with a wrapper that
consults a ``ContextVar``: inside ``gathering_on(addresses)`` (which
``set_local_description`` uses) it returns exactly the configured addresses; in
any other context it calls the original, so peer connections that are not ours
are unaffected. aiortc gathers inside ``setLocalDescription`` itself, in the
caller's task, so the context variable is visible there.

Every peer connection is created by ``create_peer_connection`` with an explicit
``iceServers`` list (aiortc adds a public STUN server when it is ``None``).
Remote candidates are filtered by address before aiortc sees them:
``filter_sdp_candidates`` for offers, ``candidate_allowed`` for trickled ones.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from .config import MediaConfig

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_GATHER_ADDRESSES: ContextVar[tuple[str, ...] | None] = ContextVar(
    "liveshelf_ice_gather_addresses", default=None
)
_HOOK_MARK = "_liveshelf_address_hook"


def install_address_hook() -> None:
    """Make aioice honour ``gathering_on``; idempotent, safe to call often."""
    current: Callable[..., list[str]] = aioice.ice.get_host_addresses
    if getattr(current, _HOOK_MARK, False):
        return
    original = current

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        scoped = _GATHER_ADDRESSES.get()
        if scoped is None:
            return original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
        return [
            a
            for a in scoped
            if (use_ipv4 and ipaddress.ip_address(a).version == 4)
            or (use_ipv6 and ipaddress.ip_address(a).version == 6)
        ]

    setattr(get_host_addresses, _HOOK_MARK, True)
    aioice.ice.get_host_addresses = get_host_addresses


@contextlib.contextmanager
def gathering_on(addresses: tuple[str, ...]) -> Iterator[None]:
    """Within this block, ICE gathering binds to exactly ``addresses``."""
    install_address_hook()
    token = _GATHER_ADDRESSES.set(tuple(addresses))
    try:
        yield
    finally:
        _GATHER_ADDRESSES.reset(token)


def create_peer_connection(config: MediaConfig) -> RTCPeerConnection:
    """A peer connection using only the configured STUN/TURN servers."""
    servers = [RTCIceServer(urls=url) for url in config.ice_servers]
    return RTCPeerConnection(RTCConfiguration(iceServers=servers))


async def set_local_description(
    pc: RTCPeerConnection,
    addresses: tuple[str, ...],
    description: RTCSessionDescription | None = None,
) -> None:
    """``pc.setLocalDescription`` gathering host candidates on ``addresses``."""
    with gathering_on(addresses):
        call: Awaitable[Any] = pc.setLocalDescription(description)
        await call


def candidate_allowed(candidate: str, networks: tuple[Network, ...] | None) -> bool:
    """Whether a ``candidate:...`` attribute value may be used.

    Only UDP candidates are kept (aioice does not do ICE-TCP). With ``networks``
    None every IP address is allowed; hostnames (mDNS ``.local``) are refused
    whenever a network list applies, since their address is unknown.
    """
    parts = candidate.split()
    if len(parts) < 8 or parts[2].lower() != "udp":
        return False
    if networks is None:
        return True
    try:
        address = ipaddress.ip_address(parts[4])
    except ValueError:
        return False
    return any(address in n for n in networks)


def filter_sdp_candidates(sdp: str, networks: tuple[Network, ...] | None) -> str:
    """Drop ``a=candidate`` lines whose address is not allowed."""
    kept = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") and not candidate_allowed(line[2:], networks):
            continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n"
