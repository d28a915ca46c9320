"""WebRTC media for liveshelf: WHIP ingest, WHEP playback, packet-forwarding
relay, keyframe handling, recording and ICE policy. No HTTP here: the WHIP/WHEP
handlers call ``MediaService``, which refuses with ``live.errors`` kinds."""

from .config import MediaConfig
from .protocol import MediaLifecycle, Resource, ViewerStats
from .service import MediaService

__all__ = ["MediaConfig", "MediaLifecycle", "MediaService", "Resource", "ViewerStats"]
