"""A PHI scanner for tests: what a raw Bundle says that identifies its patient, and where text leaks it."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from tests.support.charts import walk_json

# Name parts that are honorifics or generational suffixes identify nobody; they are the only exclusions.
# (Tokens shorter than 3 characters are skipped too: "Jr", "Ng" would match inside ordinary text.)
NOT_A_NAME = frozenset({"mr", "mrs", "ms", "miss", "dr", "jr", "sr", "md", "phd"})
# Identifier values made only of digits and shorter than this are skipped: these bundles give
# Practitioners identifiers such as "10" and "40", which occur in any chart as values and day counts.
# Real patient identifiers (MRN, SSN, driver's licence, passport) are longer or not purely numeric.
MIN_NUMERIC_IDENTIFIER = 6
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
MAIDEN_NAME_EXTENSION = "patient-mothersMaidenName"  # http://hl7.org/fhir/StructureDefinition/...
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2}))?(?!\d)")


@dataclass(frozen=True, slots=True)
class Identifying:
    """What the raw bundle says that must never reach the model, in the forms it could be written."""

    name_tokens: frozenset[str]
    literals: frozenset[str]  # ids, identifier values, address parts, telecom values
    dates: frozenset[date]


def _dates_in(text: str) -> Iterable[date]:
    for match in _ISO_DATE.finditer(text):
        try:
            day = date.fromisoformat(match.group(0)[:10])
        except ValueError:
            continue
        yield day
        if "T" in match.group(0):
            # A renderer working in UTC would print the UTC day, which may be the next or previous one.
            try:
                yield datetime.fromisoformat(match.group(0)).astimezone(UTC).date()
            except ValueError:
                continue


def _name_tokens(parts: Iterable[Any]) -> Iterable[str]:
    for part in parts:
        for token in str(part or "").split():
            token = token.strip(".,")
            if len(token) >= 3 and token.lower() not in NOT_A_NAME:
                yield token


def identifying(bundle: Mapping[str, Any]) -> Identifying:
    names: set[str] = set()
    literals: set[str] = set()
    dates: set[date] = set()
    for key, value in walk_json(bundle):
        if isinstance(value, str):
            dates.update(_dates_in(value))
            continue
        if not isinstance(value, dict):
            continue
        # The mother's maiden name (Synthea writes one for every patient) is a plain string in an extension;
        # Patient.contact[].name (next of kin, guardian) is a HumanName, found by the test below like any.
        if str(value.get("url", "")).endswith(MAIDEN_NAME_EXTENSION) and isinstance(
            value.get("valueString"), str
        ):
            names.update(_name_tokens([value["valueString"]]))
        if "family" in value or "given" in value or (key == "name" and "text" in value):
            parts = [value.get("family"), value.get("text"), *(value.get("given") or ())]
            parts += [*(value.get("prefix") or ()), *(value.get("suffix") or ())]
            names.update(_name_tokens(parts))
        if key == "identifier" and isinstance(value.get("value"), str):
            identifier = value["value"]
            if not (identifier.isdigit() and len(identifier) < MIN_NUMERIC_IDENTIFIER):
                literals.add(identifier)
        if key in ("address", "valueAddress"):
            literals.update(
                p for p in (*(value.get("line") or ()), value.get("city"), value.get("text")) if p
            )
            if value.get("postalCode"):
                literals.add(value["postalCode"])
        if key == "telecom" and isinstance(value.get("value"), str):
            literals.add(value["value"])
        if "resourceType" in value and isinstance(value.get("id"), str):
            literals.add(value["id"])
    return Identifying(frozenset(names), frozenset(literals), frozenset(dates))


def date_forms(day: date) -> list[str]:
    """The ways a renderer might print `day`; bare years are never searched (they equal day counts)."""
    month = MONTHS[day.month - 1]
    return [
        day.isoformat(),
        f"{day.month:02d}/{day.day:02d}/{day.year}",
        f"{day.month}/{day.day}/{day.year}",
        f"{day.day:02d}.{day.month:02d}.{day.year}",
        f"{day.day:02d}/{day.month:02d}/{day.year}",
        f"{day.year}/{day.month:02d}/{day.day:02d}",
        f"{day.year}{day.month:02d}{day.day:02d}",
        f"{month} {day.day}, {day.year}",
        f"{month[:3]} {day.day}, {day.year}",
        f"{day.day} {month} {day.year}",
        f"{day.day} {month[:3]} {day.year}",
    ]


@functools.cache
def _scanner(found: Identifying) -> re.Pattern[str]:
    """One pattern for every identifying item, each bounded so that "02474" does not hit "102474"."""

    def alternation(items: Iterable[str]) -> str:
        return "|".join(re.escape(i) for i in sorted(set(items), key=len, reverse=True)) or "(?!)"

    dates = [form for day in found.dates for form in date_forms(day)]
    # Year-month ("1951-11") is distinctive: LOINC codes end in one check digit ("2160-0"), so a
    # four-digit/two-digit pair joined by a hyphen only comes from a date.
    year_months = [f"{day.year}-{day.month:02d}" for day in found.dates]
    return re.compile(
        rf"(?<![A-Za-z])(?:{alternation(found.name_tokens)})(?![A-Za-z])"
        rf"|(?<![0-9A-Za-z])(?:{alternation(found.literals)})(?![0-9A-Za-z])"
        rf"|(?<!\d)(?:{alternation(dates + year_months)})(?!\d)",
        re.IGNORECASE,
    )


def leaks(text: str, found: Identifying) -> list[str]:
    """Every identifying item that occurs in `text` (names case-insensitively)."""
    return sorted({match.group(0) for match in _scanner(found).finditer(text)})
