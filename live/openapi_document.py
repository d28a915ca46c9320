"""The API document (OpenAPI 3.1), built from the routes themselves, and served.

``build_document(app)`` walks the application's router (sub-apps included; the
``HEAD`` beside each ``GET`` left out) and writes an operation for every route whose
handler carries ``@operation`` (``live.openapi``): its ``operationId`` made of the
method and path, its parameters (a path parameter is an integer id unless the
operation says otherwise), body, security and answers, and ``x-handler``, the
handler's qualified name. The models' JSON Schemas (pydantic's, which are JSON Schema
2020-12, the dialect of OpenAPI 3.1) land in ``components.schemas``. Errors share one
shape (``ErrorAnswer``): every operation lists the statuses it can answer with that
shape (401, 429 and 503 always; 403, 404, 400/413/422 where its roles, path, body or
query parameters allow them) and a ``default`` for the rest (a 405, a 413 from
aiohttp).

``undocumented(app)`` lists ``METHOD /path`` of every route with neither
``@operation`` nor ``@not_in_api`` (static files excepted); a test keeps it empty, so
a new route cannot ship without its entry.

``ApiDocs`` serves ``GET /api/openapi.json`` (built once, on the first request: the
routes are final by then) and ``GET /api/docs`` (Swagger UI, whose assets come from
the ``swagger-ui-py`` package and are served from here: the page loads nothing from
elsewhere; any other asset name is a 404).
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from live.http import SECURITY_HEADERS
from live.openapi import Answer, ErrorAnswer, Operation, Param, integer, not_in_api, spec_of

#: statuses every operation may answer with the error shape: a token that is sent is
#: checked on every route (401 when it is bad or revoked), limits, dependencies down
_ALWAYS = (401, 429, 503)

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


#: a Server-Sent Events stream is described event by event (the fields of one event;
#: ``data`` is the JSON text of the event's body), as OpenAPI tools read such streams
_SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


def _body_schema(media_type: str) -> dict[str, Any]:
    """The schema of a non-JSON answer's body: its text, or one event of a stream."""
    return dict(_SSE_EVENT) if media_type == "text/event-stream" else {"type": "string"}


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
            entry["content"] = {answer.media_type: {"schema": _body_schema(answer.media_type)}}
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
