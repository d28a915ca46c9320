"""What a worker's drain waits for (``media.feature.setup_media``'s ``drain``; the SIGTERM that
starts it is tests/integration/test_media_drain.py): its viewers, while another worker
serves; nothing when no other worker serves (there is nowhere to move to).

The home and another worker in this test process, as in test_media_forward.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from support import TEST_SECRET, guest_cookie, poster
from test_media_forward import Pair, pair, published, relayed_by_home

from app import ConfigError, Settings
from live.feature import drain_key

__all__ = ["pair"]  # the fixture


async def test_a_worker_drains_while_another_serves_and_not_when_none_does(
    pair: Pair, peers: Any
) -> None:
    _, session_id = await published(pair, peers)
    async with asyncio.timeout(40):
        await relayed_by_home(pair, session_id)
        # a cap of one: the first viewer on the home, the second on the other worker
        on_home, on_edge = peers.viewer(), peers.viewer()
        for viewer in (on_home, on_edge):
            await viewer.connect(poster(pair.edge, f"/whep/{session_id}", None, guest_cookie()))
            await viewer.wait_for("video", decoded=30, within_s=15)
    assert (pair.media.viewer_total(), pair.edge_media.viewer_total()) == (1, 1)

    # the home serves: the other worker keeps its viewer, and its drain waits
    edge_drain = asyncio.create_task(pair.edge_app[drain_key]())
    await asyncio.sleep(1.0)
    assert not edge_drain.done()
    await on_edge.wait_for("video", decoded=on_edge.stats["video"].decoded + 15, within_s=2)

    # the home, now the only worker serving, holds a viewer but does not wait for it
    async with asyncio.timeout(2):
        await pair.home[drain_key]()
    assert pair.media.viewer_total() == 1

    # the other worker's viewer leaves: its drain is over
    async with pair.edge.delete(on_edge.resource.location) as res:
        assert res.status == 200, await res.text()
    async with asyncio.timeout(2):
        await edge_drain


def test_the_drain_time_is_a_setting() -> None:
    assert Settings.from_env({"LIVESHELF_SECRET": TEST_SECRET}).media_drain_s == 30
    env = {"LIVESHELF_SECRET": TEST_SECRET, "LIVESHELF_MEDIA_DRAIN_S": "0"}
    assert Settings.from_env(env).media_drain_s == 0  # no draining
    with pytest.raises(ConfigError, match="LIVESHELF_MEDIA_DRAIN_S: must be 0 or more"):
        Settings.from_env({**env, "LIVESHELF_MEDIA_DRAIN_S": "-1"})
