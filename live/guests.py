"""Who a person is, for counting viewers: a signed-in user, a guest with a signed id,
or, for a guest without one, the address they come from.

Viewer counts (``live.presence``) and the audience figures (``live.audience``,
``live.analytics``) count *people*, never connections: every room socket and WHEP
viewer carries a person key, and one key counts once however many sockets hold it.

* ``u:<user id>``: a signed-in caller. Their guest cookie, if any, is ignored: all of
  an account's tabs and devices count once.
* ``g:<guest id>``: a guest whose ``ls_guest`` cookie carries a valid signature.
* ``a:<digest>``: a guest without a valid cookie (none, expired, forged), grouped by
  client address (``Guard.client_address``; IPv6 by its /64, what one host or home
  usually gets). A flood of cookie-less sockets from one address is one viewer.
  The address is kept only as a keyed digest, so keys can be stored (watch intervals)
  without storing addresses.

The guest cookie is ``<id>.<signature>``: a random id and its HMAC-SHA256 under a key
derived from the app secret (truncated to 128 bits), checked in constant time. The
server sets it (HttpOnly, SameSite=Lax, Path=/) on page loads and on ``POST
/api/auth/guest``; browsers send it on same-origin room-socket upgrades and WHEP
requests, where the server cannot set it. Anyone may mint many ids by loading pages;
what the cookie bounds is counting one browser's many connections once, and the
address fallback is what counts a client that sends no cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets

#: the guest cookie's name
GUEST_COOKIE = "ls_guest"
#: how long a browser keeps the guest cookie (browsers cap cookies at 400 days)
GUEST_COOKIE_MAX_AGE_S = 365 * 86400

_ID_BYTES = 12  # 16 URL-safe characters
_TAG_BYTES = 16  # 22 URL-safe characters
_COOKIE = re.compile(r"([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{22})")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def user_person(user_id: int) -> str:
    """The person key of a signed-in user."""
    return f"u:{user_id}"


def address_group(address: str) -> str:
    """What counts as one client address: IPv4 as is, IPv6 by its /64 (an IPv4-mapped
    IPv6 address as the IPv4 one); anything unparsable as given."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class GuestIds:
    """Issues and checks signed guest ids, and names the person behind a connection."""

    def __init__(self, secret: str) -> None:
        if len(secret) < 32:
            raise ValueError("the secret must be at least 32 characters")
        # A key of its own: a guest signature is never valid as anything else's.
        self._key = hmac.new(secret.encode(), b"liveshelf guest ids", hashlib.sha256).digest()

    def issue(self) -> str:
        """A new cookie value: a random guest id and its signature."""
        guest_id = _b64(secrets.token_bytes(_ID_BYTES))
        return f"{guest_id}.{self._tag(b'g', guest_id)}"

    def verify(self, cookie: str | None) -> str | None:
        """The guest id a cookie value carries, or None when it is missing, malformed
        or its signature is not ours (compared in constant time)."""
        if not cookie:
            return None
        match = _COOKIE.fullmatch(cookie)
        if match is None:
            return None
        guest_id, tag = match.groups()
        if not hmac.compare_digest(tag, self._tag(b"g", guest_id)):
            return None
        return guest_id

    def person(self, user_id: int | None, cookie: str | None, address: str) -> str:
        """The person key (see the module doc): the user if signed in, else the guest
        id of a valid ``cookie``, else the client ``address``'s group."""
        guest_id = None if user_id is not None else self.verify(cookie)
        return self.person_for(user_id, guest_id, address)

    def person_for(self, user_id: int | None, guest_id: str | None, address: str) -> str:
        """The person key of a user, else of an already verified guest id (one a signed
        media URL carried, ``media.tokens``), else of the client ``address``'s group."""
        if user_id is not None:
            return user_person(user_id)
        if guest_id is not None:
            return f"g:{guest_id}"
        return f"a:{self._tag(b'a', address_group(address))}"

    def _tag(self, kind: bytes, value: str) -> str:
        digest = hmac.new(self._key, kind + b":" + value.encode(), hashlib.sha256).digest()
        return _b64(digest[:_TAG_BYTES])
