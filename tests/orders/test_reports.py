"""Commission and sales reports: figures, JSON = CSV, access."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

from orders_support import open_shop, order
from support import Api

from app import accounts_key
from live.models import Role
from shelf.reports import BRAND_COLUMNS, HOST_COLUMNS

ROOT = Path(__file__).resolve().parents[2]


def parse_csv(text: str) -> list[dict[str, Any]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return [{k: (int(v) if v.lstrip("-").isdigit() else v) for k, v in r.items()} for r in rows]


async def test_host_report_figures_and_csv(api: Api) -> None:
    shop = await open_shop(
        api, stock=20, price_minor=10_000, commission_bps=1000, flat_fee_minor=500
    )
    buyer = await api.signup("viewer")
    assert (await order(api, shop, buyer, quantity=2))[0] == 201  # 20,000
    _, second = await order(api, shop, buyer, quantity=1)  # 10,000
    await api.call("POST", f"/api/orders/{second['id']}/refund", shop.brand, json={}, expect=200)

    report = await api.call("GET", f"/api/hosts/{shop.host.id}/commission", shop.host, expect=200)
    (row,) = report["rows"]
    assert row["session_id"] == shop.session_id
    assert row["orders"] == 2
    assert row["units"] == 3
    assert row["gmv_minor"] == 30_000
    assert row["refunded_units"] == 1
    assert row["refunds_minor"] == 10_000
    # 10% of the 20,000 kept, plus the flat fee; all still in the 7-day hold
    assert row["commission_pending_minor"] == 2_000 + 500
    assert row["commission_payable_minor"] == 0
    assert row["commission_total_minor"] == 2_500
    assert report["totals"] == [{k: row[k] for k in ["currency", *HOST_COLUMNS[3:]]}]

    res = await api.client.get(
        f"/api/hosts/{shop.host.id}/commission?format=csv", headers=shop.host.headers
    )
    assert res.status == 200
    assert res.content_type == "text/csv"
    rows = parse_csv(await res.text())
    # the JSON's figures, then each money column as an amount (gmv_minor -> gmv)
    assert [{k: r[k] for k in HOST_COLUMNS} for r in rows] == [{k: row[k] for k in HOST_COLUMNS}]
    assert (rows[0]["gmv"], rows[0]["commission_total"]) == ("300.00", "25.00")


async def test_brand_report_and_csv_agree(api: Api) -> None:
    shop = await open_shop(api, stock=20, price_minor=999, commission_bps=1500)
    buyers = [await api.signup("viewer") for _ in range(3)]
    for i, buyer in enumerate(buyers):
        assert (await order(api, shop, buyer, quantity=i + 1))[0] == 201
    report = await api.call("GET", f"/api/brands/{shop.brand.id}/sales", shop.brand, expect=200)
    (row,) = report["rows"]
    assert row["host_id"] == shop.host.id
    assert row["units"] == 6
    assert row["gmv_minor"] == 6 * 999
    commission = sum(999 * q * 1500 // 10_000 for q in (1, 2, 3))
    platform = sum(999 * q * 500 // 10_000 for q in (1, 2, 3))
    assert row["host_commission_minor"] == commission
    assert row["platform_fees_minor"] == platform
    assert row["brand_net_minor"] == 6 * 999 - commission - platform
    res = await api.client.get(
        f"/api/brands/{shop.brand.id}/sales?format=csv", headers=shop.brand.headers
    )
    (csv_row,) = parse_csv(await res.text())
    assert {k: csv_row[k] for k in BRAND_COLUMNS} == {k: row[k] for k in BRAND_COLUMNS}
    assert csv_row["gmv"] == f"{6 * 999 / 100:.2f}"  # and the amounts beside minor units


async def test_date_range(api: Api) -> None:
    shop = await open_shop(api, stock=5)
    buyer = await api.signup("viewer")
    await order(api, shop, buyer)
    path = f"/api/hosts/{shop.host.id}/commission"
    empty = await api.call("GET", f"{path}?from=2000-01-01&to=2000-02-01", shop.host, expect=200)
    assert empty["rows"] == [] and empty["totals"] == []
    full = await api.call("GET", f"{path}?from=2000-01-01T00:00:00Z", shop.host, expect=200)
    assert len(full["rows"]) == 1
    for query in (
        "from=yesterday",
        "to=2026-01-01T00:00:00",
        "from=2026-02-01&to=2026-01-01",
        "format=xml",
    ):
        res = await api.call("GET", f"{path}?{query}", shop.host, expect=400)
        assert res["error"]["code"] == "invalid_query"


async def test_report_access(api: Api) -> None:
    shop = await open_shop(api, stock=5)
    other_host = await api.signup("host")
    other_brand = await api.signup("brand")
    viewer = await api.signup("viewer")
    host_path = f"/api/hosts/{shop.host.id}/commission"
    brand_path = f"/api/brands/{shop.brand.id}/sales"
    for account in (other_host, other_brand, viewer, shop.brand):
        res = await api.call("GET", host_path, account, expect=403)
        assert res["error"]["code"] == "not_your_report"
    for account in (other_brand, other_host, viewer, shop.host):
        await api.call("GET", brand_path, account, expect=403)
    await api.call("GET", host_path, expect=401)
    await api.client.app[accounts_key].create("auditor", "admin-password", Role.ADMIN)
    login = await api.call(
        "POST", "/api/auth/login", json={"username": "auditor", "password": "admin-password"}
    )
    headers = {"Authorization": f"Bearer {login['token']}"}
    await api.call("GET", host_path, headers=headers, expect=200)
    await api.call("GET", brand_path, headers=headers, expect=200)


async def test_report_command(api: Api, settings: Any) -> None:
    import asyncio
    import os
    import sys

    shop = await open_shop(api, stock=20, price_minor=1000, commission_bps=2000)
    buyer = await api.signup("viewer")
    assert (await order(api, shop, buyer, quantity=3))[0] == 201
    env = {
        **os.environ,
        "LIVESHELF_SECRET": "x" * 40,
        "LIVESHELF_LIMITS": "off",
        "LIVESHELF_DATABASE_URL": settings.database_url,
        "LIVESHELF_DATABASE_SCHEMA": settings.database_schema or "",
    }
    root = ROOT

    async def run(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "app.py",
            "report",
            *args,
            cwd=root,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, _ = await run("--host", shop.host.username, "--csv")
    assert code == 0
    (row,) = parse_csv(out)
    assert row["gmv_minor"] == 3000
    assert row["commission_pending_minor"] == 600
    code, out, _ = await run("--host", shop.host.username, "--from", "2000-01-01")
    assert code == 0
    assert "TOTAL" in out and "3000" in out and "600" in out
    code, _, err = await run("--host", "nobody-here")
    assert code == 2 and "user_not_found" in err


async def test_host_report_narrowed_to_one_session(api: Api) -> None:
    """The studio's live numbers: ``session_id`` keeps only that session's rows."""
    shop = await open_shop(api, stock=20, price_minor=1_000, commission_bps=1000)
    buyer = await api.signup("viewer")
    assert (await order(api, shop, buyer, quantity=1))[0] == 201
    second = await api.live_session(shop.host, "Second show")
    pid = shop.products[0]["id"]
    await api.call(
        "POST",
        f"/api/sessions/{second['id']}/shelf",
        shop.host,
        json={"product_id": pid},
        expect=201,
    )
    assert (await order(api, replace(shop, session_id=second["id"]), buyer, quantity=3))[0] == 201

    base = f"/api/hosts/{shop.host.id}/commission"
    everything = await api.call("GET", base, shop.host, expect=200)
    assert {r["session_id"] for r in everything["rows"]} == {shop.session_id, second["id"]}
    one = await api.call("GET", f"{base}?session_id={second['id']}", shop.host, expect=200)
    (row,) = one["rows"]
    assert (row["session_id"], row["units"], row["gmv_minor"]) == (second["id"], 3, 3_000)
    assert row["commission_total_minor"] == 300
    assert one["totals"][0]["gmv_minor"] == 3_000
    bad = await api.call("GET", f"{base}?session_id=x", shop.host, expect=400)
    assert bad["error"]["code"] == "invalid_query"
