"""Request bodies and room-channel messages of the spine, validated strictly.

Every model forbids unknown fields and coercion ("5" is not 5), and bounds every
string, so a bad request is refused before it reaches a service.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)


class Body(BaseModel):
    """A request body: unknown fields refused, types strict. Every integer field is
    bounded to its column's range by its own type (``Id``, ``MinorUnits``, ...; a
    value past it is ``422 invalid_input``, never a database error):
    ``tests/integration/test_any_integers.py`` sends every route integers of any size."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True, frozen=True)


def _aware(value: datetime) -> datetime:
    """A time with its zone, within what the columns hold (milliseconds since 1970, and
    an ISO year of four digits in UTC): 9999-12-31T23:59:59-05:00 is past year 9999 in
    UTC, and converting it overflowed (a 500 the schema fuzzing found)."""
    if value.tzinfo is None:
        raise ValueError("give a timezone, e.g. 2026-11-28T20:00:00Z")
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not _EPOCH <= utc <= _LAST:
        raise ValueError("give a time between 1970 and 9999 (UTC)")
    return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LAST = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Username = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{2,31}$")]
#: a new password (signing up): at least 10 characters, none of the 30,000 most common
#: passwords (the list zxcvbn ships), compared in lower case; any characters (NIST SP
#: 800-63B: length and a blocklist, no composition rules)
MIN_PASSWORD_LENGTH = 10


@functools.cache
def common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(username: str, password: str) -> str | None:
    """What is wrong with ``password`` as a new password for ``username``, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must be at least {MIN_PASSWORD_LENGTH} characters"
    if password.lower() in common_passwords():
        return "this password is one of the most common ones; choose another"
    if username and username.lower() in password.lower():
        return "the password must not contain the username"
    return None


def _uncommon(value: str) -> str:
    problem = password_problem("", value)
    if problem is not None:
        raise ValueError(problem)
    return value


Password = Annotated[
    str,
    StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=128, strip_whitespace=False),
    AfterValidator(_uncommon),
]
#: characters that change how text shows without being seen: controls, format
#: characters (bidi overrides and isolates, zero-width joiners and spaces), private
#: use, surrogates, line and paragraph separators
_HIDDEN = frozenset(("Cc", "Cf", "Co", "Cs", "Zl", "Zp"))
#: a role in brackets ("Mia (host)", "[admin] Sam"): what the room shows as a badge
_BADGE = re.compile(
    r"[(\[{<].*\b(host|admin|administrator|moderator|mod|brand|staff|official|liveshelf)\b",
    re.IGNORECASE,
)


_ZWJ = "\u200d"


def _joins_emoji(value: str, i: int) -> bool:
    """Whether the zero-width joiner at ``i`` joins two emoji (👩‍💻, 🏳️‍🌈, 👨🏽‍🍳): a
    symbol (or skin tone, or emoji presentation selector) before it, a symbol after."""
    before = value[i - 1] if i > 0 else ""
    if before == "\ufe0f" and i > 1:
        before = value[i - 2]
    after = value[i + 1] if i + 1 < len(value) else ""
    symbols = ("So", "Sk")
    return (
        bool(before and after)
        and unicodedata.category(before) in symbols
        and unicodedata.category(after) == "So"
    )


def _clean(value: str) -> str:
    """NFKC-normalised, no hidden characters (but the joiner inside an emoji
    sequence), one space between words."""
    value = unicodedata.normalize("NFKC", value)
    if any(
        unicodedata.category(c) in _HIDDEN and not (c == _ZWJ and _joins_emoji(value, i))
        for i, c in enumerate(value)
    ):
        raise ValueError("remove control, direction or zero-width characters")
    value = " ".join(value.split())
    if not value:
        raise ValueError("must not be empty")
    return value


def _not_a_badge(value: str) -> str:
    if _BADGE.search(value):
        raise ValueError("a role in brackets is shown by the room itself; leave it out")
    return value


Title = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_clean)]
DisplayName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_clean),
    AfterValidator(_not_a_badge),
]


class SignupBody(Body):
    username: Username
    password: Password
    role: Literal["viewer", "host", "brand", "agency"]
    display_name: DisplayName | None = None

    @model_validator(mode="after")
    def _password_is_not_the_name(self) -> Self:
        problem = password_problem(self.username, self.password)
        if problem is not None:
            raise ValueError(f"password: {problem}")
        return self


class LoginBody(Body):
    #: any text but NUL, which no username holds and PostgreSQL refuses in a query
    username: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]
    password: Annotated[
        str, StringConstraints(min_length=1, max_length=128, strip_whitespace=False)
    ]


class CreateSessionBody(Body):
    title: Title
    #: when the show is meant to start; in the future (``422 scheduled_in_past``)
    scheduled_at: AwareDatetime | None = None


class EditSessionBody(Body):
    """A scheduled session's new title and/or time (``PATCH /api/sessions/{id}``); a
    field left out stays as it is, ``"scheduled_at": null`` clears the date."""

    title: Title | None = None
    scheduled_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give a title or a scheduled_at")
        if "title" in self.model_fields_set and self.title is None:
            raise ValueError("title: a session keeps a title")
        return self


class AnnouncementBody(Body):
    text: Annotated[str, StringConstraints(min_length=1, max_length=280)]


class ClientMessage(BaseModel):
    """The envelope of every client -> server room message."""

    model_config = ConfigDict(extra="allow", strict=True)

    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    ref: Annotated[str, StringConstraints(max_length=64)] | Annotated[int, Field(ge=0)] | None = (
        None
    )
