"""Request bodies and room-channel messages of the spine, validated strictly.

Every model forbids unknown fields and coercion ("5" is not 5), and bounds every
string, so a bad request is refused before it reaches a service.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

#: every integer a body may carry fits a 64-bit database column
INT64 = (-(2**63), 2**63 - 1)


class Body(BaseModel):
    """A request body: unknown fields refused, types strict, and no integer beyond 64
    bits anywhere in it (``422 invalid_input`` instead of a database error)."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True, frozen=True)

    @model_validator(mode="after")
    def _integers_fit(self) -> Self:
        for name, value in self.__dict__.items():
            if not _fits(value):
                raise ValueError(f"{name}: integers must fit in 64 bits")
        return self


def _fits(value: object) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return INT64[0] <= value <= INT64[1]
    if isinstance(value, list | tuple | set | frozenset):
        return all(_fits(v) for v in value)
    if isinstance(value, dict):
        return all(_fits(v) for v in value.values())
    return True  # nested bodies check themselves


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
