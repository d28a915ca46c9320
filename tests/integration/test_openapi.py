"""The OpenAPI document (``live.openapi_document``): valid OpenAPI 3.1, every route of the app
in it (or marked as not part of the API, with a reason), served at /api/openapi.json,
and the same on every worker of a group."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import OpenAPIV31SpecValidator

from live.openapi import NotInApi, spec_of
from live.openapi_document import build_document, undocumented


def test_every_route_is_described_or_marked_not_in_api(app: web.Application) -> None:
    assert undocumented(app) == []


def test_the_document_is_valid_openapi_3_1(app: web.Application) -> None:
    document = build_document(app, title="liveshelf", version="0")
    assert document["openapi"] == "3.1.0"
    OpenAPIV31SpecValidator(document).validate()


def test_every_documented_route_is_in_the_document_once(app: web.Application) -> None:
    document = build_document(app, title="liveshelf", version="0")
    listed = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }
    routes = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        spec = spec_of(route.handler)
        if spec is not None and not isinstance(spec, NotInApi):
            routes.add(f"{route.method} {route.resource.canonical}")
    assert listed == routes
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    # what the issue names: the API, WHIP and WHEP, health and metrics
    for needed in (
        "POST /api/sessions/{id}/orders",
        "POST /whip/{session_id}",
        "POST /whep/{session_id}",
        "GET /readyz",
        "GET /metrics",
    ):
        assert needed in listed


def test_every_operation_has_answers_auth_and_the_error_shape(app: web.Application) -> None:
    document = build_document(app, title="liveshelf", version="0")
    for path, item in document["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            assert op["summary"], where
            assert "security" in op, where
            answers = op["responses"]
            assert any(code.startswith(("1", "2", "3")) for code in answers), where
            error = {"$ref": "#/components/schemas/ErrorAnswer"}
            assert answers["default"]["content"]["application/json"]["schema"] == error
            if "{" in path:
                assert "404" in answers, where


def test_a_body_is_the_model_the_handler_reads(app: web.Application) -> None:
    document = build_document(app, title="liveshelf", version="0")
    signup = document["paths"]["/api/auth/signup"]["post"]
    schema = signup["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/SignupBody"}
    body = document["components"]["schemas"]["SignupBody"]
    assert body["additionalProperties"] is False
    assert {"username", "password"} <= set(body["required"])


@pytest.mark.parametrize("backend", ["sqlite-memory"])
async def test_served_at_api_openapi_json(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    document = await response.json()
    assert document["info"]["title"] == "liveshelf"
    OpenAPIV31SpecValidator(document).validate()
    page = await client.get("/api/docs")
    assert page.status == 200
    assert "Content-Security-Policy" in page.headers
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "docs.js"):
        assert (await client.get(f"/api/docs/{asset}")).status == 200
    assert (await client.get("/api/docs/index.html")).status == 404


def test_links_lead_to_operations_that_exist(app: web.Application) -> None:
    document = build_document(app, title="liveshelf", version="0")
    by_id = {op["operationId"]: op for item in document["paths"].values() for op in item.values()}
    links = [
        link
        for item in document["paths"].values()
        for op in item.values()
        for answer in op["responses"].values()
        for link in answer.get("links", {}).values()
    ]
    for link in links:
        target = by_id[link["operationId"]]
        names = {p["name"] for p in target.get("parameters", [])}
        assert set(link["parameters"]) <= names, link
