"""A fresh virtual environment built from the runtime lock file alone runs `r1cds --help`.

This is what a fresh clone and the docker image do: install the hashed pins (pip refuses any file whose
hash differs), then the project without resolving anything, so whatever was released since cannot change
what runs. It reaches the package registry (or pip's cache) for the pinned files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT_S = 600
# What the distribution is built from (as docker/Dockerfile copies it); built from a copy, so the build
# leaves nothing in the working tree.
SOURCES = ("pyproject.toml", "README.md", "plugin", "cds_hooks", "inference", "workers", "evals")


def run(*argv: str | Path, timeout: float = INSTALL_TIMEOUT_S) -> str:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )
    assert done.returncode == 0, (
        f"{argv} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


def pinned(text: str) -> set[tuple[str, str]]:
    """(name, version) of each pin whose environment marker holds for this interpreter (the venv's)."""
    found = set()
    for line in text.splitlines():
        if "==" in line and not line.startswith(("#", " ")):
            requirement = Requirement(line.rstrip(" \\"))
            if requirement.marker is None or requirement.marker.evaluate():
                (spec,) = requirement.specifier
                found.add((canonicalize_name(requirement.name), spec.version))
    return found


def test_a_venv_from_the_runtime_lock_runs_r1cds(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    pip = (python, "-m", "pip", "--disable-pip-version-check", "install", "--quiet")
    lock = ROOT / "requirements" / "runtime.txt"
    run(*pip, "--require-hashes", "-r", lock)
    run(*pip, "--no-deps", "--no-build-isolation", source)

    helped = run(venv / "bin" / "r1cds", "--help", timeout=60)
    for command in ("serve", "worker", "up", "fire", "replay"):
        assert command in helped
    # Exactly the locked versions, nothing resolved on top of them.
    installed = pinned(run(python, "-m", "pip", "freeze", "--all", "--exclude", "r1-cds", timeout=60))
    assert pinned(lock.read_text(encoding="utf-8")) <= installed
