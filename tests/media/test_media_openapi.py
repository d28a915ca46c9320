"""The media routes in the OpenAPI document (``live.openapi_document``): every worker
of a group describes the same API (the home serves WHIP and the downloads, the others
forward them to it with the same operations), and what the routes really answer (SDP,
files, empty bodies: what ``AnswerChecker`` does not read) is what the document says."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from support import Api, Posted, free_port, poster

from app import create_app
from live.openapi import NotInApi, spec_of
from live.openapi_document import build_document, undocumented
from live.settings import Settings
from media.answers import IceServersAnswer
from media.turn import IceServers, TurnConfig

#: building apps (and one media flow) on one backend is enough here
one_backend = pytest.mark.parametrize("backend", ["sqlite-memory"])

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"
MEDIA_PATHS = re.compile(
    r"^/(whip|whep|internal/media)/|^/api/sessions/\{id\}/(recording|cover|ice-servers|media-)"
)


def worker(settings: Settings, index: int, urls: tuple[str, ...]) -> web.Application:
    return create_app(settings.model_copy(update={"media_workers": urls, "media_worker": index}))


def without_handlers(document: dict[str, Any]) -> dict[str, Any]:
    """The document without ``x-handler`` (a forwarding route names its wrapper)."""
    paths = {
        path: {
            method: {k: v for k, v in op.items() if k != "x-handler"} for method, op in item.items()
        }
        for path, item in document["paths"].items()
    }
    return {**document, "paths": paths}


def handlers_by_route(app: web.Application) -> dict[str, Any]:
    return {
        f"{route.method} {route.resource.canonical}": route.handler
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


@one_backend
def test_every_worker_of_a_group_documents_the_same_api(settings: Settings) -> None:
    urls = ("http://127.0.0.1:1", "http://127.0.0.1:2")
    home, edge = worker(settings, 0, urls), worker(settings, 1, urls)
    assert undocumented(edge) == undocumented(home)
    assert not [route for route in undocumented(edge) if MEDIA_PATHS.search(route.split()[1])]

    documents = [build_document(app, title="liveshelf", version="0") for app in (home, edge)]
    assert without_handlers(documents[0]) == without_handlers(documents[1])
    assert "/whip/{session_id}/{resource_id}" in documents[1]["paths"]
    assert not any(path.startswith("/internal/") for path in documents[1]["paths"])

    # the edge forwards WHIP and the downloads: each with the home's very operation
    at_home, at_edge = handlers_by_route(home), handlers_by_route(edge)
    assert at_home.keys() == at_edge.keys()
    forwarded = [
        "POST /whip/{session_id}",
        "PATCH /whip/{session_id}/{resource_id}",
        "DELETE /whip/{session_id}/{resource_id}",
        "OPTIONS /whip/{session_id}/{resource_id}",
        "GET /api/sessions/{id}/recording",
        "GET /api/sessions/{id}/cover.jpg",
    ]
    for route in forwarded:
        passing_on = at_edge[route]
        assert not hasattr(passing_on, "__self__"), route  # a wrapper, not the handler
        assert passing_on.__wrapped__.__func__ is at_home[route].__func__, route
        assert spec_of(at_edge[route]) is spec_of(at_home[route]), route
    for route, handler in at_edge.items():
        if route.split()[1].startswith("/internal/media/"):
            assert isinstance(spec_of(handler), NotInApi), route


@one_backend
async def test_a_worker_refuses_what_no_route_takes_itself(settings: Settings) -> None:
    """A forwarding worker has the home's routes, not a catch-all: a method or path none
    of them takes is refused there (with the CORS headers), and only what they take
    reaches the home (here nobody listens for it: 503)."""
    urls = (f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")
    async with TestClient(TestServer(worker(settings, 1, urls), host="127.0.0.1")) as edge:
        res = await edge.get("/whip/1")
        assert res.status == 405
        assert res.headers["Allow"] == "OPTIONS,POST"
        assert res.headers["Access-Control-Allow-Origin"] == "*"
        assert res.headers["X-Content-Type-Options"] == "nosniff"
        assert (await edge.post("/whip/1/abc")).status == 405
        assert (await edge.get("/whip/1/abc/def")).status == 404
        res = await edge.post("/whip/1", data="v=0", headers={"Content-Type": SDP})
        assert res.status == 503
        assert (await res.json())["error"]["code"] == "media_unavailable"
        assert res.headers["Access-Control-Allow-Origin"] == "*"


# -- what the routes answer is what the document says ---------------------------------


def test_the_ice_servers_answer_is_its_model() -> None:
    """With STUN and TURN (the app fixture's tests have neither): each entry is one of
    the two shapes, exactly."""
    for stun, turn in (
        ((), ()),
        (("stun:a:3478",), ()),
        ((), ("turn:b",)),
        (("stun:a",), ("turn:b", "turns:b")),
    ):
        config = TurnConfig(urls=turn, secret="s" * 16 if turn else "", browser_stun=stun)
        ice = IceServers(config, sessions=None, guests=None, wall_s=lambda: 1000.0)  # type: ignore[arg-type]
        answer = orjson.dumps(ice.for_caller(7, "u3"))
        parsed = IceServersAnswer.model_validate_json(answer, strict=True)
        assert len(parsed.ice_servers) == bool(stun) + bool(turn)


class Conformance:
    """Checks answers against the operations of ``document``."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.seen: set[tuple[str, str, int]] = set()

    def check(self, method: str, path: str, res: ClientResponse) -> None:
        operation = self.document["paths"][path][method.lower()]
        where = f"{method} {path} {res.status}"
        answer = operation["responses"].get(str(res.status))
        assert answer is not None, f"{where}: not documented"
        content = answer.get("content")
        if content is None:
            assert res.status in (200, 204, 304, 307, 412, 416), where
        else:
            main, sub = res.content_type.split("/")
            assert any(
                (main, sub) == tuple(documented.split("/")) or documented == f"{main}/*"
                for documented in content
            ), f"{where}: {res.content_type} is not one of {list(content)}"
        named = {name.lower() for name in answer.get("headers", {})}
        ours = {"location", "etag", "link", "accept-patch", "accept-post", "content-range"}
        for name in {h.lower() for h in res.headers} & ours:
            assert name in named, f"{where}: {name} is not documented"
        self.seen.add((method, path, res.status))


@one_backend
async def test_the_media_answers_are_the_documented_ones(
    api: Api, app: web.Application, peers: Any
) -> None:
    client = api.client
    conforms = Conformance(build_document(app, title="liveshelf", version="0"))
    host = await api.signup("host")
    session_id = int((await api.live_session(host))["id"])
    endpoint, resource = "/{kind}/{session_id}", "/{kind}/{session_id}/{resource_id}"

    for kind in ("whip", "whep"):
        res = await client.options(f"/{kind}/{session_id}")
        conforms.check("OPTIONS", f"/{kind}/{{session_id}}", res)
        res = await client.options(f"/{kind}/{session_id}/abc")
        conforms.check("OPTIONS", f"/{kind}/{{session_id}}/{{resource_id}}", res)

    async with asyncio.timeout(40):
        pub = peers.publisher()
        await pub.connect(poster(client, f"/whip/{session_id}", host))
        viewer = peers.viewer()
        await viewer.connect(poster(client, f"/whep/{session_id}"))
        await viewer.wait_for("video", decoded=30, within_s=15)
    assert isinstance(pub.resource, Posted) and isinstance(viewer.resource, Posted)

    # the offers' answers, again with the responses themselves
    for kind, who in (("whep", None), ("whip", host)):
        offer = await (peers.viewer() if kind == "whep" else peers.publisher()).offer()
        headers = {"Content-Type": SDP, **(who.headers if who else {})}
        res = await client.post(f"/{kind}/{session_id}", data=offer, headers=headers)
        conforms.check("POST", endpoint.replace("{kind}", kind), res)
        assert res.status == (201 if kind == "whep" else 409), await res.text()
        if res.status == 201:
            await client.delete(res.headers["Location"])

    for kind, post, who in (("whep", viewer.resource, None), ("whip", pub.resource, host)):
        headers = {"Content-Type": SDPFRAG, **(who.headers if who else {})}
        fragment = "a=end-of-candidates\r\n"
        res = await client.patch(post.location, data=fragment, headers=headers)
        assert res.status == 204
        conforms.check("PATCH", resource.replace("{kind}", kind), res)
        res = await client.patch(
            post.location, data=fragment, headers={**headers, "If-Match": '"nope"'}
        )
        assert res.status == 412
        conforms.check("PATCH", resource.replace("{kind}", kind), res)
        res = await client.delete(post.location, headers=who.headers if who else None)
        assert res.status == 200
        conforms.check("DELETE", resource.replace("{kind}", kind), res)

    await api.call("POST", f"/api/sessions/{session_id}/end", host, expect=200)
    recording = f"/api/sessions/{session_id}/recording"
    for headers, status in (({}, 200), ({"Range": "bytes=0-99"}, 206), ({"Range": "x"}, 416)):
        res = await client.get(recording, headers=headers)
        assert res.status == status
        conforms.check("GET", "/api/sessions/{id}/recording", res)
    cover = f"/api/sessions/{session_id}/cover.jpg"
    res = await client.get(cover)
    assert res.status == 200
    conforms.check("GET", "/api/sessions/{id}/cover.jpg", res)
    res = await client.get(cover, headers={"If-None-Match": res.headers["ETag"]})
    assert res.status == 304
    conforms.check("GET", "/api/sessions/{id}/cover.jpg", res)
    res = await client.get(f"/api/sessions/{session_id + 1}/cover.jpg")
    assert res.status == 404
    conforms.check("GET", "/api/sessions/{id}/cover.jpg", res)
