"""How old a lab value may be for a rule to read it as current: the versioned windows in knowledge/lab_validity.json."""

# A value within its window (days_ago <= max_age_days) is current; an older or undated one is stale, and a
# stale value is unknown, never absent and never today's: the rules that need it ask for a recheck
# (plugin.rules.catalog, rule.egfr-recheck and rule.potassium-recheck) and the threshold rules do not
# decide on it. An analyte without a window is read as current whatever its age (none of the rules' own
# labs: tests/unit/test_lab_freshness.py checks that every lab a rule reads has one).

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from plugin.errors import PluginError
from plugin.packaged import read_knowledge_json

__all__ = [
    "LabWindow",
    "LabWindowError",
    "MonitoringInterval",
    "lab_windows",
    "monitoring_interval",
    "parse_intervals",
    "parse_windows",
    "validity_version",
]

_DATA: Final = "knowledge/lab_validity.json"


class LabWindowError(PluginError):
    """knowledge/lab_validity.json is malformed."""


@dataclass(frozen=True, slots=True)
class LabWindow:
    analyte: str  # plugin.context.codes.ANALYTES key
    max_age_days: int
    basis: str  # the knowledge-base entry whose monitoring interval sets it
    rationale: str

    def current(self, days_ago: int | None) -> bool:
        return days_ago is not None and 0 <= days_ago <= self.max_age_days


def parse_windows(raw: object) -> tuple[str, Mapping[str, LabWindow]]:
    """The version and the windows of lab_validity.json's content; LabWindowError when malformed."""
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("version"), str)
        or not isinstance(raw.get("windows"), list)
    ):
        raise LabWindowError(f"{_DATA}: needs a version and a list of windows")
    windows: dict[str, LabWindow] = {}
    for item in raw["windows"]:
        try:
            window = LabWindow(
                str(item["analyte"]), int(item["max_age_days"]), str(item["basis"]), str(item["rationale"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LabWindowError(f"{_DATA}: a window lacks or misstates {exc}") from None
        if window.max_age_days < 1 or window.analyte in windows:
            raise LabWindowError(f"{_DATA}: {window.analyte}: a positive window, once per analyte")
        windows[window.analyte] = window
    return raw["version"], windows


@dataclass(frozen=True, slots=True)
class MonitoringInterval:
    """How old a value may be for a routine recheck on established, stable therapy (never for a threshold)."""

    name: str
    analyte: str
    max_age_days: int
    basis: str
    rationale: str

    def covers(self, days_ago: int | None) -> bool:
        return days_ago is not None and 0 <= days_ago <= self.max_age_days


def parse_intervals(raw: object, windows: Mapping[str, LabWindow]) -> Mapping[str, MonitoringInterval]:
    """The `monitoring_intervals` of lab_validity.json's content, each longer than its analyte's window."""
    items = raw.get("monitoring_intervals", []) if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise LabWindowError(f"{_DATA}: monitoring_intervals must be a list")
    intervals: dict[str, MonitoringInterval] = {}
    for item in items:
        try:
            interval = MonitoringInterval(
                str(item["name"]),
                str(item["analyte"]),
                int(item["max_age_days"]),
                str(item["basis"]),
                str(item["rationale"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise LabWindowError(f"{_DATA}: an interval lacks or misstates {exc}") from None
        window = windows.get(interval.analyte)
        if window is None or interval.max_age_days <= window.max_age_days or interval.name in intervals:
            raise LabWindowError(
                f"{_DATA}: {interval.name}: an interval is named once, for an analyte with a window, and is "
                "longer than that window"
            )
        intervals[interval.name] = interval
    return intervals


@functools.cache
def _load() -> tuple[str, Mapping[str, LabWindow], Mapping[str, MonitoringInterval]]:
    raw = read_knowledge_json("lab_validity.json", LabWindowError)
    version, windows = parse_windows(raw)
    return version, windows, parse_intervals(raw, windows)


def monitoring_interval(name: str) -> MonitoringInterval:
    """A named interval; KeyError when the data lacks it (tests hold the rules' names to the file)."""
    return _load()[2][name]


def lab_windows() -> Mapping[str, LabWindow]:
    """Analyte key → its validity window."""
    return _load()[1]


def validity_version() -> str:
    return _load()[0]
