"""The application's routing: the endpoints a crowd hits are matched first."""

from __future__ import annotations

from app import HOT_PATHS, Settings, create_app


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
