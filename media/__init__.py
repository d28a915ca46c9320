"""WebRTC media for liveshelf: WHIP ingest, WHEP playback, packet-forwarding
relay, keyframe handling, recording and ICE policy. No HTTP here: the WHIP/WHEP
handlers call ``MediaService``."""

from .config import MediaConfig
from .errors import MediaError
from .protocol import MediaLifecycle, Resource, ViewerStats
from .service import MediaService

__all__ = ["MediaConfig", "MediaError", "MediaLifecycle", "MediaService", "Resource", "ViewerStats"]
