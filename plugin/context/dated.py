"""Recommendations that began on a known date (knowledge/recommendation_dates.json): which were not yet in force on
a hook's day, so that a chart reviewed as of an earlier day is not held to advice published after it."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date
from typing import Final

from plugin.errors import PluginError
from plugin.ids import KB_ID
from plugin.packaged import read_knowledge_json

__all__ = ["DatedRecommendation", "RecommendationDatesError", "not_in_force", "parse_recommendation_dates"]

_DATA: Final = "knowledge/recommendation_dates.json"
_NAME: Final = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class RecommendationDatesError(PluginError):
    """knowledge/recommendation_dates.json is malformed."""


@dataclass(frozen=True, slots=True)
class DatedRecommendation:
    name: str
    in_force_from: date
    basis: str  # the knowledge entry a rule cites for it


def _fail(problem: str) -> RecommendationDatesError:
    return RecommendationDatesError(f"{_DATA}: {problem}")


def parse_recommendation_dates(raw: object) -> tuple[DatedRecommendation, ...]:
    """The table in recommendation_dates.json's content; RecommendationDatesError names the first problem."""
    if not isinstance(raw, dict) or not isinstance(raw.get("version"), str):
        raise _fail("needs a version")
    items = raw.get("recommendations")
    if not isinstance(items, list):
        raise _fail("needs a list of recommendations")
    found: list[DatedRecommendation] = []
    for index, item in enumerate(items):
        where = f"recommendations[{index}]"
        if not isinstance(item, dict) or set(item) != {"name", "in_force_from", "basis", "note"}:
            raise _fail(f"{where}: has exactly name, in_force_from, basis and note")
        name, start, basis, note = item["name"], item["in_force_from"], item["basis"], item["note"]
        if not isinstance(name, str) or not _NAME.match(name):
            raise _fail(f"{where}: name is lower-case words with hyphens")
        if not isinstance(basis, str) or not KB_ID.match(basis) or not isinstance(note, str) or not note:
            raise _fail(f"{where}: a basis kb id and a note naming the source")
        try:
            day = date.fromisoformat(start) if isinstance(start, str) else None
        except ValueError:
            day = None
        if day is None:
            raise _fail(f"{where}: in_force_from is a date (YYYY-MM-DD)")
        found.append(DatedRecommendation(name, day, basis))
    names = [r.name for r in found]
    if len(names) != len(set(names)):
        raise _fail("names repeated")
    return tuple(found)


@functools.cache
def recommendation_dates() -> tuple[DatedRecommendation, ...]:
    """The packaged table, read and checked once per process."""
    return parse_recommendation_dates(
        read_knowledge_json("recommendation_dates.json", RecommendationDatesError)
    )


def not_in_force(today: date) -> tuple[str, ...]:
    """Names of the dated recommendations that began after `today`, sorted; empty for any day since the last."""
    return tuple(sorted(r.name for r in recommendation_dates() if today < r.in_force_from))
