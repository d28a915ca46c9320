"""No request body with integers of any size gets a 5xx on any route (issue 17: an id
past 64 bits used to reach the database and answer 500).

Hypothesis draws the bodies: for every body model the API validates, objects with all
its fields, each an integer from -2**80 to 2**80 (small ones often, so that the other
checks pass), a list of them or null. Every POST, PUT and PATCH route under ``/api``
gets them all, as a guest and as each kind of account (path ids: the test's live
session), and path ids that do not exist or do not fit 64 bits. The draws are derandomised so
a failure repeats; 4xx answers of every kind are fine, 5xx never.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from support import Account, Api

import chat.schemas  # noqa: F401 (their bodies subclass Body)
import shelf.order_schemas
import shelf.schemas  # noqa: F401
from live.schemas import Body

BIG = 2**80
integers = (
    st.integers(min_value=-BIG, max_value=BIG)
    | st.integers(min_value=-2, max_value=120)  # valid often enough to pass the checks
    | st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30])
)
values = integers | st.lists(integers, max_size=3) | st.none()


def body_models() -> list[type[BaseModel]]:
    """Every request body the API validates (``live.schemas.Body`` and its kin)."""
    found: list[type[BaseModel]] = []
    todo: list[type[BaseModel]] = [Body]
    while todo:
        model = todo.pop()
        found.append(model)
        todo.extend(model.__subclasses__())
    return [m for m in found if m.model_fields]


def bodies_of(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with ``model``'s required fields and some of its optional ones, each an
    integer-ish value."""
    fields = model.model_fields
    return st.fixed_dictionaries(
        {name: values for name, f in fields.items() if f.is_required()},
        optional={name: values for name, f in fields.items() if not f.is_required()},
    )


def drawn(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """``n`` examples of ``strategy``, the same ones every run."""
    found: list[Any] = []

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found


async def test_no_body_of_integers_gets_a_5xx(api: Api) -> None:
    host = await api.signup("host")
    accounts: list[Account | None] = [
        None,
        host,
        await api.signup("viewer"),
        await api.signup("brand"),
        await api.signup("agency"),
    ]
    sid = int((await api.live_session(host))["id"])
    # the routes that end the session or sign the accounts out go last: after them the
    # others would only be refused before reaching their own checks
    last = ("/end", "/logout", "/disable", "/archive")
    routes = sorted(
        {
            (route.method, route.resource.canonical)
            for route in api.client.app.router.routes()
            if route.method in ("POST", "PUT", "PATCH")
            and route.resource is not None
            and route.resource.canonical.startswith("/api/")
        },
        key=lambda r: (r[1].endswith(last), r),
    )
    assert len(routes) > 20, routes
    models = body_models()
    assert len(models) > 10, models
    examples = [body for model in models for body in drawn(bodies_of(model), 8)]
    failures = []
    for method, path in routes:
        url = _url(path, str(sid))
        for m, body in enumerate(examples):
            for who in accounts:
                headers = {"Idempotency-Key": f"k{m}", **(who.headers if who else {})}
                res = await api.client.request(method, url, json=body, headers=headers)
                if res.status >= 500:
                    failures.append((method, url, body, res.status, await res.text()))
        # ids that do not exist, past 32 bits (an id column's range), past 64 bits
        for bad_id in ("987654", str(2**31), str(2**64), "0", str(2**63)):
            bad = _url(path, bad_id)
            res = await api.client.request(method, bad, json={}, headers=host.headers)
            if res.status >= 500:
                failures.append((method, bad, {}, res.status, await res.text()))
    assert failures == [], failures[:5]


def _url(path: str, an_id: str) -> str:
    return path.replace("{id}", an_id).replace("{flash_id}", an_id).replace("{action}", "end")


async def test_query_and_path_integers_past_an_ids_range_are_4xx(api: Api) -> None:
    host = await api.signup("host")
    for path in (
        f"/api/sessions?before_id={2**31}",
        f"/api/sessions?host_id={2**40}",
        f"/api/sessions/{2**31}",
        f"/api/products/{2**31}",
        f"/api/hosts/{host.id}/commission?session_id={2**31}",
        f"/api/sessions/{10**11}",
    ):
        res = await api.client.get(path, headers=host.headers)
        assert 400 <= res.status < 500, (path, res.status, await res.text())
