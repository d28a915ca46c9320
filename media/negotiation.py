"""SDP negotiation for ``MediaService``: codecs, the remote description, trickle ICE.

Plain functions over aiortc objects and parsed offers (``media.offer``); they hold no
state. What they guarantee:

- ``offers`` / ``pick_video_mime``: whether an offered section has a codec aiortc can
  use as a MIME type (``video_codecs``' order decides unless a codec is required);
  ``codec_preferences`` puts the chosen codec first (and RTX after it, for video).
- ``set_remote`` applies an offer whose candidates outside the allowed networks were
  removed; aiortc's refusals become ``codec_mismatch`` (no common codec) or
  ``invalid_sdp`` (anything it could not read).
- ``negotiated_mime``: the codec an answer settled on for a kind.
- ``apply_trickle``: a PATCH's trickle-ICE fragment (RFC 8840) on a peer; raises
  ``etag_mismatch``, ``invalid_sdp`` or ``ice_restart_unsupported`` (aiortc cannot
  restart ICE), ignores candidates outside the allowed networks and those after
  end-of-candidates.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from typing import Any

from aiortc import (
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.codecs import CODECS
from aiortc.exceptions import OperationError
from aiortc.rtcpeerconnection import is_codec_compatible

from live.errors import InvalidInput, NotAcceptable, PreconditionFailed, Unprocessable

from .ice import Network, candidate_allowed, filter_sdp_candidates
from .offer import Offer, OfferedMedia, parse_sdpfrag
from .peers import Peer

logger = logging.getLogger(__name__)

AUDIO_MIME = "audio/opus"
SEND_DIRECTIONS = ("sendonly", "sendrecv")
RECV_DIRECTIONS = ("recvonly", "sendrecv")


def offers(media: OfferedMedia, mime: str) -> bool:
    """Whether an offered section has a codec aiortc can use as ``mime``."""
    local = [c for c in CODECS[media.kind] if c.mimeType.lower() == mime.lower()]
    return any(is_codec_compatible(lc, rc) for rc in media.codecs for lc in local)


def pick_video_mime(
    media: OfferedMedia, required: str | None, video_codecs: tuple[str, ...]
) -> str | None:
    """The video codec to use for an offered section: ``required`` if it offers it, else
    the first of ``video_codecs`` it offers; None if none."""
    choices = (required,) if required is not None else video_codecs
    return next((mime for mime in choices if offers(media, mime)), None)


def codec_preferences(
    kind: str, video_mime: str | None, video_codecs: tuple[str, ...]
) -> list[RTCRtpCodecCapability]:
    """A transceiver's codec preferences: Opus; or ``video_mime`` (else
    ``video_codecs``, in order), then RTX."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    if kind == "audio":
        return [c for c in caps if c.mimeType.lower() == AUDIO_MIME]
    order = [video_mime] if video_mime is not None else list(video_codecs)
    prefs = [c for mime in order for c in caps if c.mimeType.lower() == mime.lower()]
    return prefs + [c for c in caps if c.mimeType.lower() == "video/rtx"]


def negotiated_mime(answer_sdp: str, kind: str) -> str | None:
    """The codec our answer sends/receives for ``kind`` (first in its list)."""
    for m in aiortc_sdp.SessionDescription.parse(answer_sdp).media:
        if m.kind == kind and m.rtp.codecs:
            return str(m.rtp.codecs[0].mimeType)
    return None


def peer_fields(
    prefix: str, session_id: int, pc: RTCPeerConnection, offer: Offer
) -> dict[str, Any]:
    """A new ``Peer``'s fields: an unguessable resource id after ``prefix`` (which
    worker holds it), a fresh ETag, and the offer's ICE credentials."""
    return {
        "resource_id": prefix + secrets.token_urlsafe(18),
        "session_id": session_id,
        "pc": pc,
        "etag": f'"{secrets.token_urlsafe(12)}"',
        "ice_ufrag": offer.ice_ufrag,
        "ice_pwd": offer.ice_pwd,
        "first_mid": offer.media[0].mid,
    }


async def set_remote(
    pc: RTCPeerConnection, offer: Offer, networks: tuple[Network, ...] | None
) -> None:
    """Apply the offer, without its candidates outside ``networks``."""
    text = filter_sdp_candidates(offer.sdp, networks)
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="offer"))
    except OperationError as exc:
        raise NotAcceptable("codec_mismatch", str(exc)) from exc
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InvalidInput("invalid_sdp", str(exc)) from exc


async def apply_trickle(
    peer: Peer,
    sdpfrag: str,
    if_match: str | None,
    max_bytes: int,
    networks: tuple[Network, ...] | None,
    name: str,
) -> None:
    """Apply a trickle-ICE fragment to ``peer`` (``MediaService.patch``; ``name`` is
    the service's, for the log)."""
    resource_id = peer.resource_id
    # RFC 9725 s4.3.1: an endpoint that takes trickle ICE but not ICE restarts
    # answers a restart with 422
    if if_match == "*":
        raise Unprocessable("ice_restart_unsupported", "ICE restart is not supported")
    if if_match is not None and if_match != peer.etag:
        raise PreconditionFailed("etag_mismatch", "If-Match does not match the ICE session")
    frag = parse_sdpfrag(sdpfrag, max_bytes)
    if (frag.ice_ufrag is not None and frag.ice_ufrag != peer.ice_ufrag) or (
        frag.ice_pwd is not None and frag.ice_pwd != peer.ice_pwd
    ):
        raise Unprocessable("ice_restart_unsupported", "ICE restart is not supported")
    for _mid, _index, value in frag.candidates:
        if not candidate_allowed(value, networks):
            logger.debug("%s %s ignores candidate %s", name, resource_id, value)
            continue
        candidate = aiortc_sdp.candidate_from_sdp(value.split(":", 1)[1])
        # Everything is BUNDLEd on the first media section's transport;
        # aiortc ignores candidates addressed to the others.
        candidate.sdpMid = peer.first_mid
        candidate.sdpMLineIndex = 0
        try:
            await peer.pc.addIceCandidate(candidate)
        except ValueError as exc:  # after end-of-candidates
            logger.debug("%s %s candidate refused: %s", name, resource_id, exc)
    if frag.end_of_candidates:
        with contextlib.suppress(ValueError):
            await peer.pc.addIceCandidate(None)
