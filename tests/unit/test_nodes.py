"""Several nodes, piece by piece: media URL tokens (media/tokens.py), which node a new
viewer goes to and the node board on real Redis (media/nodes.py), and the names that
say which process holds a resource or pulls a session (media/worker_links.py,
media/pull.py)."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis

from live.errors import Unauthenticated
from media.nodes import NodeBoard, NodeChooser, NodeLoad
from media.pull import MediaProcess
from media.tokens import MediaTokens
from media.worker_links import resource_owner, resource_prefix

SECRET = "s" * 40


def refused(tokens: MediaTokens, token: str, session_id: int, node: str) -> str:
    with pytest.raises(Unauthenticated) as caught:
        tokens.check(token, session_id, node)
    return caught.value.code


def test_a_token_grants_one_session_at_one_node_until_it_expires() -> None:
    now = [1_000_000.0]
    tokens = MediaTokens(SECRET, ttl_s=60, now=lambda: now[0])
    token, expires = tokens.issue(7, "b", 42)
    assert expires == 1_000_060
    grant = tokens.check(token, 7, "b")
    assert (grant.session_id, grant.node, grant.user_id) == (7, "b", 42)
    assert tokens.check(tokens.issue(7, "b", None)[0], 7, "b").user_id is None
    # a guest's id travels in the token (its cookie is not sent to another origin)
    guest = tokens.check(tokens.issue(7, "b", None, "Ab_-0123456789xy")[0], 7, "b")
    assert (guest.user_id, guest.guest_id) == (None, "Ab_-0123456789xy")
    assert grant.guest_id is None
    with pytest.raises(ValueError):
        tokens.issue(7, "b", None, "not.an.id")
    assert refused(tokens, token, 8, "b") == "invalid_media_token"
    assert refused(tokens, token, 7, "a") == "invalid_media_token"
    now[0] += 61
    assert refused(tokens, token, 7, "b") == "media_token_expired"


def test_a_forged_or_foreign_token_is_refused() -> None:
    tokens = MediaTokens(SECRET)
    token, _ = tokens.issue(7, "b", 42)
    body, _, signature = token.rpartition(".")
    as_someone_else = body.replace(".42.", ".1.") + "." + signature
    longer = body.rsplit(".", 1)[0] + ".99999999999." + signature
    other_secret = MediaTokens("t" * 40).issue(7, "b", 42)[0]
    as_a_guest = body.replace(".-.", ".Ab_-0123456789xy.") + "." + signature
    bad_tokens = (as_someone_else, as_a_guest, longer, other_secret, "", "7.b.0", "a.b.c.d.e.f.g")
    for bad in (*bad_tokens, token + "x"):
        assert refused(tokens, bad, 7, "b") == "invalid_media_token", bad


def test_resource_ids_name_their_node_and_worker() -> None:
    assert resource_owner(resource_prefix(3) + "abc_-XYZ") == ("", 3)
    assert resource_owner(resource_prefix(0, "node-b") + "w1abc") == ("node-b", 0)
    assert resource_owner(resource_prefix(12, "w1") + "q") == ("w1", 12)
    for nothing in ("abc", "w.abc", "wx.abc", "B.w1.abc", ".w1.abc", "w1abc"):
        assert resource_owner(nothing) is None, nothing


def test_a_media_process_travels_in_a_header() -> None:
    process = MediaProcess("b", 1, 4242)
    assert MediaProcess.from_header(process.header()) == process
    assert MediaProcess.from_header(":0:7") == MediaProcess("", 0, 7)
    for bad in ("1:2", "b:x:1", "b:1:", "a:b:1:2", "b:1:" + "9" * 80):
        assert MediaProcess.from_header(bad) is None, bad


class Board:
    """What ``NodeChooser`` reads, held in memory."""

    def __init__(self, *loads: NodeLoad) -> None:
        self.records = {load.node: load for load in loads}

    async def loads(self) -> dict[str, NodeLoad]:
        return dict(self.records)


def node(name: str, room: int, sessions: tuple[int, ...] = (), **more: Any) -> NodeLoad:
    fields: dict[str, Any] = {"state": "serving", "viewers": 0, **more}
    return NodeLoad(
        node=name,
        public_url=f"http://{name}.example",
        workers=(f"http://{name}.internal:9000",),
        pid=1,
        room=room,
        sessions=sessions,
        **fields,
    )


def chooser(board: Board, me: str = "a") -> NodeChooser:
    return NodeChooser(me, board)  # type: ignore[arg-type]


async def test_this_node_while_it_has_room() -> None:
    board = Board(node("a", 1), node("b", 50, (7,)))
    assert (await chooser(board).choose(7)).node == "a"  # type: ignore[union-attr]


async def test_else_a_node_relaying_the_show_else_the_roomiest() -> None:
    board = Board(node("a", 0, (7,)), node("b", 3, (7,)), node("c", 40))
    assert (await chooser(board).choose(7)).node == "b"  # type: ignore[union-attr]
    assert (await chooser(board).choose(8)).node == "c"  # type: ignore[union-attr]
    # excluded (the node redirecting), full or draining: never
    board = Board(node("a", 5), node("b", 0, (7,)), node("c", 9, state="draining"))
    assert await chooser(board).choose(7, exclude="a") is None


async def test_a_burst_spreads_over_the_nodes_between_reports() -> None:
    board = Board(node("a", 0), node("b", 2, (7,)), node("c", 1, (7,)))
    pick = chooser(board)
    chosen = [await pick.choose(7) for _ in range(4)]
    assert sorted(c.node for c in chosen[:3] if c) == ["b", "b", "c"] and chosen[3] is None
    # a report made a second after the choices counts them: the reservations go
    board.records["b"] = node("b", 1, (7,), at=time.time() + 2)
    assert (await pick.choose(7)).node == "b"  # type: ignore[union-attr]


@pytest.fixture
async def redis() -> Any:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs REDIS_URL (see .ci/run)")
    client = Redis.from_url(url)
    yield client
    await client.aclose()


async def test_the_node_board_keeps_fresh_nodes_and_each_sessions_origin(redis: Redis) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    board = NodeBoard(redis, prefix, stale_s=5.0)
    await board.report(node("a", 3, (7,)))
    await board.report(node("b", 1, at=time.time() - 6))  # stale: a dead node's
    await redis.hset(f"{prefix}:media:nodes", "c", "not json")
    loads = await board.loads()
    assert list(loads) == ["a"] and loads["a"].sessions == (7,) and loads["a"].room == 3
    await board.withdraw("a")
    assert await board.loads() == {}

    origin = MediaProcess("a", 0, 4242)
    assert await board.origin(7) is None
    await board.set_origin(7, origin)
    await redis.set(f"{prefix}:media:origin:9", "garbage")
    assert await board.origin(7) == origin
    assert await board.origins([7, 8, 9]) == {7: origin}
    assert 0 < await redis.ttl(f"{prefix}:media:origin:7") <= 86_400
    await board.forget_origin(7)
    assert await board.origin(7) is None
    await redis.delete(f"{prefix}:media:nodes", f"{prefix}:media:origin:9")
