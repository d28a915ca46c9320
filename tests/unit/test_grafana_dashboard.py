"""``deploy/grafana-dashboard.json`` names only metrics liveshelf exports, and its
queries are well-formed enough for Grafana to load (valid JSON, one target per query)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from support import backend_settings

from app import create_app, metrics_key

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana-dashboard.json"
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def exported(tmp_path: Path) -> set[str]:
    """Every sample name the app's ``/metrics`` can carry."""
    # with Redis configured (nothing connects before start-up): its metrics too
    settings = backend_settings("sqlite-memory", tmp_path).model_copy(
        update={"redis_url": "redis://127.0.0.1:1"}
    )
    app = create_app(settings)
    metrics = app[metrics_key]
    metrics.requests.observe("GET", None, 200, 0.001)
    names = set()
    for family in metrics.families():
        for suffix in SUFFIXES[family.type]:
            names.add(family.name + suffix)
    return names | {"liveshelf_metrics_worker_up"}  # added by a multi-worker scrape


def test_every_metric_the_dashboard_names_exists(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(queries) >= 12
    used = {name for q in queries for name in re.findall(r"liveshelf_[a-z_]+", q)}
    missing = used - exported(tmp_path)
    assert not missing, f"the dashboard names metrics nobody exports: {sorted(missing)}"
    # the main families are on the board
    for family in ("http_request_duration_seconds", "whep_viewers", "orders_refused_total"):
        assert any(family in q for q in queries), family
