"""Doses against the versioned dose-range table (knowledge/dose_ranges.json): adult, modified-release, age-band
and mg/kg limits, for draft orders and the current medication list."""

# A dose is read only when the order or the medication record states it exactly: a count of units (tablets, capsules) of a product
# whose per-unit strength is in its name, milligrams, or millilitres of a product whose concentration is
# in its name; the daily dose also needs a frequency ("3 per 1 d", "1 per 8 h"). An order whose dose
# cannot be read is not called safe: the card list says nothing about it, and the prescriber's own check
# stands (a card per unreadable order would fire on most free-text sigs). A child's mg/kg limits need a current
# weight; without one the card says the dose could not be checked. A child's age-band limit (labels that dose
# by age, such as cetirizine or montelukast) needs only the age. Products for local use are not dosed here.

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from plugin.context.model import Dosage
from plugin.errors import PluginError
from plugin.ids import KB_ID
from plugin.packaged import read_knowledge_json
from plugin.rules import dosing
from plugin.rules.dosing import EXTENDED_RELEASE, LOCAL_ROUTE, SKIN_EYE_EAR, SUMMED_INGREDIENTS
from plugin.rules.model import Exposure, Finding, RuleFacts, Severity

__all__ = [
    "AgeBand",
    "DoseLimits",
    "DoseRangeError",
    "DoseTable",
    "daily_frequency",
    "daily_or_unit_mg",
    "dose_or_unit_mg",
    "dose_range",
    "dose_table",
    "ingredient_strength_mg",
    "parse_dose_table",
    "single_dose_mg",
    "unit_mg",
]

_DATA: Final = "knowledge/dose_ranges.json"
EVIDENCE: Final = ("kb.dose-range-limits",)
PAEDIATRIC_EVIDENCE: Final = ("kb.dose-range-limits", "kb.paediatric-weight-based-dosing")


class DoseRangeError(PluginError):
    """knowledge/dose_ranges.json is malformed."""


@dataclass(frozen=True, slots=True)
class AgeBand:
    """A label's limit for children from `from_years` up to (not including) `below_years` of age."""

    from_years: int
    below_years: int
    max_single_mg: float | None
    max_daily_mg: float | None

    def covers(self, age: int) -> bool:
        return self.from_years <= age < self.below_years


@dataclass(frozen=True, slots=True)
class DoseLimits:
    ingredient: str
    max_single_mg: float | None
    max_daily_mg: float | None
    source: str
    paediatric_mg_per_kg_dose: float | None = None
    paediatric_mg_per_kg_day: float | None = None
    paediatric_max_daily_mg: float | None = None
    kb: str | None = None  # the drug's own knowledge-base entry, cited after the table's
    age_bands: tuple[AgeBand, ...] = ()
    # A modified-release product's own limits where its label sets lower ones (metformin extended release).
    extended_release_single_mg: float | None = None
    extended_release_daily_mg: float | None = None

    def band(self, age: int | None) -> AgeBand | None:
        return next((b for b in self.age_bands if age is not None and b.covers(age)), None)

    @property
    def has_paediatric(self) -> bool:
        return self.paediatric_mg_per_kg_dose is not None or self.paediatric_mg_per_kg_day is not None


@dataclass(frozen=True, slots=True)
class DoseTable:
    version: str
    rounding_tolerance: float  # a dose up to this fraction over a limit is rounding, not an error
    critical_multiple: float  # at this multiple of a limit the card is critical (tenfold errors)
    limits: Mapping[str, DoseLimits]


def _limit(row: Mapping[str, object], group: str, key: str) -> float | None:
    section = row.get(group)
    if section is None:
        return None
    if not isinstance(section, dict):
        raise DoseRangeError(f"{_DATA}: {row.get('ingredient')}: {group} must be an object")
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise DoseRangeError(f"{_DATA}: {row.get('ingredient')}: {group}.{key} must be a positive number")
    return float(value)


def _age_bands(row: Mapping[str, object]) -> tuple[AgeBand, ...]:
    name, raw = row.get("ingredient"), row.get("paediatric_age_bands", [])
    if not isinstance(raw, list):
        raise DoseRangeError(f"{_DATA}: {name}: paediatric_age_bands must be a list")
    bands: list[AgeBand] = []
    for band in raw:
        if not isinstance(band, dict):
            raise DoseRangeError(f"{_DATA}: {name}: each age band is an object")
        start, stop = band.get("from_years"), band.get("below_years")
        if not isinstance(start, int) or not isinstance(stop, int) or not 0 <= start < stop <= 18:
            raise DoseRangeError(f"{_DATA}: {name}: an age band runs from_years < below_years <= 18")
        if bands and start < bands[-1].below_years:
            raise DoseRangeError(f"{_DATA}: {name}: age bands are in order and do not overlap")
        single, daily = _limit({"b": band}, "b", "max_single_mg"), _limit({"b": band}, "b", "max_daily_mg")
        if single is None and daily is None:
            raise DoseRangeError(f"{_DATA}: {name}: an age band sets a single or a daily limit")
        bands.append(AgeBand(start, stop, single, daily))
    return tuple(bands)


def parse_dose_table(raw: object) -> DoseTable:
    """The table in dose_ranges.json's content; DoseRangeError names the first problem."""
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("version"), str)
        or not isinstance(raw.get("limits"), list)
    ):
        raise DoseRangeError(f"{_DATA}: needs a version and a list of limits")
    tolerance, multiple = raw.get("rounding_tolerance"), raw.get("critical_multiple")
    if not isinstance(tolerance, int | float) or not 0 <= tolerance < 0.5:
        raise DoseRangeError(f"{_DATA}: rounding_tolerance must be a fraction below 0.5")
    if not isinstance(multiple, int | float) or multiple <= 1 + tolerance:
        raise DoseRangeError(f"{_DATA}: critical_multiple must exceed 1 + rounding_tolerance")
    limits: dict[str, DoseLimits] = {}
    for row in raw["limits"]:
        if not isinstance(row, dict) or not isinstance(row.get("ingredient"), str) or not row["ingredient"]:
            raise DoseRangeError(f"{_DATA}: every row names its ingredient")
        name = row["ingredient"]
        if name in limits or row.get("route") != "oral" or not isinstance(row.get("source"), str):
            raise DoseRangeError(f"{_DATA}: {name}: once per ingredient, route oral, with a source")
        single, daily = _limit(row, "adult", "max_single_mg"), _limit(row, "adult", "max_daily_mg")
        kb = row.get("kb")
        if kb is not None and (not isinstance(kb, str) or not KB_ID.match(kb)):
            raise DoseRangeError(f"{_DATA}: {name}: kb must be a knowledge-base id such as kb.drug-topic")
        if single is not None and daily is not None and single > daily:
            raise DoseRangeError(f"{_DATA}: {name}: the single-dose limit exceeds the daily one")
        limits[name] = DoseLimits(
            name,
            single,
            daily,
            row["source"],
            _limit(row, "paediatric", "max_mg_per_kg_dose"),
            _limit(row, "paediatric", "max_mg_per_kg_day"),
            _limit(row, "paediatric", "max_daily_mg"),
            kb,
            _age_bands(row),
            _limit(row, "extended_release", "max_single_mg"),
            _limit(row, "extended_release", "max_daily_mg"),
        )
    return DoseTable(raw["version"], float(tolerance), float(multiple), MappingProxyType(limits))


@functools.cache
def dose_table() -> DoseTable:
    """The packaged table, read and validated on first use."""
    return parse_dose_table(read_knowledge_json("dose_ranges.json", DoseRangeError))


# "Acetaminophen 325 MG / HYDROcodone Bitartrate 7.5 MG Oral Tablet": each part names an ingredient and
# its strength; "Amoxicillin 250 MG/5ML Oral Suspension": a concentration.
_PART = re.compile(
    r"(?P<name>[A-Za-z][A-Za-z ,\-]*?)\s+(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>MG|MCG)(?:\s*/\s*(?P<per>\d+(?:\.\d+)?)?\s*ML\b)?",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Strength:
    mg: float
    per_ml: float | None  # millilitres the mg are in (a liquid), None for a unit (tablet, capsule)


def ingredient_strength_mg(display: str, ingredient: str) -> Strength | None:
    """The named ingredient's strength in a product name, or None when the name does not state it."""
    for match in _PART.finditer(display):
        if ingredient.split()[0] not in match.group("name").lower():
            continue
        value = float(match.group("value")) / (1000 if match.group("unit").upper() == "MCG" else 1)
        per = match.group("per")
        is_liquid = "/" in match.group(0)
        return Strength(value, (float(per) if per else 1.0) if is_liquid else None)
    return None


def single_dose_mg(dosage: Dosage, strength: Strength | None) -> float | None:
    """One administration's milligrams of the ingredient, when the order states it exactly."""
    if strength is None:
        return dosing.dose_mg(dosage, None)
    return dosing.dose_mg(dosage, strength.mg, strength.per_ml)


def daily_frequency(dosage: Dosage) -> float | None:
    """Administrations per day from "N per P unit"; None when the order gives no usable frequency."""
    return dosing.per_day(dosage.frequency)


@dataclass(frozen=True, slots=True)
class _Excess:
    what: str  # "a single dose of 1,000 mg", "4,500 mg a day"
    limit: str  # "the adult maximum of 4,000 mg a day"
    ratio: float


def _over(value: float | None, limit: float | None, tolerance: float) -> float | None:
    if value is None or limit is None or value <= limit * (1 + tolerance):
        return None
    return value / limit


def _g(value: float) -> str:
    return f"{value:,.4g}"


def _excesses(
    limits: DoseLimits,
    single: float | None,
    daily: float | None,
    weight: float | None,
    age: int | None,
    extended_release: bool,
) -> list[_Excess]:
    tolerance = dose_table().rounding_tolerance
    found: list[_Excess] = []
    checks: list[tuple[float | None, float | None, str, str]] = []
    paediatric = age is not None and age < ADULT_AGE
    band = limits.band(age) if paediatric else None
    if band is not None:
        ages = f"ages {band.from_years}-{band.below_years - 1}"
        checks += [
            (single, band.max_single_mg, "a dose", f"the label's single dose for {ages}"),
            (daily, band.max_daily_mg, "a daily dose", f"the label's daily dose for {ages}"),
        ]
    if paediatric and weight is not None and limits.has_paediatric:
        per_dose = limits.paediatric_mg_per_kg_dose
        per_day = limits.paediatric_mg_per_kg_day
        checks += [
            (single, per_dose * weight if per_dose else None, "a dose", f"{_g(per_dose or 0)} mg/kg a dose"),
            (daily, per_day * weight if per_day else None, "a daily dose", f"{_g(per_day or 0)} mg/kg a day"),
            (daily, limits.paediatric_max_daily_mg, "a daily dose", "the children's daily cap"),
        ]
    elif band is None and extended_release and limits.extended_release_daily_mg is not None:
        checks += [
            (single, limits.extended_release_single_mg, "a dose", "the extended-release single-dose maximum"),
            (daily, limits.extended_release_daily_mg, "a daily dose", "the extended-release daily maximum"),
        ]
    elif band is None:
        # No child's dose exceeds the adult maximum, whatever the weight.
        checks += [
            (single, limits.max_single_mg, "a dose", "the adult single-dose maximum"),
            (daily, limits.max_daily_mg, "a daily dose", "the adult daily maximum"),
        ]
    for value, limit, what, named in checks:
        if (ratio := _over(value, limit, tolerance)) is not None and value is not None and limit is not None:
            found.append(_Excess(f"{what} of {_g(value)} mg", f"{named} ({_g(limit)} mg)", ratio))
    return found


ADULT_AGE: Final = 18


def _dosed(facts: RuleFacts) -> Iterator[tuple[Exposure, Dosage, str]]:
    """Each drug with the dosage and product name it is taken or ordered by: a draft order for a proposal
    (the first of a handle, as a scan would find it), the medication record for a current drug."""
    drafts: dict[str, tuple[Dosage, str]] = {}
    for draft in facts.context.draft_orders:
        drafts.setdefault(draft.handle, (draft.dosage, draft.code.display))
    current = {m.handle: (m.dosage, m.code.display) for m in facts.context.medications}
    for exposure in facts.exposures:
        found = (drafts if exposure.proposed else current).get(exposure.handle)
        if found is not None and not LOCAL_ROUTE.search(found[1]):
            yield exposure, *found


def dose_range(facts: RuleFacts) -> Iterator[Finding]:
    """Doses over the table's limits; for a child, by age band and weight, or a note that weight is unknown."""
    table = dose_table()
    age = facts.age
    paediatric = age is not None and age < ADULT_AGE
    weight_reading = facts.current("weight") if paediatric else None
    weight = weight_reading.value if weight_reading is not None else None
    for exposure, dosage, display in _dosed(facts):
        for ingredient in exposure.ingredients:
            limits = table.limits.get(ingredient)
            if limits is None or (ingredient in SUMMED_INGREDIENTS and not exposure.proposed):
                continue
            strength = ingredient_strength_mg(display, ingredient)
            single = single_dose_mg(dosage, strength)
            if single is None:
                if (
                    strength is not None
                    and (unsuited := _strength_unsuited(limits, strength, age)) is not None
                ):
                    yield _unsuited_strength(exposure, ingredient, strength, unsuited)
                continue
            per_day = daily_frequency(dosage)
            daily = single * per_day if per_day is not None else None
            excesses = _excesses(limits, single, daily, weight, age, bool(EXTENDED_RELEASE.search(display)))
            if excesses:
                by_weight = weight_reading is not None and limits.has_paediatric
                yield _too_high(
                    exposure,
                    ingredient,
                    limits,
                    excesses,
                    weight_reading.handle if by_weight and weight_reading is not None else None,
                )
            elif paediatric and limits.has_paediatric and weight is None and exposure.proposed:
                yield _weight_unknown(exposure, ingredient, facts)


def _too_high(
    exposure: Exposure,
    ingredient: str,
    limits: DoseLimits,
    excesses: list[_Excess],
    weight_handle: str | None,
) -> Finding:
    worst = max(excesses, key=lambda e: e.ratio)
    severity: Severity = "critical" if worst.ratio >= dose_table().critical_multiple else "warning"
    summary = f"{ingredient.capitalize()} {worst.what} exceeds {worst.limit}: consider a lower dose"
    return Finding(
        "rule.dose-above-maximum",
        severity,
        summary
        if len(summary) < 140
        else f"{ingredient.capitalize()} dose exceeds {worst.limit}: consider a lower dose",
        f"The order's dose is {worst.ratio:.1f} times the labelled limit ({limits.source}).",
        (*(PAEDIATRIC_EVIDENCE if weight_handle else EVIDENCE), *((limits.kb,) if limits.kb else ())),
        (exposure.handle, *((weight_handle,) if weight_handle else ())),
        (exposure.handle,) if exposure.proposed else (),
    )


def _strength_unsuited(limits: DoseLimits, strength: Strength, age: int | None) -> AgeBand | None:
    """The child's age band when one tablet or capsule already exceeds its single dose (the dose itself unread)."""
    band = limits.band(age) if age is not None and age < ADULT_AGE else None
    if band is None or band.max_single_mg is None or strength.per_ml is not None:
        return None
    return band if strength.mg > band.max_single_mg * (1 + dose_table().rounding_tolerance) else None


def _unsuited_strength(exposure: Exposure, ingredient: str, strength: Strength, band: AgeBand) -> Finding:
    return Finding(
        "rule.dose-above-maximum",
        "info",
        f"{ingredient.capitalize()} {_g(strength.mg)} mg unit for a child aged {band.from_years}-"
        f"{band.below_years - 1}: above the label's single dose ({_g(band.max_single_mg or 0)} mg); check the dose",
        "The order gives no dose that can be read, and one unit of this product is already more than the label's "
        "single dose for the child's age: a liquid or lower strength may be meant.",
        EVIDENCE,
        (exposure.handle,),
        (exposure.handle,) if exposure.proposed else (),
    )


def _weight_unknown(exposure: Exposure, ingredient: str, facts: RuleFacts) -> Finding:
    stale = facts.stale("weight")
    when = "no weight on record" if stale is None else "only an out-of-date weight"
    return Finding(
        "rule.dose-weight-unknown",
        "info",
        f"{ingredient.capitalize()} for a child with {when}: consider weighing before confirming the dose",
        "A child's dose limit is set per kilogram, so this dose could not be checked without a current weight.",
        ("kb.paediatric-weight-based-dosing",),
        (exposure.handle, *((stale.handle,) if stale is not None else ())),
        (exposure.handle,),
    )


DOSE_RULES: Final = (dose_range,)


def unit_mg(exposure: Exposure, ingredient: str) -> float | None:
    """Milligrams of the ingredient in one tablet or capsule, from the product name; None for a liquid."""
    strength = ingredient_strength_mg(exposure.label, ingredient)
    return strength.mg if strength is not None and strength.per_ml is None else None


def daily_or_unit_mg(facts: RuleFacts, exposure: Exposure, ingredient: str) -> float | None:
    """The daily milligrams where the dosage gives them, else one unit's (for drugs taken once a day)."""
    unit = unit_mg(exposure, ingredient)
    daily = dosing.daily_mg(dosing.dosage_of(facts, exposure), unit)
    return daily if daily is not None else unit


def dose_or_unit_mg(facts: RuleFacts, exposure: Exposure, ingredient: str) -> float | None:
    """One administration's milligrams where the dosage gives them, else one unit's."""
    unit = unit_mg(exposure, ingredient)
    dose = dosing.dose_mg(dosing.dosage_of(facts, exposure), unit)
    return dose if dose is not None else unit


LOW_DOSE_ASPIRIN_MG: Final = 100


def analgesic_nsaids(facts: RuleFacts) -> tuple[Exposure, ...]:
    """NSAIDs taken as systemic analgesics: not low-dose aspirin (an antiplatelet), and not skin or eye products,
    whose blood levels are a few percent of an oral dose (topical diclofenac; Beers and KDIGO prefer them)."""
    return tuple(
        e
        for e in facts.with_class("nsaid", "cox2-inhibitor")
        if not SKIN_EYE_EAR.search(e.label) and not low_dose_aspirin(facts, e)
    )


def low_dose_aspirin(facts: RuleFacts, exposure: Exposure) -> bool:
    """Aspirin up to 100 mg a day is antiplatelet therapy, not an analgesic NSAID. The daily dose where the
    dosage gives it, else the unit strength (low-dose products are taken once a day); unreadable counts as an
    NSAID (fail closed)."""
    if "aspirin" not in exposure.ingredients:
        return False
    mg = daily_or_unit_mg(facts, exposure, "aspirin")
    return mg is not None and mg <= LOW_DOSE_ASPIRIN_MG
