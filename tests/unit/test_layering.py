"""Dependency direction (DESIGN §1): the core imports no edge, web, queue, HTTP-client or Redis code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_CORE = {
    "fastapi",
    "starlette",
    "uvicorn",
    "celery",
    "kombu",
    "httpx",
    "requests",
    "aiohttp",
    "redis",
    "openai",
    "sglang",
    "cds_hooks",
    "workers",
    "inference",
}
# Edges may depend on the core, never on each other: each is replaceable on its own.
EDGES = {
    "cds_hooks": {"workers", "inference"},
    "inference": {"cds_hooks", "workers"},
    "workers": {"cds_hooks"},
}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_imports_no_edge() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN_IN_CORE)
        for path in (ROOT / "plugin").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


# The console command wires the edges together (replay runs inference's prompt builder and parser; serve,
# worker and up assemble the API, the review path and the worker in cds_hooks/stack.py): those two modules
# are the composition root and the only ones allowed to do so.
COMPOSITION_ROOTS = {ROOT / "cds_hooks" / "cli.py", ROOT / "cds_hooks" / "stack.py"}


def test_edges_do_not_import_each_other() -> None:
    offenders = {}
    for edge, banned in EDGES.items():
        for path in (ROOT / edge).rglob("*.py"):
            if path in COMPOSITION_ROOTS:
                continue
            found = imported_roots(path) & banned
            if found:
                offenders[str(path.relative_to(ROOT))] = sorted(found)
    assert offenders == {}


def test_the_check_sees_imports() -> None:
    """Guard against a vacuous pass: the scanner must find the core's own imports."""
    assert "plugin" in imported_roots(ROOT / "plugin" / "catalog.py")
