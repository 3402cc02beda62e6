"""The layers import one way: the projector side never imports the API, and the API reads
read models through their definitions (bloghub.readmodels), never through a projector
module, so either can change or be deployed without the other."""

from __future__ import annotations

import ast
from pathlib import Path

import bloghub.readmodels

SRC = Path(bloghub.readmodels.__file__).parent


def _imports(package: str) -> dict[str, set[str]]:
    """Every bloghub module each module of ``package`` imports."""
    found: dict[str, set[str]] = {}
    for path in sorted((SRC / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[str(path.relative_to(SRC))] = {n for n in names if n.startswith("bloghub.")}
    return found


def test_nothing_below_the_api_imports_it() -> None:
    for package in ("projections", "commands", "events", "adapters", "auth"):
        for module, names in _imports(package).items():
            assert not [n for n in names if n.startswith("bloghub.api")], module


def test_the_api_imports_no_projector() -> None:
    # The heartbeat is the projectors' published state (who runs, what it waits for),
    # which readiness reports; it is not a projector.
    allowed = {"bloghub.projections.heartbeat"}
    for module, names in _imports("api").items():
        wrong = {n for n in names if n.startswith("bloghub.projections")} - allowed
        assert not wrong, (module, wrong)
