"""Likes are added several times a second through a whole show: adding them must not
feed the cyclic collector (built per call, the upsert left cyclic garbage each time;
issue 27's collector pauses)."""

from __future__ import annotations

import gc

from support import Api

from app import db_key
from chat.repository import ChatRepository


async def test_adding_likes_leaves_no_cyclic_garbage(api: Api) -> None:
    host = await api.signup("host")
    session_id = int((await api.live_session(host))["id"])
    repo = ChatRepository(api.client.app[db_key])
    assert await repo.add_likes(session_id, 2) == 2  # warm: built and compiled
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            await repo.add_likes(session_id, 3)
        garbage = gc.collect()
    finally:
        gc.enable()
    assert await repo.add_likes(session_id, 0) == 62
    assert garbage < 20, f"20 likes left {garbage} objects for the cyclic collector"
