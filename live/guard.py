"""Limits against abuse: how often a client may try to sign in or up, open WebRTC peers
and room sockets, and how many peers and sockets one client may hold in a show.

Rates (``live.ratelimit``; across workers with Redis) and their defaults:

==========================  ==========================  ==================================
what                        key                         rate
==========================  ==========================  ==================================
login attempts              account and client address  5 at once, then 1 every 10 s
login attempts              client address              20 at once, then 1 every 2 s
login attempts              account                     50 at once, then 1 every 30 s
signups                     client address              10 at once, then 1 a minute
WHEP offers                 show and client address     30 at once, then 2 a second
room sockets                show and client address     60 at once, then 5 a second
==========================  ==========================  ==================================

A refusal is ``429`` with ``Retry-After``, and nothing else happens (no password is
checked). Nothing locks an account: the tightest login limit is per account *and*
address, so someone guessing from elsewhere slows only themselves; the per-account limit
is loose (it only slows a guesser spread over many addresses).

Caps on what one client holds at once in one show (``Caps``, settings; 0 = none), per
process: WHEP peers per address (60) and per user (5), room sockets per address (300)
and per user (10).

The client address is the peer's, or with ``trusted_proxies`` the last address in
``X-Forwarded-For`` that is not one of them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web

from .ratelimit import Rate, RateLimiter, check

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


_LOGIN_UA, _LOGIN_A, _LOGIN_U = Rate(0.1, 5), Rate(0.5, 20), Rate(1 / 30, 50)
_SIGNUP, _OFFERS, _SOCKETS = Rate(1 / 60, 10), Rate(2.0, 30), Rate(5.0, 60)


@dataclass(frozen=True)
class Rates:
    """The table above."""

    login_per_account_and_address: Rate = _LOGIN_UA
    login_per_address: Rate = _LOGIN_A
    login_per_account: Rate = _LOGIN_U
    signup_per_address: Rate = _SIGNUP
    offers_per_address: Rate = _OFFERS
    sockets_per_address: Rate = _SOCKETS


@dataclass(frozen=True)
class Caps:
    """What one client may hold at once in one show (0: no cap)."""

    peers_per_address: int = 60
    peers_per_user: int = 5
    sockets_per_address: int = 300
    sockets_per_user: int = 10


class Guard:
    """The rate limits above, over one ``RateLimiter``; ``enabled=False`` lets
    everything through (benchmarks and tests that open many clients from one address)."""

    def __init__(
        self,
        limiter: RateLimiter,
        rates: Rates | None = None,
        *,
        enabled: bool = True,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self._limiter = limiter
        self.rates = rates or Rates()
        self.enabled = enabled
        self._trusted = tuple(trusted_proxies)

    def client_address(self, request: web.Request) -> str:
        """Who is asking: the peer, or behind trusted proxies the client they name."""
        remote = request.remote or ""
        if not self._trusted or not self._is_trusted(remote):
            return remote
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed([h for h in hops if h]):
            if not self._is_trusted(hop):
                return hop
        return remote

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    async def login(self, username: str, address: str) -> None:
        if not self.enabled:
            return
        message = "too many sign-in attempts; wait a little"
        rates, account = self.rates, username.lower()
        for key, rate in (
            (f"login:a:{address}", rates.login_per_address),
            (f"login:ua:{account}:{address}", rates.login_per_account_and_address),
            (f"login:u:{account}", rates.login_per_account),
        ):
            await check(self._limiter, key, rate, "too_many_attempts", message)

    async def signup(self, address: str) -> None:
        if self.enabled:
            message = "too many accounts made from here; wait a little"
            key, rate = f"signup:{address}", self.rates.signup_per_address
            await check(self._limiter, key, rate, "too_many_signups", message)

    async def offer(self, session_id: int, address: str) -> None:
        if self.enabled:
            message = "too many video connections from here; wait a little"
            key, rate = f"whep:{session_id}:{address}", self.rates.offers_per_address
            await check(self._limiter, key, rate, "too_many_offers", message)

    async def socket(self, session_id: int, address: str) -> None:
        if self.enabled:
            message = "too many connections to this show from here; wait a little"
            key, rate = f"ws:{session_id}:{address}", self.rates.sockets_per_address
            await check(self._limiter, key, rate, "too_many_sockets", message)
