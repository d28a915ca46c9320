"""A report's period is what its answer can say: an instant from 1970 to 9999 in UTC.
Outside that range the answer would carry an ISO string without a four-digit year, or
not be computed at all (a 500): it is 400 ``invalid_query`` instead."""

from __future__ import annotations

import pytest
from support import Api

from shelf.order_schemas import LATEST_MS, parse_instant


@pytest.mark.parametrize("backend", ["sqlite-memory"])
async def test_a_period_outside_1970_to_9999_is_refused(api: Api) -> None:
    host = await api.signup("host")
    path = f"/api/hosts/{host.id}/commission"
    for query in (
        "from=0999-12-31",
        "from=1969-12-31T23:59:59.999Z",
        "from=0001-01-01T00:00:00%2B00:01",  # before year 1 in UTC
        "to=9999-12-31T23:59:59-05:00",  # past year 9999 in UTC
    ):
        res = await api.call("GET", f"{path}?{query}", host, expect=400)
        assert res["error"]["code"] == "invalid_query", query
    widest = await api.call(
        "GET", f"{path}?from=1970-01-01&to=9999-12-31T23:59:59.999Z", host, expect=200
    )
    assert widest["period"] == {
        "from": "1970-01-01T00:00:00.000Z",
        "to": "9999-12-31T23:59:59.999Z",
    }


def test_the_bounds() -> None:
    assert parse_instant("from", "1970-01-01", 5) == 0
    assert parse_instant("to", "9999-12-31T23:59:59.999Z", 5) == LATEST_MS
    assert parse_instant("to", None, 5) == 5
