"""The media routes' part of the API document (``live.openapi``): their tag, the
parameters they share, and what each answers (``MediaHandlers``, ``RecordingHandlers``).

Only descriptions: nothing here is read while a request is served, except the two
media types of WHIP/WHEP bodies (``SDP``, ``SDPFRAG``), which the handlers also check
``Content-Type`` against and answer with. What the routes really send is held to these
by ``tests/media/test_media_openapi.py``.
"""

from __future__ import annotations

from live.openapi import Answer, Param, query

from .cors import ALLOW_HEADERS, ENDPOINT_METHODS, PREFLIGHT_MAX_AGE_S, RESOURCE_METHODS

TAG = "media"

#: an offer's body and answer (WHIP and WHEP)
SDP = "application/sdp"
#: a trickle-ICE PATCH's body (RFC 8840)
SDPFRAG = "application/trickle-ice-sdpfrag"

RESOURCE_ID = Param(
    "resource_id",
    "path",
    {"type": "string"},
    "as the offer's answer's Location names it (a random token; with several workers "
    "after ``w<worker>.``, with several nodes after ``<node>.w<worker>.``)",
)
IF_MATCH = Param(
    "If-Match",
    "header",
    {"type": "string"},
    "the resource's ETag (412 etag_mismatch if not); ``*`` asks for an ICE restart, "
    "which is not supported (422 ice_restart_unsupported)",
)
MEDIA_TOKEN = query(
    "token",
    {"type": "string"},
    "a media URL's token (``GET /api/sessions/{id}/media-endpoint``, or a full node's "
    "307): it stands for the caller, instead of Authorization",
)
CREATED_HEADERS = {
    "Location": "the resource, relative to the URL that answered: PATCH and DELETE it",
    "ETag": "the ICE session (If-Match on PATCH)",
    "Accept-Patch": SDPFRAG,
    "Link": 'one per ICE server: ``<url>; rel="ice-server"`` (RFC 9725 s4.6)',
}
SDP_ERRORS = (400, 408, 413, 415)
PATCHED = Answer(204, description="the candidates were taken (or ignored: see ICE)")
DELETED = Answer(200, description="ended (no body)")

# -- WHIP / WHEP offers --------------------------------------------------------------

PUBLISHED = Answer(
    201,
    media_type=SDP,
    description="the answer SDP (with all the server's candidates)",
    headers={
        **CREATED_HEADERS,
        "Liveshelf-Recording": "``off; reason=...`` when the show goes live but cannot be recorded",
    },
)
PLAYED = (
    Answer(201, media_type=SDP, description="the answer SDP", headers=CREATED_HEADERS),
    Answer(
        307,
        description="this node is full: offer again at Location (another node's "
        "WHEP URL, with a token)",
        headers={"Location": "the other node's WHEP URL"},
    ),
)

# -- OPTIONS (CORS preflight) ----------------------------------------------------------

ENDPOINT_PREFLIGHT = Answer(
    204,
    headers={
        "Allow": ENDPOINT_METHODS,
        "Access-Control-Allow-Methods": ENDPOINT_METHODS,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
        "Accept-Post": SDP,
    },
)
RESOURCE_PREFLIGHT = Answer(
    204,
    headers={
        "Allow": RESOURCE_METHODS,
        "Access-Control-Allow-Methods": RESOURCE_METHODS,
        "Access-Control-Allow-Headers": ALLOW_HEADERS,
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
        "Accept-Patch": SDPFRAG,
    },
)

# -- recordings and covers -------------------------------------------------------------

RANGE = Param(
    "Range",
    "header",
    {"type": "string"},
    "one byte range, ``bytes=<first>-[<last>]`` or ``bytes=-<suffix>`` (206); a malformed "
    "or unsatisfiable one is a 416",
)
FILE_HEADERS = {
    "ETag": "the file's version (If-None-Match, If-Range)",
    "Last-Modified": "when the file was last written",
    "Accept-Ranges": "bytes",
}
RECORDING_HEADERS = {
    **FILE_HEADERS,
    "Liveshelf-Recording": "``incomplete; reason=...`` for a recording cut short (a full "
    "disk); absent for a whole one",
}
RECORDING_TYPES = (
    "``video/webm`` (VP8), ``video/mp4`` (H.264, once its copy was written after the "
    "session ended) or ``video/x-matroska`` (H.264 until then)"
)
NOT_MODIFIED = Answer(
    304,
    description="If-None-Match / If-Modified-Since: not modified",
    headers={name: FILE_HEADERS[name] for name in ("ETag", "Last-Modified")},
)
NO_PRECONDITION = Answer(412, description="If-Match / If-Unmodified-Since failed (no body)")
RECORDING_ANSWERS = (
    Answer(
        200,
        media_type="video/*",
        description=f"the whole recording: {RECORDING_TYPES}",
        headers=RECORDING_HEADERS,
    ),
    Answer(
        206,
        media_type="video/*",
        description="the range asked for",
        headers={**RECORDING_HEADERS, "Content-Range": "``bytes <first>-<last>/<size>``"},
    ),
    NOT_MODIFIED,
    NO_PRECONDITION,
    Answer(
        416,
        description="the Range is malformed or past the end (no body)",
        headers={"Content-Range": "``bytes */<size>``"},
    ),
)
COVER_ANSWERS = (
    Answer(200, media_type="image/jpeg", headers={**FILE_HEADERS, "Cache-Control": "no-cache"}),
    NOT_MODIFIED,
)
