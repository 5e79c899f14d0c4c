"""The floors of ``shared/`` stay true: each layer imports only the layers below it.

Read from the source (no imports run), so a forbidden import fails here before it can
pull configuration, I/O or a cloud library into the pure core.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"

ALLOWED = {
    "domain": ("shared.domain", "shared.errors"),
    "ports": ("shared.domain", "shared.errors"),
    "services": (
        "shared.domain",
        "shared.ports",
        "shared.services",
        "shared.errors",
        "shared.logs",
        "shared.retry",
    ),
    "adapters": (
        "shared.domain",
        "shared.ports",
        "shared.adapters",
        "shared.errors",
        "shared.logs",
        "shared.retry",
    ),
}
CLOUD_LIBRARIES = ("google", "requests", "grpc", "functions_framework", "flask")


def _floor(path: Path) -> str | None:
    relative = path.relative_to(SHARED)
    if relative.parts[0] in {"domain", "services", "adapters"}:
        return relative.parts[0]
    return "ports" if relative.name == "ports.py" else None


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


MODULES = sorted(path for path in SHARED.rglob("*.py") if _floor(path) is not None)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SHARED)))
def test_a_module_imports_only_the_floors_below_it(path: Path) -> None:
    """No module of a floor imports settings, bootstrap or a floor above its own."""
    allowed = ALLOWED[_floor(path) or ""]
    ours = {name for name in _imports(path) if name.split(".")[0] == "shared"}
    assert [name for name in ours if not name.startswith(allowed)] == []


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if _floor(p) in {"domain", "ports", "services"}],
    ids=lambda p: str(p.relative_to(SHARED)),
)
def test_the_core_and_the_use_cases_import_no_cloud_library(path: Path) -> None:
    """Firestore, Pub/Sub and HTTP stay in the adapters."""
    cloud = [name for name in _imports(path) if name.split(".")[0] in CLOUD_LIBRARIES]
    assert cloud == []


def test_only_bootstrap_and_the_entry_points_read_settings() -> None:
    """``Settings`` is read in one wiring place; the package's other modules never see it."""
    readers = {
        str(path.relative_to(SHARED))
        for path in SHARED.rglob("*.py")
        if "shared.settings" in _imports(path)
    }
    assert readers == {"bootstrap.py"}
