"""Chat limits and intervals, read once from the environment (``LIVESHELF_CHAT_*``)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

ENV_PREFIX = "LIVESHELF_CHAT_"


@dataclass(frozen=True)
class ChatConfig:
    """Every field can be set as ``LIVESHELF_CHAT_<FIELD>`` (e.g. ``..._MESSAGE_RATE=2``)."""

    #: Longest message, in characters after control characters are stripped.
    max_text_chars: int = 300
    #: Messages in the ``hello`` snapshot.
    snapshot_messages: int = 50
    #: Per viewer (per process): messages a second and the burst saved up.
    message_rate: float = 3.0
    message_burst: float = 6.0
    #: Per viewer: ``like`` messages a second (each may carry up to ``max_like_count`` taps).
    like_rate: float = 10.0
    like_burst: float = 20.0
    max_like_count: int = 50
    #: Per room (per process): the ceiling on accepted messages a second.
    room_message_rate: float = 1000.0
    room_message_burst: float = 1000.0
    #: ``likes.updated`` at most once per interval per room.
    likes_interval_s: float = 0.25
    #: Above this many messages in the last second a room switches to ``chat.batch``
    #: frames (and back below half of it), one every ``batch_interval_s``.
    batch_threshold_per_s: float = 10.0
    batch_interval_s: float = 0.15
    #: How often cached moderation state (bans, mutes, moderators...) is reloaded from
    #: the database, so changes made through another process apply here too.
    state_refresh_s: float = 2.0
    max_keywords: int = 200
    max_mute_s: int = 7 * 86400
    max_slow_mode_s: int = 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ChatConfig:
        env = os.environ if env is None else env
        values: dict[str, int | float] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if raw is None or raw == "":
                continue
            cast = int if isinstance(field.default, int) else float
            try:
                values[field.name] = cast(raw)
            except ValueError:
                raise ValueError(
                    f"{ENV_PREFIX}{field.name.upper()} must be a number, got {raw!r}"
                ) from None
        return cls(**values)  # type: ignore[arg-type]
