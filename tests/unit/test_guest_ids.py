"""Signed guest ids and the person keys viewers are counted by (``live.guests``), and
the audience recorder counting people, not WHEP connections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from live.audience import AudienceRecorder, AudienceSources
from live.clock import ManualClock
from live.guests import GuestIds, address_group

SECRET = "guest-test-secret-0123456789abcdef"


def test_an_issued_id_verifies_and_a_tampered_or_foreign_one_does_not() -> None:
    guests = GuestIds(SECRET)
    cookie = guests.issue()
    guest_id, tag = cookie.split(".")
    assert guests.verify(cookie) == guest_id
    assert guests.issue() != cookie  # random
    other_id = ("B" if guest_id[0] != "B" else "C") + guest_id[1:]
    forged = [
        f"{other_id}.{tag}",  # another id, the same signature
        f"{guest_id}.{tag[:-1]}{'A' if tag[-1] != 'A' else 'B'}",  # a changed signature
        GuestIds(SECRET + "-other").issue(),  # signed with another secret
        f"{guest_id}.",
        guest_id,
        f"{cookie}.x",
        f"{cookie} ",
        "é" * 39,
        "",
        None,
    ]
    for value in forged:
        assert guests.verify(value) is None, value


def test_people_are_users_then_signed_guests_then_addresses() -> None:
    guests = GuestIds(SECRET)
    cookie = guests.issue()
    guest_id = guests.verify(cookie)
    assert guests.person(7, cookie, "10.0.0.1") == "u:7"  # signed in: the cookie is ignored
    assert guests.person(None, cookie, "10.0.0.1") == f"g:{guest_id}"
    assert guests.person(None, cookie, "10.0.0.2") == f"g:{guest_id}"  # wherever from
    by_address = guests.person(None, None, "10.0.0.1")
    assert by_address.startswith("a:") and "10.0.0.1" not in by_address  # a digest
    assert guests.person(None, "forged.cookie", "10.0.0.1") == by_address
    assert guests.person(None, None, "10.0.0.2") != by_address
    assert GuestIds(SECRET + "-other").person(None, None, "10.0.0.1") != by_address
    assert len(by_address) <= 64 and len(f"g:{guest_id}") <= 64  # fits the column


def test_an_ipv6_host_counts_by_its_64_and_a_mapped_ipv4_as_the_ipv4() -> None:
    assert address_group("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_group("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_group("::ffff:10.0.0.1") == "10.0.0.1"
    assert address_group("10.0.0.1") == "10.0.0.1"
    assert address_group("") == ""
    guests = GuestIds(SECRET)
    assert guests.person(None, None, "2001:db8:1:2::1") == guests.person(
        None, None, "2001:db8:1:2:ffff::2"
    )


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32"):
        GuestIds("short")


class RecordingDatabase:
    """Records every row the recorder writes."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, dict[str, Any]]] = []

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        yield self

    def get_bind(self) -> Any:  # what ``upsert`` asks for the dialect
        return SimpleNamespace(dialect=SimpleNamespace(name="sqlite"))

    async def execute(self, statement: Any, rows: Any = None) -> None:
        for row in rows or [{}]:
            self.rows.append((statement.table.name, row))


async def test_joins_and_leaves_count_a_persons_first_and_last_viewer() -> None:
    db = RecordingDatabase()
    sources = AudienceSources(
        media_sessions=lambda: [7],
        media_viewers=lambda _sid: 0,
        socket_rooms=lambda: [],
        sockets=lambda _sid: 0,
    )
    recorder = AudienceRecorder(db, ManualClock(), sources, process="p", interval_s=0)  # type: ignore[arg-type]

    async def curve() -> tuple[int, int]:
        db.rows.clear()
        await recorder.sample()
        (second,) = [row for table, row in db.rows if table == "audience_seconds"]
        return second["joins"], second["leaves"]

    for k in range(20):  # one address's 20 WHEP connections
        recorder.viewer_joined(7, f"a{k}", None, "a:same")
    recorder.viewer_joined(7, "g1", None, "g:one")
    recorder.viewer_joined(7, "old", None)  # no person known: counts alone
    assert await curve() == (3, 0)
    intervals = [row for table, row in db.rows if table == "watch_intervals"]
    assert len(intervals) == 22  # exact per connection
    assert {row["viewer"] for row in intervals} == {"a:same", "g:one", None}

    for k in range(19):
        recorder.viewer_left(7, f"a{k}", "deleted")
    assert await curve() == (0, 0)  # the address still watches on one
    recorder.viewer_identified(7, "g1", 5)  # the guest signed in: still one person
    recorder.viewer_joined(7, "u5-tab2", 5, "u:5")  # ... who opens a second tab
    assert await curve() == (0, 0)
    for resource in ("a19", "g1", "old"):
        recorder.viewer_left(7, resource, "deleted")
    assert await curve() == (0, 2)
    recorder.viewer_left(7, "u5-tab2", "deleted")
    assert await curve() == (0, 1)
