"""The safety rules: table-driven drug pairs plus rules over labs, allergies, pregnancy, age and care gaps.

Every rule is a pure function of `RuleFacts`; the same functions run on a proposed action (governance
vetoes) by adding it to the facts as a proposed exposure. Summaries are options, never orders.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, NamedTuple

from plugin import allergens, terminology
from plugin.context.codes import system_name
from plugin.context.model import Allergy, Code, Dosage
from plugin.rules import vaccines
from plugin.rules.dose_range import analgesic_nsaids, low_dose_aspirin
from plugin.rules.dosing import (
    EXTENDED_RELEASE,
    LOCAL_ROUTE,
    NASAL,
    PARENTERAL,
    SUMMED_INGREDIENTS,
    daily_mg,
    dosage_of,
    per_day,
    record_of,
    route_text,
)
from plugin.rules.freshness import MonitoringInterval, monitoring_interval
from plugin.rules.interactions import Interaction, interaction_table
from plugin.rules.kidney import aki_against_reference, renal_function, shown
from plugin.rules.model import SEVERITY_RANK, Exposure, Finding, LabOrder, RuleFacts, Severity
from plugin.rules.phrasing import handles as _handles
from plugin.rules.phrasing import names as _names
from plugin.rules.phrasing import proposed as _proposed
from plugin.rules.phrasing import short as _short
from plugin.rules.renal_rules import triple_whammy_aki

Rule = Callable[[RuleFacts], Iterator[Finding]]
INR = LabOrder("6301-6", "INR in Platelet poor plasma by Coagulation assay")
POTASSIUM = LabOrder("2823-3", "Potassium [Moles/volume] in Serum or Plasma")
EGFR = LabOrder("33914-3", "Glomerular filtration rate/1.73 sq M.predicted")
HBA1C = LabOrder("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood")


# --- drug pairs -------------------------------------------------------------------------------


# A drug ordered this recently is still being started: potassium is checked within 1-2 weeks of a RAAS
# start and again around 4 weeks (kb.potassium-monitoring-raas), and an INR is not yet stable.
NEW_START_DAYS: Final = 28

INTERACTIONS: Final[tuple[Interaction, ...]] = interaction_table()


# --- rules over labs, allergies, pregnancy, age, care gaps -------------------------------------


def _egfr_label(value: float, source: str | None) -> str:
    return f"eGFR {value:g}" if source == "recorded" else f"eGFR {shown(value)} (CKD-EPI from creatinine)"


# KDIGO 2022 (kb.metformin-dose-by-egfr): at eGFR 30-44 the daily dose is halved, to at most 1000 mg.
METFORMIN_MAX_MG_EGFR_30_44: Final = 1000.0


def _within_daily_mg(facts: RuleFacts, exposure: Exposure, ingredient: str, limit: float) -> bool:
    daily = daily_mg(dosage_of(facts, exposure), strength_mg(exposure, ingredient))
    return daily is not None and daily <= limit


def renal_metformin(facts: RuleFacts) -> Iterator[Finding]:
    metformin = facts.with_class("biguanide")
    if not metformin:
        return
    # A recorded eGFR when current, else CKD-EPI 2021 from a current creatinine (plugin.rules.kidney).
    kidney = renal_function(facts)
    egfr = kidney.egfr
    if egfr is None or egfr >= 45:
        return
    label = _egfr_label(egfr, kidney.egfr_source)
    contraindicated = egfr < 30
    if not contraindicated:
        # At 30-44 an established metformin already at the halved dose is what KDIGO asks for; a start, or a
        # dose that is higher or cannot be read, still gets the card.
        metformin = tuple(
            e
            for e in metformin
            if e.proposed or not _within_daily_mg(facts, e, "metformin", METFORMIN_MAX_MG_EGFR_30_44)
        )
        if not metformin:
            return
    summary = (
        f"{label}: metformin is contraindicated below 30; consider stopping it"
        if contraindicated
        else (
            f"{label}: consider not starting metformin below 45"
            if any(e.proposed for e in metformin)
            else f"{label}: consider reducing metformin to at most 1000 mg a day and reassessing its benefit"
        )
    )
    yield Finding(
        "rule.metformin-egfr",
        "critical" if contraindicated else "warning",
        _short(summary),
        "Metformin is cleared by the kidneys and accumulates as eGFR falls, raising the risk of lactic acidosis.",
        ("kb.metformin-egfr-thresholds",)
        if contraindicated
        else ("kb.metformin-egfr-thresholds", "kb.metformin-dose-by-egfr"),
        (*_handles(metformin), *kidney.egfr_inputs),
        _proposed(metformin),
    )


def renal_nsaid(facts: RuleFacts) -> Iterator[Finding]:
    # Low-dose aspirin is an antiplatelet, which KDIGO keeps in CKD, and a skin NSAID barely reaches the
    # kidney: only systemic analgesic doses count.
    nsaids = analgesic_nsaids(facts)
    egfr = facts.current("egfr")
    low = egfr is not None and egfr.value < 60
    ckd = facts.value_sets.get("ckd", ())
    if not nsaids or not (low or ckd):
        return
    # A creatinine rise on the NSAID is acute kidney injury, which rule.aki-nephrotoxin and rule.aki-triple-whammy
    # card with the NSAID named; beside a calcineurin inhibitor rule.calcineurin-inhibitor-nsaid speaks for the
    # kidney. One card per action.
    if aki_against_reference(facts.context.series("creatinine")) or facts.with_class("calcineurin-inhibitor"):
        return
    basis = f"eGFR {egfr.value:g}" if low and egfr is not None else "chronic kidney disease"
    inputs = (*_handles(nsaids), *((egfr.handle,) if low and egfr else ()), *ckd)
    yield Finding(
        "rule.nsaid-ckd",
        "warning",
        _short(
            f"{_names(nsaids).capitalize()} with {basis}: consider avoiding NSAIDs or limiting the course"
        ),
        "NSAIDs reduce kidney blood flow and can worsen chronic kidney disease.",
        ("kb.nsaid-ckd",),
        tuple(sorted(set(inputs))),
        _proposed(nsaids),
    )


NSAID_KIDNEY_CHECK_AGE: Final = 65


def nsaid_kidney_unknown(facts: RuleFacts) -> Iterator[Finding]:
    """An NSAID in an older adult with no current kidney function: rule.nsaid-ckd cannot decide, so ask."""
    if facts.age is None or facts.age < NSAID_KIDNEY_CHECK_AGE:
        return
    # Aspirin at any dose is left out: low-dose aspirin is an antiplatelet, and its own rules speak.
    nsaids = tuple(e for e in analgesic_nsaids(facts) if not e.has("salicylate"))
    if not nsaids or renal_function(facts).egfr is not None:
        return
    stale = facts.stale("egfr") or facts.stale("creatinine")
    when = (
        "no kidney function on record"
        if stale is None
        else f"kidney function last measured {stale.days_ago} days ago"
    )
    if stale is not None and stale.days_ago is None:
        when = "only an undated kidney function"
    yield Finding(
        "rule.nsaid-renal-unknown",
        "info",
        _short(f"{_names(nsaids).capitalize()} at {facts.age} with {when}: consider checking creatinine"),
        "NSAIDs can injure ageing kidneys, and Beers and KDIGO limits depend on a current kidney function.",
        ("kb.nsaid-older-adult-kidney-check", "kb.nsaid-ckd"),
        (*_handles(nsaids), *((stale.handle,) if stale is not None else ())),
        _proposed(nsaids),
        LabOrder("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
    )


def triple_whammy(facts: RuleFacts) -> Iterator[Finding]:
    nsaids = analgesic_nsaids(facts)
    raas = facts.with_class("ace-inhibitor", "arb", "arni")
    diuretics = facts.with_class("loop-diuretic", "thiazide")
    # With creatinine already risen, rule.aki-triple-whammy (critical) says this and more.
    if nsaids and raas and diuretics and triple_whammy_aki(facts) is None:
        yield Finding(
            "rule.triple-whammy",
            "warning",
            "NSAID with an ACE inhibitor or ARB and a diuretic risks acute kidney injury: consider stopping the NSAID",
            "Together these three remove the kidney's defences of its filtration pressure.",
            ("kb.nsaid-acei-arb-diuretic-triple-whammy",),
            _handles(nsaids, raas, diuretics),
            _proposed(nsaids, raas, diuretics),
        )


def renal_nitrofurantoin(facts: RuleFacts) -> Iterator[Finding]:
    drug = facts.with_class("nitrofurantoin")
    if not drug:
        return
    # Beers 2023 sets the limit as creatinine clearance: Cockcroft-Gault when weight is known, else eGFR.
    kidney = renal_function(facts)
    if kidney.crcl is not None:
        value, label, inputs = kidney.crcl, f"CrCl {shown(kidney.crcl)} (Cockcroft-Gault)", kidney.crcl_inputs
    elif kidney.egfr is not None:
        value, label, inputs = kidney.egfr, _egfr_label(kidney.egfr, kidney.egfr_source), kidney.egfr_inputs
    else:
        return
    if value < 30:
        yield Finding(
            "rule.nitrofurantoin-egfr",
            "warning",
            _short(f"{label}: nitrofurantoin is best avoided below 30; consider another antibiotic"),
            # The threshold is Beers 2023's (clearance below 30); the label names no number, so it comes second.
            "With low kidney function nitrofurantoin fails to reach the urine and its toxicity rises.",
            ("kb.beers-nitrofurantoin-crcl-30", "kb.nitrofurantoin-renal-impairment"),
            (*_handles(drug), *inputs),
            _proposed(drug),
        )


def hyperkalaemia(facts: RuleFacts) -> Iterator[Finding]:
    potassium = facts.current("potassium")
    raising = facts.with_class(*POTASSIUM_RAISING)
    if potassium is None or potassium.value < 5.5 or not raising:
        return
    yield Finding(
        "rule.hyperkalaemia-on-raising-drug",
        "critical",
        _short(
            f"Potassium {potassium.value:g} mmol/L on {_names(raising)}: consider holding it and repeating potassium"
        ),
        "These drugs raise serum potassium, which is already high.",
        (
            "kb.hyperkalaemia-potassium-raising-drugs",
            "kb.potassium-monitoring-raas",
            "kb.hyperkalaemia-ras-inhibitor-continue",
        ),
        (*_handles(raising), potassium.handle),
        _proposed(raising),
        POTASSIUM,
    )


# Drugs not to start at a potassium of 5.0 or more; ACE inhibitors and ARBs are left out on purpose (KDIGO keeps
# them at a modestly raised potassium for their kidney and heart protection).
POTASSIUM_START_BLOCKED: Final = (
    "mineralocorticoid-antagonist",
    "potassium-sparing-diuretic",
    "potassium-supplement",
)
POTASSIUM_START_LIMIT: Final = (
    5.0  # mmol/L; at 5.5 and above rule.hyperkalaemia-on-raising-drug speaks instead
)


RAS_INHIBITORS: Final = ("ace-inhibitor", "arb", "arni")


def potassium_before_starting(facts: RuleFacts) -> Iterator[Finding]:
    potassium = facts.current("potassium")
    if potassium is None or not POTASSIUM_START_LIMIT <= potassium.value < 5.5:
        return
    starting = tuple(e for e in facts.with_class(*POTASSIUM_START_BLOCKED) if e.proposed)
    # A RAS inhibitor is started anyway, but low and with potassium lowered and rechecked: one card, for the new
    # one, when nothing already on the list raises potassium as much (its card would be the continuing therapy's).
    ras = tuple(e for e in facts.with_class(*RAS_INHIBITORS) if e.proposed)
    already = any(not e.proposed for e in facts.with_class(*RAS_INHIBITORS))
    if ras and not starting and not already:
        yield Finding(
            "rule.potassium-high-before-starting",
            "warning",
            _short(
                f"Potassium {potassium.value:g} mmol/L before {_names(ras)}: consider a low dose, lowering potassium "
                "and a recheck within 1-2 weeks"
            ),
            "RAS inhibitors raise potassium; at 5.0 or more they are started low, with potassium lowered and rechecked.",
            ("kb.ras-inhibitor-start-raised-potassium", "kb.hyperkalaemia-ras-inhibitor-continue"),
            (*_handles(ras), potassium.handle),
            _proposed(ras),
        )
    if not starting:
        return
    yield Finding(
        "rule.potassium-high-before-starting",
        "warning",
        _short(
            f"Potassium {potassium.value:g} mmol/L: consider not starting {_names(starting)} until it is below 5.0"
        ),
        "These drugs raise potassium, and the label and guideline start them only below 5.0 mmol/L.",
        ("kb.potassium-raising-drug-start-threshold", "kb.mra-hyperkalaemia-heart-failure"),
        (*_handles(starting), potassium.handle),
        _proposed(starting),
    )


def _not_starting_a_potassium_raising_drug(facts: RuleFacts) -> bool:
    # rule.potassium-unknown-before-starting (plugin/rules/depth.py) asks for the same potassium, louder, when
    # one is being started.
    return not any(e.proposed for e in facts.with_class(*POTASSIUM_START_BLOCKED))


POTASSIUM_RAISING: Final = (
    "ace-inhibitor",
    "arb",
    "arni",
    "potassium-sparing-diuretic",
    "mineralocorticoid-antagonist",
    "potassium-supplement",
)


@dataclass(frozen=True, slots=True)
class Recheck:
    """A lab a drug's safety depends on, asked for again when the chart has no current value (freshness)."""

    rule_id: str
    analyte: str
    label: str
    order: LabOrder
    # (drug classes, knowledge-base id, the stale value is alarming when it is below / at or above this)
    dependants: tuple[tuple[tuple[str, ...], str, float | None, float | None], ...]
    # Other analytes whose current value answers the same question (a creatinine gives a CKD-EPI eGFR).
    stands_in: tuple[str, ...] = ()
    # When the lab is worth asking for at all (None: whenever a dependant drug is taken).
    only_if: Callable[[RuleFacts], bool] | None = None
    # A longer interval for established, stable therapy: an unalarming value within it needs no recheck.
    stable_interval: Callable[[RuleFacts], MonitoringInterval | None] | None = None
    # On such therapy, when this says so, no value on record at all is left to the lab list rather than
    # carded: a routine yearly lab absent from a record that otherwise shows the panel it comes in is more
    # often filed elsewhere than never done, while a lapsed (dated, old) value is always asked about.
    quiet_when_absent_on_stable_therapy: Callable[[RuleFacts], bool] | None = None

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        if any(facts.current(analyte) is not None for analyte in (self.analyte, *self.stands_in)):
            return
        if self.only_if is not None and not self.only_if(facts):
            return
        stale = facts.stale(self.analyte)
        drugs: list[Exposure] = []
        evidence: list[str] = []
        alarming = False
        for classes, kb, below, at_or_above in self.dependants:
            found = [e for e in facts.with_class(*classes) if e not in drugs]
            if not found:
                continue
            drugs += found
            evidence.append(kb)
            if stale is not None:
                alarming |= (below is not None and stale.value < below) or (
                    at_or_above is not None and stale.value >= at_or_above
                )
        if not drugs:
            return
        interval = self.stable_interval(facts) if self.stable_interval is not None else None
        if interval is not None and stale is not None and not alarming and interval.covers(stale.days_ago):
            return
        quiet = self.quiet_when_absent_on_stable_therapy
        if interval is not None and stale is None and quiet is not None and quiet(facts):
            return
        if stale is None:
            when = f"no {self.label} on record"
        elif stale.days_ago is None:
            when = f"an undated {self.label} of {stale.value:g}"
        else:
            when = f"the last {self.label} ({stale.value:g}) {stale.days_ago} days old"
        yield Finding(
            self.rule_id,
            "warning" if alarming else "info",
            _short(f"On {_names(drugs)} with {when}: consider checking {self.label}"),
            f"These drugs are dosed or stopped by {self.label}, and the chart has no value recent enough to "
            "decide on; an old value is shown, not used.",
            tuple(dict.fromkeys(evidence)),
            (*_handles(drugs), *((stale.handle,) if stale is not None else ())),
            _proposed(drugs),
            self.order,
        )


# Rechecks for the labs the threshold rules read: what would have fired on a current value asks for one.
EGFR_RECHECK = Recheck(
    "rule.egfr-recheck",
    "egfr",
    "eGFR",
    EGFR,
    (
        (("biguanide",), "kb.metformin-renal-monitoring", 45.0, None),
        (("nitrofurantoin",), "kb.nitrofurantoin-renal-impairment", 30.0, None),
        # Digoxin is cleared by the kidneys: its dose and its toxicity follow renal function.
        (("cardiac-glycoside",), "kb.digoxin-monitoring", 30.0, None),
    ),
    stands_in=("creatinine",),
)
# Potassium is watched most closely on these (and on digoxin, whose toxicity low potassium brings on).
_POTASSIUM_CLOSE_WATCH: Final = (
    "mineralocorticoid-antagonist",
    "potassium-sparing-diuretic",
    "potassium-supplement",
)


# A RAAS blocker's first potassium checks fall in its first months (1-2 weeks after the start and after each
# titration): until then a missing potassium is asked for whatever else the chart shows.
RAAS_FIRST_MONTHS_DAYS: Final = 90


def _established_with_kidneys_current_and_steady(facts: RuleFacts) -> bool:
    """A RAAS blocker past its first months, a current creatinine or eGFR (the panel potassium comes in) and
    no acute kidney injury: otherwise a missing potassium is asked for however stable the therapy looks."""
    return (
        all(e.taken_longer_than(RAAS_FIRST_MONTHS_DAYS) for e in facts.with_class(*POTASSIUM_RAISING))
        and not renal_function(facts).unknown
        and aki_against_reference(facts.context.series("creatinine")) is None
    )


def _stable_raas_potassium_interval(facts: RuleFacts) -> MonitoringInterval | None:
    """The yearly (half-yearly with CKD) potassium for one established RAAS blocker taken alone; None, the
    90-day window, for a start, a second potassium-raising drug, an MRA or supplement, or digoxin."""
    raising = facts.with_class(*POTASSIUM_RAISING)
    if (
        len(raising) != 1
        or raising[0].has(*_POTASSIUM_CLOSE_WATCH)
        or raising[0].new(NEW_START_DAYS)
        or facts.with_class("cardiac-glycoside")
    ):
        return None
    egfr = renal_function(facts).egfr
    ckd = facts.has_condition("ckd") or (egfr is not None and egfr < 60)
    return monitoring_interval(
        "potassium-single-raas-blocker-ckd" if ckd else "potassium-single-raas-blocker"
    )


POTASSIUM_RECHECK = Recheck(
    "rule.potassium-recheck",
    "potassium",
    "potassium",
    POTASSIUM,
    (
        (POTASSIUM_RAISING, "kb.potassium-monitoring-raas", None, 5.5),
        # Low potassium makes digoxin toxic at ordinary levels.
        (("cardiac-glycoside",), "kb.digoxin-monitoring", 3.5, None),
    ),
    only_if=_not_starting_a_potassium_raising_drug,
    stable_interval=_stable_raas_potassium_interval,
    quiet_when_absent_on_stable_therapy=_established_with_kidneys_current_and_steady,
)


# INRs that must all sit in range for the 12-week interval (kb.warfarin-inr-stable-interval); the target is
# 2.0-3.0, or 2.5-3.5 with a mechanical heart valve.
INR_STABLE_COUNT: Final = 3


def _inr_stable(facts: RuleFacts, warfarin: tuple[Exposure, ...]) -> bool:
    series = facts.context.series("inr")
    if series is None or any(e.new(NEW_START_DAYS) for e in warfarin):
        return False
    recent = series.measurements[:INR_STABLE_COUNT]
    low, high = (2.5, 3.5) if facts.has_condition("prosthetic-heart-valve") else (2.0, 3.0)
    return (
        len(recent) == INR_STABLE_COUNT
        and all(m.days_ago is not None and low <= m.value <= high for m in recent)
        and monitoring_interval("inr-stable").covers(recent[0].days_ago)
    )


def inr_monitoring(facts: RuleFacts) -> Iterator[Finding]:
    warfarin = facts.with_class("vitamin-k-antagonist")
    if not warfarin or facts.current("inr") is not None or _inr_stable(facts, warfarin):
        return
    last = facts.latest("inr")
    when = f"last INR {last.days_ago} days ago" if last and last.days_ago is not None else "no INR on record"
    yield Finding(
        "rule.inr-monitoring",
        "warning",
        _short(f"On warfarin with {when}: consider checking the INR"),
        "Warfarin's label asks for an INR every 1-4 weeks once stable, and sooner after any change.",
        ("kb.warfarin-inr-monitoring",),
        _handles(warfarin) + ((last.handle,) if last else ()),
        _proposed(warfarin),
        INR,
    )


# CHEST 2012 (kb.warfarin-inr-above-range): from an INR of 4.5 the advice is to hold doses (and from 10 to give
# oral vitamin K); between the top of the target range and 4.5 a dose is lowered or held.
INR_HOLD_AT: Final = 4.5
INR_VITAMIN_K_AT: Final = 10.0
INR_CAUSE_DAYS: Final = 42
# What raises the INR on warfarin (the label's and CHEST's commonest named culprits).
INR_RAISING_CLASSES: Final = (
    "azole-antifungal",
    "macrolide",
    "fluoroquinolone",
    "sulfonamide-antibiotic",
    "nitroimidazole",
)
INR_RAISING_INGREDIENTS: Final = frozenset({"amiodarone", "capecitabine", "fluorouracil"})


def inr_above_range(facts: RuleFacts) -> Iterator[Finding]:
    """A current INR above the target range on a vitamin K antagonist. Only a current value is read: an older one
    is rule.inr-monitoring's to ask about."""
    warfarin = facts.with_class("vitamin-k-antagonist")
    inr = facts.current("inr")
    if not warfarin or inr is None:
        return
    valve = facts.has_condition("prosthetic-heart-valve")
    top = 3.5 if valve else 3.0
    if inr.value <= top:
        return
    target = "2.5-3.5 with a mechanical valve" if valve else "2.0-3.0"
    # A drug started in the weeks before is the usual cause; naming it lets the card stand for the interaction.
    causes = tuple(
        e
        for e in facts.exposures
        if e.new(INR_CAUSE_DAYS)
        and not e.proposed
        and (e.has(*INR_RAISING_CLASSES) or not INR_RAISING_INGREDIENTS.isdisjoint(e.ingredients))
    )
    cause = f" after starting {_names(causes)}" if causes else ""
    if inr.value >= INR_VITAMIN_K_AT:
        severity: Severity = "critical"
        option = "consider holding warfarin, oral vitamin K and an INR within 1-2 days"
    elif inr.value >= INR_HOLD_AT:
        severity = "critical"
        option = "consider holding 1-2 doses and an INR within a few days"
    else:
        severity = "warning"
        option = "consider a lower or held dose and an INR within a week"
    yield Finding(
        "rule.inr-above-range",
        severity,
        _short(f"INR {inr.value:g} on warfarin{cause} (target {target}): {option}"),
        "Bleeding risk climbs steeply above an INR of 4-5; a cause (a new interacting drug, illness, diet) is worth "
        "finding.",
        ("kb.warfarin-inr-above-range",),
        (*_handles(warfarin), inr.handle, *_handles(causes)),
        _proposed(warfarin),
        INR,
    )


# Allergy class → (cross-reactive classes, evidence for the same class, evidence for cross-reactivity,
# severity of a cross-reactive drug: that evidence entry's severity hint, which tests/unit/test_kb_integrity.py
# holds it to).
_ALLERGY_GROUPS: dict[str, tuple[frozenset[str], str, str, Severity]] = {
    "penicillin": (
        frozenset({"cephalosporin"}),
        "kb.penicillin-allergy-penicillins",
        "kb.penicillin-allergy-cephalosporin",
        "warning",
    ),
    "cephalosporin": (
        frozenset({"penicillin"}),
        "kb.penicillin-allergy-cephalosporin",
        "kb.penicillin-allergy-cephalosporin",
        "warning",
    ),
    "sulfonamide-antibiotic": (
        frozenset(),
        "kb.sulfonamide-antibiotic-allergy",
        "kb.sulfonamide-non-antibiotic-cross-reactivity",
        "info",
    ),
    "salicylate": (
        frozenset({"nsaid", "cox2-inhibitor"}),
        "kb.nsaid-aspirin-hypersensitivity",
        "kb.nsaid-aspirin-hypersensitivity",
        "critical",
    ),
    "nsaid": (
        frozenset({"salicylate", "cox2-inhibitor"}),
        "kb.nsaid-aspirin-hypersensitivity",
        "kb.nsaid-aspirin-hypersensitivity",
        "critical",
    ),
}


# Penicillins and cephalosporins with a similar R1 side chain, the source of most penicillin-cephalosporin
# cross-reactions (kb.penicillin-allergy-cephalosporin): the aminopenicillins with cephalexin and its kin, penicillin
# G or V with cephalothin and cefoxitin. Cefazolin, the third-generation cephalosporins and cefdinir share none.
_AMINOBENZYL_CEPHALOSPORINS: Final = frozenset(
    {"cephalexin", "cefadroxil", "cefaclor", "cefprozil", "cephradine", "cefatrizine"}
)
_THIENYL_CEPHALOSPORINS: Final = frozenset({"cephalothin", "cefoxitin"})
_SIDE_CHAIN_GROUPS: Final = (
    (frozenset({"amoxicillin", "ampicillin"}), _AMINOBENZYL_CEPHALOSPORINS),
    (frozenset({"penicillin g", "penicillin v"}), _THIENYL_CEPHALOSPORINS),
)
# Cephalosporins grouped by a similar R1 side chain (the 2022 practice parameter's table): after a non-severe
# reaction to one, a cephalosporin outside its group can be given; cefazolin and cefotetan share theirs with none.
# A cephalosporin in no group here counts as similar to everything (fail closed).
_CEPHALOSPORIN_SIDE_CHAINS: Final = (
    _AMINOBENZYL_CEPHALOSPORINS,
    frozenset(
        {
            "cefuroxime",
            "cefotaxime",
            "ceftriaxone",
            "cefpodoxime",
            "cefepime",
            "cefditoren",
            "ceftaroline",
            "ceftazidime",
        }
    ),
    frozenset({"cefdinir", "cefixime"}),
    _THIENYL_CEPHALOSPORINS,
    frozenset({"cefamandole", "cefonicid"}),
    frozenset({"cefazolin"}),
    frozenset({"cefotetan"}),
)
_SEVERE_REACTION: Final = re.compile(
    r"anaphyla|angioedema|hypotension|shock|bronchospasm|wheez|stridor|stevens|epidermal necrolysis|dress|"
    r"(lip|lips|tongue|throat|face|facial) swell|swelling of (the )?(lip|tongue|throat|face)|"
    r"eosinophilia|hepatitis|nephritis|haemoly|hemoly|serum sickness",
    re.IGNORECASE,
)


def _named_beta_lactams(allergy: Allergy) -> frozenset[str]:
    """The penicillins or cephalosporins an allergy record names ("amoxicillin", "Keflex"); empty for a class
    ("penicillin", "PCN"), which could be any member."""
    return frozenset(
        name
        for name in terminology.ingredients_of(None, allergy.substance.display)
        if terminology.classes_of(name) & {"penicillin", "cephalosporin"}
    )


def _shares_side_chain(allergy: Allergy, exposure: Exposure) -> bool:
    """Whether the drug may share an R1 side chain with what the patient reacted to. A class-level record could
    be any member, so every similar pair counts (fail closed)."""
    named = _named_beta_lactams(allergy)
    drug = frozenset(exposure.ingredients)
    for penicillins, cephalosporins in _SIDE_CHAIN_GROUPS:
        group = penicillins | cephalosporins
        if not drug & group:
            continue
        if not named or named & group:
            return True
    return not named and exposure.has("penicillin")  # "cephalosporin allergy": which one is unknown


def _cephalosporin_side_chain(name: str) -> frozenset[str] | None:
    return next((group for group in _CEPHALOSPORIN_SIDE_CHAINS if name in group), None)


def _dissimilar_cephalosporin(allergy: Allergy, allergic_to: frozenset[str], exposure: Exposure) -> bool:
    """A cephalosporin whose R1 side chain differs from the one the patient reacted to, after a reaction that was
    not severe: the 2022 practice parameter gives it without testing. Unknown on either side is not dissimilar."""
    if (
        allergic_to != {"cephalosporin"}
        or exposure.has("penicillin")
        or _allergy_severity(allergy) == "critical"
    ):
        return False
    named = [_cephalosporin_side_chain(n) for n in _named_beta_lactams(allergy)]
    given = [
        _cephalosporin_side_chain(n)
        for n in exposure.ingredients
        if terminology.classes_of(n) & {"cephalosporin"}
    ]
    if not named or not given or None in named or None in given:
        return False
    return not set(named) & set(given)


def _low_risk(allergy: Allergy) -> bool:
    return allergy.criticality == "low" and not any(_SEVERE_REACTION.search(r) for r in allergy.reactions)


def _beta_lactam_cross_reaction(allergy: Allergy, allergic_to: frozenset[str], exposure: Exposure) -> bool:
    """The 2022 practice parameter: a carbapenem can be given after a penicillin allergy without testing (so it is
    not in the penicillin group), and so can any cephalosporin after a low-risk (non-anaphylactic) penicillin
    reaction, and one with a dissimilar side chain after anaphylaxis. For a cephalosporin allergy it is less
    specific, so a penicillin is flagged when the side chain is similar or the reaction was not recorded as low
    risk. Other classes (NSAIDs) always cross-react."""
    if "penicillin" in allergic_to and exposure.has("cephalosporin"):
        return _shares_side_chain(allergy, exposure) and not _low_risk(allergy)
    if "cephalosporin" in allergic_to and exposure.has("penicillin"):
        return _shares_side_chain(allergy, exposure) or not _low_risk(allergy)
    return True


def allergy_classes(substance: Code) -> frozenset[str]:
    """Checked drug classes an allergy record names, by code, class word or abbreviation, or drug name."""
    return frozenset(c for c in allergens.resolve(substance).classes if c in _ALLERGY_GROUPS)


def allergy_conflict(facts: RuleFacts) -> Iterator[Finding]:
    for allergy in facts.context.allergies:
        allergic_to = allergy_classes(allergy.substance)
        if not allergic_to:
            continue
        cross = frozenset().union(*(_ALLERGY_GROUPS[c][0] for c in allergic_to)) - allergic_to
        members = facts.with_class(*allergic_to)
        # A mild side effect recorded against a drug the patient goes on taking is known and accepted.
        side_effect = _mild_intolerance(allergy)
        accepted = {e.handle for e in members if side_effect and not e.proposed}
        same = [
            e
            for e in members
            if not _dissimilar_cephalosporin(allergy, allergic_to, e) and e.handle not in accepted
        ]
        related = [
            e
            for e in facts.with_class(*cross)
            if e not in same
            and e.handle not in accepted
            and _beta_lactam_cross_reaction(allergy, allergic_to, e)
        ]
        substance = allergy.substance.display
        if same:
            # A recorded intolerance (diarrhoea on amoxicillin-clavulanate) is a side effect, not an allergy: the
            # class is named, not barred. Anything else about the class is critical.
            mild = _allergy_severity(allergy) == "info"
            yield Finding(
                "rule.allergy-same-class",
                "info" if mild else "critical",
                _short(f"Recorded {substance} allergy and {_names(same)}: consider an alternative"),
                "The drug belongs to the class the patient is recorded as allergic to.",
                tuple(dict.fromkeys(_ALLERGY_GROUPS[c][1] for c in sorted(allergic_to))),
                (allergy.handle, *_handles(same)),
                _proposed(same),
            )
        if related:
            # NSAIDs after an aspirin or NSAID reaction are contraindicated by their labels (COX-1 cross-reaction);
            # a penicillin and a cephalosporin with a similar side chain carry a small risk.
            cited: list[tuple[str, Severity]] = []
            for c in sorted(allergic_to):
                cross_classes, _, cross_kb, cross_severity = _ALLERGY_GROUPS[c]
                if any(e.has(*cross_classes) for e in related):
                    cited.append((cross_kb, cross_severity))
            cited.sort(key=lambda item: -SEVERITY_RANK[item[1]])
            evidence = [kb for kb, _ in cited]
            severity = cited[0][1]
            yield Finding(
                "rule.allergy-cross-reactivity",
                severity,
                _short(
                    f"Recorded {substance} allergy and {_names(related)}: consider the cross-reactivity risk"
                ),
                "NSAIDs cross-react in people who reacted to aspirin or another NSAID."
                if severity == "critical"
                else "Related drug classes carry a small but real risk of cross-reacting in the allergic patient.",
                tuple(dict.fromkeys(evidence)),
                (allergy.handle, *_handles(related)),
                _proposed(related),
            )


# Beyond the cross-reactivity groups above: a class whose members cross-react often enough that the 2022 drug
# allergy practice parameter treats them as one (kb.drug-allergy-reexposure; tetracyclines share their ring
# structure and labels contraindicate the class after a reaction to any member; the tinidazole label does the
# same for any nitroimidazole, and the azithromycin and clarithromycin labels for any macrolide; the carbapenem
# labels bar the class after a hypersensitivity reaction to one), and the aromatic anticonvulsants, whose severe
# cutaneous reactions recur across the group.
# A heparin allergy (or heparin-induced thrombocytopenia recorded as one) bars the low-molecular-weight heparins,
# which cross-react; fondaparinux, the usual alternative, is not of the class.
_SAME_CLASS_ALLERGY: Final = frozenset(
    {
        "fluoroquinolone",
        "ace-inhibitor",
        "tetracycline",
        "nitroimidazole",
        "heparin",
        "macrolide",
        "carbapenem",
    }
)
AROMATIC_ANTICONVULSANTS: Final = frozenset(
    {
        "carbamazepine",
        "oxcarbazepine",
        "eslicarbazepine",
        "phenytoin",
        "fosphenytoin",
        "phenobarbital",
        "primidone",
    }
)
# The phenanthrene opioids share the structure that true opioid allergy recognises, and codeine is turned into
# morphine: after a reaction to one, the practice parameter prefers another structural class (fentanyl,
# methadone) over another phenanthrene.
PHENANTHRENE_OPIOIDS: Final = frozenset(
    {"morphine", "codeine", "hydrocodone", "hydromorphone", "oxycodone", "oxymorphone", "dihydrocodeine"}
)
_ALLERGY_HEAD = re.compile(r"\s+[-–:(]\s*|,|;")


# Three rules read the same records on every hook (same drug, unresolved, the statin gap): resolve each once.
@functools.lru_cache(maxsize=4096)
def allergy_ingredients(substance: Code) -> frozenset[str]:
    """The known ingredients an allergy record names by its RxNorm code or the head of its text ("Lisinopril -
    dry cough" → lisinopril); empty when any part of that head is not a known drug."""
    head = _ALLERGY_HEAD.split(substance.display, maxsplit=1)[0].strip()
    rxnorm = substance.code if system_name(substance.system) == "rxnorm" else None
    resolved = terminology.resolve_product(rxnorm, head)
    if resolved.unknown or not resolved.ingredients:
        return frozenset()
    return frozenset(n for n in resolved.ingredients if terminology.is_known_ingredient(n))


def _allergy_severity(allergy: Allergy) -> Severity:
    if allergy.criticality == "high" or any(_SEVERE_REACTION.search(r) for r in allergy.reactions):
        return "critical"
    return "info" if allergy.kind == "intolerance" else "warning"


# Contraindicated by a label after an allergy to a class: sulfasalazine (it releases sulfapyridine), celecoxib
# and zonisamide (sulfonamides) after a sulfonamide allergy; an ARNI after angioedema on an ACE inhibitor or ARB (Entresto label).
_LABEL_CROSS: Final[dict[str, frozenset[str]]] = {
    "sulfonamide-antibiotic": frozenset({"sulfasalazine", "celecoxib", "zonisamide"})
}
_ANGIOEDEMA: Final = re.compile(r"angio-?o?edema", re.IGNORECASE)
# Beta-lactams with an identical R1 side chain cross-react whatever their class: aztreonam, a monobactam that
# spares penicillin and most cephalosporin allergies, shares ceftazidime's (kb.aztreonam-ceftazidime-side-chain).
_SHARED_SIDE_CHAIN: Final[dict[str, frozenset[str]]] = {
    "ceftazidime": frozenset({"aztreonam"}),
    "aztreonam": frozenset({"ceftazidime"}),
}


_MILD_SIDE_EFFECT: Final = re.compile(
    r"\b(nausea|vomiting|diarrh(o)?ea|upset|dyspepsia|abdominal (pain|cramps)|heartburn|headache|dizziness|"
    r"drowsiness|bad taste|metallic taste)\b",
    re.IGNORECASE,
)


def _mild_intolerance(allergy: Allergy) -> bool:
    """An intolerance whose every recorded reaction names a mild side effect ("Nausea and vomiting", "upset
    stomach with full-strength aspirin") and none a severe one."""
    return (
        allergy.kind == "intolerance"
        and bool(allergy.reactions)
        and all(_MILD_SIDE_EFFECT.search(r) and not _SEVERE_REACTION.search(r) for r in allergy.reactions)
    )


# Reactions recorded as allergies that are not: vancomycin's infusion-rate flushing ("red man syndrome") is
# prevented by infusing over 2 hours or more, and the drug can be given again (2022 practice parameter).
_INFUSION_REACTION: Final = re.compile(
    r"red[- ](man|neck|person)|flushing syndrome|infusion[- ](rate )?reaction|rate[- ]related", re.IGNORECASE
)


def _vancomycin_infusion_reaction(allergy: Allergy, named: frozenset[str]) -> bool:
    return named == {"vancomycin"} and any(
        _INFUSION_REACTION.search(text) for text in (allergy.substance.display, *allergy.reactions)
    )


def allergy_same_drug(facts: RuleFacts) -> Iterator[Finding]:
    """A drug the patient is recorded as allergic to (or intolerant of), its class where members cross-react,
    another aromatic anticonvulsant or phenanthrene opioid, or a drug a label contraindicates after the recorded
    class allergy. The
    cross-reactivity groups above (penicillin, NSAIDs...) have their own rules and are left to them."""
    for allergy in facts.context.allergies:
        match = allergens.resolve(allergy.substance)
        grouped = bool(match.classes & _ALLERGY_GROUPS.keys())
        named = frozenset() if grouped else allergy_ingredients(allergy.substance)
        if _vancomycin_infusion_reaction(allergy, named):
            continue
        known = frozenset().union(match.classes, *(terminology.classes_of(n) for n in named))
        # A mild side effect of one drug (nausea on erythromycin) is not shared by its class the way an allergy is;
        # a serious one (a tendon rupture on ciprofloxacin) is a class warning in the labels.
        classes = frozenset() if grouped or _mild_intolerance(allergy) else known & _SAME_CLASS_ALLERGY
        # An opioid intolerance (nausea, itch from histamine release) is not a structural allergy.
        groups = (
            AROMATIC_ANTICONVULSANTS,
            *((PHENANTHRENE_OPIOIDS,) if allergy.kind != "intolerance" else ()),
        )
        aromatic = frozenset().union(*(group for group in groups if named & group))
        label_cross = frozenset().union(*(_LABEL_CROSS.get(c, frozenset()) for c in match.classes))
        angioedema = bool(known & {"ace-inhibitor", "arb"}) and any(
            _ANGIOEDEMA.search(r) for r in allergy.reactions
        )
        side_chain = frozenset().union(
            *(_SHARED_SIDE_CHAIN.get(n, frozenset()) for n in allergy_ingredients(allergy.substance))
        )
        contraindicated = [
            e
            for e in facts.exposures
            if not label_cross.isdisjoint(e.ingredients) or (angioedema and e.has("arni"))
        ]
        exposed = [
            e
            for e in facts.exposures
            if e in contraindicated
            or not named.isdisjoint(e.ingredients)
            or e.has(*classes)
            or not aromatic.isdisjoint(e.ingredients)
            or not side_chain.isdisjoint(e.ingredients)
        ]
        if not exposed:
            continue
        same = [e for e in exposed if not named.isdisjoint(e.ingredients)]
        what = "the same drug" if len(same) == len(exposed) else "a cross-reacting drug"
        yield Finding(
            "rule.allergy-same-drug",
            "critical" if contraindicated else _allergy_severity(allergy),
            _short(
                f"Recorded {_short(allergy.substance.display, 40)} allergy and {_names(exposed)} ({what}): "
                "consider an alternative"
            ),
            "A drug that caused a reaction, or one that cross-reacts with it, can cause it again.",
            (
                "kb.drug-allergy-reexposure",
                *(
                    ("kb.aztreonam-ceftazidime-side-chain",)
                    if any(not side_chain.isdisjoint(e.ingredients) for e in exposed)
                    else ()
                ),
            ),
            (allergy.handle, *_handles(exposed)),
            _proposed(exposed),
        )


def allergy_unresolved(facts: RuleFacts) -> Iterator[Finding]:
    # Fail closed: a drug allergy no checked class covers is shown, never read as "no allergy". An allergy to a
    # known drug is resolved: rule.allergy-same-drug checks it.
    for allergy in facts.context.allergies:
        match = allergens.resolve(allergy.substance)
        if (
            match.none_known
            or match.classes & (_ALLERGY_GROUPS.keys() | _SAME_CLASS_ALLERGY)
            or allergy_ingredients(allergy.substance)
        ):
            continue
        recorded = set(allergy.category)
        named_other = bool(recorded) or match.non_drug is not None
        if "medication" not in recorded and not match.drug and named_other:
            continue  # a food, environmental or biologic allergy, not an unchecked drug
        yield Finding(
            "rule.allergy-unresolved",
            "info",
            # The display is shortened, not the sentence, so the option always survives.
            f"Allergy '{_short(allergy.substance.display, 34)}' could not be matched to a drug class, "
            "so its checks are incomplete: consider checking by hand",
            "Drug-allergy checks only cover allergies they can resolve to a drug class; check new orders against this one by hand.",
            ("kb.allergy-record-unresolved",),
            (allergy.handle,),
        )


_PREGNANCY_EVIDENCE: tuple[tuple[str, str, Severity], ...] = (
    # (ingredient or class, knowledge-base id, that entry's severity hint), most specific first
    ("warfarin", "kb.warfarin-pregnancy", "critical"),
    ("methotrexate", "kb.methotrexate-pregnancy", "critical"),
    ("isotretinoin", "kb.isotretinoin-pregnancy", "critical"),
    ("valproate", "kb.valproate-pregnancy", "critical"),
    ("lithium", "kb.lithium-pregnancy", "warning"),
    ("misoprostol", "kb.misoprostol-pregnancy", "critical"),
    ("ergot", "kb.ergot-pregnancy", "critical"),
    ("mycophenolate", "kb.mycophenolate-pregnancy", "critical"),
    ("ace-inhibitor", "kb.acei-arb-pregnancy", "critical"),
    ("arb", "kb.acei-arb-pregnancy", "critical"),
    ("arni", "kb.acei-arb-pregnancy", "critical"),
    ("statin", "kb.statin-pregnancy", "warning"),
    ("tetracycline", "kb.tetracycline-pregnancy", "warning"),
    ("fluconazole", "kb.fluconazole-pregnancy", "warning"),
    ("paroxetine", "kb.paroxetine-pregnancy", "warning"),
    ("glp1-agonist", "kb.glp1-agonist-pregnancy", "warning"),
)
_TERATOGEN_DEFAULT: tuple[str, Severity] = ("kb.teratogen-contraception-counselling", "warning")


def _pregnancy_evidence(risky: tuple[Exposure, ...]) -> tuple[tuple[str, ...], Severity]:
    """The entries for these drugs, most severe first, and the card's severity: the first entry's hint."""
    cited = [
        (kb, severity)
        for key, kb, severity in _PREGNANCY_EVIDENCE
        if any(key in e.ingredients or key in e.classes for e in risky)
    ] or [_TERATOGEN_DEFAULT]
    cited.sort(key=lambda item: -SEVERITY_RANK[item[1]])  # stable: specificity order within a severity
    return tuple(dict.fromkeys(kb for kb, _ in cited)), cited[0][1]


# Teratogens whose risk ends with the first trimester, and the week from which they are the preferred drug:
# methimazole's embryopathy follows exposure in weeks 6-10, and the ATA moves pregnant patients from
# propylthiouracil to methimazole after the first trimester (PTU's liver toxicity).
SAFE_FROM_WEEK: Final[dict[str, int]] = {"methimazole": 16}


def _teratogenic_now(facts: RuleFacts, exposure: Exposure) -> bool:
    weeks = facts.context.pregnancy.weeks
    return not (
        weeks is not None
        and exposure.ingredients
        and all(
            weeks >= SAFE_FROM_WEEK.get(name, 99) or not terminology.classes_of(name) & {"teratogen"}
            for name in exposure.ingredients
        )
    )


def pregnancy_teratogen(facts: RuleFacts) -> Iterator[Finding]:
    if not facts.pregnant:
        return
    risky = tuple(e for e in facts.with_class("teratogen") if _teratogenic_now(facts, e))
    if risky:
        evidence, severity = _pregnancy_evidence(risky)
        yield Finding(
            "rule.pregnancy-teratogen",
            severity,
            _short(f"Pregnant and on {_names(risky)}: consider a pregnancy-compatible alternative"),
            "These drugs can harm the fetus; most have safer alternatives during pregnancy.",
            evidence,
            (*facts.context.pregnancy.evidence, *_handles(risky)),
            _proposed(risky),
        )


_SAME_CLASS = "Two drugs of one class add side effects without adding benefit."


def _not_a_rate_or_heart_failure_beta_blocker(exposure: Exposure) -> bool:
    """Eye drops or a cream (timolol drops beside oral metoprolol are not two systemic beta-blockers), and sotalol,
    a rhythm drug with its own QT and kidney cards, sometimes kept beside a low-dose beta-blocker on purpose."""
    return bool(LOCAL_ROUTE.search(exposure.label)) or "sotalol" in exposure.ingredients


class DuplicateGroup(NamedTuple):
    """Drugs of these classes taken together are one duplication card."""

    label: str  # what the summary calls them
    classes: frozenset[str]  # classes that count as one group
    evidence: str  # knowledge-base id
    why: str
    # A duplicate only across its classes (a PPI with an H2 blocker): two of one class are another group's card.
    across_classes: bool = False
    # Members that do not count: a seizure-rescue benzodiazepine beside a daily one is the plan, not a double.
    exempt: Callable[[Exposure], bool] | None = None
    # Only two different drugs are this group's card; two products of one drug are the same-ingredient card.
    distinct_ingredients: bool = False


# Rectal, nasal and buccal benzodiazepines are seizure rescue; injections are given once, in clinic or hospital.
_BENZODIAZEPINE_RESCUE_OR_ONCE: Final = re.compile(
    r"\b(?:rectal|nasal|intranasal|buccal|injection|injectable|prefilled syringe|auto-injector)\b"
    r"|diastat|valtoco|nayzilam|libervant",
    re.IGNORECASE,
)


def rescue_or_single_dose(exposure: Exposure) -> bool:
    return bool(_BENZODIAZEPINE_RESCUE_OR_ONCE.search(exposure.label))


P2Y12_INHIBITORS: Final = frozenset({"clopidogrel", "prasugrel", "ticagrelor", "ticlopidine", "cangrelor"})


def _not_a_p2y12_inhibitor(exposure: Exposure) -> bool:
    # Aspirin beside a P2Y12 inhibitor is dual antiplatelet therapy, and dipyridamole or cilostazol another aim.
    return P2Y12_INHIBITORS.isdisjoint(exposure.ingredients)


_DEPOT_STEROID: Final = re.compile(
    r"injectable suspension|kenalog|depo-medrol|intra-?articular", re.IGNORECASE
)


def _not_a_systemic_glucocorticoid(exposure: Exposure) -> bool:
    # Skin, eye, airway and rectal steroids act where they are put; fludrocortisone is the mineralocorticoid given
    # beside hydrocortisone in adrenal insufficiency; a depot injection into a joint is a single local dose.
    return bool(
        LOCAL_ROUTE.search(exposure.label)
        or "fludrocortisone" in exposure.ingredients
        or _DEPOT_STEROID.search(exposure.label)
    )


def _metolazone(exposure: Exposure) -> bool:
    # Metolazone is added on purpose to block the nephron in sequence (with a loop diuretic, sometimes a thiazide).
    return "metolazone" in exposure.ingredients


_DUPLICATE_GROUPS: Final[tuple[DuplicateGroup, ...]] = (
    DuplicateGroup("NSAIDs", frozenset({"nsaid", "cox2-inhibitor"}), "kb.duplicate-nsaids", _SAME_CLASS),
    DuplicateGroup(
        "renin-angiotensin blockers",
        frozenset({"ace-inhibitor", "arb", "arni"}),
        "kb.duplicate-raas-blockade",
        _SAME_CLASS,
    ),
    DuplicateGroup(
        "anticoagulants", frozenset({"anticoagulant"}), "kb.duplicate-anticoagulants", _SAME_CLASS
    ),
    DuplicateGroup("SSRIs or SNRIs", frozenset({"ssri", "snri"}), "kb.duplicate-ssri-snri", _SAME_CLASS),
    DuplicateGroup(
        "proton pump inhibitors",
        frozenset({"proton-pump-inhibitor"}),
        "kb.duplicate-proton-pump-inhibitors",
        "Two PPIs (often a home one left beside a discharge one) add cost, interactions and long-term risks "
        "without more acid suppression than one at its full dose.",
    ),
    DuplicateGroup("opioids", frozenset({"opioid"}), "kb.duplicate-opioids", _SAME_CLASS),
    # A triple inhaler already holds a LAMA and a LABA: another inhaler of either class doubles it.
    DuplicateGroup(
        "long-acting antimuscarinics",
        frozenset({"lama"}),
        "kb.duplicate-long-acting-bronchodilators",
        _SAME_CLASS,
    ),
    DuplicateGroup(
        "long-acting beta-agonists",
        frozenset({"laba"}),
        "kb.duplicate-long-acting-bronchodilators",
        _SAME_CLASS,
    ),
    DuplicateGroup(
        "loop diuretics",
        frozenset({"loop-diuretic"}),
        "kb.duplicate-loop-diuretics",
        "Two loop diuretics (often one left running after a switch at discharge) over-diurese: low blood pressure, "
        "kidney injury and low potassium.",
        # Oral and IV furosemide keep the same-ingredient card they had before the loop group existed.
        distinct_ingredients=True,
    ),
    DuplicateGroup(
        "basal insulins",
        frozenset({"basal-insulin"}),
        "kb.duplicate-basal-insulins",
        "Two long-acting basal insulins (often an old one left running after a switch) double the basal dose: "
        "severe, prolonged hypoglycaemia.",
    ),
    DuplicateGroup(
        "central alpha-2 agonists",
        frozenset({"central-alpha-agonist"}),
        "kb.duplicate-central-alpha-agonists",
        "Clonidine and guanfacine act the same way: together they add bradycardia, hypotension and sedation, and "
        "stopping either abruptly causes rebound hypertension.",
    ),
    DuplicateGroup(
        "acid suppressants (a PPI and an H2 blocker)",
        frozenset({"proton-pump-inhibitor", "h2-antagonist"}),
        "kb.duplicate-acid-suppression",
        "A PPI already suppresses acid fully; an H2 blocker beside it (often one carried over from hospital) adds "
        "cost, interactions and infection risk without benefit for most patients.",
        across_classes=True,
    ),
    DuplicateGroup(
        "statins",
        frozenset({"statin"}),
        "kb.duplicate-statins",
        "Two statins (often a home statin left beside a discharge one) add muscle and liver toxicity without more "
        "LDL lowering than one at a higher intensity.",
    ),
    DuplicateGroup(
        "gabapentinoids",
        frozenset({"gabapentinoid"}),
        "kb.duplicate-gabapentinoids",
        "Gabapentin and pregabalin act the same way: taken together (often a switch never finished) they add "
        "dizziness, sedation, falls and, with an opioid, slowed breathing.",
    ),
    DuplicateGroup(
        "alpha-1 blockers",
        frozenset({"alpha-1-blocker"}),
        "kb.duplicate-alpha-1-blockers",
        "Two alpha-1 blockers (one for blood pressure, one for the prostate) add orthostatic hypotension, "
        "dizziness and falls without more relief of urinary symptoms.",
    ),
    # One group for both subclasses: two dihydropyridines duplicate each other, and verapamil or diltiazem
    # with a dihydropyridine adds its effects and raises the dihydropyridine's levels (amlodipine label).
    DuplicateGroup(
        "mineralocorticoid receptor antagonists",
        frozenset({"mineralocorticoid-antagonist"}),
        "kb.duplicate-mineralocorticoid-antagonists",
        "Finerenone, spironolactone and eplerenone block the same receptor (often one from each of two clinics): "
        "together they add hyperkalaemia and kidney function decline.",
    ),
    DuplicateGroup(
        "benzodiazepines",
        frozenset({"benzodiazepine"}),
        "kb.duplicate-benzodiazepines",
        "Two benzodiazepines (often from two prescribers) add sedation, falls and dependence, and with an opioid "
        "slowed breathing, without treating anxiety or insomnia better than one.",
        exempt=rescue_or_single_dose,
    ),
    DuplicateGroup(
        "thiazide diuretics",
        frozenset({"thiazide"}),
        "kb.duplicate-thiazides",
        "Two thiazide or thiazide-like diuretics (often one inside a combination tablet) add low potassium, low "
        "sodium and dehydration without lowering blood pressure more.",
        exempt=_metolazone,
    ),
    DuplicateGroup(
        "incretin drugs (DPP-4 inhibitors or GLP-1 agonists)",
        frozenset({"dpp4-inhibitor", "glp1-agonist"}),
        "kb.duplicate-incretin-therapy",
        "Two DPP-4 inhibitors, or a DPP-4 inhibitor with a GLP-1 agonist, act on one pathway: the second adds cost "
        "and side effects but no glucose lowering.",
    ),
    DuplicateGroup(
        "P2Y12 inhibitors",
        frozenset({"antiplatelet"}),
        "kb.duplicate-p2y12-inhibitors",
        "Two P2Y12 inhibitors (an old order left active after a switch) double the bleeding risk without more "
        "protection; a switch needs the old drug stopped, and sometimes a loading dose at a set time.",
        exempt=_not_a_p2y12_inhibitor,
    ),
    DuplicateGroup(
        "SGLT2 inhibitors",
        frozenset({"sglt2-inhibitor"}),
        "kb.duplicate-sglt2-inhibitors",
        "Two SGLT2 inhibitors (often one inside a combination tablet) act on one transporter: the second adds "
        "volume depletion, genital infection and ketoacidosis risk but no benefit.",
    ),
    DuplicateGroup(
        "stimulants",
        frozenset({"stimulant"}),
        "kb.duplicate-stimulants",
        "Two different stimulants (often from two prescribers) add blood pressure, heart rate, insomnia and "
        "misuse risk without a better effect than one at its full dose.",
        distinct_ingredients=True,
    ),
    DuplicateGroup(
        "systemic corticosteroids",
        frozenset({"corticosteroid"}),
        "kb.duplicate-systemic-corticosteroids",
        "Two systemic corticosteroids (an IV course left running after the oral step-down) add up to one larger "
        "steroid dose, with its high glucose, infection and delirium risks.",
        exempt=_not_a_systemic_glucocorticoid,
        distinct_ingredients=True,
    ),
    DuplicateGroup(
        "cholinesterase inhibitors",
        frozenset({"cholinesterase-inhibitor"}),
        "kb.duplicate-cholinesterase-inhibitors",
        "Donepezil, rivastigmine and galantamine are used one at a time: two together (a switch never finished) add "
        "nausea, weight loss, bradycardia and syncope.",
        distinct_ingredients=True,
    ),
    DuplicateGroup(
        "5-alpha-reductase inhibitors",
        frozenset({"5-alpha-reductase-inhibitor"}),
        "kb.duplicate-5-alpha-reductase-inhibitors",
        "Finasteride and dutasteride block the same enzyme: together (a urology switch the primary care list kept) "
        "they add sexual side effects and cost without shrinking the prostate more.",
        distinct_ingredients=True,
    ),
    DuplicateGroup(
        "beta-blockers",
        frozenset({"beta-blocker"}),
        "kb.duplicate-beta-blockers",
        "Two systemic beta-blockers (an old one left active after a switch) add bradycardia, hypotension and heart "
        "block without more benefit than one at its target dose.",
        exempt=_not_a_rate_or_heart_failure_beta_blocker,
        distinct_ingredients=True,
    ),
    DuplicateGroup(
        "calcium-channel blockers",
        frozenset({"dihydropyridine-ccb", "non-dihydropyridine-ccb"}),
        "kb.duplicate-calcium-channel-blockers",
        "Two calcium-channel blockers add hypotension and oedema, and verapamil or diltiazem also slow the heart.",
    ),
)

# An active metabolite sold as its own drug: paliperidone is 9-hydroxyrisperidone, so the two are one moiety.
_SAME_MOIETY: Final[dict[str, str]] = {"paliperidone": "risperidone"}
_MOIETY_NAME: Final[dict[str, str]] = {"risperidone": "risperidone or its metabolite paliperidone"}
# Relievers prescribed in two devices (inhaler and nebuliser) on purpose.
_SAME_INGREDIENT_EXEMPT: Final = ("saba",)


def long_acting_with_breakthrough(facts: RuleFacts, members: Iterable[Exposure]) -> bool:
    """Exactly two opioids, one scheduled extended-release and one immediate-release taken as needed: the
    long-acting-plus-breakthrough regimen the opioid guidance describes, not a duplication, whether one of them is
    being ordered now (a patch added for a patient on as-needed oxycodone). Whether a new long-acting opioid is safe
    for someone not opioid-tolerant is the tolerance rules' question."""
    pair = tuple(members)
    if len(pair) != 2 or any(not e.has("opioid") for e in pair):
        return False
    long_acting = [e for e in pair if EXTENDED_RELEASE.search(e.label)]
    if len(long_acting) != 1:
        return False
    (short_acting,) = (e for e in pair if e is not long_acting[0])
    scheduled, as_needed = dosage_of(facts, long_acting[0]), dosage_of(facts, short_acting)
    return scheduled is not None and not scheduled.as_needed and as_needed is not None and as_needed.as_needed


def occasional_dose_by_another_route(facts: RuleFacts, products: Iterable[Exposure]) -> bool:
    """Exactly two products of one drug, one an injection given only as needed or less than daily (IV labetalol
    for a blood-pressure spike beside the oral tablets, IV ondansetron before weekly chemotherapy beside tablets
    for nausea at home): a rescue or premedication plan, not a double dose."""
    pair = tuple(products)
    if len(pair) != 2:
        return False
    injected = [e for e in pair if PARENTERAL.search(route_text(facts, e))]
    if len(injected) != 1:
        return False
    dosage = dosage_of(facts, injected[0])
    if dosage is None:
        return False
    times_a_day = per_day(dosage.frequency)
    return dosage.as_needed or (times_a_day is not None and times_a_day < 1)


def loading_dose_then_maintenance(facts: RuleFacts, products: Iterable[Exposure]) -> bool:
    """Exactly two drafts of one drug, one a single dose (a dose and no frequency) and one scheduled: a loading
    dose written out beside the maintenance order (indomethacin 50 mg once, then 25 mg every 6 hours)."""
    pair = tuple(products)
    if (
        len(pair) != 2
        or not all(e.proposed for e in pair)
        or set(pair[0].ingredients) != set(pair[1].ingredients)
    ):
        return False
    dosages = [dosage_of(facts, e) for e in pair]
    once = [
        d for d in dosages if d is not None and d.dose is not None and d.frequency is None and not d.as_needed
    ]
    scheduled = [d for d in dosages if d is not None and d.frequency is not None]
    return len(once) == 1 and len(scheduled) == 1


def second_strength_on_some_days(facts: RuleFacts, products: Iterable[Exposure]) -> bool:
    """Exactly two products of one drug, one of them taken on some days of the week only (warfarin 5 mg daily
    with a 2.5 mg tablet added on Mondays and Fridays): one dose made up from two strengths, not a double."""
    pair = tuple(products)
    if len(pair) != 2 or set(pair[0].ingredients) != set(pair[1].ingredients):
        return False
    times = [per_day(d.frequency) if (d := dosage_of(facts, e)) is not None else None for e in pair]
    if any(t is None for t in times):
        return False
    # One daily, one on some days: two weekly products of one drug (methotrexate) stay a double dose.
    return sorted(t < 1 for t in times if t is not None) == [False, True]


def stimulant_with_booster(products: Iterable[Exposure]) -> bool:
    """Exactly two products of one stimulant, one extended-release and one immediate-release: the afternoon
    booster that ADHD treatment adds on purpose when the long-acting dose wears off."""
    pair = tuple(products)
    return (
        len(pair) == 2
        and all(e.has("stimulant") for e in pair)
        and sum(bool(EXTENDED_RELEASE.search(e.label)) for e in pair) == 1
    )


# Warfarin takes days to work, so a heparin or fondaparinux overlaps it until the INR is in range (at least five
# days): while both are new the pair is a bridge, not a duplicate.
BRIDGE_NEW_WITHIN_DAYS: Final = 30
_BRIDGING_PARENTERAL: Final = frozenset({"fondaparinux"})


def warfarin_bridge(members: Iterable[Exposure]) -> bool:
    """Exactly a vitamin K antagonist and a heparin (or fondaparinux), both started within 30 days or ordered now."""
    pair = tuple(members)
    if len(pair) != 2 or not all(e.new(BRIDGE_NEW_WITHIN_DAYS) for e in pair):
        return False
    vka = [e for e in pair if e.has("vitamin-k-antagonist")]
    parenteral = [e for e in pair if e.has("heparin") or not _BRIDGING_PARENTERAL.isdisjoint(e.ingredients)]
    return len(vka) == 1 and len(parenteral) == 1 and vka[0] is not parenteral[0]


# A dose written as an amount ("40 mg") is the same dose whatever the product's strength; "1 tablet" is not.
_AMOUNT_DOSE: Final = re.compile(r"^\s*[\d.]+\s*(mg|g|ug|mcg|meq|units?|iu)\s*$", re.IGNORECASE)


def _dose_of(facts: RuleFacts, exposure: Exposure) -> tuple[str | None, Dosage | None]:
    """The product strength and structured dosage behind a current medication or draft order."""
    record = record_of(facts, exposure)
    return (record.strength, record.dosage) if record is not None else (None, None)


def _same_regimen(held: tuple[str | None, Dosage | None], ordered: tuple[str | None, Dosage | None]) -> bool:
    (held_strength, held_dose), (ordered_strength, ordered_dose) = held, ordered
    if held_dose is None or ordered_dose is None or held_dose.dose is None:
        return False
    if ordered_dose.dose != held_dose.dose or ordered_dose.route != held_dose.route:
        return False
    if not _AMOUNT_DOSE.match(held_dose.dose) and (
        held_strength is None or held_strength != ordered_strength
    ):
        return False
    return ordered_dose.frequency in (None, held_dose.frequency) or (
        ordered_dose.as_needed and held_dose.as_needed
    )


def continued_by_draft(facts: RuleFacts) -> frozenset[str]:
    """Current medications that a draft re-orders unchanged (same ingredients, route and dose each time; the same
    frequency, or both as needed, or a single administration): an admission or renewal order continuing a home
    drug is one therapy, not two. A changed dose is a new order beside the old one, so it stays a duplicate."""
    drafts = [(e, _dose_of(facts, e)) for e in facts.exposures if e.proposed]
    if not drafts:
        return frozenset()
    return frozenset(
        current.handle
        for current in facts.exposures
        if not current.proposed
        and any(
            set(draft.ingredients) == set(current.ingredients)
            and _same_regimen(_dose_of(facts, current), ordered)
            for draft, ordered in drafts
        )
    )


def duplicate_therapy(facts: RuleFacts) -> Iterator[Finding]:
    covered: set[frozenset[str]] = set()
    continued = continued_by_draft(facts)
    for group in _DUPLICATE_GROUPS:
        classes = group.classes
        members = tuple(e for e in facts.with_class(*classes) if e.handle not in continued)
        if group.exempt is not None:
            members = tuple(e for e in members if not group.exempt(e))
        if "nsaid" in classes:
            members = tuple(e for e in members if not low_dose_aspirin(facts, e))
        if (
            ("opioid" in classes and long_acting_with_breakthrough(facts, members))
            or ("anticoagulant" in classes and warfarin_bridge(members))
            or loading_dose_then_maintenance(facts, members)
            or second_strength_on_some_days(facts, members)
        ):
            covered.add(frozenset(e.handle for e in members))
            continue
        if group.across_classes and not all(any(e.has(c) for e in members) for c in classes):
            continue
        # The older groups (two naproxen products) keep their class card, as their cases pin.
        if group.distinct_ingredients and len({e.ingredients for e in members}) < 2:
            continue
        if len(members) >= 2 and (any(e.proposed for e in members) or len({e.handle for e in members}) >= 2):
            covered.add(frozenset(e.handle for e in members))
            yield Finding(
                "rule.duplicate-therapy",
                "warning",
                _short(f"Two {group.label} ({_names(members)}): consider whether both are intended"),
                group.why,
                (group.evidence,),
                _handles(members),
                _proposed(members),
            )
    # The same ingredient in two systemic products (oral and IV furosemide, an opioid combination and plain
    # acetaminophen): a double dose unless one is meant to stop.
    by_ingredient: dict[str, list[Exposure]] = {}
    for exposure in facts.exposures:
        # A local product beside a systemic one of the same ingredient is no double dose, and two of them (a
        # cream and an ointment) are a choice of base.
        if (
            LOCAL_ROUTE.search(exposure.label)
            or exposure.has(*_SAME_INGREDIENT_EXEMPT)
            or exposure.handle in continued
        ):
            continue
        for ingredient in exposure.ingredients:
            if ingredient not in SUMMED_INGREDIENTS:
                by_ingredient.setdefault(_SAME_MOIETY.get(ingredient, ingredient), []).append(exposure)
    for ingredient, products in sorted(by_ingredient.items()):
        handles = frozenset(e.handle for e in products)
        if len(handles) < 2 or any(handles <= group for group in covered):
            continue
        if (
            occasional_dose_by_another_route(facts, products)
            or stimulant_with_booster(products)
            or loading_dose_then_maintenance(facts, products)
            or second_strength_on_some_days(facts, products)
        ):
            continue
        covered.add(handles)
        yield Finding(
            "rule.duplicate-therapy",
            "warning",
            _short(
                f"Two products containing {_MOIETY_NAME.get(ingredient, ingredient)} ({_short(_names(products), 70)}): "
                "consider whether both are intended"
            ),
            "Two products of the same drug add up to a double dose unless one of them is meant to stop.",
            ("kb.duplicate-same-ingredient",),
            _handles(products),
            _proposed(products),
        )


# Simvastatin label: the highest daily dose (mg) with drugs that raise its levels.
SIMVASTATIN_CAPS: Final[dict[str, int]] = {
    "verapamil": 10,
    "diltiazem": 10,
    "dronedarone": 10,
    "amiodarone": 20,
    "amlodipine": 20,
    "ranolazine": 20,
    "ticagrelor": 40,  # Brilinta label: simvastatin or lovastatin above 40 mg raises their levels
    "bempedoic acid": 20,  # Nexletol label: avoid simvastatin above 20 mg (myopathy)
}
# A strength in milligrams per unit; "MG/ML" or "MG/ACTUAT" is a concentration, not a dose, so it is not read.
_MG = re.compile(r"(\d+(?:\.\d+)?)\s*MG\b(?!\s*/)", re.IGNORECASE)


# Free text that names the ingredients first and the strengths after, in the same order
# ("hydrocodone bitartrate / acetaminophen 5 mg/325 mg oral tablet").
_PAIRED_STRENGTHS = re.compile(
    r"(?<![\d.])(\d+(?:\.\d+)?)\s*mg\s*/\s*(\d+(?:\.\d+)?)\s*mg\b(?!\s*/)", re.IGNORECASE
)


def _paired_strength_mg(exposure: Exposure, ingredient: str) -> float | None:
    """Two ingredients named in the label, then "N mg/M mg": the first strength is the first-named ingredient's."""
    if len(exposure.ingredients) != 2:
        return None
    label = exposure.label.lower()
    where = {name: label.find(name) for name in exposure.ingredients}
    if any(position < 0 for position in where.values()):
        return None
    pairs = list(_PAIRED_STRENGTHS.finditer(label))
    if len(pairs) != 1 or any(position > pairs[0].start() for position in where.values()):
        return None
    first = min(exposure.ingredients, key=lambda name: where[name])
    return float(pairs[0].group(1) if ingredient == first else pairs[0].group(2))


def strength_mg(exposure: Exposure, ingredient: str) -> float | None:
    """The ingredient's strength per unit from the product name ("Simvastatin 20 MG Oral Tablet" → 20), or
    None when it cannot be read unambiguously."""
    read = _strength_mg(exposure, ingredient)
    return read if read is not None else _paired_strength_mg(exposure, ingredient)


def _strength_mg(exposure: Exposure, ingredient: str) -> float | None:
    parts = exposure.label.split(" / ")
    named = [part for part in parts if ingredient in part.lower()]
    if not named and len(parts) == 1 and exposure.ingredients == (ingredient,):
        named = parts  # a single-drug product coded right but misspelt in its display ("Simvistatin 10 MG")
    if len(named) != 1:
        return None
    others = [i for i in exposure.ingredients if i != ingredient and i in named[0].lower()]
    if others:
        # Free text joins a combination without spaces ("hydrocodone 5 mg/acetaminophen 325 mg"): the part that
        # names this ingredient alone holds its strength; "5 mg/" is not a concentration there.
        named = [part for part in named[0].split("/") if ingredient in part.lower()]
        if len(named) != 1 or any(i in named[0].lower() for i in others):
            return None
    found = {float(m) for m in _MG.findall(named[0])}
    return found.pop() if len(found) == 1 else None


SIMVASTATIN_NEW_START_MAX: Final = 40  # the label: 80 mg only for patients long on it without muscle toxicity
# Lipitor label, Drug Interactions table: atorvastatin's daily limit beside these inhibitors (ritonavir-boosted
# protease inhibitors are listed by the protease inhibitor, which is how they are prescribed).
ATORVASTATIN_CAPS: Final[dict[str, int]] = {
    "clarithromycin": 20,
    "itraconazole": 20,
    "letermovir": 20,
    "saquinavir": 20,
    "darunavir": 20,
    "fosamprenavir": 20,
    "nelfinavir": 40,
}


def _statin_caps(
    facts: RuleFacts, statin_name: str, caps: dict[str, int]
) -> Iterator[tuple[Exposure, float | None, int, list[Exposure]]]:
    """(statin, its strength or None, the lowest cap exceeded, the drugs that set it) for each statin exposure."""
    # Once, not per statin: with thousands of drafts the per-statin scan of every exposure was quadratic.
    raisers = [
        (e, min(caps[i] for i in e.ingredients if i in caps))
        for e in facts.exposures
        if not caps.keys().isdisjoint(e.ingredients)
    ]
    for statin in (e for e in facts.exposures if statin_name in e.ingredients):
        raising = [(e, cap) for e, cap in raisers if e.handle != statin.handle]
        if not raising:
            continue
        # The product strength stands in for the daily dose here; rule.simvastatin-daily-dose reads the dosage.
        strength = strength_mg(statin, statin_name)
        # Fail closed: a strength we cannot read is checked by a person, never assumed to be low enough.
        over = raising if strength is None else [(e, cap) for e, cap in raising if strength > cap]
        if over:
            yield statin, strength, min(c for _, c in over), [e for e, _ in over]


def _cap_summary(statin_name: str, strength: float | None, cap: int, others: list[Exposure]) -> str:
    names = _short(_names(others), 40)
    name = statin_name.capitalize()
    if strength is None:
        return f"{name} dose unreadable, so its {cap} mg/day limit with {names} is unchecked: consider confirming the dose"
    return f"{name} {strength:g} mg with {names} exceeds its {cap} mg/day limit: consider {cap} mg or another statin"


def simvastatin_dose_limit(facts: RuleFacts) -> Iterator[Finding]:
    for statin, strength, cap, others in _statin_caps(facts, "simvastatin", SIMVASTATIN_CAPS):
        evidence = ["kb.simvastatin-dose-limits"]
        if any("amiodarone" in e.ingredients for e in others):
            evidence.append("kb.simvastatin-amiodarone-dose-limit-2011")
        yield Finding(
            "rule.simvastatin-dose-limit",
            "warning",
            _short(_cap_summary("simvastatin", strength, cap, others)),
            "These drugs raise simvastatin levels, so its label caps the daily dose to limit muscle injury.",
            tuple(evidence),
            _handles([statin], others),
            _proposed([statin], others),
        )
    # 80 mg started new: a draft of 80 mg with no 80 mg already taken (a renewal is not a new start).
    taking_80 = any(
        not e.proposed and "simvastatin" in e.ingredients and (strength_mg(e, "simvastatin") or 0) > 40
        for e in facts.exposures
    )
    for statin in (e for e in facts.exposures if e.proposed and "simvastatin" in e.ingredients):
        strength = strength_mg(statin, "simvastatin")
        if strength is not None and strength > SIMVASTATIN_NEW_START_MAX and not taking_80:
            yield Finding(
                "rule.simvastatin-dose-limit",
                "warning",
                f"Simvastatin {strength:g} mg started new: consider 40 mg or a more potent statin",
                "The label restricts 80 mg to patients who have taken it for a year without muscle toxicity.",
                ("kb.simvastatin-dose-limits",),
                (statin.handle,),
                (statin.handle,),
            )


def atorvastatin_dose_limit(facts: RuleFacts) -> Iterator[Finding]:
    for statin, strength, cap, others in _statin_caps(facts, "atorvastatin", ATORVASTATIN_CAPS):
        yield Finding(
            "rule.atorvastatin-dose-limit",
            "warning",
            _short(_cap_summary("atorvastatin", strength, cap, others)),
            "These drugs raise atorvastatin levels, so its label limits the daily dose to limit muscle injury.",
            ("kb.atorvastatin-dose-limits",),
            _handles([statin], others),
            _proposed([statin], others),
        )


def paediatric(facts: RuleFacts) -> Iterator[Finding]:
    age = facts.age
    if age is None or age >= 18:
        return
    aspirin = facts.with_class("salicylate")
    if aspirin:
        yield Finding(
            "rule.paediatric-aspirin",
            "warning",
            f"Aspirin in a {age}-year-old risks Reye syndrome: consider acetaminophen or ibuprofen instead",
            "Aspirin in children and teenagers with viral illness is linked to Reye syndrome.",
            ("kb.aspirin-reye-syndrome-under-18",),
            _handles(aspirin),
            _proposed(aspirin),
        )
    codeine = facts.with_class("codeine-like-opioid")
    if codeine and age < 12:
        yield Finding(
            "rule.paediatric-codeine-tramadol",
            "critical",
            _short(
                f"{_names(codeine).capitalize()} is contraindicated under 12: consider a non-opioid analgesic"
            ),
            "Ultra-rapid CYP2D6 metabolisers turn codeine and tramadol into enough opioid to stop a child breathing.",
            ("kb.codeine-tramadol-under-12",),
            _handles(codeine),
            _proposed(codeine),
        )


# The dose an epinephrine auto-injector delivers: volume x concentration ("0.3 ML Epinephrine 0.5 MG/ML
# Auto-Injector" is 0.15 mg), or a plain strength ("Epinephrine 0.3 MG Auto-Injector").
_EPI_VOLUME = re.compile(r"(\d+(?:\.\d+)?)\s*ML\s+epinephrine\s+(\d+(?:\.\d+)?)\s*MG/ML\b", re.IGNORECASE)
_EPI_STRENGTH = re.compile(r"epinephrine\s+(\d+(?:\.\d+)?)\s*MG\b(?!\s*/)", re.IGNORECASE)


def autoinjector(label: str) -> bool:
    return "auto-injector" in label.lower() or "autoinjector" in label.lower()


def autoinjector_mg(label: str) -> float | None:
    """The epinephrine dose of an auto-injector product name, or None when it is not one or is unreadable."""
    if not autoinjector(label):
        return None
    if (match := _EPI_VOLUME.search(label)) is not None:
        return round(float(match.group(1)) * float(match.group(2)), 3)
    found = {float(m) for m in _EPI_STRENGTH.findall(label)}
    return found.pop() if len(found) == 1 else None


def labelled_autoinjector_mg(weight_kg: float) -> float | None:
    """The US labels' auto-injector dose for a weight: 0.3 mg from 30 kg, 0.15 mg from 15 kg, 0.1 mg
    (Auvi-Q) from 7.5 kg; None below 7.5 kg, where no auto-injector is labelled."""
    if weight_kg >= 30:
        return 0.3
    if weight_kg >= 15:
        return 0.15
    return 0.1 if weight_kg >= 7.5 else None


def epinephrine_autoinjector_weight(facts: RuleFacts) -> Iterator[Finding]:
    age = facts.age
    if age is None or age >= 18:
        return
    pens = [e for e in facts.exposures if "epinephrine" in e.ingredients and autoinjector(e.label)]
    if not pens:
        return
    weight = facts.current("weight")  # within its window (knowledge/lab_validity.json)
    stale = facts.stale("weight")
    shown = weight or stale
    article = "an" if age in (8, 11) else "a"  # the ages under 18 said with a leading vowel
    evidence = ("kb.epinephrine-autoinjector-weight-dose",)
    why = "Auto-injector strengths are labelled by body weight (about 0.01 mg/kg), so the dose must follow the child's weight."
    for pen in pens:
        mg = autoinjector_mg(pen.label)
        if weight is None or mg is None:
            # Fail closed: an old or missing weight, or an unreadable strength, is shown and never assumed.
            if mg is None:
                what = "strength unreadable"
            elif stale is None:
                what = f"{mg:g} mg, no weight available"
            elif stale.days_ago is None:
                what = f"{mg:g} mg, weight undated"
            else:
                what = f"{mg:g} mg, last weight {stale.days_ago} days old"
            yield Finding(
                "rule.epinephrine-autoinjector-weight",
                "info",
                _short(
                    f"Epinephrine auto-injector ({what}) for {article} {age}-year-old: "
                    "consider weighing the child and confirming the strength"
                ),
                why,
                evidence,
                (pen.handle, *((shown.handle,) if shown is not None else ())),
                _proposed([pen]),
            )
            continue
        labelled = labelled_autoinjector_mg(weight.value)
        if labelled == mg:
            continue
        if labelled is None:
            advice = "no auto-injector is labelled under 7.5 kg; consider a weight-based dose"
            severity: Severity = "warning"
        elif mg > labelled:
            # 0.1 mg devices are not always to hand; 0.15 mg under 15 kg is a smaller overshoot than 0.3 mg.
            severity = "info" if (mg, labelled) == (0.15, 0.1) else "warning"
            advice = f"the label gives {labelled:g} mg; consider the {labelled:g} mg device"
        else:
            severity = "warning"
            advice = f"this under-doses; consider the {labelled:g} mg device"
        yield Finding(
            "rule.epinephrine-autoinjector-weight",
            severity,
            _short(f"Epinephrine {mg:g} mg auto-injector at {weight.value:g} kg: {advice}"),
            why,
            evidence,
            (pen.handle, weight.handle),
            _proposed([pen]),
        )


def asthma_saba_only(facts: RuleFacts) -> Iterator[Finding]:
    saba = facts.with_class("saba")
    # With a LABA and no ICS the problem is the LABA (rule.asthma-laba-without-ics, critical), not the reliever.
    controllers = tuple(e for e in facts.with_class("ics", "laba") if not NASAL.search(e.label))
    if saba and not controllers and facts.has_condition("asthma"):
        yield Finding(
            "rule.asthma-saba-only",
            "warning",
            "Reliever inhaler without an inhaled corticosteroid: consider an ICS-containing treatment",
            "SABA-only treatment raises the risk of severe asthma attacks; current guidance pairs relief with an ICS.",
            ("kb.asthma-saba-only-not-recommended", "kb.asthma-ics-containing-treatment"),
            (*_handles(saba), *facts.value_sets.get("asthma", ())),
            # A reliever ordered beside one already taken (a nebule in the emergency department) does not make the
            # regimen reliever-only; the regimen is what the card is about, so the order is not blamed.
            () if any(not e.proposed for e in saba) else _proposed(saba),
        )


def heart_failure_harm(facts: RuleFacts) -> Iterator[Finding]:
    if not facts.has_condition("heart-failure"):
        return
    nsaids = set(analgesic_nsaids(facts))
    harmful = tuple(
        e
        for e in facts.with_class("nsaid", "cox2-inhibitor", "thiazolidinedione", "non-dihydropyridine-ccb")
        if e in nsaids or not e.has("nsaid", "cox2-inhibitor")
    )
    # Of the DPP-4 inhibitors only these two carry the heart-failure warning.
    harmful += tuple(e for e in facts.exposures if {"saxagliptin", "alogliptin"} & set(e.ingredients))
    if harmful:
        yield Finding(
            "rule.heart-failure-harmful-drug",
            "warning",
            _short(f"Heart failure and {_names(harmful)}: consider an alternative that does not worsen it"),
            "NSAIDs and thiazolidinediones retain fluid, verapamil or diltiazem depress a weak heart, and "
            "saxagliptin or alogliptin raise heart-failure admissions.",
            tuple(
                dict.fromkeys(
                    kb
                    for cls, kb in (
                        ("nsaid", "kb.nsaid-heart-failure"),
                        ("cox2-inhibitor", "kb.nsaid-heart-failure"),
                        ("thiazolidinedione", "kb.thiazolidinedione-heart-failure"),
                        ("non-dihydropyridine-ccb", "kb.non-dihydropyridine-ccb-hfref"),
                        ("saxagliptin", "kb.saxagliptin-alogliptin-heart-failure"),
                        ("alogliptin", "kb.saxagliptin-alogliptin-heart-failure"),
                    )
                    if any(e.has(cls) or cls in e.ingredients for e in harmful)
                )
            ),
            (*facts.value_sets["heart-failure"], *_handles(harmful)),
            _proposed(harmful),
        )


def diabetes_hba1c(facts: RuleFacts) -> Iterator[Finding]:
    if not facts.has_condition("diabetes") or facts.current("hba1c") is not None:
        return
    last = facts.latest("hba1c")
    when = (
        f"last HbA1c {last.days_ago} days ago" if last and last.days_ago is not None else "no HbA1c on record"
    )
    yield Finding(
        "rule.diabetes-hba1c-due",
        "info",
        f"Diabetes with {when}: consider checking HbA1c",
        "HbA1c is checked at least twice a year in diabetes, quarterly when treatment changes or goals are missed.",
        ("kb.ada-hba1c-testing-frequency",),
        (*facts.value_sets["diabetes"], *((last.handle,) if last else ())),
        (),
        HBA1C,
    )


def diabetic_kidney_raas(facts: RuleFacts) -> Iterator[Finding]:
    dkd = facts.value_sets.get("diabetic-kidney-disease", ())
    if dkd and not facts.with_class("ace-inhibitor", "arb", "arni"):
        yield Finding(
            "rule.diabetic-kidney-disease-raas",
            "info",
            "Diabetic kidney disease without an ACE inhibitor or ARB: consider one if albuminuria is present",
            "ACE inhibitors and ARBs slow kidney disease progression in diabetes with albuminuria.",
            ("kb.diabetes-acei-arb-albuminuria",),
            dkd,
        )


# Beers 2023: antiepileptics (gabapentinoids included), antidepressants (TCAs, SSRIs, SNRIs), antipsychotics,
# benzodiazepines, Z-drugs, opioids and skeletal muscle relaxants.
CNS_ACTIVE_CLASSES: Final = (
    "anticonvulsant",
    "ssri",
    "snri",
    "tca",
    "antipsychotic",
    "benzodiazepine",
    "z-drug",
    "opioid",
    "skeletal-muscle-relaxant",
)
CNS_ACTIVE_LIMIT: Final = 3
CHOLINESTERASE_INHIBITORS: Final = frozenset({"donepezil", "rivastigmine", "galantamine"})


BEERS_FROM_AGE: Final = 65


def cns_active_count(facts: RuleFacts) -> int:
    """CNS-active drugs taken, counted as drugs, not records: a renewal drafted beside its listing is one drug."""
    drugs = facts.with_class(*CNS_ACTIVE_CLASSES)
    return len({i for e in drugs for i in e.ingredients} or {e.handle for e in drugs})


def beers_cns_burden_applies(facts: RuleFacts) -> bool:
    """Whether rule.beers-cns-active-burden speaks: three or more CNS-active drugs from 65 (a living patient)."""
    return (
        facts.age is not None
        and facts.age >= BEERS_FROM_AGE
        and not facts.context.demographics.deceased
        and cns_active_count(facts) >= CNS_ACTIVE_LIMIT
    )


def _sedatives_said_elsewhere(facts: RuleFacts) -> frozenset[str]:
    """Sedatives another card already names for the same harm: a benzodiazepine with an opioid
    (rule.opioid-sedative), an anticholinergic with a cholinesterase inhibitor
    (rule.anticholinergic-cholinesterase-inhibitor), any CNS-active drug among three or more
    (rule.beers-cns-active-burden). A second card on the same drug says nothing new."""
    said: set[str] = set()
    if facts.with_class("opioid"):
        said |= {e.handle for e in facts.with_class("benzodiazepine")}
    if facts.with_ingredient(*CHOLINESTERASE_INHIBITORS):
        said |= {e.handle for e in facts.with_class("anticholinergic")}
    if cns_active_count(facts) >= CNS_ACTIVE_LIMIT:
        said |= {e.handle for e in facts.with_class(*CNS_ACTIVE_CLASSES)}
    return frozenset(said)


def beers_older_adult(facts: RuleFacts) -> Iterator[Finding]:
    if facts.age is None or facts.age < 65 or facts.context.demographics.deceased:
        return
    said = _sedatives_said_elsewhere(facts)
    risky = tuple(
        e
        for e in facts.with_class("sedating-antihistamine", "benzodiazepine", "z-drug")
        if e.handle not in said
    )
    if risky:
        yield Finding(
            "rule.beers-sedatives",
            "warning",
            _short(
                f"Age {facts.context.demographics.age_label} on {_names(risky)}: consider a less sedating option"
            ),
            "In older adults these drugs cause confusion, falls and fractures (AGS Beers criteria).",
            tuple(
                kb
                for cls, kb in (
                    ("sedating-antihistamine", "kb.beers-first-generation-antihistamines"),
                    ("benzodiazepine", "kb.beers-benzodiazepines"),
                    ("z-drug", "kb.beers-z-drugs"),
                )
                if any(e.has(cls) for e in risky)
            ),
            _handles(risky),
            _proposed(risky),
        )


def _vaccine_within(facts: RuleFacts, word: str, days: int | None) -> bool:
    return any(
        word in i.vaccine.display.lower()
        and (days is None or (i.days_ago is not None and i.days_ago <= days))
        for i in facts.context.immunizations
    )


# 21 CFR 216.24: products withdrawn from the US market for safety, which a chart may still list (imported,
# old records, patient-reported). Mirrors kb.us-withdrawn-drug-products' ingredients (tests/unit/test_kb_integrity.py).
WITHDRAWN_FOR_SAFETY: Final = frozenset({"terfenadine", "astemizole", "cisapride"})


def withdrawn_drug(facts: RuleFacts) -> Iterator[Finding]:
    withdrawn = facts.with_ingredient(*WITHDRAWN_FOR_SAFETY)
    if withdrawn:
        yield Finding(
            "rule.withdrawn-drug",
            "critical",
            _short(
                f"{_names(withdrawn).capitalize()} was withdrawn from the US market for safety: consider stopping it"
            ),
            "The FDA lists these products as withdrawn for safety; they caused fatal arrhythmias at ordinary doses.",
            ("kb.us-withdrawn-drug-products",),
            _handles(withdrawn),
            _proposed(withdrawn),
        )


# Children up to 8 may need two doses in their first season, so they start as soon as vaccine is out.
INFLUENZA_TWO_DOSE_MAX_AGE: Final = 8


def _influenza_doses_before(facts: RuleFacts) -> int:
    """Influenza doses on record; a child with two or more before this season needs one dose, not two."""
    return sum(i.doses for i in facts.context.immunizations if "influenza" in i.vaccine.display.lower())


INFLUENZA_SECOND_DOSE_AFTER_DAYS: Final = 28


def _first_season_single_dose(facts: RuleFacts, since: int) -> int | None:
    """Days since the only influenza dose a child up to 8 has ever had, when it was given this season and 4 weeks
    or more ago: the second dose of a first season is due. A chart holding more doses is not judged (it keeps
    only each vaccine code's latest date, so which season the others fell in cannot be read)."""
    if facts.age is None or facts.age > INFLUENZA_TWO_DOSE_MAX_AGE or _influenza_doses_before(facts) != 1:
        return None
    (dose,) = (i for i in facts.context.immunizations if "influenza" in i.vaccine.display.lower())
    days = dose.days_ago
    if days is None or days > since or days < INFLUENZA_SECOND_DOSE_AFTER_DAYS:
        return None
    return days


def influenza_due(facts: RuleFacts) -> Iterator[Finding]:
    # Age is kept in whole years, so under 1 we cannot tell whether the child is past 6 months: stay silent.
    if facts.age is None or facts.age < 1 or facts.context.demographics.deceased:
        return
    month, since = facts.context.month, facts.context.days_since_august_1
    if month is not None and since is not None and (month >= 8 or month <= 3):
        # In season (August to March): this season's dose is one given since the most recent 1 August.
        if _vaccine_within(facts, "influenza", since):
            if (first := _first_season_single_dose(facts, since)) is None:
                return
            yield Finding(
                "rule.influenza-vaccine-due",
                "info",
                _short(
                    f"Age {facts.context.demographics.age_label}, first influenza season, one dose {first} days "
                    "ago: consider the second dose (4 weeks or more after the first)"
                ),
                "Children 6 months to 8 years with fewer than two influenza doses before this season need two "
                "doses at least 4 weeks apart.",
                ("kb.acip-influenza-annual",),
                tuple(
                    i.handle for i in facts.context.immunizations if "influenza" in i.vaccine.display.lower()
                ),
            )
            return
        if month == 8 and (facts.age > INFLUENZA_TWO_DOSE_MAX_AGE or _influenza_doses_before(facts) >= 2):
            # August is too early for adults (waning before the season's peak); only young children who need
            # two doses this season (fewer than two ever before it) start then (kb.acip-influenza-timing).
            return
        summary = "No influenza vaccine since 1 August: consider offering this season's vaccine"
    elif month is not None:
        # April to July: last season's vaccine is past its use and the next is not out yet, so a card
        # could not be acted on; the gap is raised again from 1 August.
        return
    else:
        # No build date: only a year without any dose is a gap.
        if _vaccine_within(facts, "influenza", 365):
            return
        summary = "No influenza vaccine in the past year: consider offering one"
    yield Finding(
        "rule.influenza-vaccine-due",
        "info",
        summary,
        "Annual influenza vaccination is recommended for everyone aged 6 months and older without a contraindication.",
        ("kb.acip-influenza-annual", "kb.acip-influenza-timing")
        if month == 8
        else ("kb.acip-influenza-annual",),
        tuple(i.handle for i in facts.context.immunizations if "influenza" in i.vaccine.display.lower()),
    )


# ACIP (October 2024): a pneumococcal conjugate vaccine for every adult from 50 (kb.acip-pneumococcal-50-plus).
ADULT_VACCINE_MIN_AGE: Final = 50


def pneumococcal_due(facts: RuleFacts) -> Iterator[Finding]:
    if facts.age is None or facts.age < ADULT_VACCINE_MIN_AGE or facts.context.demographics.deceased:
        return
    ppsv23 = vaccines.polysaccharide_only(facts)
    if vaccines.doses(facts, "pneumococcal") and not ppsv23:
        return
    if facts.age < vaccines.PNEUMOCOCCAL_ALL_FROM_AGE_BEFORE_2024 and not facts.context.in_force(
        "pneumococcal-50-plus"
    ):
        return
    summary = (
        f"Age {facts.context.demographics.age_label} with only PPSV23 on record: consider PCV20 or PCV21"
        if ppsv23
        else f"Age {facts.context.demographics.age_label} with no pneumococcal vaccine on record: consider offering one"
    )
    yield Finding(
        "rule.pneumococcal-vaccine-due",
        "info",
        summary,
        "Adults 50 and older are advised a pneumococcal conjugate vaccine (ACIP, October 2024); PPSV23 alone is "
        "followed by one a year later.",
        ("kb.acip-pneumococcal-50-plus",),
        tuple(i.handle for i in ppsv23),
    )


BASE_MEDICATION_RULES: tuple[Rule, ...] = (
    *INTERACTIONS,
    renal_metformin,
    renal_nsaid,
    nsaid_kidney_unknown,
    triple_whammy,
    renal_nitrofurantoin,
    hyperkalaemia,
    potassium_before_starting,
    EGFR_RECHECK,
    POTASSIUM_RECHECK,
    inr_monitoring,
    inr_above_range,
    allergy_conflict,
    allergy_same_drug,
    allergy_unresolved,
    pregnancy_teratogen,
    duplicate_therapy,
    simvastatin_dose_limit,
    atorvastatin_dose_limit,
    paediatric,
    epinephrine_autoinjector_weight,
    asthma_saba_only,
    heart_failure_harm,
    beers_older_adult,
    withdrawn_drug,
)
BASE_CARE_GAP_RULES: tuple[Rule, ...] = (
    diabetes_hba1c,
    diabetic_kidney_raas,
    influenza_due,
    pneumococcal_due,
)
