"""Wiring the media feature into the app (``live.feature``): WHIP ingest, WHEP
playback, recordings (media/README.md), and the audience they are watched by.

``live.started`` / ``live.paused`` go to the room log (and are marked for analytics);
WHEP viewers' watching is recorded by the ``AudienceRecorder``; a session's end is
handled by ``MediaFeature.on_session_status``; closing happens before the room bus
closes, since the last ``live.paused`` events still need it.

With several workers (``media.cluster``), every worker serves WHEP viewers and pulls the
sessions it has viewers of from the media home (worker 0), which holds the publishers;
the others forward WHIP and the recordings to it. With several nodes (``media.nodes``),
the home also pulls the sessions published on other nodes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from aiohttp import web

from live.audience import AudienceRecorder, AudienceSources, MarkingLifecycle
from live.feature import Wiring, drain_key
from live.metrics import Metrics
from live.models import SessionStatus
from live.tasks import stop_task
from media.cluster import WorkerGroup
from media.config import MediaConfig
from media.events import RoomLogLifecycle
from media.forward import internal_token
from media.handlers import MediaHandlers
from media.internal import LocalMediaControl, internal_routes
from media.nodes import NodeBoard
from media.placement import CpuMeter, LoadBoard, ProcessCap
from media.protocol import MediaControl
from media.pull import MediaProcess, Pulled
from media.service import MediaService
from media.tokens import MediaTokens
from media.turn import IceServers, TurnConfig
from media.viewer_routing import MediaClients
from media.worker_links import HOME, NodeSetup, resource_prefix

log = logging.getLogger(__name__)

media_key = web.AppKey("media", MediaService)
audience_key = web.AppKey("audience", AudienceRecorder)

#: how often a draining worker looks whether its last viewer left
DRAIN_POLL_S = 0.1

#: Counted by ``GET /api/admin/runtime?objects=1``: closed peers not freed yet show here.
PEER_CLASSES = (
    "aiortc.rtcpeerconnection.RTCPeerConnection",
    "aiortc.rtcicetransport.RTCIceTransport",
    "aiortc.rtcdtlstransport.RTCDtlsTransport",
)


class MediaSettings(Protocol):
    """The settings the media reads (``live.settings.Settings`` has them)."""

    @property
    def secret(self) -> str: ...
    @property
    def redis_prefix(self) -> str: ...
    @property
    def cors_origin(self) -> str: ...
    @property
    def ice_servers(self) -> tuple[str, ...]: ...
    @property
    def ice_addresses(self) -> tuple[str, ...]: ...
    @property
    def recordings_dir(self) -> Path: ...
    @property
    def audience_sample_s(self) -> float: ...
    @property
    def media_workers(self) -> tuple[str, ...]: ...
    @property
    def media_worker(self) -> int: ...
    @property
    def media_pull_linger_s(self) -> float: ...
    @property
    def media_drain_s(self) -> float: ...
    @property
    def media_max_viewers_per_worker(self) -> int: ...
    @property
    def media_cpu_limit(self) -> float: ...
    @property
    def node(self) -> str: ...
    @property
    def public_url(self) -> str: ...
    @property
    def turn_urls(self) -> tuple[str, ...]: ...
    @property
    def turn_secret(self) -> str: ...
    @property
    def turn_ttl_s(self) -> int: ...
    @property
    def browser_stun(self) -> tuple[str, ...]: ...


@dataclass(frozen=True, slots=True)
class MediaFeature:
    """What the media offers the other features: this process's service, and the
    control of every session's media (this process's, or the worker group's)."""

    service: MediaService
    control: MediaControl
    #: on a worker of several other than the home: whether the home answers (``/readyz``)
    home_reachable: Callable[[], Awaitable[None]] | None = None

    async def on_session_status(self, session_id: int, status: SessionStatus) -> None:
        """A session ended: drop its media, finish its recording and its watch intervals
        (in the process holding its peers)."""
        if status is SessionStatus.ENDED:
            await self.control.end_session(session_id)


def _register_metrics(metrics: Metrics, media: MediaService) -> None:
    totals = media.totals
    cpu = CpuMeter()
    metrics.gauge("whip_publishers", "WHIP publishers held here", media.publisher_total)
    metrics.gauge(
        "whep_viewers", "WHEP viewers connected here (edges' pulls aside)", media.connected_viewers
    )
    metrics.gauge(
        "media_peers", "WebRTC peer connections held here, pulls included", media.peer_count
    )
    metrics.gauge(
        "process_cpu_share", "Share of one core this process used since the last scrape", cpu.share
    )
    metrics.counter(
        "relay_queue_resets",
        "Video viewers that fell behind and restarted on a keyframe",
        lambda: totals.resets,
    )
    metrics.counter(
        "relay_frames_skipped",
        "Frames not sent to a viewer (behind, or before a keyframe)",
        lambda: totals.frames_skipped,
    )
    metrics.counter(
        "keyframe_requests",
        "Keyframe requests (PLI) sent to publishers, after coalescing",
        lambda: totals.keyframe_requests,
    )


class _Links:
    """The media service's ``Upstream``, bound to its ``WorkerGroup`` once both exist
    (each needs the other: the group controls the service, the service pulls through
    the group)."""

    group: WorkerGroup | None = None

    async def remote(self, session_id: int) -> bool:
        assert self.group is not None
        return await self.group.remote(session_id)

    async def may_publish(self, session_id: int) -> None:
        assert self.group is not None
        await self.group.may_publish(session_id)

    async def claimed(self, session_id: int) -> None:
        assert self.group is not None
        await self.group.claimed(session_id)

    async def pull(self, session_id: int, offer_sdp: str) -> Pulled:
        assert self.group is not None
        return await self.group.pull(session_id, offer_sdp)

    async def release(self, session_id: int, resource_id: str) -> None:
        assert self.group is not None
        await self.group.release(session_id, resource_id)


def setup_media(wiring: Wiring, settings: MediaSettings) -> MediaFeature:
    """The media's service, routes, sub-applications and lifetimes (module docstring)."""
    app, core, routes = wiring.app, wiring.core, wiring.routes
    config = MediaConfig(
        ice_servers=settings.ice_servers,
        ice_addresses=settings.ice_addresses,
        recordings_dir=settings.recordings_dir,
        pull_linger_s=settings.media_pull_linger_s,
        max_peers_per_address=core.caps.peers_per_address,
        max_peers_per_user=core.caps.peers_per_user,
    )
    media: MediaService
    sources = AudienceSources(
        media_sessions=lambda: media.session_ids(),
        media_viewers=lambda sid: media.receiving_people(sid),
        socket_rooms=core.hub.room_ids,
        sockets=core.hub.local_viewers,
    )
    process = f"{socket.gethostname()[:16]}:{os.getpid()}:{secrets.token_hex(3)}"
    audience = AudienceRecorder(
        core.db, core.clock, sources, process=process, interval_s=settings.audience_sample_s
    )
    app[audience_key] = audience
    core.hub.add_viewer_listener(audience.socket_changed)

    control: MediaControl
    token = internal_token(settings.secret)
    group: WorkerGroup | None = None
    index = settings.media_worker
    edge = bool(settings.media_workers) and index != HOME

    async def media_ended(session_id: int, last: bool) -> None:
        if edge or not last:  # commit these viewers' leaves before the last home closes
            await audience.sample()
        else:
            await audience.close_session(session_id, core.clock.now_ms())

    lifecycle = MarkingLifecycle(RoomLogLifecycle(core.room_log), audience)
    tokens = MediaTokens(settings.secret)
    me = MediaProcess(settings.node, index, os.getpid())
    if not settings.media_workers:
        media = MediaService(config, lifecycle, audience, holdings=core.holdings)
        control = local = LocalMediaControl(media, media_ended, me)
    else:
        links = _Links()
        node = None
        if settings.node and core.redis is not None:
            node_board = NodeBoard(core.redis, settings.redis_prefix)
            node = NodeSetup(settings.node, settings.public_url, node_board, tokens)
        media = MediaService(
            config,
            lifecycle,
            audience,
            upstream=links if edge or node is not None else None,
            resource_prefix=resource_prefix(index, settings.node),
            holdings=core.holdings,
        )
        local = LocalMediaControl(media, media_ended, me)
        board = None
        if core.redis is not None:
            board = LoadBoard(core.redis, settings.redis_prefix, node=settings.node)
        group = links.group = WorkerGroup(
            index,
            settings.media_workers,
            token,
            local,
            board,
            settings.media_max_viewers_per_worker,
            settings.media_cpu_limit,
            node,
        )
        control = group
    app[media_key] = media
    placement = group or ProcessCap(media.viewer_total, settings.media_max_viewers_per_worker)
    handlers = MediaHandlers(
        media,
        core.sessions,
        config,
        tokens=tokens,
        node=settings.node,
        cors_origin=settings.cors_origin,
        placement=placement,
        clients=MediaClients(core.guard, token),
        guests=core.guests,
    )
    # the session's recording status in GET /api/sessions/{id} (media/README.md)
    core.session_details.append(handlers.recording_details)
    end_node = None if group is None else group.end_node_session
    routes += internal_routes(local, token, end_node)
    routes += handlers.endpoint_routes()
    turn = TurnConfig(
        settings.turn_urls, settings.turn_secret, settings.turn_ttl_s, settings.browser_stun
    )
    ice = IceServers(turn, core.sessions, core.guests, time.time)
    routes += ice.routes()
    subapps = handlers.applications()
    if group is not None:
        subapps["/whep"].middlewares.append(group.resource_middleware())
        if group.home is not None:  # ingest, recording and cover are the home's
            # the home's routes, forwarded: the same API here as there
            routes += group.home.forwarding(handlers.routes())
            whip = handlers.kind_routes("whip")
            subapps["/whip"] = group.home.application(whip, settings.cors_origin)
        else:
            routes += handlers.routes()
    else:
        routes += handlers.routes()
    for prefix, subapp in subapps.items():
        app.add_subapp(prefix, subapp)
    audience.attach(core.channel, control.identify_viewer)

    async def recording(_app: web.Application) -> AsyncIterator[None]:
        audience.start()
        yield
        await audience.stop()  # after media closed: its viewers' leaving is recorded

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        reports = None if group is None else asyncio.create_task(group.keep_up())
        yield
        if group is not None:
            await group.drain()  # reported before closing, drained (SIGTERM) or not
        await media.close()
        await stop_task(reports)
        if group is not None:
            await group.close()

    async def drain() -> None:
        """SIGTERM to this worker: no new viewers from now on; if another worker serves
        (somewhere to move to), the viewers here are served until they have left or
        ``media_drain_s`` passed, and ``lifetime`` closes the rest. The home keeps its
        publishers, pulls, recordings and WHIP meanwhile (they cannot move): they stop
        with it, as in any restart of the home."""
        assert group is not None
        if not await group.drain():
            log.info("media: no other worker serves; stopping without draining")
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.media_drain_s
        log.info(
            "media: draining %d viewers, for %.0f s at most",
            media.viewer_total(),
            settings.media_drain_s,
        )
        # viewers leave in many ways (DELETE, ICE failure, a timeout, an offer refused):
        # their count, read ten times a second, needs no signal from each
        while media.viewer_total() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(DRAIN_POLL_S)
        log.info("media: drained; %d viewers left to close", media.viewer_total())

    _register_metrics(core.metrics, media)
    app.cleanup_ctx.append(recording)
    app.cleanup_ctx.append(lifetime)
    if group is not None:
        app[drain_key] = drain
    home_reachable = None if group is None or group.home is None else group.home_reachable
    return MediaFeature(media, control, home_reachable)
