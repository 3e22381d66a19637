"""Children's doses set by age or weight band (knowledge/paediatric_dose_bands.json): a dose off its band."""

# A mg/kg maximum (the dose-range table) catches a dose far too high; a band catches the dose from the wrong
# band: oseltamivir 45 mg for a 26 kg child, penicillin prophylaxis left at 125 mg after the third birthday,
# rectal diazepam at twice the dose for age and weight. A band that needs a weight says nothing without a
# current one (rule.dose-weight-unknown asks for it); a dose that cannot be read in milligrams says nothing.

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from plugin.errors import PluginError
from plugin.ids import KB_ID
from plugin.packaged import read_knowledge_json
from plugin.rules.dose_range import ingredient_strength_mg, single_dose_mg
from plugin.rules.dosing import dosage_of, route_text
from plugin.rules.model import Exposure, Finding, RuleFacts, Severity
from plugin.rules.phrasing import proposed as _proposed
from plugin.rules.phrasing import short as _short

__all__ = [
    "DOSE_BAND_RULES",
    "DoseBandError",
    "dose_bands",
    "paediatric_dose_band",
    "parse_dose_bands",
]

_DATA: Final = "knowledge/paediatric_dose_bands.json"
RULE_ID: Final = "rule.paediatric-dose-band"
ADULT_AGE: Final = 18


class DoseBandError(PluginError):
    """knowledge/paediatric_dose_bands.json is malformed."""


@dataclass(frozen=True, slots=True)
class Band:
    age_from: float
    age_below: float
    weight_above: float | None
    weight_up_to: float | None
    mg: float | None  # a fixed dose per administration, or
    mg_per_kg: float | None  # a dose per kilogram per administration

    @property
    def needs_weight(self) -> bool:
        return self.mg_per_kg is not None or self.weight_above is not None or self.weight_up_to is not None

    def holds(self, age: float, weight: float | None) -> bool:
        if not self.age_from <= age < self.age_below:
            return False
        if weight is None:
            return not self.needs_weight
        return (self.weight_above is None or weight > self.weight_above) and (
            self.weight_up_to is None or weight <= self.weight_up_to
        )

    def dose(self, weight: float | None) -> float:
        if self.mg is not None:
            return self.mg
        assert self.mg_per_kg is not None and weight is not None  # holds() admitted it
        return self.mg_per_kg * weight


@dataclass(frozen=True, slots=True)
class BandedDrug:
    ingredient: str
    route: str | None  # a word of the product name or the order's route ("rectal"); None: any route
    condition: str | None  # a value set the bands are for (sickle cell disease)
    bands: tuple[Band, ...]
    under_too: bool  # a dose under the band is raised as well as one over it
    round_up_mg: float | None  # the label rounds a mg/kg dose up to the next multiple of this
    label: str  # what the card calls the band ("Tamiflu label's weight band")
    why: str
    evidence: str
    severity: Severity


@dataclass(frozen=True, slots=True)
class DoseBands:
    tolerance: float
    drugs: tuple[BandedDrug, ...]


def _fail(problem: str) -> DoseBandError:
    return DoseBandError(f"{_DATA}: {problem}")


def _number(raw: dict[str, object], key: str, where: str, required: bool = False) -> float | None:
    value = raw.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value > 1000:
        raise _fail(f"{where}: {key} is a number from 0 to 1000")
    return float(value)


_BAND_KEYS: Final = frozenset({"age_from", "age_below", "weight_above", "weight_up_to", "mg", "mg_per_kg"})
_DRUG_KEYS: Final = frozenset(
    {
        "ingredient",
        "route",
        "condition",
        "bands",
        "under_too",
        "round_up_mg",
        "label",
        "why",
        "evidence",
        "severity",
    }
)


def _band(raw: object, where: str) -> Band:
    if not isinstance(raw, dict) or not set(raw) <= _BAND_KEYS:
        raise _fail(f"{where}: a band has keys from {sorted(_BAND_KEYS)}")
    age_from, age_below = _number(raw, "age_from", where, True), _number(raw, "age_below", where, True)
    assert age_from is not None and age_below is not None
    if not age_from < age_below <= ADULT_AGE:
        raise _fail(f"{where}: age_from is below age_below, and age_below at most {ADULT_AGE}")
    above, up_to = _number(raw, "weight_above", where), _number(raw, "weight_up_to", where)
    if above is not None and up_to is not None and not above < up_to:
        raise _fail(f"{where}: weight_above is below weight_up_to")
    mg, per_kg = _number(raw, "mg", where), _number(raw, "mg_per_kg", where)
    if (mg is None) == (per_kg is None):
        raise _fail(f"{where}: a band gives exactly one of mg and mg_per_kg")
    return Band(age_from, age_below, above, up_to, mg, per_kg)


def _text(raw: dict[str, object], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(f"{where}: {key} is a non-empty string")
    return value


def _drug(raw: object, where: str) -> BandedDrug:
    if not isinstance(raw, dict) or set(raw) != _DRUG_KEYS:
        raise _fail(f"{where}: a drug has exactly {sorted(_DRUG_KEYS)}")
    bands = raw["bands"]
    if not isinstance(bands, list) or not bands:
        raise _fail(f"{where}: at least one band")
    parsed = tuple(_band(band, f"{where}.bands[{n}]") for n, band in enumerate(bands))
    route, condition = raw["route"], raw["condition"]
    if route is not None and (not isinstance(route, str) or not route.isalpha()):
        raise _fail(f"{where}: route is one word or null")
    if condition is not None and not isinstance(condition, str):
        raise _fail(f"{where}: condition is a value-set name or null")
    if not isinstance(raw["under_too"], bool):
        raise _fail(f"{where}: under_too is true or false")
    evidence, severity = _text(raw, "evidence", where), raw["severity"]
    if not KB_ID.match(evidence):
        raise _fail(f"{where}: evidence is a knowledge-base id")
    if severity not in ("info", "warning", "critical"):
        raise _fail(f"{where}: severity is info, warning or critical")
    why = _text(raw, "why", where)
    if not why.endswith("."):
        raise _fail(f"{where}: why is one sentence")
    return BandedDrug(
        ingredient=_text(raw, "ingredient", where),
        route=route,
        condition=condition,
        bands=parsed,
        under_too=raw["under_too"],
        round_up_mg=_number(raw, "round_up_mg", where),
        label=_text(raw, "label", where),
        why=why,
        evidence=evidence,
        severity=severity,
    )


def parse_dose_bands(raw: object) -> DoseBands:
    """The table in paediatric_dose_bands.json's content; DoseBandError names the first problem."""
    if (
        not isinstance(raw, dict)
        or not isinstance(raw.get("version"), str)
        or not isinstance(raw.get("drugs"), list)
    ):
        raise _fail("needs a version, a tolerance and a list of drugs")
    tolerance = _number(raw, "tolerance", "tolerance", True)
    assert tolerance is not None
    if not 0 <= tolerance < 0.5:
        raise _fail("tolerance is a fraction below 0.5")
    drugs = tuple(_drug(drug, f"drugs[{n}]") for n, drug in enumerate(raw["drugs"]))
    if len({(d.ingredient, d.route, d.condition) for d in drugs}) != len(drugs):
        raise _fail("a drug is listed once per route and condition")
    return DoseBands(tolerance, drugs)


@functools.cache
def dose_bands() -> DoseBands:
    """The packaged table, read and validated on first use."""
    return parse_dose_bands(read_knowledge_json("paediatric_dose_bands.json", DoseBandError))


def _on_route(facts: RuleFacts, exposure: Exposure, route: str | None) -> bool:
    if route is None:
        return True
    return route in route_text(facts, exposure).lower()


def _display(ingredient: str) -> str:
    """ "penicillin v" as a sentence starts it: "Penicillin V"."""
    words = [w.upper() if len(w) == 1 else w for w in ingredient.split()]
    return " ".join(words)[:1].upper() + " ".join(words)[1:]


def _mg(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def paediatric_dose_band(facts: RuleFacts) -> Iterator[Finding]:
    """A child's dose outside the band for their age (and weight, or condition) by more than the tolerance."""
    demographics = facts.context.demographics
    if demographics.age_years is None or demographics.age_years >= ADULT_AGE:
        return
    age = (
        demographics.age_days / 365.25 if demographics.age_days is not None else float(demographics.age_years)
    )
    reading = facts.current("weight")
    weight = reading.value if reading is not None else None
    table = dose_bands()
    for drug in table.drugs:
        if drug.condition is not None and not facts.has_condition(drug.condition):
            continue
        band = next((b for b in drug.bands if b.holds(age, weight)), None)
        if band is None:
            continue
        expected = band.dose(weight)
        ceiling = math.ceil(expected / drug.round_up_mg) * drug.round_up_mg if drug.round_up_mg else expected
        for exposure in facts.exposures:
            if drug.ingredient not in exposure.ingredients or not _on_route(facts, exposure, drug.route):
                continue
            dosage = dosage_of(facts, exposure)
            dose = (
                None
                if dosage is None
                else single_dose_mg(dosage, ingredient_strength_mg(exposure.label, drug.ingredient))
            )
            if dose is None:
                continue
            over = dose > ceiling * (1 + table.tolerance)
            under = drug.under_too and dose < expected * (1 - table.tolerance)
            if not over and not under:
                continue
            basis = f"{_mg(weight)} kg, " if band.needs_weight and weight is not None else ""
            target = f"at most {_mg(ceiling)} mg" if over else f"{_mg(expected)} mg a dose"
            summary = (
                f"{_display(drug.ingredient)} {_mg(dose)} mg at {basis}age {demographics.age_label}: the "
                f"{drug.label} is {_mg(ceiling if over else expected)} mg; consider {target}"
            )
            condition = facts.value_sets.get(drug.condition, ()) if drug.condition is not None else ()
            weighed = (reading.handle,) if basis and reading is not None else ()
            yield Finding(
                RULE_ID,
                drug.severity,
                _short(summary),
                drug.why,
                (drug.evidence,),
                (exposure.handle, *weighed, *condition),
                _proposed([exposure]),
            )


DOSE_BAND_RULES: Final = (paediatric_dose_band,)
