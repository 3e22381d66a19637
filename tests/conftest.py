"""Suite-wide set-up: nothing a test starts writes outside the suite's own temporary directories."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import suite_phi


@pytest.fixture(scope="session", autouse=True)
def private_data_home() -> Iterator[None]:
    # The audit store defaults to $XDG_DATA_HOME/r1cds/audit.sqlite3; servers and workers the tests start
    # (in process or as children, which inherit the environment) must not write to the user's home.
    saved = os.environ.get("XDG_DATA_HOME")
    with tempfile.TemporaryDirectory(prefix="r1cds-test-data-") as directory:
        os.environ["XDG_DATA_HOME"] = directory
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("XDG_DATA_HOME", None)
            else:
                os.environ["XDG_DATA_HOME"] = saved


def pytest_configure(config: pytest.Config) -> None:
    # One folder per run for the PHI scan (tests.support.suite_phi); child processes inherit the path.
    if suite_phi.ENV not in os.environ:
        os.environ[suite_phi.ENV] = tempfile.mkdtemp(prefix="r1cds-test-artifacts-")
        _CREATED.append(os.environ[suite_phi.ENV])


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # What each test's in-process servers and commands logged, and what they wrote on stderr.
    suite_phi.keep_log("in-process.log", report.caplog)
    suite_phi.keep_log("stderr.log", report.capstderr)


_PHI_SUMMARY: list[str] = []
_CREATED: list[str] = []


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    folder = suite_phi.artifact_dir()
    if folder is None or not folder.is_dir():
        return
    result = suite_phi.scan(folder)
    _PHI_SUMMARY.append(
        f"PHI scan: {result.files} log/export file(s), {result.size // 1024} KiB, against "
        f"{result.patients} fixture patients: {'no hits' if not result.hits else 'HITS'}"
    )
    for name, found in result.hits.items():
        _PHI_SUMMARY.append(f"  {name}: {', '.join(found[:10])}")
    if result.hits:
        _PHI_SUMMARY.append(f"  (kept for inspection: {folder})")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif str(folder) in _CREATED:
        shutil.rmtree(folder, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in _PHI_SUMMARY:
        terminalreporter.write_line(line)
