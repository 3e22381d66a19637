"""High-harm drug-drug checks: QT-prolonging combinations, the opioid bundle (sedatives, gabapentinoids,
serotonergic opioids, naloxone by MME), amiodarone and warfarin partners, and contraindicated pairs from the
Phansalkar 2012 high-priority list and the labels.

`HIGH_HARM_RULES` is wired into the medication rules by the catalog's owner. Pairs are `Interaction`s like the
catalog's; the rules that read labs or doses are small dataclasses, so their rule ids and evidence ids are data
the rule tests can read. Every rule fails closed: a lab too old to use or a dose it cannot read is said on the
card, never taken as normal.

Duplicate opioids are not here: catalog.duplicate_therapy already reports any two opioid exposures (two
handles), which counts combination products (hydrocodone/acetaminophen carries the opioid class) and a
long-acting with a short-acting product of the same opioid (two products, two handles: CDC counts both
towards the daily MME, so a card asks whether both are intended).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from plugin import terminology
from plugin.context.model import Measurement
from plugin.packaged import read_knowledge_json
from plugin.rules.catalog import (
    INR,
    POTASSIUM,
    SIMVASTATIN_CAPS,
    Rule,
    beers_cns_burden_applies,
    strength_mg,
)
from plugin.rules.dosing import daily_mg, dosage_of, dose_count, is_parenteral, route_text
from plugin.rules.interactions import Interaction
from plugin.rules.interactions import pair as _pair
from plugin.rules.model import Exposure, Finding, LabOrder, RuleFacts, Severity
from plugin.rules.phrasing import handles as _handles
from plugin.rules.phrasing import names as _names
from plugin.rules.phrasing import proposed as _proposed
from plugin.rules.phrasing import short as _short

__all__ = ["HIGH_HARM_RULES", "MmeTable", "mme_per_day", "mme_table"]

MAGNESIUM = LabOrder("19123-9", "Magnesium [Mass/volume] in Serum or Plasma")
DIGOXIN_LEVEL = LabOrder("10535-3", "Digoxin [Mass/volume] in Serum or Plasma")

PHANSALKAR: Final = "kb.phansalkar-high-priority-ddi"


def _monitored(pair: Interaction, order: LabOrder) -> Interaction:
    return replace(pair, order=order)


# --- drug pairs -------------------------------------------------------------------------------


OPIOID_PAIRS: tuple[Interaction, ...] = (
    # Opioid + benzodiazepine is the catalog's rule.opioid-sedative (critical); Z-drugs stay a warning here. From
    # 65 with three or more CNS-active drugs, rule.beers-cns-active-burden names the opioid and its partner.
    _pair(
        "rule.opioid-z-drug",
        ["opioid"],
        ["z-drug"],
        "warning",
        ["kb.opioid-cns-depressants"],
        "adds to sedation and respiratory depression",
        "consider a non-sedating alternative or naloxone",
        "Z-drug hypnotics add their central nervous system depression to the opioid's, raising overdose risk.",
        quiet_when=beers_cns_burden_applies,
    ),
    _pair(
        "rule.opioid-gabapentinoid",
        ["opioid"],
        ["gabapentinoid"],
        "warning",
        ["kb.opioid-gabapentinoid"],
        "can cause serious breathing problems",
        "consider a low gabapentinoid dose and sedation checks",
        "Gabapentin and pregabalin add to the respiratory depression of opioids (FDA warning, 2019).",
        quiet_when=beers_cns_burden_applies,
    ),
    _pair(
        "rule.serotonergic-opioid-ssri-snri",
        ["serotonergic-opioid"],
        ["ssri", "snri"],
        "warning",
        [("*", "kb.opioid-serotonergic"), ("tramadol", "kb.tramadol-serotonergic")],
        "can cause serotonin syndrome",
        "consider a non-serotonergic opioid or watching for serotonin toxicity",
        "These opioids add serotonergic activity to the antidepressant, which can tip into serotonin syndrome.",
    ),
)

AMIODARONE_WARFARIN_PAIRS: tuple[Interaction, ...] = (
    _monitored(
        _pair(
            "rule.amiodarone-warfarin",
            ["qt-prolonging"],
            ["vitamin-k-antagonist"],
            "warning",
            ["kb.warfarin-amiodarone"],
            "raises the INR over weeks",
            "consider a lower warfarin dose and weekly INR checks",
            "Amiodarone slows warfarin clearance for months, so the INR climbs unless the warfarin dose is cut.",
            left_ingredients=["amiodarone"],
        ),
        INR,
    ),
    _monitored(
        _pair(
            "rule.amiodarone-digoxin",
            ["qt-prolonging"],
            ["cardiac-glycoside"],
            "warning",
            ["kb.digoxin-amiodarone"],
            "raises digoxin levels",
            "consider halving the digoxin dose and checking a digoxin level",
            "Amiodarone reduces digoxin clearance, roughly doubling its level and adding to its slowing of the heart.",
            left_ingredients=["amiodarone"],
        ),
        DIGOXIN_LEVEL,
    ),
    _monitored(
        _pair(
            "rule.vka-co-trimoxazole",
            ["vitamin-k-antagonist"],
            ["sulfonamide-antibiotic"],
            "warning",
            ["kb.warfarin-co-trimoxazole"],
            "can sharply raise the INR",
            "consider another antibiotic or an INR check within 3-5 days",
            "Sulfamethoxazole blocks the enzyme that clears warfarin (CYP2C9), often causing large INR rises.",
        ),
        INR,
    ),
    _monitored(
        _pair(
            "rule.vka-metronidazole",
            ["vitamin-k-antagonist"],
            ["nitroimidazole"],
            "warning",
            ["kb.warfarin-metronidazole"],
            "can sharply raise the INR",
            "consider another antimicrobial or an INR check within 3-5 days",
            "Metronidazole slows the breakdown of warfarin's more potent form, so the INR rises.",
            right_systemic_only=True,
        ),
        INR,
    ),
)

CONTRAINDICATED_PAIRS: tuple[Interaction, ...] = (
    _pair(
        "rule.pde5-nitrate",
        ["pde5-inhibitor", "sgc-stimulator"],
        ["nitrate"],
        "critical",
        [
            ("pde5-inhibitor", "kb.nitrate-pde5-inhibitor"),
            ("sgc-stimulator", "kb.riociguat-nitrate-pde5-contraindicated"),
        ],
        "is contraindicated (severe hypotension)",
        "consider stopping one of them",
        "Both widen blood vessels through cyclic GMP, so together they can drop blood pressure to dangerous levels.",
    ),
    _pair(
        "rule.riociguat-pde5",
        ["sgc-stimulator"],
        ["pde5-inhibitor"],
        "critical",
        ["kb.riociguat-nitrate-pde5-contraindicated"],
        "is contraindicated (severe hypotension)",
        "consider stopping one of them",
        "Riociguat and PDE5 inhibitors both raise cyclic GMP, and together they can cause severe hypotension.",
    ),
    _pair(
        "rule.thiopurine-febuxostat",
        ["thiopurine"],
        ["xanthine-oxidase-inhibitor"],
        "critical",
        ["kb.febuxostat-thiopurine-contraindicated", PHANSALKAR],
        "is contraindicated (marrow suppression)",
        "consider another urate-lowering option",
        "Febuxostat blocks xanthine oxidase, which clears azathioprine and mercaptopurine, so their levels soar.",
        right_unless_ingredients=["allopurinol"],
    ),
    _pair(
        "rule.thiopurine-allopurinol",
        ["thiopurine"],
        ["xanthine-oxidase-inhibitor"],
        "critical",
        ["kb.allopurinol-azathioprine"],
        "can cause fatal marrow suppression",
        "consider a quarter to a third of the thiopurine dose",
        "Allopurinol blocks xanthine oxidase, which clears azathioprine and mercaptopurine, so their levels soar.",
        right_unless_ingredients=["febuxostat"],
    ),
    _pair(
        "rule.maoi-stimulant",
        ["maoi"],
        ["stimulant"],
        "critical",
        [("*", "kb.stimulant-maoi"), ("*", PHANSALKAR)],
        "is contraindicated (hypertensive crisis)",
        "consider stopping one; allow 14 days after an MAOI",
        "MAO inhibitors stop the breakdown of the noradrenaline stimulants release, so blood pressure can soar.",
    ),
    _pair(
        "rule.maoi-sympathomimetic",
        ["maoi"],
        ["sympathomimetic"],
        "critical",
        [
            ("pseudoephedrine", "kb.decongestant-maoi"),
            ("phenylephrine", "kb.decongestant-maoi"),
            ("atomoxetine", "kb.atomoxetine-maoi"),
            ("pseudoephedrine", PHANSALKAR),
            ("atomoxetine", PHANSALKAR),
        ],
        "is contraindicated (hypertensive crisis)",
        "consider stopping one; allow 14 days after the MAOI",
        "MAO inhibitors stop the breakdown of noradrenaline, so drugs that release or raise it can spike blood pressure.",
        # The antidepressant MAOIs and selegiline (Phansalkar's members); linezolid and rasagiline labels only
        # ask for care with pressor amines, and the stimulant pair above covers amphetamines for every MAOI.
        left_ingredients=["phenelzine", "tranylcypromine", "isocarboxazid", "selegiline"],
    ),
    _pair(
        "rule.ergot-cyp3a4-inhibitor",
        ["ergot"],
        ["strong-cyp3a4-inhibitor", "macrolide"],
        "critical",
        ["kb.ergot-cyp3a4-inhibitors", PHANSALKAR],
        "is contraindicated (ergotism, limb ischaemia)",
        "consider a non-interacting alternative",
        "CYP3A4 inhibitors block ergot clearance, and the vasospasm that follows can starve limbs or brain of blood.",
        # The ergotamine boxed warning names macrolides with the potent inhibitors; azithromycin is not one.
        right_unless_ingredients=["azithromycin"],
    ),
    _pair(
        "rule.tizanidine-cyp1a2-inhibitor",
        ["tizanidine"],
        ["strong-cyp1a2-inhibitor"],
        "critical",
        ["kb.tizanidine-cyp1a2-inhibitors", PHANSALKAR],
        "is contraindicated (hypotension, sedation)",
        "consider a non-interacting alternative",
        "Ciprofloxacin and fluvoxamine block CYP1A2, which clears tizanidine, multiplying its levels.",
    ),
    _pair(
        "rule.ramelteon-fluvoxamine",
        ["ramelteon"],
        ["strong-cyp1a2-inhibitor"],
        "critical",
        ["kb.ramelteon-fluvoxamine", PHANSALKAR],
        "should not be combined (ramelteon levels rise about 190-fold)",
        "consider another hypnotic",
        "Fluvoxamine blocks CYP1A2, which clears ramelteon, so its levels and sedation rise enormously.",
        # The ramelteon label names fluvoxamine; other CYP1A2 inhibitors are "use with caution".
        right_unless_ingredients=["ciprofloxacin"],
    ),
    _pair(
        "rule.arni-ace-inhibitor",
        ["arni"],
        ["ace-inhibitor"],
        "critical",
        ["kb.sacubitril-valsartan-acei-contraindicated"],
        "is contraindicated (angioedema)",
        "consider a 36-hour ACE inhibitor washout first",
        "Blocking neprilysin and ACE together lets bradykinin build up, which can cause life-threatening angioedema.",
    ),
)


# --- QT-prolonging combinations -----------------------------------------------------------------------


def _lab_state(facts: RuleFacts, analyte: str, short: str) -> tuple[Measurement | None, str | None]:
    """(the value shown on the card, why it cannot be used): a current value and None, or a stale or
    missing one and the words that say so."""
    current = facts.current(analyte)
    if current is not None:
        return current, None
    stale = facts.stale(analyte)
    if stale is None:
        return None, f"no {short} on record"
    if stale.days_ago is None:
        return stale, f"{short} undated"
    return stale, f"{short} {stale.days_ago} days old"


@dataclass(frozen=True, slots=True)
class QtCombination:
    """Two or more QT-prolonging drugs (CredibleMeds known risk, the class `qt-prolonging`): a warning, critical
    with current potassium < 3.5 mmol/L, magnesium < 1.8 mg/dL or congenital long QT on record. A missing or
    stale potassium or magnesium is said on the card and offered as a lab order (fail closed)."""

    rule_id: str = "rule.qt-combination"
    combination: str = "kb.qt-prolonging-drug-combination"
    electrolytes: str = "kb.qt-drug-hypokalaemia"
    congenital: str = "kb.qt-drug-congenital-long-qt"
    # The label's own QT warning, cited when ondansetron is one of the drugs.
    ondansetron: str = "kb.ondansetron-qt"
    potassium_below: float = 3.5  # mmol/L
    magnesium_below: float = 1.8  # mg/dL

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        drugs = facts.with_class("qt-prolonging")
        # Two products of one drug are a duplicate, not a combination: count distinct QT-prolonging ingredients.
        distinct = {i for e in drugs for i in e.ingredients if "qt-prolonging" in terminology.classes_of(i)}
        if len(distinct) < 2:
            return
        potassium, k_gap = _lab_state(facts, "potassium", "K")
        magnesium, mg_gap = _lab_state(facts, "magnesium", "Mg")
        low = [
            f"{label} {lab.value:g}"
            for label, lab, gap, below in (
                ("K", potassium, k_gap, self.potassium_below),
                ("Mg", magnesium, mg_gap, self.magnesium_below),
            )
            if lab is not None and gap is None and lab.value < below
        ]
        gaps = [gap for gap in (k_gap, mg_gap) if gap is not None]
        long_qt = facts.value_sets.get("long-qt", ())
        severity: Severity = "critical" if low or long_qt else "warning"
        clauses = ["low " + " and ".join(low)] if low else []
        clauses += gaps
        tail = " together prolong QT" + (" in long QT syndrome" if long_qt else "")
        tail += "".join(f"; {c}" for c in clauses)
        if low:
            option = "consider correcting K/Mg and an alternative"
        elif gaps:
            option = "consider checking K and Mg and an ECG"
        else:
            option = "consider an alternative or a baseline ECG"
        tail += f": {option}"
        names = _short(_names(drugs).capitalize(), max(20, 139 - len(tail)))
        evidence = [self.combination]
        if low or gaps:
            evidence.append(self.electrolytes)
        if long_qt:
            evidence.append(self.congenital)
        if "ondansetron" in distinct:
            evidence.append(self.ondansetron)
        labs = tuple(lab.handle for lab in (potassium, magnesium) if lab is not None)
        order = POTASSIUM if k_gap is not None else MAGNESIUM if mg_gap is not None else None
        yield Finding(
            self.rule_id,
            severity,
            _short(names + tail),
            "Each drug delays cardiac repolarisation, and together, above all with low potassium or magnesium, "
            "they raise the risk of torsades de pointes.",
            tuple(evidence),
            tuple(sorted({*_handles(drugs), *labs, *long_qt})),
            _proposed(drugs),
            order,
        )


# --- opioids: morphine milligram equivalents and naloxone ----------------------------------------------


class MmeTableError(ValueError):
    """knowledge/opioid_mme.json is malformed."""


@dataclass(frozen=True, slots=True)
class MmeFactor:
    factor: float
    per: str  # "mg/day", or "mcg/hour" for transdermal fentanyl


@dataclass(frozen=True, slots=True)
class MmeTable:
    version: str
    threshold: float  # MME/day from which naloxone is offered
    factors: Mapping[str, MmeFactor]


def parse_mme_table(raw: object) -> MmeTable:
    if not isinstance(raw, dict) or not isinstance(raw.get("version"), str) or not raw["version"]:
        raise MmeTableError("opioid_mme.json: needs a version")
    threshold = raw.get("naloxone_threshold_mme_per_day")
    factors = raw.get("factors")
    source = raw.get("source")
    if not isinstance(threshold, int | float) or threshold <= 0:
        raise MmeTableError("opioid_mme.json: naloxone_threshold_mme_per_day must be a positive number")
    if not isinstance(source, dict) or not all(isinstance(source.get(k), str) for k in ("document", "url")):
        raise MmeTableError("opioid_mme.json: source needs a document and a url")
    if not isinstance(factors, dict) or not factors:
        raise MmeTableError("opioid_mme.json: factors must be a non-empty object")
    parsed: dict[str, MmeFactor] = {}
    for name, body in factors.items():
        if not isinstance(body, dict):
            raise MmeTableError(f"opioid_mme.json: {name}: expected an object")
        factor, per = body.get("factor"), body.get("per")
        if not isinstance(factor, int | float) or factor <= 0 or per not in ("mg/day", "mcg/hour"):
            raise MmeTableError(f"opioid_mme.json: {name}: a positive factor per mg/day or mcg/hour")
        if "opioid" not in terminology.classes_of(name):
            raise MmeTableError(f"opioid_mme.json: {name} is not an opioid in the terminology")
        parsed[name] = MmeFactor(float(factor), per)
    return MmeTable(raw["version"], float(threshold), MappingProxyType(parsed))


@functools.cache
def mme_table() -> MmeTable:
    """The packaged knowledge/opioid_mme.json (CDC 2022 conversion factors), read on first use."""
    return parse_mme_table(read_knowledge_json("opioid_mme.json", MmeTableError))


# "72 HR fentanyl 0.025 MG/HR Transdermal System", "Fentanyl 25 MCG/HR Transdermal Patch"
_FENTANYL_RATE = re.compile(r"fentanyl\s+(\d+(?:\.\d+)?)\s*(MCG|MG)\s*/\s*HR\b", re.IGNORECASE)


def mme_per_day(facts: RuleFacts, exposure: Exposure) -> tuple[float | None, str]:
    """(MME/day of one product, or None; why it is unknown). Each opioid ingredient's daily dose (strength ×
    dose × frequency, as needed counted at its most frequent) times its CDC 2022 factor."""
    table = mme_table()
    dosage = dosage_of(facts, exposure)
    total = 0.0
    for ingredient in exposure.ingredients:
        if "opioid" not in terminology.classes_of(ingredient):
            continue
        factor = table.factors.get(ingredient)
        if factor is None:
            return None, "no CDC factor"
        if factor.per == "mcg/hour":
            match = _FENTANYL_RATE.search(exposure.label)
            patches = dose_count(dosage)
            if match is None or "transdermal" not in exposure.label.lower():
                return None, "not a patch"
            if patches is None:
                return None, "dose unreadable"
            rate = float(match.group(1)) * (1000.0 if match.group(2).upper() == "MG" else 1.0)
            total += rate * patches * factor.factor
            continue
        strength = strength_mg(exposure, ingredient)
        daily = daily_mg(dosage, strength)
        if dosage is not None and dosage.as_needed and dosage.max_daily_units and strength is not None:
            # CDC 2022: an as-needed order counts at the most it allows ("1-2 tablets, maximum 8 a day").
            daily = max(daily or 0.0, dosage.max_daily_units * strength)
        if daily is None:
            return None, "dose unreadable"
        total += daily * factor.factor
    return total, ""


_RESCUE: Final = frozenset({"naloxone", "nalmefene"})


def _taken_at_home(facts: RuleFacts, opioid: Exposure) -> bool:
    """An opioid the patient holds: by mouth, patch or spray. An injected opioid (IV morphine, IM meperidine) is
    given by staff where naloxone is stocked; a long-acting buprenorphine injection for opioid use disorder is
    still carried home, so it counts."""
    return "buprenorphine" in opioid.ingredients or not is_parenteral(route_text(facts, opioid))


@dataclass(frozen=True, slots=True)
class NaloxoneMissing:
    """Opioids taken at home with no naloxone on record when the total is ≥ 50 MME/day or an opioid overdose is
    on record (warning), or when the MME cannot be computed (info, saying so: unknown is never read as under 50).
    Naloxone inside buprenorphine/naloxone is not a rescue supply and does not count. Injected opioids are given
    where naloxone is stocked and are left out (see _taken_at_home)."""

    rule_id: str = "rule.opioid-naloxone"
    naloxone: str = "kb.cdc-opioid-naloxone-2022"
    mme: str = "kb.cdc-opioid-mme-2022"

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        opioids = tuple(e for e in facts.with_class("opioid") if _taken_at_home(facts, e))
        if not opioids:
            return
        if any(not _RESCUE.isdisjoint(e.ingredients) and not e.has("opioid") for e in facts.exposures):
            return
        known = 0.0
        unknown: list[str] = []
        for exposure in opioids:
            mme, why = mme_per_day(facts, exposure)
            if mme is None:
                unknown.append(why)
            else:
                known += mme
        # CDC 2022 (recommendation 8): offer naloxone after any overdose, at 50 MME/day or more, or with a
        # benzodiazepine.
        overdose = (*facts.value_sets.get("opioid-overdose", ()), *facts.value_sets.get("drug-overdose", ()))
        sedatives = facts.with_class("benzodiazepine")
        threshold = mme_table().threshold
        high = known >= threshold
        if not (overdose or high or unknown or sedatives):
            return
        amount = f"{'at least ' if unknown else ''}{round(known, 1):g} MME/day"
        if high:
            what = amount
        elif unknown:
            what = f"MME/day unknown ({', '.join(dict.fromkeys(unknown))})"
        else:
            what = amount
        lead = "Overdose on record, " if overdose else "With a benzodiazepine, " if sedatives else ""
        option = (
            "consider confirming the dose and offering naloxone"
            if unknown and not (high or overdose or sedatives)
            else "consider offering naloxone"
        )
        tail = f": {what}, no naloxone on record: {option}"
        names = _short(_names(opioids), max(20, 139 - len(lead) - len(tail)))
        summary = f"{lead}{names}{tail}" if lead else f"{names.capitalize()}{tail}"
        yield Finding(
            self.rule_id,
            "warning" if overdose or high or sedatives else "info",
            _short(summary),
            "Naloxone reverses an opioid overdose, and CDC advises offering it at 50 MME a day or more, with a "
            "benzodiazepine, or after an overdose.",
            (self.naloxone, self.mme) if high or unknown else (self.naloxone,),
            tuple(sorted({*_handles(opioids), *_handles(sedatives), *overdose})),
            _proposed(opioids, sedatives),
        )


# --- simvastatin: the daily dose the strength alone does not show ----------------------------------------


@dataclass(frozen=True, slots=True)
class SimvastatinDailyDose:
    """catalog.simvastatin_dose_limit reads the product strength (and asks when it is unreadable). This covers
    what it cannot see: a strength within the cap taken often enough to exceed it (two 20 mg tablets a day with
    amiodarone). It stays silent wherever that rule speaks, so the two never report one order twice."""

    rule_id: str = "rule.simvastatin-daily-dose"
    limits: str = "kb.simvastatin-dose-limits"
    amiodarone: str = "kb.simvastatin-amiodarone-dose-limit-2011"

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        for statin in (e for e in facts.exposures if "simvastatin" in e.ingredients):
            strength = strength_mg(statin, "simvastatin")
            daily = daily_mg(dosage_of(facts, statin), strength)
            if strength is None or daily is None:
                continue
            over: list[tuple[Exposure, int]] = []
            for e in facts.exposures:
                caps = [SIMVASTATIN_CAPS[i] for i in e.ingredients if i in SIMVASTATIN_CAPS]
                # Above the cap by strength is the catalog rule's card; only the daily dose is new here.
                if e.handle != statin.handle and caps and strength <= min(caps) < daily:
                    over.append((e, min(caps)))
            if not over:
                continue
            cap = min(c for _, c in over)
            others = [e for e, _ in over]
            evidence = [self.limits]
            if any("amiodarone" in e.ingredients for e in others):
                evidence.append(self.amiodarone)
            yield Finding(
                self.rule_id,
                "warning",
                _short(
                    f"Simvastatin {daily:g} mg/day ({strength:g} mg tablets) with {_short(_names(others), 40)} "
                    f"exceeds its {cap} mg/day limit: consider {cap} mg/day or another statin"
                ),
                "These drugs raise simvastatin levels, so its label caps the daily dose to limit muscle injury.",
                tuple(evidence),
                _handles([statin], others),
                _proposed([statin], others),
            )


QT_COMBINATION = QtCombination()
NALOXONE_MISSING = NaloxoneMissing()
SIMVASTATIN_DAILY_DOSE = SimvastatinDailyDose()

HIGH_HARM_RULES: tuple[Rule, ...] = (
    QT_COMBINATION,
    *OPIOID_PAIRS,
    NALOXONE_MISSING,
    *AMIODARONE_WARFARIN_PAIRS,
    SIMVASTATIN_DAILY_DOSE,
    *CONTRAINDICATED_PAIRS,
)
