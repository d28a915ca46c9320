"""What each route says of itself for the API document (OpenAPI 3.1), and the check
that holds the handlers to it.

Every handler says what it is with ``@operation(...)``: the pydantic model its JSON
body is read with (the same one it passes to ``read_json``), its query and path
parameters, its answers (a pydantic model each, or a media type such as SDP or CSV),
who may call it. A route that is not part of the API (a page, a static file, the
workers' internal routes) says so with ``@not_in_api("why")``; ``spec_of(handler)``
reads either back. JSON answers are ``AnswerModel``s (no field beyond those declared);
every refusal has one shape, ``ErrorAnswer``; ``page_params`` and ``page_of`` describe
a keyset page's query and answer.

``live.openapi_document`` turns the marks into the document and serves it; a route
with neither mark is listed by its ``undocumented(app)``, which a test keeps empty.

``AnswerChecker`` (a middleware the tests install) holds every successful JSON answer
to its route's ``@operation``: a status it documents, a body that validates strictly
against that answer's model, a JSON body read with the model it names. It records a
mismatch (and the test fixture fails the test with it); it never changes an answer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from live.http import MAX_ID, Handler, body_model_key

F = TypeVar("F", bound=Callable[..., Any])

#: who may call an operation: anyone (a token, when sent, is checked and used), any
#: signed-in account (roles narrow it further, see ``roles``)
Auth = Literal["anyone", "signed_in"]

_ATTRIBUTE = "__openapi__"


class AnswerModel(BaseModel):
    """A JSON answer's model: the fields a handler returns, no others (the document
    says ``additionalProperties: false``, and the schema fuzzing checks it)."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: a stable, machine-readable reason (``sold_out``, ``invalid_input``, ...)
    code: str
    #: what went wrong, for people
    message: str
    #: more about it (e.g. ``fields`` for ``invalid_input``, ``retry_after_ms``)
    details: dict[str, Any] | None = None


class ErrorAnswer(BaseModel):
    """Every refusal: ``{"error": {"code", "message", "details"?}}``."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


@dataclass(frozen=True)
class Link:
    """An OpenAPI link: what the answer leads to (``operation_id``), with parameters
    taken from it, e.g. ``{"id": "$response.body#/id"}``. Stateful fuzzing follows
    them (create a session, then start it, pin to it...)."""

    operation_id: str
    parameters: Mapping[str, str]


def follow(*operation_ids: str, **parameters: str) -> dict[str, Link]:
    """Links to ``operation_ids``, each given ``parameters`` (default: the answer's
    ``id`` as the path's ``id``)."""
    given = parameters or {"id": "$response.body#/id"}
    return {operation_id: Link(operation_id, given) for operation_id in operation_ids}


@dataclass(frozen=True)
class Answer:
    """One answer of an operation: its status, and its body as a pydantic model (JSON)
    or as a media type (``application/sdp``, ``text/csv``, ...), or none (204)."""

    status: int
    model: type[BaseModel] | None = None
    media_type: str | None = None
    description: str = ""
    #: response headers it carries: name -> description
    headers: Mapping[str, str] = field(default_factory=dict)
    #: other media types the same answer may come in (chosen by ``Accept`` or a query
    #: parameter, e.g. ``text/csv`` beside the JSON model; ``video/webm`` beside
    #: ``video/mp4``): their bodies are described as strings
    also: tuple[str, ...] = ()
    #: operations this answer leads to, by the link's name
    links: Mapping[str, Link] = field(default_factory=dict)


@dataclass(frozen=True)
class Param:
    """A query, path or header parameter with its JSON Schema."""

    name: str
    where: Literal["query", "path", "header"]
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    answers: tuple[Answer, ...]
    auth: Auth = "anyone"
    #: roles allowed (admins always are); empty: any signed-in account, or anyone
    roles: tuple[str, ...] = ()
    #: the JSON body's model (the one ``read_json`` validates with)
    body: type[BaseModel] | None = None
    #: a body that is not JSON (``application/sdp`` for WHIP/WHEP): its media type
    body_media_type: str | None = None
    body_required: bool = True
    params: tuple[Param, ...] = ()
    #: the statuses it answers with the error shape (401, 429 and 503 always added;
    #: 403 with roles, 404 with an id in the path, 400/422 with a
    #: body or query parameters are added too)
    errors: tuple[int, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class NotInApi:
    reason: str


def operation(
    summary: str,
    *,
    tag: str,
    answers: Sequence[Answer] | Answer,
    auth: Auth = "anyone",
    roles: Sequence[str] = (),
    body: type[BaseModel] | None = None,
    body_media_type: str | None = None,
    body_required: bool = True,
    params: Sequence[Param] = (),
    errors: Sequence[int] = (),
    description: str = "",
) -> Callable[[F], F]:
    """Describe a handler for the OpenAPI document (see the module's docstring)."""
    spec = Operation(
        summary=summary,
        tag=tag,
        answers=(answers,) if isinstance(answers, Answer) else tuple(answers),
        auth="signed_in" if roles else auth,
        roles=tuple(roles),
        body=body,
        body_media_type=body_media_type,
        body_required=body_required,
        params=tuple(params),
        errors=tuple(errors),
        description=description,
    )

    def mark(handler: F) -> F:
        setattr(handler, _ATTRIBUTE, spec)
        return handler

    return mark


def not_in_api(reason: str) -> Callable[[F], F]:
    """Mark a route's handler as deliberately left out of the API document."""

    def mark(handler: F) -> F:
        setattr(handler, _ATTRIBUTE, NotInApi(reason))
        return handler

    return mark


def spec_of(handler: Any) -> Operation | NotInApi | None:
    spec = getattr(handler, _ATTRIBUTE, None)
    return spec if isinstance(spec, Operation | NotInApi) else None


# -- parameters used by many routes -------------------------------------------------


def query(name: str, schema: Mapping[str, Any], description: str = "") -> Param:
    return Param(name, "query", schema, description)


def integer(minimum: int = 0, maximum: int = MAX_ID) -> dict[str, Any]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum}


def page_params(maximum: int, *, default: int = 50, newest_first: bool = True) -> list[Param]:
    """``?limit=`` and the cursor of a keyset page (``live.http.page_query``)."""
    cursor = "before_id" if newest_first else "after_id"
    order = "newest first" if newest_first else "oldest first"
    return [
        query("limit", integer(1, maximum), f"items in the page (default {default})"),
        query(cursor, integer(), f"the previous page's next_{cursor} ({order})"),
    ]


@functools.cache
def page_of(key: str, item: type[BaseModel], *, newest_first: bool = True) -> type[BaseModel]:
    """The model of a page's answer: ``{key: [item...], "next_before_id": id|null}``."""
    cursor = "next_before_id" if newest_first else "next_after_id"
    name = f"{item.__name__}Page" if key.endswith("s") else f"{item.__name__}{key.title()}Page"
    fields: dict[str, Any] = {key: (list[item], ...), cursor: (int | None, ...)}  # type: ignore[valid-type]
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


# -- holding handlers to it --------------------------------------------------------


@dataclass
class AnswerChecker:
    """A middleware (for tests) that holds every successful JSON answer to its route's
    ``@operation``: the status must be one of its answers and the body must validate,
    strictly, against that answer's model; and a JSON body must have been read with
    the model the operation names. What does not is kept in ``mismatches``
    (the test fixture fails the test with them) and logged."""

    mismatches: list[str] = field(default_factory=list)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        finally:
            self._check_body(request)
        if response.status >= 400 or not isinstance(response, web.Response):
            return response
        spec = spec_of(request.match_info.route.handler)
        if not isinstance(spec, Operation):
            return response
        where = _where(request)
        answer = next((a for a in spec.answers if a.status == response.status), None)
        if answer is None:
            self.mismatches.append(f"{where}: status {response.status} is not documented")
        elif response.content_type in answer.also:
            pass  # another media type the answer may come in (a string)
        elif answer.model is not None and isinstance(response.body, bytes):
            try:
                answer.model.model_validate_json(response.body, strict=True)
            except ValidationError as exc:
                self.mismatches.append(f"{where} {response.status}: {exc}")
        return response

    def _check_body(self, request: web.Request) -> None:
        """The body was read with the model the document names (``read_json``)."""
        read = request.get(body_model_key)
        spec = spec_of(request.match_info.route.handler)
        if read is not None and isinstance(spec, Operation) and read is not spec.body:
            documented = spec.body.__name__ if spec.body else "no JSON body"
            self.mismatches.append(
                f"{_where(request)}: the body was read as {read.__name__}, "
                f"the document says {documented}"
            )


def _where(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return f"{request.method} {resource.canonical if resource else request.path}"
