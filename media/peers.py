"""What ``MediaService`` holds per peer and per session: plain records, no behaviour.

- ``Peer``: a peer connection behind a WHIP or WHEP resource (its id, its ICE
  credentials and ETag, whether it is gone); ``Publisher`` and ``Viewer`` add what
  each side needs.
- ``SessionMedia``: one session's media in this process: its relay, its publisher and
  viewers, its recording, and on an edge its pull from the session's origin.

``closed`` is set once, by the drop that frees what the peer held (``PeerKeeper``);
nothing else clears it. The records are not hashed by value (``eq=False``): a session's
viewers are a set of identities. The publisher's fields are read and written by its
frame sink for every frame (``PeerKeeper.frame_sink``): plain attributes, nothing
computed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection, RTCRtpReceiver

from .pull import MediaProcess, SessionPull
from .recording import SessionRecorder
from .relay import ForwardedTrack, SessionRelay


@dataclass(eq=False)
class Peer:
    """What publishers and viewers share: a peer connection behind a resource."""

    resource_id: str
    session_id: int
    pc: RTCPeerConnection
    etag: str
    ice_ufrag: str
    ice_pwd: str
    first_mid: str | None
    created_at: float = field(default_factory=time.monotonic)
    closed: bool = False

    @property
    def connected(self) -> bool:
        return self.pc.connectionState == "connected"


@dataclass(eq=False)
class Publisher(Peer):
    video_receiver: RTCRtpReceiver | None = None
    video_ssrc: int | None = None
    started: bool = False
    last_media_at: float | None = None
    watchdog: asyncio.Task[None] | None = None
    #: its claim on the session is made (``Upstream.claimed``): a later claim by another
    #: node takes the session from it (``publisher_moved``); until then it is answered
    claimed: bool = False


@dataclass(eq=False)
class Viewer(Peer):
    tracks: dict[str, ForwardedTrack] = field(default_factory=dict)
    watchdog: asyncio.Task[None] | None = None
    user_id: int | None = None
    #: its transport connected and the audience listener was told
    joined: bool = False
    #: set for another process's pull of the session (an edge, or another node's
    #: relay worker), not a person watching: which process pulls
    puller: MediaProcess | None = None
    #: who watches, for counting people (``live.guests``); "" counts this viewer alone
    person: str = ""
    #: what it holds against the caps (``live.holdings``): the keys and its token
    holding: tuple[tuple[str, ...], str] | None = None

    @property
    def pull(self) -> bool:
        return self.puller is not None


@dataclass(eq=False)
class SessionMedia:
    relay: SessionRelay
    publisher: Publisher | None = None
    viewers: set[Viewer] = field(default_factory=set)
    recorder: SessionRecorder | None = None
    #: why the session is not recorded (no recording could be started in its folder)
    recording_problem: str | None = None
    #: the video codec this session settled on (sticky across publishers)
    video_mime: str | None = None
    #: on an edge: the session pulled from its origin, and how it is being made
    pull: SessionPull | None = None
    pulling: asyncio.Task[SessionPull] | None = None
    #: on an edge: ends the pull once the last viewer has been gone a while
    linger: asyncio.TimerHandle | None = None
    #: on an edge: a loop pulling again (with backoff) is running
    repulling: bool = False
    #: WHEP offers (and pulls) being answered: the session's pull does not end idle
    answering: int = 0
