"""Request bodies and room-channel messages of the spine, validated strictly.

Every model forbids unknown fields and coercion ("5" is not 5), and bounds every
string, so a bad request is refused before it reaches a service.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True, frozen=True)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give a timezone, e.g. 2026-11-28T20:00:00Z")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Username = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{2,31}$")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128, strip_whitespace=False)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=200)]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class SignupBody(Body):
    username: Username
    password: Password
    role: Literal["viewer", "host", "brand", "agency"]
    display_name: DisplayName | None = None


class LoginBody(Body):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[
        str, StringConstraints(min_length=1, max_length=128, strip_whitespace=False)
    ]


class CreateSessionBody(Body):
    title: Title
    scheduled_at: AwareDatetime | None = None


class AnnouncementBody(Body):
    text: Annotated[str, StringConstraints(min_length=1, max_length=280)]


class ClientMessage(BaseModel):
    """The envelope of every client -> server room message."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    ref: Annotated[str, StringConstraints(max_length=64)] | Annotated[int, Field(ge=0)] | None = (
        None
    )
