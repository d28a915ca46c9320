"""Schemathesis hooks for ``tests/integration/test_schema_fuzz.py`` (loaded through
``SCHEMATHESIS_HOOKS``): bodies for the media types Schemathesis cannot write itself,
WHIP/WHEP's SDP offers and trickle-ICE fragments. They are built from real SDP lines,
shuffled, cut and mixed with arbitrary text and bytes: what a broken or hostile encoder
might send. (A complete offer is not among them: the real aiortc tests publish and
play, and a generated one would carry this machine's outside addresses.)"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

SDP_LINES = [
    "v=0",
    "o=- 3907060000 3907060000 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    "a=msid-semantic:WMS *",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "c=IN IP4 127.0.0.1",
    "a=rtpmap:96 VP8/90000",
    "a=rtpmap:97 H264/90000",
    "a=fmtp:97 packetization-mode=1;profile-level-id=42e01f",
    "a=rtpmap:111 opus/48000/2",
    "a=rtcp-fb:96 nack pli",
    "a=rtcp-mux",
    "a=mid:0",
    "a=mid:1",
    "a=sendonly",
    "a=recvonly",
    "a=sendrecv",
    "a=inactive",
    "a=ice-ufrag:fuzz",
    "a=ice-pwd:fuzzfuzzfuzzfuzzfuzzfuzz",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
    "a=setup:actpass",
    "a=setup:active",
    "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
    "a=end-of-candidates",
    "a=ssrc:1 cname:fuzz",
]

_line = st.one_of(st.sampled_from(SDP_LINES), st.text(max_size=60))
_text = st.lists(_line, max_size=30).map(lambda lines: "\r\n".join(lines) + "\r\n")
_body = st.one_of(_text.map(lambda text: text.encode()), st.binary(max_size=600))

schemathesis.openapi.media_type("application/sdp", _body)
schemathesis.openapi.media_type("application/trickle-ice-sdpfrag", _body)
