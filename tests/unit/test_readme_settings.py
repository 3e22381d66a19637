"""The README's settings table names every setting, once, and nothing that is not one."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from cds_hooks.settings import Settings
from evals.settings import EvalSettings
from workers.settings import ReviewSettings

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"
VARIABLE = re.compile(r"`R1CDS_([A-Z0-9_]+)`")

# The API's, the AI review path's and the evaluation harness's; R1CDS_REDIS_URL and R1CDS_REDIS_TIMEOUT_S
# are fields of the first two.
SETTINGS = {
    name.upper()
    for name in (*Settings.model_fields, *ReviewSettings.model_fields, *EvalSettings.model_fields)
}


def _table_rows() -> list[str]:
    return [line for line in README.read_text(encoding="utf-8").splitlines() if line.startswith("| `R1CDS_")]


def test_settings_table_documents_every_setting_once() -> None:
    documented = Counter(name for row in _table_rows() for name in VARIABLE.findall(row.split("|")[1]))
    assert set(documented) == SETTINGS
    assert [name for name, rows in documented.items() if rows > 1] == []


def test_readme_names_no_setting_that_does_not_exist() -> None:
    assert set(VARIABLE.findall(README.read_text(encoding="utf-8"))) <= SETTINGS
