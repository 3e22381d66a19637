"""Reads the dose and frequency of a free-text sig ("2 tablets (1300 mg) by mouth three times daily").

Patient-reported medicines (MedicationStatement) and many hand-entered orders carry only `dosage.text`. The
structured fields always win; this reader fills a field only where they are absent, and only from a sig it can
read without guessing. Where a sig gives a range ("1-2 tablets every 4-6 hours") it reads the most that could
be taken, because the dose checks are about the most taken. A sig with steps ("then", "taper", "alternate"),
a scale, a protocol or a daily cap is left unread: the checks then say the dose is unknown rather than judge one step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["Sig", "read_sig"]


@dataclass(frozen=True, slots=True)
class Sig:
    dose: str | None  # "1300 mg", "2 tablet"
    frequency: str | None  # "3 per 1 d", "1 per 4 h"
    as_needed: bool
    max_daily_mg: float | None = None  # "do not exceed 2,000 mg in 24 hours"


# A daily cap in mass ("do not exceed 2,000 mg in 24 hours", "max 3 g/day") is read and taken out before the
# rest of the sig is read; any other cap (in tablets, per dose) leaves the sig unread.
_CAP: Final = re.compile(
    r"(?:do not exceed|not to exceed|no more than|max(?:imum)?(?: of)?)\s*:?\s*(\d+(?:,\d{3})*(?:\.\d+)?)\s*"
    r"(mg|g|mcg)\s*(?:in|per|/|a|each|every)\s*(?:24\s*(?:h|hrs?|hours?)|day|d)\b",
    re.IGNORECASE,
)
_MASS_IN_MG: Final[dict[str, float]] = {"mg": 1.0, "g": 1000.0, "mcg": 0.001}
# Steps, scales and protocols: the amounts in such a sig are not one dose taken at one frequency.
_STEPPED: Final = re.compile(
    r"\b(then|taper\w*|alternat\w*|sliding|scale|protocol|per inr|titrat\w*|increase|decrease|until|followed"
    r"|exceed|max|maximum|no more than)\b",
    re.IGNORECASE,
)
_NUMBER: Final = r"(\d+(?:\.\d+)?|one|two|three|four|half|½)"
_WORDS: Final[dict[str, float]] = {"one": 1.0, "two": 2.0, "three": 3.0, "four": 4.0, "half": 0.5, "½": 0.5}
_FORM: Final = r"(tablet|tab|capsule|cap|pill|puff|patch|suppository|lozenge)s?"
# "2 tablets (1300 mg)": the mass in brackets is the dose the count makes.
_COUNT_WITH_MASS: Final = re.compile(
    rf"\b{_NUMBER}(?:\s*(?:-|to)\s*{_NUMBER})?\s*{_FORM}\s*\(\s*(\d+(?:\.\d+)?)\s*(mg|mcg|g)\b",
    re.IGNORECASE,
)
_COUNT: Final = re.compile(rf"\b{_NUMBER}(?:\s*(?:-|to)\s*{_NUMBER})?\s*{_FORM}\b", re.IGNORECASE)
_MASS: Final = re.compile(
    r"(?<![\d./])(?<!/ )(\d+(?:\.\d+)?)(?:\s*(?:-|to)\s*(\d+(?:\.\d+)?))?\s*(mg|mcg|g|ml)\b(?!\s*/)",
    re.IGNORECASE,
)
_EVERY_HOURS: Final = re.compile(
    r"\b(?:every|q)\s*(\d+(?:\.\d+)?)(?:\s*(?:-|to)\s*(\d+(?:\.\d+)?))?\s*(?:h\b|hrs?\b|hours?\b)",
    re.IGNORECASE,
)
_TIMES_A_DAY: Final = re.compile(r"\b(\d)\s*times\s*(?:a|per|each|every)\s*day\b", re.IGNORECASE)
_DAILY_TAIL: Final = r"(?:\s*(?:a|per|each|every)?\s*(?:day|daily))?"
_PER_DAY_WORDS: Final[tuple[tuple[re.Pattern[str], int], ...]] = (
    (re.compile(rf"\b(?:four times|qid|q\.i\.d\.?){_DAILY_TAIL}", re.IGNORECASE), 4),
    (re.compile(rf"\b(?:three times|tid|t\.i\.d\.?){_DAILY_TAIL}", re.IGNORECASE), 3),
    (re.compile(rf"\b(?:twice|two times|bid|b\.i\.d\.?){_DAILY_TAIL}", re.IGNORECASE), 2),
    (
        re.compile(
            r"\b(?:once (?:a |per )?day|once daily|daily|every day|each day|qd|every (?:morning|evening|night)"
            r"|at bedtime|nightly|qhs|qam|qpm)\b",
            re.IGNORECASE,
        ),
        1,
    ),
)
_WEEKLY: Final = re.compile(r"\b(once (?:a |per |every )?week(?:ly)?|weekly|every week)\b", re.IGNORECASE)
_AS_NEEDED: Final = re.compile(r"\b(as needed|prn|p\.r\.n\.?|when needed|if needed)\b", re.IGNORECASE)


def _number(text: str) -> float:
    key = text.lower()
    return _WORDS[key] if key in _WORDS else float(text)


def _shown(value: float) -> str:
    return str(int(value)) if value.is_integer() else f"{value:g}"


def _dose(text: str) -> str | None:
    counts = _COUNT.findall(text)
    bracketed = _COUNT_WITH_MASS.search(text)
    if bracketed is not None:
        return (
            f"{_shown(float(bracketed.group(4)))} {bracketed.group(5).lower()}" if len(counts) == 1 else None
        )
    masses = _MASS.findall(text)
    if len(counts) == 1 and not masses:
        low, high, form = counts[0]
        return f"{_shown(_number(high or low))} {form.lower()}"
    if len(masses) == 1 and not counts:
        low, high, unit = masses[0]
        return f"{_shown(float(high or low))} {unit.lower()}"
    return None  # nothing, or more than one amount: not read without guessing


def _frequency(text: str) -> str | None:
    hours = _EVERY_HOURS.findall(text)
    if len(hours) == 1:
        low, high = hours[0]
        interval = min(float(low), float(high)) if high else float(low)
        return f"1 per {_shown(interval)} h" if interval > 0 else None
    if hours:
        return None
    times = _TIMES_A_DAY.findall(text)
    if len(times) == 1:
        return f"{times[0]} per 1 d"
    found: set[int] = set()
    rest = text
    for pattern, count in _PER_DAY_WORDS:  # "three times daily" is three, not also the "daily" left over
        rest, hits = pattern.subn(" ", rest)
        if hits:
            found.add(count)
    if len(found) == 1 and not _WEEKLY.search(text):
        return f"{found.pop()} per 1 d"
    if not found and _WEEKLY.search(text):
        return "1 per 1 wk"
    return None


def read_sig(text: str | None) -> Sig:
    """The dose, frequency, as-needed flag and daily cap a sig states; what it does not state plainly is None."""
    if not text:
        return Sig(None, None, False)
    as_needed = bool(_AS_NEEDED.search(text))
    caps = _CAP.findall(text)
    cap = float(caps[0][0].replace(",", "")) * _MASS_IN_MG[caps[0][1].lower()] if len(caps) == 1 else None
    rest = _CAP.sub(" ", text)
    if (caps and cap is None) or _STEPPED.search(rest):
        return Sig(None, None, as_needed, cap)
    return Sig(_dose(rest), _frequency(rest), as_needed, cap)
