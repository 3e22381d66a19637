"""Doses against the versioned dose-range table (knowledge/dose_ranges.json): adult, modified-release, age-band
and mg/kg limits, by route (oral or parenteral), for draft orders and the current medication list."""

# A dose is read only when the order or the medication record states it exactly: a count of units (tablets, capsules) of a product
# whose per-unit strength is in its name, milligrams, or millilitres of a product whose concentration is
# in its name; the daily dose also needs a frequency ("3 per 1 d", "1 per 8 h"). An order whose dose
# cannot be read is not called safe: the card list says nothing about it, and the prescriber's own check
# stands (a card per unreadable order would fire on most free-text sigs). A child's mg/kg limits need a current
# weight; without one the card says the dose could not be checked. A child's age-band limit (labels that dose
# by age, such as cetirizine or montelukast) needs only the age. Products for local use are not dosed here.
#
# The table has at most one row per ingredient and route. An injected order (IV, IM or SC: the product name or
# the order's route says so) is held to the ingredient's parenteral row where there is one, else to its oral row,
# as before parenteral rows existed; an oral order never to a parenteral row, whose limits (IV acyclovir by weight,
# a vancomycin loading dose) would hide oral overdoses. An adult's weight-based limits (IV acetaminophen under
# 50 kg) need a current weight too, but without one the adult's fixed limits stand and no card asks for a weight:
# most adults are dosed without one.

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
    "LowWeight",
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


ORAL: Final = "oral"
PARENTERAL_ROUTE: Final = "parenteral"
ROUTES: Final = (ORAL, PARENTERAL_ROUTE)


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
class LowWeight:
    """An adult's limits below a body weight, on top of the fixed ones (IV acetaminophen under 50 kg)."""

    below_kg: float
    max_single_mg: float | None = None
    max_daily_mg: float | None = None
    max_mg_per_kg_dose: float | None = None
    max_mg_per_kg_day: float | None = None


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
    route: str = ORAL
    # An adult's limits by weight where the label doses by weight at any size (IV acyclovir), with a current weight.
    adult_mg_per_kg_dose: float | None = None
    adult_mg_per_kg_day: float | None = None
    adult_low_weight: LowWeight | None = None
    paediatric_max_single_mg: float | None = None
    # The weight from which the label doses a child as an adult (doxycycline: 45 kg), so that a heavy child's
    # adult dose is not called a mg/kg overdose.
    paediatric_adult_from_kg: float | None = None

    def band(self, age: int | None) -> AgeBand | None:
        return next((b for b in self.age_bands if age is not None and b.covers(age)), None)

    @property
    def has_paediatric(self) -> bool:
        return self.paediatric_mg_per_kg_dose is not None or self.paediatric_mg_per_kg_day is not None

    @property
    def has_adult_weight(self) -> bool:
        return (
            self.adult_mg_per_kg_dose is not None
            or self.adult_mg_per_kg_day is not None
            or self.adult_low_weight is not None
        )

    def dosed_as_adult(self, weight: float) -> bool:
        return self.paediatric_adult_from_kg is not None and weight >= self.paediatric_adult_from_kg


@dataclass(frozen=True, slots=True)
class DoseTable:
    version: str
    rounding_tolerance: float  # a dose up to this fraction over a limit is rounding, not an error
    critical_multiple: float  # at this multiple of a limit the card is critical (tenfold errors)
    limits: Mapping[str, DoseLimits]  # the oral rows, by ingredient
    parenteral: Mapping[str, DoseLimits]  # the parenteral rows, by ingredient

    def row(self, ingredient: str, parenteral: bool) -> DoseLimits | None:
        """The limits an order is held to: an injected order's parenteral row, else the oral row."""
        injected = self.parenteral.get(ingredient) if parenteral else None
        return injected if injected is not None else self.limits.get(ingredient)


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


_LOW_WEIGHT_LIMITS: Final = ("max_single_mg", "max_daily_mg", "max_mg_per_kg_dose", "max_mg_per_kg_day")


def _low_weight(row: Mapping[str, object]) -> LowWeight | None:
    name, raw = row.get("ingredient"), row.get("adult_low_weight")
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"below_kg", *_LOW_WEIGHT_LIMITS}:
        raise DoseRangeError(f"{_DATA}: {name}: adult_low_weight is an object of below_kg and its limits")
    below = _limit(row, "adult_low_weight", "below_kg")
    limits = [_limit(row, "adult_low_weight", key) for key in _LOW_WEIGHT_LIMITS]
    if below is None or all(v is None for v in limits):
        raise DoseRangeError(f"{_DATA}: {name}: adult_low_weight needs below_kg and at least one limit")
    return LowWeight(below, *limits)


def _checked_pair(name: str, what: str, single: float | None, daily: float | None) -> None:
    if single is not None and daily is not None and single > daily:
        raise DoseRangeError(f"{_DATA}: {name}: the {what}single-dose limit exceeds the daily one")


def _parse_row(row: object, seen: Mapping[tuple[str, str], DoseLimits]) -> DoseLimits:
    if not isinstance(row, dict) or not isinstance(row.get("ingredient"), str) or not row["ingredient"]:
        raise DoseRangeError(f"{_DATA}: every row names its ingredient")
    name, route = row["ingredient"], row.get("route")
    if route not in ROUTES:
        raise DoseRangeError(f"{_DATA}: {name}: route must be one of {', '.join(ROUTES)}, not {route!r}")
    if (name, route) in seen:
        raise DoseRangeError(f"{_DATA}: {name}: more than one {route} row")
    if not isinstance(row.get("source"), str) or not row["source"].strip():
        raise DoseRangeError(f"{_DATA}: {name} ({route}): every row cites its source")
    kb = row.get("kb")
    if kb is not None and (not isinstance(kb, str) or not KB_ID.match(kb)):
        raise DoseRangeError(f"{_DATA}: {name}: kb must be a knowledge-base id such as kb.drug-topic")
    if route != ORAL and row.get("extended_release") is not None:
        raise DoseRangeError(f"{_DATA}: {name}: extended_release limits are for oral rows")
    limits = DoseLimits(
        name,
        _limit(row, "adult", "max_single_mg"),
        _limit(row, "adult", "max_daily_mg"),
        row["source"],
        _limit(row, "paediatric", "max_mg_per_kg_dose"),
        _limit(row, "paediatric", "max_mg_per_kg_day"),
        _limit(row, "paediatric", "max_daily_mg"),
        kb,
        _age_bands(row),
        _limit(row, "extended_release", "max_single_mg"),
        _limit(row, "extended_release", "max_daily_mg"),
        route,
        _limit(row, "adult", "max_mg_per_kg_dose"),
        _limit(row, "adult", "max_mg_per_kg_day"),
        _low_weight(row),
        _limit(row, "paediatric", "max_single_mg"),
        _limit(row, "paediatric", "adult_from_kg"),
    )
    if row.get("paediatric") is not None and not limits.has_paediatric:
        raise DoseRangeError(
            f"{_DATA}: {name}: paediatric limits include a mg/kg limit (per dose or per day)"
        )
    _checked_pair(name, "", limits.max_single_mg, limits.max_daily_mg)
    _checked_pair(name, "children's ", limits.paediatric_max_single_mg, limits.paediatric_max_daily_mg)
    _checked_pair(
        name, "extended-release ", limits.extended_release_single_mg, limits.extended_release_daily_mg
    )
    low = limits.adult_low_weight
    if low is not None:
        _checked_pair(name, "low-weight ", low.max_single_mg, low.max_daily_mg)
    return limits


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
    rows: dict[tuple[str, str], DoseLimits] = {}
    for row in raw["limits"]:
        limits = _parse_row(row, rows)
        rows[limits.ingredient, limits.route] = limits
    by_route = {
        route: MappingProxyType({name: limits for (name, r), limits in rows.items() if r == route})
        for route in ROUTES
    }
    return DoseTable(
        raw["version"], float(tolerance), float(multiple), by_route[ORAL], by_route[PARENTERAL_ROUTE]
    )


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


# A dose, its limit, what the dose is ("a dose", "a daily dose") and what the limit is called on the card.
_Check = tuple[float | None, float | None, str, str]


def _over(value: float | None, limit: float | None, tolerance: float) -> float | None:
    if value is None or limit is None or value <= limit * (1 + tolerance):
        return None
    return value / limit


def _g(value: float) -> str:
    # Four significant figures, written out: "13,200 mg", not "1.32e+04 mg".
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:,.4g}"


def _per_kg(per_kg: float | None, weight: float) -> float | None:
    return per_kg * weight if per_kg is not None else None


def _route_word(limits: DoseLimits) -> str:
    # Oral cards keep their wording; a parenteral row's say so, as its limits differ from the tablet's.
    return "parenteral " if limits.route == PARENTERAL_ROUTE else ""


def _child_checks(
    limits: DoseLimits, single: float | None, daily: float | None, weight: float
) -> list[_Check]:
    route = _route_word(limits)
    per_dose, per_day = limits.paediatric_mg_per_kg_dose, limits.paediatric_mg_per_kg_day
    dose_name, day_name = f"{_g(per_dose or 0)} mg/kg a dose", f"{_g(per_day or 0)} mg/kg a day"
    if route:
        dose_name, day_name = (
            f"the children's {route}limit of {dose_name}",
            f"the children's {route}limit of {day_name}",
        )
    return [
        (single, _per_kg(per_dose, weight), "a dose", dose_name),
        (daily, _per_kg(per_day, weight), "a daily dose", day_name),
        (single, limits.paediatric_max_single_mg, "a dose", f"the children's {route}single-dose cap"),
        (daily, limits.paediatric_max_daily_mg, "a daily dose", f"the children's {route}daily cap"),
    ]


def _adult_checks(
    limits: DoseLimits, single: float | None, daily: float | None, weight: float | None
) -> list[_Check]:
    route = _route_word(limits)
    checks: list[_Check] = [
        (single, limits.max_single_mg, "a dose", f"the adult {route}single-dose maximum"),
        (daily, limits.max_daily_mg, "a daily dose", f"the adult {route}daily maximum"),
    ]
    if weight is None:
        return checks  # the fixed limits alone: most adults are dosed without a weight
    per_dose, per_day = limits.adult_mg_per_kg_dose, limits.adult_mg_per_kg_day
    checks += [
        (
            single,
            _per_kg(per_dose, weight),
            "a dose",
            f"the adult {route}limit of {_g(per_dose or 0)} mg/kg a dose",
        ),
        (
            daily,
            _per_kg(per_day, weight),
            "a daily dose",
            f"the adult {route}limit of {_g(per_day or 0)} mg/kg a day",
        ),
    ]
    low = limits.adult_low_weight
    if low is not None and weight < low.below_kg:
        under = f"under {_g(low.below_kg)} kg"
        per_dose, per_day = low.max_mg_per_kg_dose, low.max_mg_per_kg_day
        checks += [
            (single, low.max_single_mg, "a dose", f"the adult {route}single-dose maximum {under}"),
            (daily, low.max_daily_mg, "a daily dose", f"the adult {route}daily maximum {under}"),
            (
                single,
                _per_kg(per_dose, weight),
                "a dose",
                f"the adult {route}limit of {_g(per_dose or 0)} mg/kg a dose {under}",
            ),
            (
                daily,
                _per_kg(per_day, weight),
                "a daily dose",
                f"the adult {route}limit of {_g(per_day or 0)} mg/kg a day {under}",
            ),
        ]
    return checks


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
    checks: list[_Check] = []
    paediatric = age is not None and age < ADULT_AGE
    band = limits.band(age) if paediatric else None
    if band is not None:
        ages = f"ages {band.from_years}-{band.below_years - 1}"
        checks += [
            (single, band.max_single_mg, "a dose", f"the label's single dose for {ages}"),
            (daily, band.max_daily_mg, "a daily dose", f"the label's daily dose for {ages}"),
        ]
    if paediatric and weight is not None and limits.has_paediatric and not limits.dosed_as_adult(weight):
        checks += _child_checks(limits, single, daily, weight)
    elif band is None and extended_release and limits.extended_release_daily_mg is not None:
        checks += [
            (single, limits.extended_release_single_mg, "a dose", "the extended-release single-dose maximum"),
            (daily, limits.extended_release_daily_mg, "a daily dose", "the extended-release daily maximum"),
        ]
    elif band is None:
        # No child's dose exceeds the adult maximum, whatever the weight.
        checks += _adult_checks(limits, single, daily, weight)
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


def _share_of_mass_dose(exposure: Exposure, display: str, ingredient: str, dosage: Dosage) -> float:
    """The ingredient's part of a dose written in milligrams for a combination product. "Unasyn 3 g" is the whole
    product (ampicillin 2 g with sulbactam 1 g), "Augmentin 875 mg" names its amoxicillin: which is meant cannot
    be told, so the smaller reading (the ingredient's share of the product's strengths) is the one judged, and a
    dose is not called too high on a reading the prescriber may not have meant. A count of tablets, a single
    ingredient, or a name that does not give every strength is read as written."""
    if len(exposure.ingredients) < 2 or dosing.dose_mg(dosage, None) is None:
        return 1.0
    strengths = [_product_strength_mg(display, name) for name in exposure.ingredients]
    own = _product_strength_mg(display, ingredient)
    if own is None or any(s is None for s in strengths):
        return 1.0
    total = sum(s for s in strengths if s is not None)
    return own / total if total > 0 else 1.0


# "ampicillin 2 G / sulbactam 1 G Injection": vials of injectables state grams.
_GRAMS_PART: Final = re.compile(
    r"(?P<name>[A-Za-z][A-Za-z ,\-]*?)\s+(?P<value>\d+(?:\.\d+)?)\s*GM?\b", re.IGNORECASE
)


def _product_strength_mg(display: str, ingredient: str) -> float | None:
    """An ingredient's milligrams per unit in a product name, in milligrams, micrograms or grams."""
    strength = ingredient_strength_mg(display, ingredient)
    if strength is not None:
        return strength.mg
    for match in _GRAMS_PART.finditer(display):
        if ingredient.split()[0] in match.group("name").lower():
            return float(match.group("value")) * 1000
    return None


def dose_range(facts: RuleFacts) -> Iterator[Finding]:
    """Doses over the table's limits for the order's route; for a child, by age band and weight, or a note that
    weight is unknown; for an adult, by weight too where the row has weight-based limits and a weight is current."""
    table = dose_table()
    age = facts.age
    paediatric = age is not None and age < ADULT_AGE
    weight_reading = facts.current("weight")
    weight = weight_reading.value if weight_reading is not None else None
    for exposure, dosage, display in _dosed(facts):
        parenteral = dosing.is_parenteral(dosing.route_text(facts, exposure))
        for ingredient in exposure.ingredients:
            limits = table.row(ingredient, parenteral)
            if limits is None or (ingredient in SUMMED_INGREDIENTS and not exposure.proposed):
                continue
            strength = ingredient_strength_mg(display, ingredient)
            single = single_dose_mg(dosage, strength)
            if single is not None:
                single *= _share_of_mass_dose(exposure, display, ingredient, dosage)
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
                # The weight goes in the inputs where it chose the limit (mg/kg, a low-weight or adult-dose line).
                weighed = (paediatric and limits.has_paediatric) or limits.has_adult_weight
                yield _too_high(
                    exposure,
                    ingredient,
                    limits,
                    excesses,
                    weight_reading.handle if weighed and weight_reading is not None else None,
                    paediatric,
                )
            elif paediatric and limits.has_paediatric and weight is None and exposure.proposed:
                yield _weight_unknown(exposure, ingredient, facts)


def _too_high(
    exposure: Exposure,
    ingredient: str,
    limits: DoseLimits,
    excesses: list[_Excess],
    weight_handle: str | None,
    paediatric: bool,
) -> Finding:
    worst = max(excesses, key=lambda e: e.ratio)
    severity: Severity = "critical" if worst.ratio >= dose_table().critical_multiple else "warning"
    summary = f"{ingredient.capitalize()} {worst.what} exceeds {worst.limit}: consider a lower dose"
    evidence = PAEDIATRIC_EVIDENCE if weight_handle and paediatric else EVIDENCE
    return Finding(
        "rule.dose-above-maximum",
        severity,
        summary
        if len(summary) < 140
        else f"{ingredient.capitalize()} dose exceeds {worst.limit}: consider a lower dose",
        f"The order's dose is {worst.ratio:.1f} times the labelled limit ({limits.source}).",
        (*evidence, *((limits.kb,) if limits.kb else ())),
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
