"""Room-channel messages and HTTP bodies of the chat, validated strictly."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from live.schemas import Body

Ref = Annotated[str, StringConstraints(max_length=64)] | Annotated[int, Field(ge=0)] | None
UserId = Annotated[int, Field(ge=1, le=2**31 - 1)]


class _RoomMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    ref: Ref = None


class ChatSend(_RoomMessage):
    """``{"type": "chat.send", "text": "...", "ref"?: ...}``; the text's length is checked
    after cleaning (``chat.text``), so the bound here is only the frame's."""

    type: Literal["chat.send"]
    text: Annotated[str, StringConstraints(max_length=4096)]


class Like(_RoomMessage):
    """``{"type": "like", "count"?: n}``: ``n`` taps (a client may add taps up)."""

    type: Literal["like"]
    count: Annotated[int, Field(ge=1, le=1_000_000)] = 1


class ModeratorBody(Body):
    user_id: UserId


class MuteBody(Body):
    user_id: UserId
    seconds: Annotated[int, Field(ge=1, le=30 * 86400)]


class BanBody(Body):
    user_id: UserId
    reason: Annotated[str, StringConstraints(max_length=200)] | None = None


class SlowModeBody(Body):
    seconds: Annotated[int, Field(ge=0, le=86400)]


class KeywordsBody(Body):
    words: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=50)]],
        Field(max_length=1000),
    ]
