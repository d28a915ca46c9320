"""Where each setting is read from, and what a wrong one says.

A field ``f`` of ``live.settings.Settings`` is the variable ``LIVESHELF_F``
(``variable("f")``; ``REDIS_URL`` has no prefix), a field of its ``chat`` part
``LIVESHELF_CHAT_F``; the fields in ``COMMAND_LINE_ONLY`` are never read from the
environment. ``over_env_file`` lays the environment over the ``.env`` file (or the
file ``LIVESHELF_ENV_FILE`` names: a ``ConfigError`` if it is missing): a variable set
in the environment wins over the file's, and an empty one counts as unset.
``VariablesSource`` is pydantic-settings' environment source over that mapping.

``problem_line`` turns one pydantic error into the one line ``ConfigError`` says
(``LIVESHELF_PORT: must be an integer, got 'abc'``), and ``shown`` a value into what
``Settings.describe`` prints: neither ever shows a secret (``SECRET_SETTINGS``) or the
password of a URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource

PREFIX = "LIVESHELF_"
CHAT_PREFIX = "LIVESHELF_CHAT_"
#: names the ``.env`` file to read (default: ``.env`` in the working directory)
ENV_FILE_VARIABLE = "LIVESHELF_ENV_FILE"
#: set by the command line (``--demo``, ``--workers``), never read from the environment
COMMAND_LINE_ONLY = frozenset({"demo", "media_workers", "media_worker"})
#: settings never printed (``Settings.describe``) nor echoed in an error
SECRET_SETTINGS = frozenset({"secret", "turn_secret", "metrics_token"})


class ConfigError(Exception):
    """The configuration is missing or wrong; the message says what to set."""


def variable(*location: int | str) -> str:
    """The environment variable of a field (``"port"``) or a chat field
    (``"chat", "message_rate"``)."""
    name = str(location[0])
    if name.lower() == "redis_url":
        return "REDIS_URL"
    if name == "chat" and len(location) > 1:
        return f"{CHAT_PREFIX}{str(location[1]).upper()}"
    return f"{PREFIX}{name.upper()}"


class VariablesSource(EnvSettingsSource):
    """pydantic-settings' environment source over ``variables`` instead of
    ``os.environ`` (tests pass a dict), leaving out the command line's settings. It
    overrides ``_load_env_vars``, the method pydantic-settings' own
    ``DotEnvSettingsSource`` overrides to read its files (pydantic-settings 2.14)."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str]) -> None:
        self._variables = variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        ignored = {variable(name) for name in COMMAND_LINE_ONLY}
        return {  # lower-case: the source matches names regardless of case
            name.lower(): value
            for name, value in self._variables.items()
            if name.upper() not in ignored
        }


def over_env_file(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``env`` that are set (not empty) over those of the ``.env``
    file (``LIVESHELF_ENV_FILE``; a missing ``.env`` is no file)."""
    named = env.get(ENV_FILE_VARIABLE, "")
    path = Path(named or ".env")
    from_file: dict[str, str | None] = {}
    if path.is_file():
        from_file = dotenv_values(path)
    elif named:
        raise ConfigError(f"{ENV_FILE_VARIABLE}: no such file {named!r}")
    return {
        name: value
        for variables in (from_file, env)  # the environment's last: it wins
        for name, value in variables.items()
        if value
    }


#: what each kind of pydantic error says, with its context (``ctx``) filled in
_PROBLEMS = {
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_parsing": "must be a number",
    "bool_parsing": "must be on or off (or 1/0, true/false)",
    "greater_than": "must be above {gt}",
    "less_than_equal": "must be at most {le}",
    "literal_error": "must be {expected}",
    "string_too_short": "must be at least {min_length} characters",
    "missing": "must be set",
    "extra_forbidden": "is not a setting",
}


def problem_line(error: ErrorDetails) -> str:
    """One error as ``VARIABLE: what is wrong, got 'value'`` (never a secret's value)."""
    location = error["loc"]
    context = {  # a bound of a float field reads "0.0": show it as written
        key: int(value) if isinstance(value, float) and value.is_integer() else value
        for key, value in error.get("ctx", {}).items()
    }
    if error["type"] == "value_error":  # our checks: the message shows the value
        problem = str(context["error"])
    else:
        if error["type"] == "greater_than_equal":
            ge = context["ge"]
            problem = "must be 0 or more" if ge == 0 else f"must be at least {ge}"
        else:
            problem = _PROBLEMS.get(error["type"], error["msg"]).format(**context)
        if location and str(location[-1]) not in SECRET_SETTINGS:
            problem += f", got {error['input']!r}"
    return f"{variable(*location)}: {problem}" if location else problem


def shown(name: str, value: Any) -> str:
    if name in SECRET_SETTINGS:
        return "***" if value else "(none)"
    if isinstance(value, str) and "://" in value:
        return _without_password(value)
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "(none)"
    return "(none)" if value is None else str(value)


def _without_password(url: str) -> str:
    """``url`` with the password of its user part as ``***``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"
