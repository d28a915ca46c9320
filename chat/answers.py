"""The chat's JSON answers as models: what the OpenAPI document (``live.openapi``) says
the chat's HTTP routes return (``chat/API.md``, "HTTP"). Handlers build plain dicts;
the tests and the schema fuzzing check every answer against these."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime
from pydantic.json_schema import SkipJsonSchema

from live.answers import omitted
from live.openapi import AnswerModel

#: what the moderation log records (``ModerationService._record``)
ModerationActionKind = Literal[
    "appoint_moderator",
    "dismiss_moderator",
    "delete_message",
    "mute",
    "unmute",
    "ban",
    "unban",
    "slow_mode",
    "keywords",
]


class ModeratorAnswer(AnswerModel):
    """A moderator: ``id`` is the appointment's."""

    id: int
    user_id: int
    display_name: str
    #: for this session only, or for all of the host's sessions
    scope: Literal["session", "host"]
    since: AwareDatetime


class AppointmentAnswer(AnswerModel):
    user_id: int
    host_id: int
    #: null for a host-wide appointment
    session_id: int | None


class DeletedMessageAnswer(AnswerModel):
    id: int
    deleted_at: AwareDatetime


class MuteAnswer(AnswerModel):
    user_id: int
    muted_until: AwareDatetime


class BanAnswer(AnswerModel):
    user_id: int
    banned: Literal[True]
    #: the banned user's sockets to this session that were closed
    sockets_closed: int


class SlowModeAnswer(AnswerModel):
    #: 0: off
    slow_mode_s: int


class KeywordsAnswer(AnswerModel):
    #: the list as stored (normalised, without repeats)
    words: list[str]


class ChatSettingsAnswer(AnswerModel):
    slow_mode_s: int
    keywords: list[str]
    #: the mutes still running
    mutes: list[MuteAnswer]
    #: banned user ids
    bans: list[int]
    #: moderators' user ids (this session's and the host-wide ones)
    moderators: list[int]


class ModerationDetail(AnswerModel):
    """What an action carried, by action: ``delete_message`` the message's text,
    ``mute`` and ``slow_mode`` the seconds, ``ban`` its reason if one was given,
    ``keywords`` the new list; the others nothing (``{}``)."""

    text: str | SkipJsonSchema[None] = omitted()
    seconds: int | SkipJsonSchema[None] = omitted()
    reason: str | SkipJsonSchema[None] = omitted()
    words: list[str] | SkipJsonSchema[None] = omitted()


class ModerationActionAnswer(AnswerModel):
    id: int
    #: null for a host-wide appointment or dismissal
    session_id: int | None
    actor_id: int
    action: ModerationActionKind
    target_user_id: int | None
    message_id: int | None
    detail: ModerationDetail
    at: AwareDatetime
