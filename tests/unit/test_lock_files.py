"""requirements/*.txt: the hashed lock files every install uses agree with pyproject.toml and with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# A pinned line (`name==version \`, maybe with a marker) followed by its `--hash=sha256:...` lines.
_PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)[^\n]*\n((?:\s+--hash=sha256:[0-9a-f]{64}[^\n]*\n)+)", re.M
)


def pins(name: str) -> dict[str, tuple[str, int]]:
    """Package → (version, number of hashes) of one lock file."""
    text = (LOCKS / f"{name}.txt").read_text(encoding="utf-8")
    found = {
        canonicalize_name(m.group(1)): (m.group(2), m.group(3).count("--hash=")) for m in _PIN.finditer(text)
    }
    unparsed = [
        line
        for line in text.splitlines()
        if line and not line.startswith((" ", "#")) and canonicalize_name(line.split("==")[0]) not in found
    ]
    assert unparsed == [], f"{name}.txt has lines that are not hashed pins: {unparsed}"
    return found


def requirements(*extras: str) -> list[Requirement]:
    listed = list(PROJECT["dependencies"])
    for extra in extras:
        listed += PROJECT["optional-dependencies"][extra]
    build = [
        line for line in (LOCKS / "build.in").read_text().splitlines() if line and not line.startswith("#")
    ]
    return [Requirement(r) for r in [*listed, *build]]


@pytest.mark.parametrize(
    ("lock", "extras"), [("runtime", ()), ("dev", ("dev",)), ("cpu", ("dev", "cpu"))], ids=str
)
def test_every_declared_dependency_is_pinned_within_its_range_and_hashed(
    lock: str, extras: tuple[str, ...]
) -> None:
    pinned = pins(lock)
    assert pinned, f"{lock}.txt pins nothing"
    for requirement in requirements(*extras):
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement} is declared but not in {lock}.txt: run `make lock`"
        version, hashes = pinned[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock}.txt pins {name}=={version}, outside {requirement.specifier}: run `make lock`"
        )
        assert hashes >= 1
    assert all(hashes >= 1 for _, hashes in pinned.values())


def test_the_locks_agree_and_nest() -> None:
    runtime, dev, cpu = pins("runtime"), pins("dev"), pins("cpu")
    assert set(runtime) <= set(dev) <= set(cpu)
    for name, (version, _) in dev.items():
        assert cpu[name][0] == version, f"{name}: dev.txt and cpu.txt pin different versions"
    for name, (version, _) in runtime.items():
        assert cpu[name][0] == version, f"{name}: runtime.txt and cpu.txt pin different versions"


def test_the_runtime_lock_has_no_test_or_cpu_tooling() -> None:
    runtime = pins("runtime")
    for tool in ("pytest", "mypy", "ruff", "playwright", "llama-cpp-python", "uv"):
        assert tool not in runtime, f"{tool} would be installed in the production image"


def test_the_healthchain_lock_pins_its_input_and_stays_out_of_the_product_venv() -> None:
    # healthchain.txt installs only into .venv-healthchain, the interoperability test's independent client.
    pinned = pins("healthchain")
    declared = [
        Requirement(line)
        for line in (LOCKS / "healthchain.in").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert declared
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement} is not in healthchain.txt: run `make lock`"
        assert requirement.specifier.contains(pinned[name][0], prereleases=True)
    assert all(hashes >= 1 for _, hashes in pinned.values())
    assert "healthchain" not in pins("cpu")


def test_the_standard_lock_is_the_development_set_with_every_artifact_hashed() -> None:
    """pylock.toml (PEP 751) is generated with dev.txt from the same resolution: the same packages at the same
    versions, each with hashed artifacts, so the two cannot drift apart unnoticed."""
    lock = tomllib.loads((ROOT / "pylock.toml").read_text(encoding="utf-8"))
    assert lock["lock-version"] == "1.0"
    packages = lock["packages"]
    locked = {canonicalize_name(p["name"]): p["version"] for p in packages}
    assert locked == {name: version for name, (version, _) in pins("dev").items()}
    for package in packages:
        artifacts = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert artifacts and all(a["hashes"].get("sha256") for a in artifacts), package["name"]
