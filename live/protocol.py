"""The room channel's wire protocol: close codes and message shapes.

Server -> client frames are JSON objects with a ``type``:

* room events ``{"seq", "epoch", "type", "ts", "data"}`` (see ``live.events``);
* ``hello`` once, first: ``{"type": "hello", "seq", "epoch", "recovered",
  "server_time", "connection": {...}, "snapshot": {...} | null}``. After it the client
  receives every event with ``seq > hello.seq`` in order, exactly once. With
  ``recovered: true`` (``since``/``epoch`` were still in history, and the missed
  events fit in half the socket's send bound) the missed events follow and
  ``snapshot`` is null; otherwise ``snapshot`` holds the full room state
  as of ``seq`` (later events may repeat what it already shows; applying an event is
  idempotent for every event type);
* ``pong`` ``{"type": "pong", "ref", "server_time"}``, answer to ``ping``;
* ``error`` ``{"type": "error", "code", "message", "ref"}``: a refused client message;
  nothing changed. A socket refused at join time (e.g. a banned viewer) gets one
  ``error`` instead of ``hello`` and is closed with ``CloseCode.FORBIDDEN``.

Client -> server frames are JSON objects ``{"type": ..., "ref"?: ...}`` of at most
``MAX_CLIENT_MESSAGE_BYTES``; ``ref`` (string or integer) is echoed in the answer.
"""

from __future__ import annotations

import enum

#: Largest client message the application reads; larger ones get ``error/too_large``.
MAX_CLIENT_MESSAGE_BYTES = 4096
#: Largest message (all its fragments) the WebSocket layer accepts; larger ones close
#: the socket (1009). Other breaches of RFC 6455 close it with 1002 (1007: bad UTF-8).
MAX_FRAME_BYTES = 65536


class CloseCode(enum.IntEnum):
    """Why the server closed a room socket. Every code but FORBIDDEN invites a reconnect
    with ``since``/``epoch``."""

    GOING_AWAY = 1001  # server shutting down
    INTERNAL_ERROR = 1011  # the server failed handling this socket
    TRY_AGAIN_LATER = 1013  # a dependency (database, Redis) is down; reconnect later
    FORBIDDEN = 4003  # not allowed in this room (e.g. banned); do not reconnect
    SLOW_CONSUMER = 4008  # fell too far behind; reconnect with since=<last seq>
    RESYNC = 4009  # the room's history was lost (epoch changed); reconnect
    TOO_MANY_ERRORS = 4029  # kept sending refused messages
