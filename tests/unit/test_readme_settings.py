"""The README's settings table names every setting and nothing that is not one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cds_hooks.settings import Settings

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"


def test_settings_table_matches_the_settings_model() -> None:
    documented = set(re.findall(r"`R1CDS_([A-Z0-9_]+)`", README.read_text(encoding="utf-8")))
    assert documented == {name.upper() for name in Settings.model_fields}
