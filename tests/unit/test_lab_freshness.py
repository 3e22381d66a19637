"""Lab validity windows (knowledge/lab_validity.json): well formed, cited, and read by every rule that uses a lab."""

from __future__ import annotations

from typing import Any

import pytest

from plugin.context.codes import ANALYTES
from plugin.knowledge import load_knowledge_base
from plugin.rules import catalog
from plugin.rules.freshness import LabWindow, LabWindowError, lab_windows, parse_windows, validity_version

pytestmark = pytest.mark.unit

# Every lab a rule decides on (the threshold rules and the care gaps); each needs a window.
RULE_LABS = ("egfr", "potassium", "inr", "hba1c", "sodium", "magnesium")


def test_every_window_names_a_known_analyte_and_cites_an_entry_that_exists() -> None:
    knowledge = load_knowledge_base()
    assert validity_version()
    for analyte, window in lab_windows().items():
        assert analyte in ANALYTES
        assert knowledge.get(window.basis) is not None, window.basis
        assert window.rationale.strip()


def test_every_lab_a_rule_reads_has_a_window() -> None:
    assert set(RULE_LABS) <= set(lab_windows())
    assert {catalog.EGFR_RECHECK.analyte, catalog.POTASSIUM_RECHECK.analyte} <= set(lab_windows())


@pytest.mark.parametrize(
    ("days_ago", "current"), [(None, False), (-1, False), (0, True), (89, True), (90, True), (91, False)]
)
def test_a_value_is_current_up_to_and_including_its_last_day(days_ago: int | None, current: bool) -> None:
    assert LabWindow("potassium", 90, "kb.potassium-monitoring-raas", "why").current(days_ago) is current


def test_the_windows_keep_the_intervals_the_rules_used_before() -> None:
    # INR every 4 weeks at the longest (the warfarin label, as kb.warfarin-inr-monitoring says) and HbA1c
    # twice a year: data, held to the entries they cite.
    assert lab_windows()["inr"].max_age_days == 28
    assert lab_windows()["hba1c"].max_age_days == 183
    assert lab_windows()["egfr"].max_age_days == 365


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {"windows": []},
        {"version": "1", "windows": [{"analyte": "egfr"}]},
        {
            "version": "1",
            "windows": [{"analyte": "egfr", "max_age_days": "x", "basis": "b", "rationale": "r"}],
        },
        {"version": "1", "windows": [{"analyte": "egfr", "max_age_days": 0, "basis": "b", "rationale": "r"}]},
        {
            "version": "1",
            "windows": [
                {"analyte": "egfr", "max_age_days": 5, "basis": "b", "rationale": "r"},
                {"analyte": "egfr", "max_age_days": 6, "basis": "b", "rationale": "r"},
            ],
        },
    ],
)
def test_malformed_windows_are_refused(raw: Any) -> None:
    with pytest.raises(LabWindowError):
        parse_windows(raw)
