"""``GET /api/admin/runtime`` (live/runtime.py) through the real app: admins read the
process's memory, descriptors, sockets, tasks and collector pauses; everyone else is
refused. And the pause recorder itself, fed by real collections."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from support import Api, admin

from app import Settings, create_app
from live.runtime import TYPES_KEPT, GcPauses
from live.schemas import common_passwords


class Marker:
    """A class of the test's own, counted by ``types=1``."""


FIELDS = {
    "pid",
    "rss_bytes",
    "threads",
    "open_fds",
    "sockets",
    "udp_sockets",
    "asyncio_tasks",
    "peer_connections",
    "gc",
}


async def test_an_admin_reads_the_runtime(api: Api) -> None:
    boss = await admin(api)
    body = await api.call("GET", "/api/admin/runtime", boss, expect=200)
    assert set(body) >= FIELDS and "objects" not in body
    assert body["rss_bytes"] > 10 * 2**20
    assert body["open_fds"] >= body["sockets"] >= 1  # the test client's connection at least
    assert 0 <= body["udp_sockets"] <= body["sockets"]
    assert body["asyncio_tasks"] >= 1 and body["peer_connections"] == 0
    generations = body["gc"]["generations"]
    assert len(generations) == 3 and len(body["gc"]["counts"]) == 3
    assert set(generations[0]) == {
        "collections",
        "total_ms",
        "longest_ms",
        "longest_cpu_ms",
        "collected",
        "uncollectable",
    }
    # the app's start-up made a full pass (``_tune_gc``) while the recorder was installed
    assert generations[2]["collections"] >= 1

    since = body["gc"]["now_s"]
    gc.collect(0)
    later = await api.call(
        "GET", f"/api/admin/runtime?since={since}&objects=1&collect=1", boss, expect=200
    )
    window = later["gc"]["window"]
    assert window["complete"] and window["collections"][0] >= 1
    assert window["collections"][2] >= 1  # collect=1
    assert later["collected"]["objects"] >= 0
    objects = later["objects"]
    assert objects["tracked"] > 0  # the start-up set is frozen, so not counted
    assert objects["RTCPeerConnection"] == objects["RTCIceTransport"] == 0
    assert "types" not in later


async def test_the_common_password_list_is_built_before_the_freeze(
    settings: Settings, aiohttp_client: Any
) -> None:
    """Built at first use, the list (30,000 entries, tracked) would sit in the young and
    middle generations and be scanned by their passes; the app builds it at start-up,
    before ``gc.freeze``, so no pass scans it (``gc.get_objects`` leaves out the frozen)."""
    common_passwords.cache_clear()
    await aiohttp_client(create_app(settings))
    built = common_passwords()
    assert not any(o is built for o in gc.get_objects())


async def test_types_lists_the_most_numerous_classes(api: Api) -> None:
    boss = await admin(api)
    held = [Marker() for _ in range(5000)]  # tracked (instances of a class with a dict)
    body = await api.call("GET", "/api/admin/runtime?types=1", boss, expect=200)
    types = body["types"]
    assert 0 < len(types) <= TYPES_KEPT
    assert types[f"{__name__}.Marker"] >= len(held)
    counts = list(types.values())
    assert counts == sorted(counts, reverse=True)


@pytest.mark.parametrize("role", ["viewer", "host", "brand"])
async def test_other_roles_are_refused(api: Api, role: str) -> None:
    someone = await api.signup(role)
    body = await api.call("GET", "/api/admin/runtime", someone, expect=403)
    assert body["error"]["code"] == "role_not_allowed"


async def test_a_guest_is_refused(api: Api) -> None:
    body = await api.call("GET", "/api/admin/runtime", expect=401)
    assert body["error"]["code"] == "sign_in_required"


async def test_bad_queries_are_refused(api: Api) -> None:
    boss = await admin(api)
    for query in ("since=soon", "since=nan", "objects=yes", "types=2"):
        body = await api.call("GET", f"/api/admin/runtime?{query}", boss, expect=400)
        assert body["error"]["code"] == "invalid_query"


def test_the_recorder_counts_real_passes_in_constant_memory() -> None:
    pauses = GcPauses(ring=4)
    start = pauses.now()
    pauses.install()
    try:
        for _ in range(10):
            gc.collect(1)
    finally:
        pauses.uninstall()
    assert pauses.on_gc not in gc.callbacks
    assert pauses.collections[1] == 10 and pauses.longest_s[1] > 0
    totals: dict[str, Any] = pauses.totals()
    assert totals["generations"][1]["collections"] == 10
    window = pauses.window(start)
    assert window["collections"][1] == 4  # the ring holds the last four
    assert window["complete"] is False
    assert pauses.window(pauses.now())["collections"] == [0, 0, 0]


def test_a_pass_taken_off_the_cpu_shows_its_own_cost_apart() -> None:
    """Wall time counts the time the kernel gave the CPU to others mid-pass; the
    pass's CPU time does not."""
    wall = iter([0.0, 0.030, 1.0, 1.004, 2.0])  # two passes: 30 ms, then 4 ms; a reading
    cpu = iter([5.0, 5.002, 6.0, 6.004])  # 2 ms of its own, then all 4 ms
    pauses = GcPauses(clock=lambda: next(wall), cpu_clock=lambda: next(cpu))
    for _ in range(2):
        pauses.on_gc("start", {"generation": 0})
        pauses.on_gc("stop", {"generation": 0, "collected": 0, "uncollectable": 0})
    totals: dict[str, Any] = pauses.totals()["generations"][0]
    assert totals["longest_ms"] == 30.0 and totals["longest_cpu_ms"] == 4.0
    window = pauses.window(-1.0)
    assert window["longest_ms"][0] == 30.0 and window["longest_cpu_ms"][0] == 4.0
