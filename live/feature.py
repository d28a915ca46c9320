"""The contract between ``app.py`` and the feature packages (``media/``, ``shelf/``,
``chat/``): the spine they are built on, and how each one wires itself.

``app.py`` builds the ``Core`` once, then calls each feature's ``setup`` in its list of
features; a feature's ``setup`` lives in its package's ``feature.py`` and reads::

    def setup_<feature>(wiring: Wiring, settings: <Feature>Settings, *, <needs>) -> <offers>

- ``settings`` is a Protocol the feature declares with the settings it reads (read-only
  properties), which ``live.settings.Settings`` satisfies; or a part of the settings
  model of its own (the chat's ``ChatSettings``).
- ``<needs>`` are what the feature takes from another feature, typed by a Protocol or a
  callable type the feature declares (e.g. the shelf's ``MediaTime``); ``<offers>`` is
  what it hands back for ``app.py`` to pass on. Features never import each other:
  ``app.py`` connects them, in the order of its list.
- Inside, the feature puts its long-lived objects under its own ``web.AppKey``s
  (declared in its ``feature.py``), adds its routes to ``wiring.routes`` (``app.py``
  adds them all at once, the hot paths first), appends its lifetimes to
  ``wiring.app.cleanup_ctx`` (they start in the order of the list and stop in
  reverse, after the core's storage and room bus have started and before they stop),
  and registers with the core's hooks: ``core.channel.add_snapshot`` (the room's
  ``hello``), ``core.session_details`` (``GET /api/sessions/{id}``),
  ``core.sessions.add_listener`` (a session's status), ``core.hub.add_viewer_listener``
  (room sockets), ``drain_key`` (what a worker does on SIGTERM) and ``core.metrics``
  (what ``/metrics`` reports).

Money goes through the spine's ledger (``live.ledger``), not through ``Core``: a
feature posts balanced transactions of its own accounts to it, in its own database
transactions.

Adding a feature touches its own package and one line in ``app.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web
from redis.asyncio import Redis

from live.accounts import AccountService
from live.auth import TokenSigner
from live.clock import Clock
from live.db import Database
from live.follows import FollowService
from live.guard import Caps, Guard
from live.guests import GuestIds
from live.handlers import SessionDetails
from live.holdings import Holdings
from live.metrics import Metrics
from live.outbox import Outbox, OutboxRelay
from live.presence import Presence
from live.revocations import Revocations
from live.roomchannel import RoomChannel
from live.roomhub import RoomHub
from live.roomlog import RoomLog
from live.sessions import SessionService
from live.startup import StartUp
from live.workers import Drain


@dataclass(frozen=True)
class Core:
    """The spine every feature is built on (``live/``), built once by ``app.py``."""

    clock: Clock
    db: Database
    redis: Redis | None
    room_log: RoomLog
    presence: Presence
    hub: RoomHub
    channel: RoomChannel
    outbox: Outbox
    relay: OutboxRelay
    tokens: TokenSigner
    accounts: AccountService
    sessions: SessionService
    follows: FollowService
    guard: Guard
    caps: Caps
    #: what clients hold at once (room sockets, WHEP peers) against the caps, counted
    #: over every worker and node with Redis (``live.holdings``)
    holdings: Holdings
    revocations: Revocations
    #: signed guest ids and the person keys viewers are counted by (``live.guests``)
    guests: GuestIds
    #: start-up steps waiting for a dependency that was down (``live.startup``)
    startup: StartUp
    #: this process's metrics: features register readings in their setup
    #: (``live.metrics``)
    metrics: Metrics
    #: Parts features add to ``GET /api/sessions/{id}`` (e.g. the shelf).
    session_details: list[SessionDetails] = field(default_factory=list)


@dataclass(frozen=True)
class Wiring:
    """One application under construction, handed to each feature's ``setup``."""

    app: web.Application
    core: Core
    #: every feature's routes; ``app.py`` adds them once all features are set up
    routes: list[web.RouteDef]


#: what a worker does on SIGTERM before it stops (``live.workers``); set by a feature
#: (the media, with several workers), read by ``app.py``'s server
drain_key: web.AppKey[Drain] = web.AppKey("drain")
