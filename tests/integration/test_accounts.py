"""Sign-up, login, tokens and role refusals (both backends)."""

from __future__ import annotations

from typing import Any

import pytest
from support import Api

from app import Settings, create_app, tokens_key
from live.auth import TokenSigner
from live.clock import ManualClock


async def test_signup_login_me(api: Api) -> None:
    res = await api.call(
        "POST",
        "/api/auth/signup",
        json={"username": "mia", "password": "long enough", "role": "host", "display_name": "Mia"},
        expect=201,
    )
    assert res["user"]["username"] == "mia"
    assert res["user"]["role"] == "host"
    assert "password" not in str(res["user"])
    login = await api.call(
        "POST", "/api/auth/login", json={"username": "mia", "password": "long enough"}, expect=200
    )
    me = await api.call(
        "GET", "/api/me", headers={"Authorization": f"Bearer {login['token']}"}, expect=200
    )
    assert me == res["user"]


async def test_wrong_password_and_unknown_user_look_the_same(api: Api) -> None:
    await api.signup("viewer", "sam")
    wrong = await api.call(
        "POST", "/api/auth/login", json={"username": "sam", "password": "nope nope"}, expect=401
    )
    unknown = await api.call(
        "POST", "/api/auth/login", json={"username": "nobody", "password": "nope nope"}, expect=401
    )
    assert wrong == unknown
    assert wrong["error"]["code"] == "invalid_credentials"


async def test_username_taken(api: Api) -> None:
    await api.signup("viewer", "sam")
    res = await api.call(
        "POST",
        "/api/auth/signup",
        json={"username": "sam", "password": "another one", "role": "host"},
        expect=409,
    )
    assert res["error"]["code"] == "username_taken"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"username": "ab", "password": "long enough", "role": "viewer"}, "invalid_input"),
        ({"username": "UPPER", "password": "long enough", "role": "viewer"}, "invalid_input"),
        ({"username": "okname", "password": "short", "role": "viewer"}, "invalid_input"),
        # 9 characters; one of the most common passwords (any case); the username in it
        ({"username": "okname", "password": "ninechars", "role": "viewer"}, "invalid_input"),
        ({"username": "okname", "password": "Password123", "role": "viewer"}, "invalid_input"),
        ({"username": "okname", "password": "qwertyuiop", "role": "viewer"}, "invalid_input"),
        ({"username": "okname", "password": "my OKNAME 2026", "role": "viewer"}, "invalid_input"),
        ({"username": "okname", "password": "long enough", "role": "admin"}, "invalid_input"),
        ({"username": "okname", "password": "long enough", "role": "moderator"}, "invalid_input"),
        ({"username": "okname", "password": "long enough"}, "invalid_input"),
        ({"username": "okname", "password": 12345678, "role": "viewer"}, "invalid_input"),
        (
            {"username": "okname", "password": "long enough", "role": "viewer", "x": 1},
            "invalid_input",
        ),
    ],
)
async def test_signup_refuses_bad_bodies(api: Api, body: dict[str, Any], code: str) -> None:
    res = await api.call("POST", "/api/auth/signup", json=body, expect=422)
    assert res["error"]["code"] == code
    assert res["error"]["message"]
    # nothing was created
    await api.call(
        "POST",
        "/api/auth/login",
        json={"username": "okname", "password": "long enough"},
        expect=401,
    )


async def test_malformed_and_oversized_bodies(api: Api) -> None:
    client = api.client
    res = await client.post(
        "/api/auth/login", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert res.status == 400
    assert (await res.json())["error"]["code"] == "invalid_json"
    res = await client.post(
        "/api/auth/login", data=b"[1, 2]", headers={"Content-Type": "application/json"}
    )
    assert res.status == 422
    big = b'{"username": "' + b"a" * 70_000 + b'", "password": "x"}'
    res = await client.post(
        "/api/auth/login", data=big, headers={"Content-Type": "application/json"}
    )
    assert res.status == 413
    assert (await res.json())["error"]["code"] in {"too_large", "body_too_large"}


async def test_bad_tokens_are_refused(api: Api) -> None:
    for header in ("Bearer nonsense", "Basic abc", "Bearer "):
        res = await api.client.get("/api/me", headers={"Authorization": header})
        assert res.status == 401
        assert (await res.json())["error"]["code"] == "invalid_token"
    forged = TokenSigner("another-secret-0123456789-0123456789", ManualClock()).issue(
        1, "x", "admin", "x"
    )
    res = await api.client.get("/api/me", headers={"Authorization": f"Bearer {forged}"})
    assert res.status == 401
    res = await api.client.get("/api/me")
    assert res.status == 401
    assert (await res.json())["error"]["code"] == "sign_in_required"


async def test_expired_token(settings: Settings, aiohttp_client: Any) -> None:
    clock = ManualClock()
    app = create_app(settings.model_copy(update={"token_ttl_s": 60}), clock=clock)
    api = Api(await aiohttp_client(app))
    viewer = await api.signup("viewer")
    await api.call("GET", "/api/me", viewer, expect=200)
    clock.advance(61_000)
    res = await api.call("GET", "/api/me", viewer, expect=401)
    assert res["error"]["code"] == "token_expired"
    assert app[tokens_key].ttl_s == 60


async def test_guest_may_read_but_not_write(api: Api) -> None:
    await api.call("GET", "/api/sessions", expect=200)
    res = await api.call("POST", "/api/sessions", json={"title": "x"}, expect=401)
    assert res["error"]["code"] == "sign_in_required"


@pytest.mark.parametrize(
    "name",
    [
        "Mia (demo host)",
        "[admin] Sam",
        "Bo <moderator>",
        "Ana\u202eevil",
        "a\u200bb",
        "x\ny",
        "Mi\u200da",  # a joiner between letters hides nothing useful
        "\U0001f469\u200d",  # and one that joins nothing
    ],
)
async def test_display_names_that_hide_or_pose_are_refused(api: Api, name: str) -> None:
    res = await api.client.post(
        "/api/auth/signup",
        json={
            "username": "poser",
            "password": "correct horse",
            "role": "viewer",
            "display_name": name,
        },
    )
    assert res.status == 422, name
    assert (await res.json())["error"]["code"] == "invalid_input"


async def test_display_names_and_titles_are_normalised(api: Api) -> None:
    res = await api.client.post(
        "/api/auth/signup",
        json={
            "username": "wide",
            "password": "correct horse",
            "role": "host",
            "display_name": "  \uff2d\uff49\uff41   Zoé ",  # full-width Mia
        },
    )
    body = await res.json()
    assert res.status == 201 and body["user"]["display_name"] == "Mia Zoé"
    headers = {"Authorization": f"Bearer {body['token']}"}
    res = await api.client.post("/api/sessions", json={"title": "ﬁne   mugs"}, headers=headers)
    assert (await res.json())["title"] == "fine mugs"


async def test_emoji_sequences_in_names_are_kept(api: Api) -> None:
    """The zero-width joiner inside an emoji sequence is part of the emoji."""
    for i, name in enumerate(
        ["Mia \U0001f469\u200d\U0001f4bb", "\U0001f3f3\ufe0f\u200d\U0001f308 Pride"]
    ):
        res = await api.client.post(
            "/api/auth/signup",
            json={
                "username": f"emoji{i}",
                "password": "correct horse",
                "role": "viewer",
                "display_name": name,
            },
        )
        body = await res.json()
        assert res.status == 201, body
        assert body["user"]["display_name"] == name
