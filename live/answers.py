"""The spine's JSON answers as models: what the OpenAPI document (``live.openapi``)
says the accounts and sessions routes return. Handlers build plain dicts (the hot
paths serialise with orjson); the schema fuzzing in CI checks every answer against
these."""

from __future__ import annotations

import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, Field
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from live.models import Role, SessionStatus
from live.openapi import AnswerModel


def _no_default(schema: JsonDict) -> None:
    schema.pop("default", None)


def omitted(description: str | None = None) -> Any:
    """A field an answer sometimes leaves out (never ``null``): declare it as
    ``X | SkipJsonSchema[None] = omitted()``. The document lists it, not required, with
    ``X``'s schema only (no ``null``, no default)."""
    return Field(default=None, description=description, json_schema_extra=_no_default)


class UserAnswer(AnswerModel):
    id: int
    username: str
    display_name: str
    role: Role
    created_at: AwareDatetime
    disabled: bool


class SignedInAnswer(AnswerModel):
    #: the bearer token (``Authorization: Bearer <token>``)
    token: str
    user: UserAnswer


class TicketAnswer(AnswerModel):
    #: put in the room socket's URL: ``?ticket=``
    ticket: str
    expires_at: int = Field(description="when it expires: seconds since the Unix epoch")


# -- sessions ---------------------------------------------------------------------------


class SessionHost(AnswerModel):
    id: int
    display_name: str


class SessionAnswer(AnswerModel):
    """A live session (``live.sessions.session_dict``)."""

    id: int
    title: str
    status: SessionStatus
    host: SessionHost
    scheduled_at: AwareDatetime | None
    started_at: AwareDatetime | None
    ended_at: AwareDatetime | None
    created_at: AwareDatetime


class SessionDetailAnswer(SessionAnswer):
    """A session plus what features add (``Core.session_details``). The spine imports
    no feature, so their parts are declared here by their outline only: each feature
    documents its own (the shelf: ``GET /api/sessions/{id}/shelf``; the recording:
    media/README.md, "Recording status")."""

    shelf: list[dict[str, Any]] | SkipJsonSchema[None] = omitted(
        "the ordered shelf, as GET /api/sessions/{id}/shelf lists it (the shelf feature)"
    )
    recording: dict[str, str] | SkipJsonSchema[None] = omitted(
        '{"state": none|recording|off|incomplete|complete, "reason"?} (the media feature)'
    )


class AnnouncementAnswer(AnswerModel):
    #: the ``announcement`` event's place in the room's history
    seq: int
    text: str


# -- follows ------------------------------------------------------------------------------


class FollowStatusAnswer(AnswerModel):
    host_id: int
    followers: int
    #: whether the caller follows the host (false for guests)
    following: bool


class FollowersOnDay(AnswerModel):
    date: datetime.date
    #: followers at the end of that UTC day
    followers: int


class FollowersAnswer(FollowStatusAnswer):
    over_time: list[FollowersOnDay] | SkipJsonSchema[None] = omitted(
        "followers at the end of each UTC day since the first follow: only for the host and admins"
    )


# -- health ---------------------------------------------------------------------------------


class AliveAnswer(AnswerModel):
    alive: Literal[True]


class ReadyChecks(AnswerModel):
    """Each check: ``"ok"``, or what is wrong (``unavailable: <error>``, ``behind: ...``)."""

    database: str
    redis: str | SkipJsonSchema[None] = omitted("only when Redis is configured")
    migrations: str
    media: str | SkipJsonSchema[None] = omitted(
        "only on a worker of several other than the media home"
    )
    outbox: Literal["ok", "behind"]
    startup: str


class ReadyAnswer(AnswerModel):
    ready: bool
    checks: ReadyChecks


# -- runtime --------------------------------------------------------------------------------


class GcGeneration(AnswerModel):
    collections: int
    total_ms: float
    longest_ms: float
    longest_cpu_ms: float
    collected: int
    uncollectable: int


class GcWindow(AnswerModel):
    """The passes since ``?since=``, per generation."""

    since_s: float
    collections: list[int]
    longest_ms: list[float]
    longest_cpu_ms: list[float]
    pauses_over_10ms: int
    #: false when the recorder's ring no longer reaches back to ``since``
    complete: bool


class GcReading(AnswerModel):
    now_s: float
    generations: list[GcGeneration]
    pauses_over_10ms: int
    counts: list[int]
    thresholds: list[int]
    frozen: int
    window: GcWindow | SkipJsonSchema[None] = omitted("with ?since=")


class CollectedAnswer(AnswerModel):
    objects: int
    pause_ms: float


class RuntimeAnswer(AnswerModel):
    """What the process holds (``live.runtime``): sizes in bytes, times in ms."""

    pid: int
    rss_bytes: int
    threads: int
    open_fds: int
    sockets: int
    udp_sockets: int
    asyncio_tasks: int
    peer_connections: int
    gc: GcReading
    collected: CollectedAnswer | SkipJsonSchema[None] = omitted("with ?collect=1")
    objects: dict[str, int] | SkipJsonSchema[None] = omitted(
        "with ?objects=1: tracked objects, and instances of each census class"
    )
    types: dict[str, int] | SkipJsonSchema[None] = omitted(
        "with ?types=1: instances of the most numerous classes, by module.QualName"
    )
