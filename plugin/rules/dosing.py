"""Daily doses from the structured dosage of a medication or draft order: dose × frequency × unit strength.

Only the structured fields are read (Dosage.dose "2 tablet" or "10 mg", Dosage.frequency "3 per 1 d"), never
free-text sigs. Anything that cannot be read unambiguously gives None, and the rules that use it say the dose
is unknown instead of assuming it is low (fail closed). An as-needed order is counted at its most frequent
prescribed use, which is what CDC's MME arithmetic counts too.
"""

from __future__ import annotations

import re
from typing import Final

from plugin.context.model import Dosage, DraftOrder, Medication
from plugin.rules.model import Exposure, RuleFacts

# "3 per 1 d", "1 per 8 h", "2 per 1 wk": frequency, period, UCUM period unit (FHIR Timing.repeat).
_FREQUENCY = re.compile(r"^(\d+(?:\.\d+)?) per (\d+(?:\.\d+)?) ([a-z]+)$", re.IGNORECASE)
_PERIODS_PER_DAY: Final[dict[str, float]] = {
    "min": 1440.0,
    "h": 24.0,
    "hr": 24.0,
    "hour": 24.0,
    "d": 1.0,
    "day": 1.0,
    "wk": 1 / 7,
    "week": 1 / 7,
}
# Product names that say the drug acts where it is put (skin, eye, airway): no oral dose limit or systemic
# interaction applies to them. Read from the name, which is all an Exposure carries of route.
LOCAL_ROUTE: Final = re.compile(
    r"\b(topical|ophthalmic|otic|nasal|vaginal|rectal|inhal\w*|metered dose|cream|ointment|paste|lotion|gel|shampoo)\b",
    re.IGNORECASE,
)
# Products that stay on the skin, eye or ear: RxNorm names the dose form ("Metronidazole 7.5 MG/ML Topical Gel"), and
# OTC text names the base ("Voltaren 1% gel"). A vaginal or rectal gel or cream does not count: part of it is
# absorbed, and vaginal miconazole raises the INR.
# A nasal steroid treats the nose: it is no inhaled corticosteroid for the lungs.
NASAL: Final = re.compile(r"\bnasal\b|\bnose\b", re.IGNORECASE)
SKIN_EYE_EAR: Final = re.compile(
    # "Liqui-Gel" capsules are swallowed.
    r"^(?!.*\b(?:vaginal|intravaginal|rectal)\b).*"
    r"\b(?:topical|ophthalmic|otic|cream|ointment|lotion|(?<!liqui-)(?<!liqui )gel|shampoo)\b",
    re.IGNORECASE | re.DOTALL,
)
# Product names of modified-release forms, which several labels dose differently from the immediate form.
EXTENDED_RELEASE: Final = re.compile(
    r"\b(extended[- ]release|\d+ hr|er|xr|sr|cr|la|transdermal|patch)\b|contin\b", re.IGNORECASE
)
# Ingredients whose products are added up against a daily maximum by their own rule, which also speaks when the
# total cannot be read (plugin/rules/depth.py, rule.acetaminophen-daily-total): acetaminophen in a combination
# and on its own is the expected regimen when the total stays within 4 g, so neither a duplicate card nor a
# per-product dose card on the current list says anything more.
SUMMED_INGREDIENTS: Final = frozenset({"acetaminophen"})
# Given by injection or infusion (an IV dose, a single shot in clinic or the emergency department), and given into
# a vein; read from the product name and the order's route together (route_text).
PARENTERAL: Final = re.compile(r"\b(injection|injectable|intravenous|infusion|iv)\b", re.IGNORECASE)
INTRAVENOUS: Final = re.compile(r"\b(intravenous|iv|infusion|drip)\b", re.IGNORECASE)
# PARENTERAL reads "injection" and "intravenous"; an IM or SC order is often known only by its route or a syringe
# or pen in the product name ("ketorolac 30 MG/ML Prefilled Syringe", route "Intramuscular route"). The dose and
# renal tables read both; the older rules keep PARENTERAL alone.
_INJECTED: Final = re.compile(
    r"\b(intramuscular|subcutaneous|subcut|im|sc|syringe|injector)\b", re.IGNORECASE
)


def is_parenteral(route_words: str) -> bool:
    """Whether a product name and order route (route_text) say the drug is given by injection."""
    return bool(PARENTERAL.search(route_words) or _INJECTED.search(route_words))


_DOSE = re.compile(r"^(\d+(?:\.\d+)?)\s*(.*)$")
# Units that count dose forms: the product strength gives the milligrams of each.
_COUNT_UNITS: Final = frozenset(
    {
        "",
        "1",
        "tablet",
        "tablets",
        "tab",
        "tabs",
        "tbl",
        "capsule",
        "capsules",
        "cap",
        "caps",
        "each",
        "ea",
        "pill",
        "pills",
        "patch",
        "patches",
        "film",
        "lozenge",
        "suppository",
        "actuation",
        "puff",
    }
)
_VOLUME_UNITS: Final = frozenset({"ml", "milliliter", "millilitre"})
_MASS_UNITS: Final[dict[str, float]] = {"mg": 1.0, "g": 1000.0, "mcg": 0.001, "ug": 0.001, "µg": 0.001}


def route_text(facts: RuleFacts, exposure: Exposure) -> str:
    """The product name and the order's route, where a route word ("rectal", "intravenous") is found."""
    dosage = dosage_of(facts, exposure)
    return f"{exposure.label} {dosage.route if dosage is not None and dosage.route else ''}"


def record_of(facts: RuleFacts, exposure: Exposure) -> Medication | DraftOrder | None:
    """The current medication or draft order behind an exposure; None for a proposal (governance)."""
    for medication in facts.context.medications:
        if medication.handle == exposure.handle:
            return medication
    for order in facts.context.draft_orders:
        if order.handle == exposure.handle:
            return order
    return None


def dosage_of(facts: RuleFacts, exposure: Exposure) -> Dosage | None:
    """The structured dosage behind an exposure; None for a proposal (governance), which carries none."""
    record = record_of(facts, exposure)
    return record.dosage if record is not None else None


def per_day(frequency: str | None) -> float | None:
    """Administrations a day from "N per P unit"; None when absent or in a unit we do not read."""
    if frequency is None:
        return None
    match = _FREQUENCY.match(frequency.strip())
    if match is None:
        return None
    count, period, unit = float(match.group(1)), float(match.group(2)), match.group(3).lower()
    if period <= 0 or unit not in _PERIODS_PER_DAY:
        return None
    return count * _PERIODS_PER_DAY[unit] / period


def dose_count(dosage: Dosage | None) -> float | None:
    """How many dose forms one administration is ("2 tablet" → 2); None for a mass, a volume or nothing."""
    parsed = _dose(dosage)
    if parsed is None or parsed[1] not in _COUNT_UNITS:
        return None
    return parsed[0]


def dose_mg(dosage: Dosage | None, strength_mg: float | None, per_ml: float | None = None) -> float | None:
    """Milligrams of one administration: a dose in mass units as written, dose forms × unit strength, or, for
    a liquid whose strength is `strength_mg` in `per_ml` millilitres, millilitres × concentration."""
    parsed = _dose(dosage)
    if parsed is None:
        return None
    value, unit = parsed
    if unit in _MASS_UNITS:
        return value * _MASS_UNITS[unit]
    if strength_mg is None:
        return None
    if per_ml is not None:
        # A count of a liquid ("2 tablet" of a suspension) is not a dose.
        return value * strength_mg / per_ml if unit in _VOLUME_UNITS else None
    if unit in _COUNT_UNITS:
        return value * strength_mg
    return None  # a volume of a solid, or an unknown unit


def daily_mg(dosage: Dosage | None, strength_mg: float | None) -> float | None:
    """Milligrams a day, or None when the dose, the frequency or the strength cannot be read."""
    one = dose_mg(dosage, strength_mg)
    times = per_day(dosage.frequency) if dosage is not None else None
    if one is None or times is None:
        return None
    return one * times


def _dose(dosage: Dosage | None) -> tuple[float, str] | None:
    if dosage is None or dosage.dose is None:
        return None
    match = _DOSE.match(dosage.dose.strip())
    if match is None:
        return None
    unit = match.group(2).strip().lower().strip("{}")
    return float(match.group(1)), unit
