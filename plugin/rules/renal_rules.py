"""Kidney rules: renal dose limits from the labelled table, unknown kidney function, and AKI on nephrotoxins."""

# The text helpers are plugin.rules.phrasing's, as every rule module's. Each rule is a frozen dataclass
# carrying its ids and its table, so the test helpers that read rule objects (tests/unit/test_rules.py,
# `cited`) see every rule id and knowledge-base id it can emit.
#
# Who speaks when (one recheck card per drug):
# - A drug whose table entry has `handled_by` (metformin, nitrofurantoin) is left to that older eGFR rule.
# - A drug whose entry has `recheck_by: rule.egfr-recheck` (metformin, nitrofurantoin, digoxin) gets its
#   "no current kidney function" card from rule.egfr-recheck while the recorded eGFR is not current; this
#   rule only asks for what egfr-recheck does not (a weight for CrCl while eGFR is current).

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from plugin.rules import dosing
from plugin.rules.dose_range import analgesic_nsaids, low_dose_aspirin, unit_mg
from plugin.rules.dosing import SKIN_EYE_EAR, is_parenteral, route_text
from plugin.rules.kidney import (
    AkiStage,
    RenalFunction,
    aki_against_reference,
    renal_function,
    shown,
)
from plugin.rules.model import Exposure, Finding, LabOrder, RuleFacts, Severity
from plugin.rules.phrasing import handles as _handles
from plugin.rules.phrasing import names as _names
from plugin.rules.phrasing import proposed as _proposed
from plugin.rules.phrasing import short as _short
from plugin.rules.renal_dosing import Criteria, RenalDrug, RenalTable, Threshold, renal_dosing

__all__ = [
    "CREATININE",
    "KIDNEY_RULES",
    "AkiNephrotoxin",
    "RenalDose",
    "RenalFunctionUnknown",
    "criteria_met",
]

Rule = Callable[[RuleFacts], Iterator[Finding]]
CREATININE = LabOrder("2160-0", "Creatinine [Mass/volume] in Serum or Plasma")
EGFR_RECHECK_ID: Final = "rule.egfr-recheck"


def _inputs(exposure: Exposure, *labs: str) -> tuple[str, ...]:
    return (exposure.handle, *dict.fromkeys(labs))


def _dosed(facts: RuleFacts, table: RenalTable) -> Iterator[tuple[Exposure, RenalDrug]]:
    """Each exposure with its table entry, leaving out the drugs an older rule decides and products that stay on
    the skin, eye or ear (acyclovir cream, ganciclovir eye gel): the labels' kidney limits are for systemic doses."""
    for exposure in facts.exposures:
        if SKIN_EYE_EAR.search(exposure.label):
            continue
        drug = table.match(exposure.ingredients, is_parenteral(route_text(facts, exposure)))
        if drug is not None and drug.handled_by is None:
            yield exposure, drug


# --- what each basis needs, and whether it can be decided --------------------------------------------------


def _other_indication(criteria: Criteria, facts: RuleFacts) -> bool:
    """Another indication with its own dose on record (VTE) and not the one the criteria are for (AF)."""
    if criteria.for_value_set is None or facts.has_condition(criteria.for_value_set):
        return False
    return any(facts.has_condition(name) for name in criteria.not_for_value_sets)


def criteria_met(
    criteria: Criteria, facts: RuleFacts, renal: RenalFunction
) -> tuple[list[str], int, list[str]]:
    """(the criteria met, as card text; how many cannot be read; the handles of the values that met one)."""
    met: list[str] = []
    handles: list[str] = []
    unread = 0
    if criteria.age_at_least is not None:
        if facts.age is None:
            unread += 1
        elif facts.age >= criteria.age_at_least:
            met.append(f"age {facts.context.demographics.age_label}")
    for measurement, limit, at_least, label in (
        (renal.weight, criteria.weight_kg_at_most, False, "weight {:g} kg"),
        (renal.creatinine, criteria.creatinine_at_least, True, "creatinine {:g} mg/dL"),
    ):
        if limit is None:
            continue
        if measurement is None:
            unread += 1
        elif (measurement.value >= limit) if at_least else (measurement.value <= limit):
            met.append(label.format(measurement.value))
            handles.append(measurement.handle)
    return met, unread, handles


# What a card asks for when a drug cannot be checked: a lab to draw, a weight, or a person's judgement
# (the equations have no answer for a child, an unknown age, or a sex other than female or male).
BY_HAND: Final = "the dose by hand"


def _missing(drug: RenalDrug, facts: RuleFacts, renal: RenalFunction) -> tuple[str, ...]:
    """What this drug's basis lacks to be decided (creatinine, weight, BY_HAND); empty when it can be."""
    if drug.basis == "egfr":
        if renal.egfr is not None:
            return ()
        return ("creatinine",) if renal.creatinine is None else (BY_HAND,)
    if drug.basis == "crcl":
        if renal.crcl is not None or renal.egfr is not None:
            return ()  # CrCl, or the eGFR standing in for it when there is no weight
    else:
        assert drug.criteria is not None  # renal_dosing checks: basis "criteria" carries criteria
        met, unread, _ = criteria_met(drug.criteria, facts, renal)
        if len(met) >= drug.criteria.need or len(met) + unread < drug.criteria.need:
            return ()  # decided either way, whatever the unread facts are
    wanted = [name for name in ("creatinine", "weight") if getattr(renal, name) is None]
    return tuple(wanted) or (BY_HAND,)


def _egfr_stands_in(drug: RenalDrug, renal: RenalFunction) -> bool:
    """Whether a CrCl-dosed drug is judged on the eGFR: CrCl cannot be computed (no current weight) but an eGFR
    is known. KDIGO 2024 accepts eGFR for most drug dosing; the card says which number it used."""
    return drug.basis == "crcl" and renal.crcl is None and renal.egfr is not None


def _unit_mg(exposure: Exposure, drug: RenalDrug) -> float | None:
    """Milligrams of the table's drug per tablet or capsule, from the product name; None for a liquid."""
    return unit_mg(exposure, drug.ingredients[0])


# --- rule.renal-dose-crcl ---------------------------------------------------------------------------------


TREATMENT_DOSE_TOLERANCE: Final = 0.1  # a weight-based dose rounded to a syringe size


def _within(threshold: Threshold, facts: RuleFacts, exposure: Exposure, drug: RenalDrug) -> bool:
    """Whether the order meets every dose limit the threshold sets (none set: no dose is within); a dose or a
    frequency that cannot be read is not within (fail closed)."""
    dosage = dosing.dosage_of(facts, exposure)
    met: list[bool] = []
    if threshold.max_daily_mg is not None:
        daily = dosing.daily_mg(dosage, _unit_mg(exposure, drug))
        weight = facts.current("weight")
        treatment = (
            threshold.treatment_mg_per_kg_daily * weight.value
            if threshold.treatment_mg_per_kg_daily is not None and weight is not None
            else None
        )
        met.append(
            daily is not None
            and (
                daily <= threshold.max_daily_mg
                or (treatment is not None and abs(daily - treatment) <= TREATMENT_DOSE_TOLERANCE * treatment)
            )
        )
    if threshold.max_doses_per_day is not None:
        times = dosing.per_day(dosage.frequency) if dosage is not None else None
        met.append(times is not None and times <= threshold.max_doses_per_day)
    return bool(met) and all(met)


def _severity(action: str) -> Severity:
    return "warning" if action in ("contraindicated", "avoid", "do not start") else "info"


@dataclass(frozen=True, slots=True)
class RenalDose:
    """One finding per drug past its labelled kidney-function limit, naming the value, formula and action."""

    rule_id: str
    table: RenalTable

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        dosed = list(_dosed(facts, self.table))
        if not dosed:
            return
        renal = renal_function(facts)
        for exposure, drug in dosed:
            finding = self._finding(facts, renal, exposure, drug)
            if finding is not None:
                yield finding

    def _finding(
        self, facts: RuleFacts, renal: RenalFunction, exposure: Exposure, drug: RenalDrug
    ) -> Finding | None:
        name = drug.name.capitalize()
        capped = "age 90+" if renal.age_capped else ""  # computed at 90: an upper bound
        if drug.basis == "criteria":
            assert drug.criteria is not None
            met, _, handles = criteria_met(drug.criteria, facts, renal)
            if len(met) < drug.criteria.need or _other_indication(drug.criteria, facts):
                return None
            single = _unit_mg(exposure, drug)
            if (
                drug.criteria.max_single_mg is not None
                and single is not None
                and single <= drug.criteria.max_single_mg
            ):
                return None  # already on the reduced dose
            criteria = drug.criteria
            summary = f"{name} with {', '.join(met)}: label {criteria.action}; {criteria.option}"
            return Finding(
                self.rule_id,
                _severity(criteria.action),
                _short(summary),
                drug.why,
                drug.evidence,
                _inputs(exposure, *handles),
                _proposed([exposure]),
            )
        value, label, formula, labs = (
            (renal.crcl, "CrCl", "Cockcroft-Gault", renal.crcl_inputs)
            if drug.basis == "crcl" and not _egfr_stands_in(drug, renal)
            else (
                renal.egfr,
                "eGFR",
                ", ".join(
                    part
                    for part in (
                        "CKD-EPI 2021" if renal.egfr_source == "ckd-epi-2021" else "",
                        "no weight for CrCl" if drug.basis == "crcl" else "",
                    )
                    if part
                ),
                renal.egfr_inputs,
            )
        )
        if value is None:
            return None  # rule.renal-function-unknown asks for what is missing
        threshold: Threshold | None = drug.crossed(value, exposure.proposed)
        if threshold is None:
            return None
        if _within(threshold, facts, exposure, drug):
            return None  # the order is already within the labelled dose for this kidney function
        # A recorded eGFR is the lab's own number: only a computed one rests on the capped age.
        how = ", ".join(part for part in (formula, capped if formula else "") if part)
        measured = f"{label} {shown(value)}" + (f" ({how})" if how else "")
        summary = f"{name}: {measured}, label {threshold.wording}: {threshold.action}; {threshold.option}"
        return Finding(
            self.rule_id,
            _severity(threshold.action),
            _short(summary),
            drug.why,
            drug.evidence,
            _inputs(exposure, *labs),
            _proposed([exposure]),
        )


# --- rule.renal-function-unknown --------------------------------------------------------------------------

# With no kidney function at all, a creatinine is asked for first where it changes the dose most often: from
# 65, in known kidney disease, or for drugs whose overdose harms at any age (anticoagulants, digoxin, lithium,
# chemotherapy). A short antibiotic course in a younger adult without kidney disease is dosed as usual.
ASK_FROM_AGE: Final = 65
ASK_AT_ANY_AGE_CLASSES: Final = ("anticoagulant", "cardiac-glycoside", "lithium")
ASK_AT_ANY_AGE_INGREDIENTS: Final = frozenset({"oxaliplatin"})


def _worth_asking(facts: RuleFacts, exposure: Exposure) -> bool:
    return (
        (facts.age is not None and facts.age >= ASK_FROM_AGE)
        or facts.has_condition("ckd")
        or exposure.has(*ASK_AT_ANY_AGE_CLASSES)
        or not ASK_AT_ANY_AGE_INGREDIENTS.isdisjoint(exposure.ingredients)
    )


@dataclass(frozen=True, slots=True)
class RenalFunctionUnknown:
    """An info card when a renally dosed drug cannot be checked: no current creatinine (or eGFR), or no
    current weight for a drug dosed by CrCl. Stale values are shown, never used."""

    rule_id: str
    table: RenalTable
    evidence: tuple[str, ...]  # cited first, before the drugs' own entries

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        dosed = list(_dosed(facts, self.table))
        if not dosed:
            return
        renal = renal_function(facts)
        egfr_recheck_speaks = facts.current("egfr") is None
        drugs: list[Exposure] = []
        wanted: dict[str, None] = {}
        evidence = dict.fromkeys(self.evidence)
        for exposure, drug in dosed:
            missing = _missing(drug, facts, renal)
            if drug.recheck_by == EGFR_RECHECK_ID and egfr_recheck_speaks:
                continue  # rule.egfr-recheck already asks for this drug's kidney function
            if not missing or not _worth_asking(facts, exposure):
                continue
            drugs.append(exposure)
            wanted.update(dict.fromkeys(missing))
            evidence.update(dict.fromkeys(drug.evidence))
        if not drugs:
            return
        shown_stale = tuple(m for m in renal.stale if m.analyte in wanted or m.analyte == "egfr")
        yield Finding(
            self.rule_id,
            "info",
            _short(
                f"On {_names(drugs)} with {self._state(renal, wanted)}: consider checking {' and '.join(wanted)}"
            ),
            "These drugs are dosed by kidney function, and the chart lacks what is needed to check the dose; "
            "an old value is shown, not used.",
            tuple(evidence),
            (*_handles(drugs), *(m.handle for m in shown_stale)),
            _proposed(drugs),
            CREATININE if "creatinine" in wanted else None,
        )

    @staticmethod
    def _state(renal: RenalFunction, wanted: dict[str, None]) -> str:
        parts = []
        for analyte in ("creatinine", "weight"):
            if analyte not in wanted:
                continue
            stale = next((m for m in renal.stale if m.analyte == analyte), None)
            if stale is None:
                parts.append(f"no {analyte}")
            elif stale.days_ago is None:
                parts.append(f"an undated {analyte}")
            else:
                parts.append(f"{analyte} {stale.days_ago} days old")
        if BY_HAND in wanted:
            # The values are there but no equation applies: age unknown or under 18, or sex not female or male.
            parts.append("no usable CrCl or eGFR equation (age or sex)")
        return ", ".join(parts)


# --- rule.aki-nephrotoxin ---------------------------------------------------------------------------------

# Drugs that lower kidney perfusion or injure the tubules: KDIGO advises stopping them in AKI where possible.
NEPHROTOXIC_CLASSES: Final = (
    "nsaid",
    "cox2-inhibitor",
    "ace-inhibitor",
    "arb",
    "arni",
    "loop-diuretic",
    "thiazide",
    "potassium-sparing-diuretic",
    "aminoglycoside",
    "glycopeptide",
    # Sick-day medicine: held while the kidney is injured and the patient dehydrated (KDIGO 2024).
    "sglt2-inhibitor",
)
# Forms that barely reach the blood: oral vancomycin stays in the gut, eye and ear drops and skin products
# give negligible systemic exposure. Read from the product name, which is all an Exposure carries of route.
_LOCAL_ONLY: Final = (("glycopeptide", ("oral",)), ("aminoglycoside", ("ophthalmic", "otic", "topical")))
_NSAID_CLASSES: Final = frozenset({"nsaid", "cox2-inhibitor"})


def _systemic(exposure: Exposure) -> bool:
    nephrotoxic = exposure.classes & set(NEPHROTOXIC_CLASSES)
    if nephrotoxic and nephrotoxic <= _NSAID_CLASSES and SKIN_EYE_EAR.search(exposure.label):
        return False  # a skin or eye NSAID (dose_range.analgesic_nsaids)
    words = exposure.label.lower()
    for cls, forms in _LOCAL_ONLY:
        if exposure.classes & set(NEPHROTOXIC_CLASSES) == {cls} and any(form in words for form in forms):
            return False
    return True


@dataclass(frozen=True, slots=True)
class AkiNephrotoxin:
    """Acute kidney injury by KDIGO creatinine criteria while on drugs that worsen it: consider holding them."""

    rule_id: str
    classes: tuple[str, ...]
    evidence: tuple[str, ...]

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        drugs = [
            e for e in facts.with_class(*self.classes) if _systemic(e) and not low_dose_aspirin(facts, e)
        ]
        if not drugs:
            return
        # KDIGO's 7-day baseline where one exists, else NHS England's reference value (the median of the
        # 8-365 days before): a first creatinine in months during an illness is read against the old ones.
        aki: AkiStage | None = aki_against_reference(facts.context.series("creatinine"))
        if aki is None:
            return
        if triple_whammy_aki(facts) is not None:
            # rule.aki-triple-whammy speaks for the three; only other nephrotoxins are left to this card.
            triple = {e.handle for group in triple_whammy_groups(facts) for e in group}
            drugs = [e for e in drugs if e.handle not in triple]
            if not drugs:
                return
        summary = (
            f"AKI stage {aki.stage} (creatinine {aki.baseline.value:g} to {aki.latest.value:g} mg/dL) on "
            f"{_short(_names(drugs), 50)}: consider holding them and rechecking creatinine"
        )
        yield Finding(
            self.rule_id,
            "warning",
            _short(summary),
            "These drugs lower kidney blood flow or injure the kidney, and creatinine has risen enough to "
            "meet the KDIGO definition of acute kidney injury.",
            self.evidence,
            (*_handles(drugs), *aki.handles),
            _proposed(drugs),
            CREATININE,
        )


# --- rule.aki-triple-whammy ------------------------------------------------------------------------------

TRIPLE_WHAMMY_RAAS: Final = ("ace-inhibitor", "arb", "arni")
TRIPLE_WHAMMY_DIURETIC: Final = ("loop-diuretic", "thiazide")


def triple_whammy_groups(facts: RuleFacts) -> tuple[tuple[Exposure, ...], ...]:
    """The NSAIDs, RAAS blockers and diuretics of the chart when all three are taken; () otherwise."""
    groups = (
        analgesic_nsaids(facts),
        *(
            tuple(e for e in facts.with_class(*classes) if _systemic(e))
            for classes in (TRIPLE_WHAMMY_RAAS, TRIPLE_WHAMMY_DIURETIC)
        ),
    )
    return groups if all(groups) else ()


def triple_whammy_aki(facts: RuleFacts) -> AkiStage | None:
    """A creatinine rise (KDIGO, or against the NHS England reference value) while all three are taken."""
    if not triple_whammy_groups(facts):
        return None
    return aki_against_reference(facts.context.series("creatinine"))


def aki_on_triple_whammy(facts: RuleFacts) -> Iterator[Finding]:
    """Acute kidney injury on an NSAID, an ACE inhibitor or ARB and a diuretic: stop the NSAID now (critical).

    It replaces rule.triple-whammy (the risk) and rule.aki-nephrotoxin (AKI on any nephrotoxin) for these
    drugs. The creatinine must be current as AKI's own window says (kidney.AKI_RECENT_DAYS); without a recent
    creatinine there is no card here, and rule.triple-whammy asks for one."""
    aki = triple_whammy_aki(facts)
    if aki is None:
        return
    groups = triple_whammy_groups(facts)
    nsaids, raas, diuretics = groups
    percent = round((aki.ratio - 1) * 100)
    summary = (
        f"Creatinine up {percent}% ({aki.baseline.value:g} to {aki.latest.value:g} mg/dL) on "
        f"{_short(_names(nsaids), 30)} with {_short(_names((*raas, *diuretics)), 50)}: "
        "consider stopping the NSAID and holding the others"
    )
    yield Finding(
        "rule.aki-triple-whammy",
        "critical",
        _short(summary),
        "An NSAID with an ACE inhibitor or ARB and a diuretic removes the kidney's defences of its filtration, "
        "and creatinine has already risen to AKI levels.",
        ("kb.aki-triple-whammy-stop", "kb.aki-nephrotoxic-drugs", "kb.nsaid-acei-arb-diuretic-triple-whammy"),
        (*_handles(*groups), *aki.handles),
        _proposed(*groups),
        CREATININE,
    )


def _rules() -> tuple[Rule, ...]:
    table = renal_dosing()
    return (
        RenalDose("rule.renal-dose-crcl", table),
        RenalFunctionUnknown(
            "rule.renal-function-unknown",
            table,
            ("kb.kidney-function-estimates", "kb.renally-cleared-drug-review"),
        ),
        AkiNephrotoxin("rule.aki-nephrotoxin", NEPHROTOXIC_CLASSES, ("kb.aki-nephrotoxic-drugs",)),
    )


# Built at import: a malformed renal_dosing.json fails the plugin's start, not a hook call.
KIDNEY_RULES: Final[tuple[Rule, ...]] = _rules()
