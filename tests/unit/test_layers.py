"""The package rule (DESIGN.md, ``live/feature.py``): features never import each other,
and ``live/`` imports no feature; ``app.py`` alone connects them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ("media", "shelf", "chat", "market")


def imported_packages(package: str) -> dict[str, set[str]]:
    """Each module of ``package`` -> the top-level packages it imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize("package", ["live", *FEATURES])
def test_a_package_imports_no_other_feature(package: str) -> None:
    others = set(FEATURES) - {package}
    wrong = {
        module: sorted(names & others)
        for module, names in imported_packages(package).items()
        if names & others
    }
    assert wrong == {}
