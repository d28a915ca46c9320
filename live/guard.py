"""Limits against abuse: how often a client may try to sign in or up, open WebRTC peers
and room sockets, and create things; how many peers and sockets one client may hold in
a show.

Rates (``live.ratelimit``; across workers with Redis) and their defaults:

==========================  ==========================  ==================================
what                        key                         rate
==========================  ==========================  ==================================
login attempts              account and client address  5 at once, then 1 every 10 s
login attempts              client address              20 at once, then 1 every 2 s
login attempts              account                     50 at once, then 1 every 30 s
signups                     client address              10 at once, then 1 a minute
WHEP offers                 show and client address     30 at once, then 2 a second
WHEP offers                 show and signed-in user     10 at once, then 1 a second
room sockets                show and client address     60 at once, then 5 a second
room sockets                show and signed-in user     20 at once, then 1 a second
product creations           account                     30 at once, then 1 every 2 s
shelf edits                 account                     100 at once, then 1 a second
pins                        account                     30 at once, then 1 a second
flash-sale creations        account                     20 at once, then 1 every 5 s
new guest ids               client address              30 at once, then 1 every 6 s
==========================  ==========================  ==================================

A shelf edit is an add, a removal or a reorder. New guest ids (``live.guests``: the
cookie pages hand a browser, by which viewers are counted once) are not refused: past
the rate a page is served without one, and that client counts by its address. So a
script loading pages in a loop adds at most ~30 viewers, then 10 a minute; an office
behind one address gets 30 cookies at once and is partly counted as one. A refusal is ``429`` with
``Retry-After`` and a code, and nothing else happens (no password is checked, nothing is
created). Nothing locks an account: the tightest login limit is per account *and*
address, so someone guessing from elsewhere slows only themselves; the per-account limit
is loose (it only slows a guesser spread over many addresses).

Why these creation rates: a brand keys in or imports a few dozen products at once, then
adds one now and then (a 400-product import takes about 12 minutes); a host fills a
shelf (at most 100 products) before the show in one go; during a show a host pins a
product every few seconds at most and schedules a handful of flash sales. Every shelf
edit and pin is a room event to every viewer, so these rates also bound what one account
can make a show's audience receive. The per-user WHEP and socket rates are tighter than
the per-address ones (an address may be many people behind one NAT) and still let one
person reconnect several tabs at once after a network blip.

Caps on what one client holds at once in one show (``Caps``, settings; 0 = none),
counted over every worker and node when Redis is configured (``live.holdings``; per
process otherwise, and while Redis is down): WHEP peers per address (60) and per user
(5), room sockets per address (300) and per user (10). Offers being answered and
sockets being opened count.

The client address is the peer's, or with ``trusted_proxies`` the last address in
``X-Forwarded-For`` that is not one of them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web

from .ratelimit import Rate, RateLimiter, check

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


_LOGIN_UA, _LOGIN_A, _LOGIN_U = Rate(0.1, 5), Rate(0.5, 20), Rate(1 / 30, 50)
_SIGNUP, _OFFERS, _SOCKETS = Rate(1 / 60, 10), Rate(2.0, 30), Rate(5.0, 60)
_USER_OFFERS, _USER_SOCKETS = Rate(1.0, 10), Rate(1.0, 20)
_PRODUCTS, _SHELF, _PINS, _FLASH = Rate(0.5, 30), Rate(1.0, 100), Rate(1.0, 30), Rate(0.2, 20)
_GUEST_IDS = Rate(1 / 6, 30)


class Creation(StrEnum):
    """What an account makes, each counted on its own (``Guard.creating``)."""

    PRODUCT = "product"
    SHELF_EDIT = "shelf"
    PIN = "pin"
    FLASH_SALE = "flash"


@dataclass(frozen=True)
class Rates:
    """The table above."""

    login_per_account_and_address: Rate = _LOGIN_UA
    login_per_address: Rate = _LOGIN_A
    login_per_account: Rate = _LOGIN_U
    signup_per_address: Rate = _SIGNUP
    offers_per_address: Rate = _OFFERS
    offers_per_user: Rate = _USER_OFFERS
    sockets_per_address: Rate = _SOCKETS
    sockets_per_user: Rate = _USER_SOCKETS
    products_per_account: Rate = _PRODUCTS
    shelf_edits_per_account: Rate = _SHELF
    pins_per_account: Rate = _PINS
    flash_sales_per_account: Rate = _FLASH
    guest_ids_per_address: Rate = _GUEST_IDS

    def of(self, what: Creation) -> Rate:
        return {
            Creation.PRODUCT: self.products_per_account,
            Creation.SHELF_EDIT: self.shelf_edits_per_account,
            Creation.PIN: self.pins_per_account,
            Creation.FLASH_SALE: self.flash_sales_per_account,
        }[what]


#: The refusal of each creation: its code and message.
_TOO_MANY = {
    Creation.PRODUCT: ("too_many_products", "you are adding products too fast; wait a little"),
    Creation.SHELF_EDIT: ("too_many_shelf_edits", "you are changing shelves too fast"),
    Creation.PIN: ("too_many_pins", "you are pinning too fast; wait a moment"),
    Creation.FLASH_SALE: ("too_many_flash_sales", "you are creating flash sales too fast"),
}


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

    async def offer(self, session_id: int, address: str, user_id: int | None = None) -> None:
        """A WHEP offer to a show: per client address, and per user when signed in."""
        rates = self.rates
        await self._to_show(
            ("whep", session_id, address, user_id),
            (rates.offers_per_address, rates.offers_per_user),
            "too_many_offers",
            "too many video connections from here; wait a little",
            "you opened the video too many times; wait a little",
        )

    async def socket(self, session_id: int, address: str, user_id: int | None = None) -> None:
        """A room socket to a show: per client address, and per user when signed in."""
        rates = self.rates
        await self._to_show(
            ("ws", session_id, address, user_id),
            (rates.sockets_per_address, rates.sockets_per_user),
            "too_many_sockets",
            "too many connections to this show from here; wait a little",
            "you connected to this show too many times; wait a little",
        )

    async def _to_show(
        self,
        who: tuple[str, int, str, int | None],
        rates: tuple[Rate, Rate],
        code: str,
        from_here: str,
        from_you: str,
    ) -> None:
        if not self.enabled:
            return
        kind, session_id, address, user_id = who
        await check(self._limiter, f"{kind}:{session_id}:{address}", rates[0], code, from_here)
        if user_id is not None:
            key = f"{kind}:u:{session_id}:{user_id}"
            await check(self._limiter, key, rates[1], code, from_you)

    async def may_issue_guest_id(self, address: str) -> bool:
        """Whether a client at ``address`` may be handed a new guest id now (counts one
        when so); past the rate it counts by its address instead (see above)."""
        if not self.enabled:
            return True
        rate = self.rates.guest_ids_per_address
        return await self._limiter.acquire(f"guest:{address}", rate) == 0

    async def creating(self, what: Creation, user_id: int) -> None:
        """Count one ``what`` by account ``user_id``; ``RateLimited`` (429, with
        ``Retry-After``) past its rate. Call it before creating anything."""
        if self.enabled:
            code, message = _TOO_MANY[what]
            key = f"create:{what}:{user_id}"
            await check(self._limiter, key, self.rates.of(what), code, message)
