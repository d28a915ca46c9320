"""The API described as OpenAPI 3.1, built from the routes themselves.

Every handler says what it is with ``@operation(...)``: the pydantic model its JSON
body is read with (the same one it passes to ``read_json``), its query and path
parameters, its answers (a pydantic model each, or a media type such as SDP or CSV),
who may call it. ``build_document(app)`` walks the application's router (sub-apps
included) and writes the document; the models' JSON Schemas (pydantic's, which are
JSON Schema 2020-12, the dialect of OpenAPI 3.1) land in ``components.schemas``.

A route that is not part of the API (a page, a static file, the workers' internal
routes) says so with ``@not_in_api("why")``. ``undocumented(app)`` lists every route
with neither, and a test keeps it empty: a new route cannot ship without its entry.

Errors share one shape (``ErrorAnswer``): every operation lists the statuses it can
answer with that shape and a ``default`` for the rest (a 405, a 413 from aiohttp).

``ApiDocs`` serves ``GET /api/openapi.json`` and ``GET /api/docs`` (Swagger UI, whose
assets come from the ``swagger-ui-py`` package and are served from here: the page
loads nothing from elsewhere).
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.json_schema import models_json_schema

from live.http import MAX_ID, SECURITY_HEADERS, Handler, body_model_key

F = TypeVar("F", bound=Callable[..., Any])

#: who may call an operation: anyone (a token, when sent, is checked and used), any
#: signed-in account (roles narrow it further, see ``roles``)
Auth = Literal["anyone", "signed_in"]

_ATTRIBUTE = "__openapi__"

#: statuses every operation may answer with the error shape: a token that is sent is
#: checked on every route (401 when it is bad or revoked), limits, dependencies down
_ALWAYS = (401, 429, 503)


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


#: a path parameter's schema unless the operation gives its own: ids are integers
_PATH_ID = integer(1)


# -- the document -------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    method: str
    path: str
    handler: Any


def _routes(app: web.Application) -> Iterable[_Route]:
    for route in app.router.routes():
        resource = route.resource
        if resource is None:
            continue
        if route.method == "HEAD":  # aiohttp adds one beside each GET
            continue
        yield _Route(route.method, resource.canonical, route.handler)


def undocumented(app: web.Application) -> list[str]:
    """``METHOD /path`` of every route with neither ``@operation`` nor ``@not_in_api``
    (static files excepted: they are files, not an API)."""
    missing = []
    for route in _routes(app):
        if _is_static(route.handler):
            continue
        if spec_of(route.handler) is None:
            missing.append(f"{route.method} {route.path}")
    return missing


def _is_static(handler: Any) -> bool:
    owner = getattr(handler, "__self__", None)
    return isinstance(owner, web.StaticResource)


def build_document(app: web.Application, *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s documented routes."""
    operations: list[tuple[_Route, Operation]] = []
    for route in _routes(app):
        spec = spec_of(route.handler)
        if isinstance(spec, Operation):
            operations.append((route, spec))
    schemas, refs = _schemas(op for _, op in operations)
    paths: dict[str, dict[str, Any]] = {}
    for route, spec in operations:
        entry = _operation(route, spec, refs)
        paths.setdefault(route.path, {})[route.method.lower()] = entry
    tags = sorted({spec.tag for _, spec in operations})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                "Live e-commerce: sessions, shelves, orders, chat and video (WHIP/WHEP). "
                "Money is in integer minor units. Every refusal is "
                '`{"error": {"code", "message", "details"?}}`.'
            ),
        },
        "tags": [{"name": tag} for tag in tags],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the token from POST /api/auth/login or /signup",
                }
            },
        },
    }


def _schemas(
    operations: Iterable[Operation],
) -> tuple[dict[str, Any], dict[tuple[type[BaseModel], str], dict[str, Any]]]:
    wanted: dict[tuple[type[BaseModel], Literal["validation", "serialization"]], None] = {
        (ErrorAnswer, "serialization"): None
    }
    for spec in operations:
        if spec.body is not None:
            wanted[(spec.body, "validation")] = None
        for answer in spec.answers:
            if answer.model is not None:
                wanted[(answer.model, "serialization")] = None
    keys = list(wanted)
    refs, top = models_json_schema(keys, ref_template="#/components/schemas/{model}")
    by_model: dict[tuple[type[BaseModel], str], dict[str, Any]] = {}
    for (model, mode), ref in refs.items():
        by_model[(model, mode)] = ref  # type: ignore[index]
    return top.get("$defs", {}), by_model


def _operation(
    route: _Route, spec: Operation, refs: Mapping[tuple[type[BaseModel], str], dict[str, Any]]
) -> dict[str, Any]:
    handler = route.handler
    entry: dict[str, Any] = {
        "operationId": _operation_id(route),
        "summary": spec.summary,
        "tags": [spec.tag],
    }
    description = spec.description or _first_paragraph(getattr(handler, "__doc__", None))
    if spec.roles:
        allowed = ", ".join(dict.fromkeys([*spec.roles, "admin"]))
        description = f"{description}\n\nRoles: {allowed}.".strip()
    if description:
        entry["description"] = description
    entry["x-handler"] = getattr(handler, "__qualname__", "handler")
    params = _path_params(route.path, spec) + [_param(p) for p in spec.params if p.where != "path"]
    if params:
        entry["parameters"] = params
    if spec.body is not None:
        entry["requestBody"] = {
            "required": spec.body_required,
            "content": {"application/json": {"schema": refs[(spec.body, "validation")]}},
        }
    elif spec.body_media_type is not None:
        entry["requestBody"] = {
            "required": spec.body_required,
            "content": {spec.body_media_type: {"schema": {"type": "string"}}},
        }
    if spec.auth == "signed_in":
        entry["security"] = [{"bearer": []}]
    else:
        entry["security"] = [{}, {"bearer": []}]
    entry["responses"] = _responses(route, spec, refs)
    return entry


def _operation_id(route: _Route) -> str:
    words = re.sub(r"[{}]", "", route.path).strip("/").replace("-", "_").replace(".", "_")
    return f"{route.method.lower()}_{words.replace('/', '_')}"


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return " ".join(doc.strip().split("\n\n", 1)[0].split())


def _path_params(path: str, spec: Operation) -> list[dict[str, Any]]:
    given = {p.name: p for p in spec.params if p.where == "path"}
    params = []
    for name in re.findall(r"{(\w+)}", path):
        param = given.get(name) or Param(name, "path", _PATH_ID)
        params.append({**_param(param), "required": True})
    return params


def _param(param: Param) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": param.name, "in": param.where, "schema": dict(param.schema)}
    if param.description:
        entry["description"] = param.description
    if param.required:
        entry["required"] = True
    return entry


_REASONS = {
    400: "the request is malformed (a bad query parameter, JSON that does not parse)",
    401: "no valid token (sign in)",
    403: "the caller may not do this",
    404: "no such resource",
    406: "the request asks for something this endpoint cannot give",
    408: "the body did not arrive in time",
    409: "the resource's state does not allow this now",
    410: "it is gone",
    412: "a precondition (If-Match) failed",
    413: "the body is too large",
    415: "the body's media type is not accepted",
    422: "the body or a parameter is invalid (see details)",
    429: "too many requests (see Retry-After)",
    503: "a dependency is unavailable (see Retry-After)",
}


def _responses(
    route: _Route, spec: Operation, refs: Mapping[tuple[type[BaseModel], str], dict[str, Any]]
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for answer in spec.answers:
        entry: dict[str, Any] = {"description": answer.description or _default_text(answer)}
        if answer.model is not None:
            schema = refs[(answer.model, "serialization")]
            entry["content"] = {"application/json": {"schema": schema}}
        elif answer.media_type is not None:
            entry["content"] = {answer.media_type: {"schema": {"type": "string"}}}
        for media_type in answer.also:
            entry.setdefault("content", {})[media_type] = {"schema": {"type": "string"}}
        if answer.headers:
            entry["headers"] = {
                name: {"description": text, "schema": {"type": "string"}}
                for name, text in answer.headers.items()
            }
        if answer.links:
            entry["links"] = {
                name: {"operationId": link.operation_id, "parameters": dict(link.parameters)}
                for name, link in answer.links.items()
            }
        responses[str(answer.status)] = entry
    statuses = set(spec.errors) | set(_ALWAYS)
    if spec.auth == "signed_in":
        statuses.add(401)
    if spec.roles:
        statuses.add(403)
    if "{" in route.path:
        statuses.add(404)
    if spec.body is not None:
        statuses |= {400, 413, 422}
    if any(p.where == "query" for p in spec.params):
        statuses |= {400, 422}
    error = {"application/json": {"schema": refs[(ErrorAnswer, "serialization")]}}
    for status in sorted(statuses):
        if str(status) in responses:
            continue
        responses[str(status)] = {"description": _REASONS.get(status, "refused"), "content": error}
    responses["default"] = {"description": "any other refusal", "content": error}
    return responses


def _default_text(answer: Answer) -> str:
    return {200: "OK", 201: "created", 204: "done, nothing to say"}.get(answer.status, "answer")


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


# -- serving it ---------------------------------------------------------------------

#: Swagger UI's files (``swagger-ui-py`` ships Swagger UI 5, which reads OpenAPI 3.1)
_SWAGGER_FILES = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
}


def swagger_ui_dir() -> Path:
    return Path(str(importlib.resources.files("swagger_ui") / "static"))


class ApiDocs:
    """``/api/openapi.json`` (built once, on first request: the routes are final by
    then) and ``/api/docs`` with its assets."""

    def __init__(self, *, title: str, version: str, page: Path, script: Path) -> None:
        self._title = title
        self._version = version
        self._page = page
        self._script = script
        self._document: bytes | None = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/openapi.json", self.openapi),
            web.get("/api/docs", self.docs),
            web.get("/api/docs/{name}", self.asset),
        ]

    @not_in_api("the API document itself")
    async def openapi(self, request: web.Request) -> web.Response:
        if self._document is None:
            document = build_document(request.app, title=self._title, version=self._version)
            self._document = orjson.dumps(document)
        return web.Response(body=self._document, content_type="application/json")

    @not_in_api("a page for people (Swagger UI)")
    async def docs(self, _request: web.Request) -> web.StreamResponse:
        response = web.FileResponse(self._page)
        await self._secure(response)
        return response

    @not_in_api("the API docs page's scripts and styles")
    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "docs.js":
            response = web.FileResponse(self._script)
        elif name in _SWAGGER_FILES:
            response = web.FileResponse(swagger_ui_dir() / name)
        else:
            raise web.HTTPNotFound()
        response.headers["Cache-Control"] = "public, max-age=3600"
        await self._secure(response)
        return response

    @staticmethod
    async def _secure(response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
