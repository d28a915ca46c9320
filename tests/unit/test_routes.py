"""The application's hot path: the endpoints a crowd hits are matched first, and the
cyclic garbage collector does not run every other request."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from app import HOT_PATHS, Settings, create_app
from live.settings import GC_YOUNG_THRESHOLD


def test_hot_paths_are_real_routes_tried_before_their_neighbours() -> None:
    app = create_app(Settings.from_env({}, demo=True))
    # aiohttp matches the routes that share a first segment one by one, in the order
    # they were added; ``resources()`` gives that order.
    paths = [resource.canonical for resource in app.router.resources()]
    for path in HOT_PATHS:
        assert path in paths, f"{path} is in HOT_PATHS but no route has it"
        prefix = "/" + path.split("/")[1] + "/" + path.split("/")[2]
        neighbours = [p for p in paths if p.startswith(prefix)]
        assert neighbours.index(path) < len(HOT_PATHS), neighbours[: len(HOT_PATHS) + 1]


async def test_a_started_app_lets_the_young_generation_grow_before_collecting(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """The cyclic collector's youngest generation is collected every
    ``GC_YOUNG_THRESHOLD`` allocations, not CPython's 700 (a pass every other
    request), once the app has started; the older generations keep their thresholds."""
    before = gc.get_threshold()
    gc.set_threshold(700, before[1], before[2])
    try:
        settings = Settings.from_env({}, demo=True)
        settings = settings.model_copy(
            update={
                "database_url": f"sqlite+aiosqlite:///{tmp_path}/gc.db",
                "demo_publisher": False,
            }
        )
        await aiohttp_client(create_app(settings))
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, before[1], before[2])
    finally:
        gc.set_threshold(*before)
