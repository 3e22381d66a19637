"""Suite-wide set-up: nothing a test starts writes outside the suite's own temporary directories."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest


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
