"""Validation of WHIP/WHEP offers and trickle-ICE fragments, before any peer
connection exists.

An offer is accepted when it is at most ``max_bytes`` long, parses as SDP, has
ICE credentials and a DTLS fingerprint on every media section, and holds at
most one audio and one video section (no simulcast, no second camera).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc import RTCRtpCodecParameters, sdp

from live.errors import InvalidInput, TooLarge

SDPFRAG_MAX_LINES = 500


@dataclass(frozen=True)
class OfferedMedia:
    """One audio or video section of an offer."""

    kind: str
    mid: str | None
    direction: str
    codecs: tuple[RTCRtpCodecParameters, ...]
    #: the media SSRC the offer announces (not its RTX SSRC), if any
    ssrc: int | None = None
    #: "auto" for a=setup:actpass, "client" for active, "server" for passive
    dtls_role: str = "auto"


@dataclass(frozen=True)
class Offer:
    """A validated offer: its text and the media sections it holds."""

    sdp: str
    media: tuple[OfferedMedia, ...]
    ice_ufrag: str
    ice_pwd: str

    def kind(self, kind: str) -> OfferedMedia | None:
        return next((m for m in self.media if m.kind == kind), None)


def parse_offer(text: str, max_bytes: int) -> Offer:
    """Validate an offer; raise ``InvalidInput("invalid_sdp")`` or
    ``TooLarge("sdp_too_large")``."""
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise TooLarge("sdp_too_large", f"SDP is larger than {max_bytes} bytes")
    if not text.lstrip().startswith("v=0"):
        raise InvalidInput("invalid_sdp", "SDP must start with v=0")
    try:
        description = sdp.SessionDescription.parse(text)
    except Exception as exc:  # aiortc raises ValueError, KeyError, IndexError...
        raise InvalidInput("invalid_sdp", f"SDP does not parse: {exc}") from exc

    sections: list[OfferedMedia] = []
    ufrag = pwd = None
    for m in description.media:
        if m.kind not in ("audio", "video"):
            continue
        if any(s.kind == m.kind for s in sections):
            raise InvalidInput("invalid_sdp", f"more than one {m.kind} section")
        if m.ice is None or not m.ice.usernameFragment or not m.ice.password:
            raise InvalidInput("invalid_sdp", f"{m.kind} section lacks ICE credentials")
        if m.dtls is None or not m.dtls.fingerprints:
            raise InvalidInput("invalid_sdp", f"{m.kind} section lacks a DTLS fingerprint")
        if not m.rtp.codecs:
            raise InvalidInput("invalid_sdp", f"{m.kind} section has no codec")
        ufrag, pwd = m.ice.usernameFragment, m.ice.password
        sections.append(
            OfferedMedia(
                kind=m.kind,
                mid=m.rtp.muxId or None,
                direction=m.direction or "sendrecv",
                codecs=tuple(m.rtp.codecs),
                ssrc=_media_ssrc(m),
                dtls_role=m.dtls.role,
            )
        )
    if not sections or ufrag is None or pwd is None:
        raise InvalidInput("invalid_sdp", "offer has no audio or video section")
    return Offer(sdp=text, media=tuple(sections), ice_ufrag=ufrag, ice_pwd=pwd)


def _media_ssrc(m: sdp.MediaDescription) -> int | None:
    for group in m.ssrc_group:
        if group.semantic == "FID" and group.items:
            return int(group.items[0])
    return int(m.ssrc[0].ssrc) if m.ssrc else None


@dataclass
class SdpFrag:
    """A parsed ``application/trickle-ice-sdpfrag`` body (RFC 8840)."""

    ice_ufrag: str | None = None
    ice_pwd: str | None = None
    #: (mid, m-line index, candidate attribute value without "a=")
    candidates: list[tuple[str | None, int, str]] = field(default_factory=list)
    end_of_candidates: bool = False


def parse_sdpfrag(text: str, max_bytes: int) -> SdpFrag:
    """Parse a trickle fragment; raise ``InvalidInput("invalid_sdp")`` if malformed."""
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise TooLarge("sdp_too_large", f"fragment is larger than {max_bytes} bytes")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > SDPFRAG_MAX_LINES:
        raise InvalidInput("invalid_sdp", "fragment has too many lines")
    frag = SdpFrag()
    mline = -1
    mid: str | None = None
    for line in lines:
        if len(line) < 2 or line[1] != "=":
            raise InvalidInput("invalid_sdp", f"not an SDP line: {line[:40]!r}")
        if line.startswith("m="):
            mline += 1
            mid = None
        elif line.startswith("a=ice-ufrag:"):
            frag.ice_ufrag = line.split(":", 1)[1]
        elif line.startswith("a=ice-pwd:"):
            frag.ice_pwd = line.split(":", 1)[1]
        elif line.startswith("a=mid:"):
            mid = line.split(":", 1)[1]
        elif line.startswith("a=candidate:"):
            value = line[2:]
            if len(value.split()) < 8:
                raise InvalidInput("invalid_sdp", f"malformed candidate: {value[:60]!r}")
            frag.candidates.append((mid, max(mline, 0), value))
        elif line == "a=end-of-candidates":
            frag.end_of_candidates = True
    return frag
