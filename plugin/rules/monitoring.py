"""Monitoring, drug-disease and care-gap rules: methotrexate, digoxin, levothyroxine, hypoglycaemia, asthma,
pregnancy, older adults, contraception, blood pressure, statins, antiplatelets and folic acid.

Written like plugin.rules.catalog: every rule is a pure function of `RuleFacts`, summaries are options, and
every lab is read through its validity window (knowledge/lab_validity.json). A current value decides; a stale
one is never read as today's: where it would have mattered the rule asks for a recheck and shows the old value.
Not wired into the engine here: the three tuples at the bottom are added to the catalog's lists by the caller.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from typing import Final

from plugin import terminology
from plugin.context.model import Allergy, Dosage, Measurement
from plugin.rules.catalog import (
    CNS_ACTIVE_CLASSES,
    EGFR,
    HBA1C,
    Recheck,
    Rule,
    allergy_ingredients,
    beers_cns_burden_applies,
    cns_active_count,
    strength_mg,
)
from plugin.rules.dosing import LOCAL_ROUTE, NASAL, SKIN_EYE_EAR, daily_mg, dosage_of, route_text
from plugin.rules.freshness import lab_windows
from plugin.rules.kidney import renal_function
from plugin.rules.model import Exposure, Finding, LabOrder, RuleFacts, Severity
from plugin.rules.phrasing import handles as _handles
from plugin.rules.phrasing import names as _names
from plugin.rules.phrasing import proposed as _proposed
from plugin.rules.phrasing import short as _short

__all__ = ["CARE_GAP_EXTRA_RULES", "DRUG_DISEASE_RULES", "MONITORING_RULES"]

CBC = LabOrder("58410-2", "CBC panel - Blood by Automated count")
ALT = LabOrder("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma")
DIGOXIN_LEVEL = LabOrder("10535-3", "Digoxin [Mass/volume] in Serum or Plasma")
TSH = LabOrder("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma")
GLUCOSE = LabOrder("2345-7", "Glucose [Mass/volume] in Serum or Plasma")
LDL = LabOrder("13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation")


def _sorted(*handles: str | Iterable[str]) -> tuple[str, ...]:
    found: set[str] = set()
    for item in handles:
        found.update((item,) if isinstance(item, str) else item)
    return tuple(sorted(found))


def _say(situation: str, option: str) -> str:
    """A summary under 140 characters whose option always survives: the situation is shortened instead."""
    return f"{_short(situation, 137 - len(option))}: {option}"


def _age_text(days_ago: int | None) -> str:
    return "undated" if days_ago is None else f"{days_ago} days old"


# --- methotrexate -------------------------------------------------------------------------------------

# How the context writes a dosage frequency ("1 per 1 d", "3 per 1 wk"): FHIR Timing.repeat.
_FREQUENCY = re.compile(r"^\d+(?:\.\d+)? per (\d+(?:\.\d+)?) (s|min|h|d|wk|mo|a)$")
_UNIT_DAYS: Final[dict[str, float]] = {
    "s": 1 / 86400,
    "min": 1 / 1440,
    "h": 1 / 24,
    "d": 1.0,
    "wk": 7.0,
    "mo": 30.0,
    "a": 365.0,
}
# Daily parenteral methotrexate has real uses (oncology, gestational trophoblastic disease); the weekly-dose
# error this rule looks for is the oral one, so clearly parenteral products and routes are left out.
_PARENTERAL = ("inject", "syringe", "intravenous", "intramuscular", "intrathecal", "subcutaneous", "infusion")


def repeats_within_a_week(frequency: str | None) -> bool:
    """Whether a dosage frequency repeats more often than weekly ("1 per 1 d", "1 per 2 d", "2 per 1 d");
    a weekly dose split over one day ("3 per 1 wk") does not, and an unreadable one is not judged."""
    match = _FREQUENCY.match(frequency.strip()) if frequency else None
    if match is None:
        return False
    return float(match.group(1)) * _UNIT_DAYS[match.group(2)] < 7


def _dosages(facts: RuleFacts) -> dict[str, Dosage]:
    context = facts.context
    dosages = {m.handle: m.dosage for m in context.medications}
    dosages.update({d.handle: d.dosage for d in context.draft_orders})
    return dosages


def methotrexate_weekly_dosing(facts: RuleFacts) -> Iterator[Finding]:
    dosages = _dosages(facts)
    for drug in facts.with_class("methotrexate"):
        dosage = dosages.get(drug.handle)
        if dosage is None or not repeats_within_a_week(dosage.frequency):
            continue
        where = f"{drug.label} {dosage.route or ''}".lower()
        if any(word in where for word in _PARENTERAL):
            continue
        yield Finding(
            "rule.methotrexate-daily-dosing",
            # A new order saying daily is the classic fatal error; an existing record may be mis-transcribed.
            "critical" if drug.proposed else "warning",
            _say(f"Methotrexate dosed {dosage.frequency}", "consider confirming a once-weekly dose and day"),
            "Oral methotrexate for arthritis or psoriasis is taken once a week, and daily intake has caused fatal toxicity.",
            ("kb.methotrexate-weekly-dosing",),
            (drug.handle,),
            _proposed([drug]),
        )


def _within(facts: RuleFacts, analyte: str, days: int) -> Measurement | None:
    """The latest value when it is current by its own window and no older than `days`."""
    value = facts.current(analyte)
    if value is None or value.days_ago is None or value.days_ago > days:
        return None
    return value


def methotrexate_monitoring(facts: RuleFacts) -> Iterator[Finding]:
    drugs = facts.with_class("methotrexate")
    if not drugs:
        return
    # One methotrexate panel interval (BSR/BHPR: at least every 12 weeks): the blood count's window, whose
    # basis is the methotrexate monitoring entry. It also judges renal function, whose own 365-day window
    # (set for metformin) is too long for methotrexate.
    panel_days = lab_windows()["hemoglobin"].max_age_days
    panel = (
        ("blood count", ("hemoglobin", "platelets"), all, CBC),
        ("renal function", ("egfr", "creatinine"), any, EGFR),
        ("ALT", ("alt",), all, ALT),
    )
    missing: list[str] = []
    order: LabOrder | None = None
    old: list[str] = []
    for label, analytes, needed, lab in panel:
        if needed(_within(facts, a, panel_days) is not None for a in analytes):
            continue
        missing.append(label)
        order = order or lab
        old += [m.handle for a in analytes if (m := facts.latest(a)) is not None]
    if not missing:
        return
    what = ", ".join(missing[:-1]) + (" or " if len(missing) > 1 else "") + missing[-1]
    yield Finding(
        "rule.methotrexate-monitoring",
        "warning",
        _say(f"Methotrexate with no {what} in the last {panel_days} days", "consider checking them"),
        "Methotrexate can suppress the marrow and injure the liver and kidneys, so counts, renal function and ALT are checked at least every 12 weeks.",
        ("kb.methotrexate-blood-monitoring",),
        _sorted(_handles(drugs), old),
        _proposed(drugs),
        order,
    )


def methotrexate_folate(facts: RuleFacts) -> Iterator[Finding]:
    drugs = facts.with_class("methotrexate")
    if drugs and not facts.with_class("folate"):
        yield Finding(
            "rule.methotrexate-without-folate",
            "info",
            "Methotrexate without folic acid on the medication list: consider at least 5 mg folic acid a week",
            "Folic acid reduces methotrexate's mouth, gut and liver side effects without reducing its benefit.",
            ("kb.methotrexate-folic-acid",),
            _handles(drugs),
            _proposed(drugs),
        )


# --- digoxin and levothyroxine -----------------------------------------------------------------------

DIGOXIN_TOXIC_ABOVE: Final = 2.0  # ng/mL
DIGOXIN_ABOVE_RANGE_FROM: Final = 1.2  # ng/mL: higher mortality than placebo in the DIG trial
# Recheck compares "at or above"; the smallest float past 2.0 makes a stale level alarming only above 2.0,
# the same line the current-level rule draws.
_ABOVE_DIGOXIN_LINE: Final = math.nextafter(DIGOXIN_TOXIC_ABOVE, math.inf)

DIGOXIN_LEVEL_KIDNEY_BELOW: Final = 60.0  # eGFR or CrCl, mL/min
DIGOXIN_LEVEL_AGE: Final = 75
# Drugs that raise digoxin levels (its label's interaction table) with no interaction card of their own.
DIGOXIN_RAISING: Final = frozenset(
    {"dronedarone", "itraconazole", "ketoconazole", "propafenone", "quinidine", "ritonavir", "spironolactone"}
)
# Partners whose interaction card (rule.digoxin-interacting, rule.amiodarone-digoxin) already asks for a level.
_LEVEL_ASKED_BY_CLASSES: Final = ("non-dihydropyridine-ccb", "macrolide")
_LEVEL_ASKED_BY_INGREDIENTS: Final = frozenset({"amiodarone"})


def digoxin_level_useful(facts: RuleFacts) -> bool:
    """A routine level in a stable patient is not advised; one is when kidney function is reduced or unknown,
    in older age, or beside a drug that raises digoxin levels (kb.digoxin-monitoring) - unless an interaction
    card already asks for it (one card per action)."""
    if any(
        e.has(*_LEVEL_ASKED_BY_CLASSES) or not _LEVEL_ASKED_BY_INGREDIENTS.isdisjoint(e.ingredients)
        for e in facts.exposures
    ):
        return False
    kidney = renal_function(facts)
    values = [v for v in (kidney.egfr, kidney.crcl) if v is not None]
    if not values or min(values) < DIGOXIN_LEVEL_KIDNEY_BELOW:
        return True
    if facts.age is not None and facts.age >= DIGOXIN_LEVEL_AGE:
        return True
    return any(not DIGOXIN_RAISING.isdisjoint(e.ingredients) for e in facts.exposures)


DIGOXIN_LEVEL_RECHECK = Recheck(
    "rule.digoxin-level-recheck",
    "digoxin",
    "digoxin level",
    DIGOXIN_LEVEL,
    ((("cardiac-glycoside",), "kb.digoxin-monitoring", None, _ABOVE_DIGOXIN_LINE),),
    only_if=digoxin_level_useful,
)
TSH_RECHECK = Recheck(
    "rule.levothyroxine-tsh-recheck",
    "tsh",
    "TSH",
    TSH,
    ((("thyroid-hormone",), "kb.hypothyroidism-tsh-monitoring", None, None),),
)


def digoxin_level_high(facts: RuleFacts) -> Iterator[Finding]:
    level = facts.current("digoxin")
    if level is None or level.value < DIGOXIN_ABOVE_RANGE_FROM:
        return
    # A level this high means digoxin is in the body whether or not the medication list shows it.
    drugs = facts.with_class("cardiac-glycoside")
    if level.value > DIGOXIN_TOXIC_ABOVE:
        yield Finding(
            "rule.digoxin-level-high",
            "critical",
            f"Digoxin level {level.value:g} ng/mL is above 2.0: consider holding digoxin and checking potassium and renal function",
            "Digoxin toxicity becomes more likely above 2 ng/mL, and low potassium or poor renal clearance make it worse.",
            ("kb.digoxin-toxicity", "kb.digoxin-monitoring"),
            _sorted(_handles(drugs), level.handle),
            _proposed(drugs),
        )
        return
    yield Finding(
        "rule.digoxin-level-high",
        "warning",
        f"Digoxin level {level.value:g} ng/mL is 1.2 or more: consider a lower dose, potassium and magnesium, and a repeat level",
        "Levels of 1.2 ng/mL or more went with higher mortality in heart failure, where the benefit comes at 0.5-0.9.",
        ("kb.digoxin-level-above-heart-failure-range", "kb.digoxin-monitoring"),
        _sorted(_handles(drugs), level.handle),
        _proposed(drugs),
    )


# --- hypoglycaemia and over-treatment -----------------------------------------------------------------

HYPOGLYCAEMIA_LEVEL_1: Final = 70.0  # mg/dL, ADA
HYPOGLYCAEMIA_LEVEL_2: Final = 54.0


def hypoglycaemia_glucose(facts: RuleFacts) -> Iterator[Finding]:
    drugs = facts.with_class("insulin", "sulfonylurea")
    if not drugs:
        return
    glucose = facts.current("glucose")
    if glucose is not None:
        if glucose.value >= HYPOGLYCAEMIA_LEVEL_1:
            return
        level_2 = glucose.value < HYPOGLYCAEMIA_LEVEL_2
        yield Finding(
            "rule.hypoglycaemia-glucose",
            "critical" if level_2 else "warning",
            _say(
                f"Glucose {glucose.value:g} mg/dL (level {2 if level_2 else 1} hypoglycaemia) on {_names(drugs)}",
                "consider reviewing the dose",
            ),
            "Insulin and sulfonylureas cause hypoglycaemia, and a low reading on them is a reason to review the regimen.",
            ("kb.ada-2025-hypoglycaemia-levels",),
            _sorted(_handles(drugs), glucose.handle),
            _proposed(drugs),
        )
        return
    stale = facts.stale("glucose")
    if stale is not None and stale.value < HYPOGLYCAEMIA_LEVEL_1:
        yield Finding(
            "rule.hypoglycaemia-glucose-recheck",
            "info",
            _say(
                f"On {_names(drugs)}, a low glucose ({stale.value:g} mg/dL) {_age_text(stale.days_ago)}",
                "consider asking about recent hypoglycaemia",
            ),
            "An old low glucose does not describe today's regimen, but it is a reason to ask about hypoglycaemia.",
            ("kb.ada-hypoglycaemia-ask-each-visit", "kb.ada-2025-hypoglycaemia-levels"),
            _sorted(_handles(drugs), stale.handle),
            _proposed(drugs),
            GLUCOSE,
        )


OLDER_ADULT_AGE: Final = 65
HBA1C_FLOOR_OLDER: Final = 6.5  # %, on insulin or a sulfonylurea from 65
HBA1C_FLOOR_ADULT: Final = 6.0  # %, on insulin or a sulfonylurea at 18-64


def hba1c_overtreatment(facts: RuleFacts) -> Iterator[Finding]:
    drugs = facts.with_class("insulin", "sulfonylurea")
    age = facts.age
    # Pregnancy sets tighter HbA1c goals (about 6-6.5%), so a low value there is not over-treatment.
    if not drugs or age is None or age < 18 or facts.pregnant:
        return
    older = age >= OLDER_ADULT_AGE
    floor = HBA1C_FLOOR_OLDER if older else HBA1C_FLOOR_ADULT
    evidence = (
        ("kb.ada-2025-older-adults-deintensify", "kb.ada-2025-glycaemic-goals")
        if older
        else ("kb.ada-2025-glycaemic-goals",)
    )
    hba1c = facts.current("hba1c")
    if hba1c is not None:
        if hba1c.value >= floor:
            return
        yield Finding(
            "rule.hba1c-overtreatment",
            "warning" if older else "info",
            _say(
                f"HbA1c {hba1c.value:g}% on {_names(drugs)} at age {facts.context.demographics.age_label}",
                "consider de-intensifying to avoid hypoglycaemia",
            ),
            f"An HbA1c below {floor:g}% on drugs that cause hypoglycaemia is below the goals ADA sets at this age.",
            evidence,
            _sorted(_handles(drugs), hba1c.handle),
            _proposed(drugs),
        )
        return
    stale = facts.stale("hba1c")
    # With diabetes on the problem list the catalog's HbA1c care gap already asks for one.
    if stale is not None and stale.value < floor and not facts.has_condition("diabetes"):
        yield Finding(
            "rule.hba1c-overtreatment-recheck",
            "info",
            _say(
                f"On {_names(drugs)}, the last HbA1c ({stale.value:g}%) is {_age_text(stale.days_ago)}",
                "consider a new HbA1c before adjusting",
            ),
            "A low HbA1c on drugs that cause hypoglycaemia suggests over-treatment, but an old one is not today's.",
            ("kb.ada-hba1c-testing-frequency", *evidence),
            _sorted(_handles(drugs), stale.handle),
            _proposed(drugs),
            HBA1C,
        )


# --- drug-disease -------------------------------------------------------------------------------------

NON_SELECTIVE_BETA_BLOCKERS: Final = frozenset(
    {"propranolol", "nadolol", "timolol", "carvedilol", "labetalol", "sotalol", "pindolol", "penbutolol"}
)


def asthma_non_selective_beta_blocker(facts: RuleFacts) -> Iterator[Finding]:
    if not facts.has_condition("asthma"):
        return
    drugs = [e for e in facts.exposures if not NON_SELECTIVE_BETA_BLOCKERS.isdisjoint(e.ingredients)]
    if drugs:
        yield Finding(
            "rule.asthma-non-selective-beta-blocker",
            "warning",
            _say(
                f"Asthma and {_names(drugs)} (non-selective beta-blocker)", "consider a cardioselective one"
            ),
            "Non-selective beta-blockers, eye drops included, can trigger severe bronchospasm in asthma.",
            ("kb.beta-blocker-asthma",),
            _sorted(_handles(drugs), facts.value_sets["asthma"]),
            _proposed(drugs),
        )


def asthma_laba_without_ics(facts: RuleFacts) -> Iterator[Finding]:
    laba = facts.with_class("laba")
    inhaled_steroids = tuple(e for e in facts.with_class("ics") if not NASAL.search(e.label))
    if laba and not inhaled_steroids and facts.has_condition("asthma"):
        yield Finding(
            "rule.asthma-laba-without-ics",
            "critical",
            _say(
                f"Asthma and {_names(laba)} without an inhaled corticosteroid", "consider an ICS-LABA inhaler"
            ),
            "A long-acting beta-agonist without an inhaled corticosteroid raises the risk of severe and fatal asthma attacks.",
            ("kb.laba-without-ics-asthma", "kb.salmeterol-asthma-without-ics-contraindicated"),
            _sorted(_handles(laba), facts.value_sets["asthma"]),
            _proposed(laba),
        )


LOW_DOSE_ASPIRIN_MG: Final = 162.0  # obstetric low-dose aspirin (81 mg, sometimes 162 mg) is exempt


def _low_dose_aspirin(exposure: Exposure) -> bool:
    if exposure.ingredients != ("aspirin",):
        return False
    mg = strength_mg(exposure, "aspirin")
    return mg is not None and mg <= LOW_DOSE_ASPIRIN_MG


NSAID_PREGNANCY_WEEKS: Final = 20  # FDA 2020: avoid NSAIDs from 20 weeks


def nsaid_pregnancy(facts: RuleFacts) -> Iterator[Finding]:
    if not facts.pregnant:
        return
    # Salicylates beyond aspirin (bismuth subsalicylate, salsalate) act as NSAIDs here; skin products do not.
    nsaids = [
        e
        for e in facts.with_class("nsaid", "cox2-inhibitor", "salicylate")
        if not _low_dose_aspirin(e) and not SKIN_EYE_EAR.search(e.label)
    ]
    if not nsaids:
        return
    weeks = facts.context.pregnancy.weeks
    if weeks is not None and weeks < NSAID_PREGNANCY_WEEKS:
        return
    # Without a dated pregnancy the 20-week line cannot be placed: said as information, not silence.
    yield Finding(
        "rule.nsaid-pregnancy",
        "info" if weeks is None else "warning",
        _say(
            f"Pregnant ({'gestation unknown' if weeks is None else f'{weeks} weeks'}) and on {_names(nsaids)}",
            "consider avoiding NSAIDs from 20 weeks" if weeks is None else "consider acetaminophen instead",
        ),
        "From about 20 weeks NSAIDs can impair fetal kidney function and lower the amniotic fluid.",
        ("kb.nsaid-pregnancy-20-weeks",),
        _sorted(_handles(nsaids), facts.context.pregnancy.evidence),
        _proposed(nsaids),
    )


def beers_cns_burden(facts: RuleFacts) -> Iterator[Finding]:
    if not beers_cns_burden_applies(facts):
        return
    drugs = facts.with_class(*CNS_ACTIVE_CLASSES)
    count = cns_active_count(facts)
    yield Finding(
        "rule.beers-cns-active-burden",
        "warning",
        _say(
            f"Age {facts.context.demographics.age_label} on {count} CNS-active drugs ({_names(drugs)})",
            "consider reducing them",
        ),
        "Three or more CNS-active drugs together raise the risk of falls and fractures in older adults (AGS Beers criteria).",
        ("kb.beers-cns-active-combination",),
        _handles(drugs),
        _proposed(drugs),
    )


def _combined_hormonal_contraceptive(exposure: Exposure) -> bool:
    """An estrogen-containing contraceptive: ethinyl estradiol or mestranol (classed as contraceptive
    estrogens), or estradiol with dienogest. Estrogen for menopause with a progestin is not one."""
    contraceptive_estrogen = any(
        {"estrogen", "hormonal-contraceptive"} <= terminology.classes_of(i) for i in exposure.ingredients
    )
    return contraceptive_estrogen or {"estradiol", "dienogest"} <= set(exposure.ingredients)


def chc_migraine(facts: RuleFacts) -> Iterator[Finding]:
    aura = facts.value_sets.get("migraine-with-aura", ())
    # A migraine recorded as without aura is no reason to ask about aura (US MEC 2024: category 2).
    without = set(facts.value_sets.get("migraine-without-aura", ()))
    unspecified = tuple(h for h in facts.value_sets.get("migraine", ()) if h not in without)
    if not aura and not unspecified:
        return
    drugs = [e for e in facts.exposures if _combined_hormonal_contraceptive(e)]
    if not drugs:
        return
    severity: Severity = "critical" if aura else "warning"
    summary = (
        _say(f"Migraine with aura and {_names(drugs)}", "consider a progestin-only or non-hormonal method")
        if aura
        else _say(f"Migraine and {_names(drugs)}", "consider confirming there is no aura")
    )
    yield Finding(
        "rule.chc-migraine",
        severity,
        summary,
        "Estrogen-containing contraception adds to the stroke risk of migraine with aura, where it is not advised.",
        ("kb.chc-migraine-with-aura",),
        _sorted(_handles(drugs), aura or unspecified),
        _proposed(drugs),
    )


# --- care gaps ----------------------------------------------------------------------------------------

ANTIHYPERTENSIVE_CLASSES: Final = (
    "ace-inhibitor",
    "arb",
    "arni",
    "thiazide",
    "dihydropyridine-ccb",
    "non-dihydropyridine-ccb",
    "beta-blocker",
    "mineralocorticoid-antagonist",
    "potassium-sparing-diuretic",
    "loop-diuretic",
)
# Antihypertensives without a class key of their own.
ANTIHYPERTENSIVE_INGREDIENTS: Final = frozenset(
    {"clonidine", "hydralazine", "doxazosin", "prazosin", "terazosin", "methyldopa", "minoxidil", "aliskiren"}
)
SYSTOLIC_LIMIT: Final = 140.0  # mmHg: at or above is uncontrolled on treatment
DIASTOLIC_LIMIT: Final = 90.0


def _bp_text(systolic: Measurement | None, diastolic: Measurement | None) -> str:
    if systolic is not None and diastolic is not None:
        return f"{systolic.value:g}/{diastolic.value:g}"
    if systolic is not None:
        return f"systolic {systolic.value:g}"
    return f"diastolic {diastolic.value:g}" if diastolic is not None else "unknown"


def bp_high(systolic: Measurement | None, diastolic: Measurement | None) -> bool:
    return (systolic is not None and systolic.value >= SYSTOLIC_LIMIT) or (
        diastolic is not None and diastolic.value >= DIASTOLIC_LIMIT
    )


def uncontrolled_blood_pressure(facts: RuleFacts) -> Iterator[Finding]:
    if facts.age is None or facts.age < 18 or facts.context.demographics.deceased:
        return
    drugs = [
        e
        for e in facts.exposures
        if e.has(*ANTIHYPERTENSIVE_CLASSES) or not ANTIHYPERTENSIVE_INGREDIENTS.isdisjoint(e.ingredients)
    ]
    if not drugs:
        return
    evidence = ("kb.hypertension-follow-up-until-controlled", "kb.hypertension-treatment-target")
    systolic, diastolic = facts.current("systolic_bp"), facts.current("diastolic_bp")
    if systolic is not None or diastolic is not None:
        # A current reading decides, high or not.
        if bp_high(systolic, diastolic):
            yield Finding(
                "rule.blood-pressure-uncontrolled",
                "info",
                _say(
                    f"BP {_bp_text(systolic, diastolic)} on {_names(drugs)}",
                    "consider intensifying treatment or checking adherence",
                ),
                "A treated blood pressure at or above 140/90 mmHg is above goal, and treatment is stepped up until it is controlled.",
                evidence,
                _sorted(_handles(drugs), (m.handle for m in (systolic, diastolic) if m is not None)),
            )
        return
    # No current reading: an old high one is shown and asks for a new reading, never for more treatment.
    old_systolic, old_diastolic = facts.stale("systolic_bp"), facts.stale("diastolic_bp")
    shown = old_systolic or old_diastolic
    if shown is not None and bp_high(old_systolic, old_diastolic):
        yield Finding(
            "rule.blood-pressure-recheck",
            "info",
            _say(
                f"On {_names(drugs)}, the last BP ({_bp_text(old_systolic, old_diastolic)}) is "
                f"{_age_text(shown.days_ago)} and was high",
                "consider measuring it again",
            ),
            "An old high blood pressure on treatment needs a new reading before treatment is changed.",
            evidence,
            _sorted(_handles(drugs), (m.handle for m in (old_systolic, old_diastolic) if m is not None)),
        )


ASCVD_VALUE_SETS: Final = (
    "coronary-heart-disease",
    "myocardial-infarction",
    "ischaemic-stroke",
    # A "stroke" of unrecorded type is most often ischaemic (about 87%), and ACC/AHA counts stroke presumed
    # atherosclerotic as ASCVD: the card is an option to review, not an order.
    "stroke-type-unrecorded",
    "peripheral-arterial-disease",
)
LDL_STATIN_LINE: Final = 190.0  # mg/dL
# NHLBI 2011 paediatric guidelines: a statin from 10 years for LDL of 190 or more after six months of diet.
LDL_STATIN_FROM_AGE: Final = 10


# Muscle aches on one statin: ACC/AHA 2018 re-challenges with another statin or a lower dose, so the gap stays open.
_STATIN_MUSCLE_ACHES: Final = re.compile(
    r"^\s*(myalgias?|muscle (aches?|pain|cramps?|soreness)|aches?|cramps?)\s*$", re.I
)


def _statin_records(facts: RuleFacts) -> tuple[tuple[Allergy, frozenset[str]], ...]:
    """Statin allergy or intolerance records, each with the statins it names."""
    records = []
    for allergy in facts.context.allergies:
        statins = frozenset(
            name
            for name in allergy_ingredients(allergy.substance)
            if "statin" in terminology.classes_of(name)
        )
        if statins:
            records.append((allergy, statins))
    return tuple(records)


def _statin_gap_handled(records: tuple[tuple[Allergy, frozenset[str]], ...]) -> bool:
    """A recorded allergy or intolerance to a statin: the gap is known and handled (a non-statin, a trial of
    another statin), not a statin forgotten - unless it is muscle aches on a single statin, which the guideline
    meets with another statin rather than none."""
    if not records:
        return False
    statins = frozenset().union(*(named for _, named in records))
    aches_only = all(
        allergy.reactions
        and allergy.criticality != "high"
        and all(_STATIN_MUSCLE_ACHES.match(r) for r in allergy.reactions)
        for allergy, _ in records
    )
    return len(statins) > 1 or not aches_only


def statin_indicated(facts: RuleFacts) -> Iterator[Finding]:
    age = facts.age
    # Statins are avoided in pregnancy; the absence of one there is no gap.
    if age is None or age < LDL_STATIN_FROM_AGE or facts.context.demographics.deceased or facts.pregnant:
        return
    not_tolerated = _statin_records(facts)
    if facts.with_class("statin") or _statin_gap_handled(not_tolerated):
        return
    reasons: list[str] = []
    evidence: list[str] = []
    inputs: list[str] = []
    ascvd = [h for name in ASCVD_VALUE_SETS for h in facts.value_sets.get(name, ())]
    if ascvd:
        reasons.append("atherosclerotic disease")
        evidence.append("kb.ascvd-high-intensity-statin")
        inputs += ascvd
    diabetes = facts.value_sets.get("diabetes", ())
    if diabetes and 40 <= age <= 75:
        reasons.append(f"diabetes at {age}")
        evidence.append("kb.ada-2025-statin-diabetes-40-75")
        inputs += diabetes
    ldl_age = LDL_STATIN_FROM_AGE <= age <= 75
    ldl = facts.current("ldl")
    if ldl is not None and ldl.value >= LDL_STATIN_LINE and ldl_age:
        reasons.append(f"LDL {ldl.value:g} mg/dL")
        evidence.append("kb.ldl-190-high-intensity-statin" if age >= 20 else "kb.paediatric-ldl-190-statin")
        inputs.append(ldl.handle)
    if reasons:
        aches = tuple(allergy.handle for allergy, _ in not_tolerated)
        yield Finding(
            "rule.statin-indicated-absent",
            "info",
            _say(
                f"No statin with {', '.join(reasons)}" + (" (muscle aches on one statin)" if aches else ""),
                "consider another statin at a low dose" if aches else "consider offering one",
            ),
            "Statins lower cardiovascular events in atherosclerotic disease, in diabetes from 40 to 75, and with LDL of 190 or more.",
            tuple(evidence),
            _sorted([*inputs, *aches]),
        )
        return
    stale = facts.stale("ldl")
    if stale is not None and stale.value >= LDL_STATIN_LINE and ldl_age:
        yield Finding(
            "rule.ldl-recheck",
            "info",
            _say(
                f"No statin and the last LDL ({stale.value:g} mg/dL) is {_age_text(stale.days_ago)}",
                "consider repeating it",
            ),
            "An LDL of 190 mg/dL or more calls for a statin, but an old value is shown, not used.",
            ("kb.ldl-190-high-intensity-statin",),
            (stale.handle,),
            (),
            LDL,
        )


# ACC/AHA 2018 statin intensity by daily dose (mg): high lowers LDL by 50% or more. A statin not listed here
# (pitavastatin, fluvastatin) or an unreadable dose is not called low: the card is only raised when known.
HIGH_INTENSITY_MG: Final = {"atorvastatin": 40.0, "rosuvastatin": 20.0}
HIGH_INTENSITY_AGE_MAX: Final = 75
LDL_ASCVD_GOAL: Final = 70.0  # mg/dL


def statin_intensity(facts: RuleFacts) -> Iterator[Finding]:
    """On a statin below high intensity with atherosclerotic disease at 75 or under: an option to intensify."""
    age = facts.age
    if age is None or age < 18 or age > HIGH_INTENSITY_AGE_MAX or facts.context.demographics.deceased:
        return
    ascvd = [h for name in ASCVD_VALUE_SETS for h in facts.value_sets.get(name, ())]
    statins = facts.with_class("statin")
    if not ascvd or not statins:
        return
    ldl = facts.current("ldl")
    if ldl is not None and ldl.value < LDL_ASCVD_GOAL:
        return  # at goal on what is taken: no reason to change
    doses: list[tuple[Exposure, float]] = []
    for exposure in statins:
        for ingredient in exposure.ingredients:
            strength = strength_mg(exposure, ingredient)
            daily = daily_mg(dosage_of(facts, exposure), strength)
            mg = daily if daily is not None else strength
            if mg is None:
                return  # an unreadable dose is not called low
            if ingredient in HIGH_INTENSITY_MG and mg >= HIGH_INTENSITY_MG[ingredient]:
                return
            doses.append((exposure, mg))
    if not doses:
        return
    taken = ", ".join(f"{e.ingredients[0]} {mg:g} mg" for e, mg in doses)
    where = f" with LDL {ldl.value:g} mg/dL" if ldl is not None else ""
    yield Finding(
        "rule.statin-intensity-low",
        "info",
        _say(
            f"Atherosclerotic disease on {taken} (below high intensity){where}",
            "consider atorvastatin 40-80 mg or rosuvastatin 20-40 mg",
        ),
        "After a heart attack, stroke or with arterial disease, a high-intensity statin prevents more events.",
        ("kb.ascvd-high-intensity-statin",),
        _sorted(ascvd, _handles(statins), (ldl.handle,) if ldl is not None else ()),
        _proposed(statins),
    )


# An LDL reflects a statin dose once it has been taken this long (ACC/AHA 2018: recheck 4-12 weeks after a change).
STATIN_EFFECT_DAYS: Final = 28
PCSK9_LOWERING: Final = frozenset({"evolocumab", "alirocumab", "inclisiran"})


def ldl_above_goal_on_high_intensity_statin(facts: RuleFacts) -> Iterator[Finding]:
    """Atherosclerotic disease with LDL 70 mg/dL or more measured at least 4 weeks into a high-intensity statin:
    the next step is ezetimibe, then a PCSK9 inhibitor (ACC/AHA 2018). A dose that cannot be read, a statin
    started or changed too recently (or undated) for the LDL to show its effect, says nothing."""
    if facts.context.demographics.deceased:
        return
    ascvd = [h for name in ASCVD_VALUE_SETS for h in facts.value_sets.get(name, ())]
    ldl = facts.current("ldl")
    if not ascvd or ldl is None or ldl.value < LDL_ASCVD_GOAL or ldl.days_ago is None:
        return
    high: list[Exposure] = []
    for exposure in facts.with_class("statin"):
        if exposure.proposed or exposure.started_days_ago is None:
            return
        for ingredient in exposure.ingredients:
            daily = daily_mg(dosage_of(facts, exposure), strength_mg(exposure, ingredient))
            if (
                ingredient in HIGH_INTENSITY_MG
                and daily is not None
                and daily >= HIGH_INTENSITY_MG[ingredient]
            ):
                high.append(exposure)
    if len(high) != 1 or (started := high[0].started_days_ago) is None:
        return
    if started - ldl.days_ago < STATIN_EFFECT_DAYS:
        return  # the LDL was drawn before this dose could show its effect
    on_ezetimibe = facts.with_ingredient("ezetimibe")
    if any(facts.with_ingredient(name) for name in PCSK9_LOWERING):
        return
    option = "consider a PCSK9 inhibitor" if on_ezetimibe else "consider adding ezetimibe 10 mg"
    yield Finding(
        "rule.ldl-above-goal-on-statin",
        "info",
        _say(f"Atherosclerotic disease with LDL {ldl.value:g} mg/dL on {_names(high)}", option),
        "With atherosclerotic disease, an LDL still 70 mg/dL or more on a high-intensity statin calls for adding "
        "ezetimibe, then a PCSK9 inhibitor.",
        ("kb.ascvd-ldl-nonstatin-add-on",),
        _sorted(ascvd, _handles(high), _handles(on_ezetimibe), (ldl.handle,)),
        _proposed(high),
    )


HF_MORTALITY_CLASSES: Final = ("ace-inhibitor", "arb", "arni", "mineralocorticoid-antagonist")


def heart_failure_therapy(facts: RuleFacts) -> Iterator[Finding]:
    """Heart failure with neither RAAS blockade nor an MRA: the ejection fraction decides, so it is asked. A
    known reduced EF is rule.hfref-therapy-gap's, which names every missing class; a known preserved one (recorded
    as HFpEF, or a current LVEF above 40%) answers the question, so nothing is asked."""
    failure = facts.value_sets.get("heart-failure", ())
    if not failure or facts.context.demographics.deceased or facts.with_class(*HF_MORTALITY_CLASSES):
        return
    if _reduced_ejection_fraction(facts) or _known_not_reduced(facts):
        return
    yield Finding(
        "rule.heart-failure-therapy-gap",
        "info",
        "Heart failure with no ACE inhibitor, ARB, ARNI or MRA: if the ejection fraction is reduced, consider adding them",
        "In heart failure with reduced ejection fraction these drugs lower mortality; the chart does not say the EF.",
        ("kb.hfref-raas-inhibition", "kb.hfref-mra"),
        _sorted(failure),
    )


HFREF_EF_AT_MOST: Final = 40.0  # % (AHA/ACC/HFSA 2022: HFrEF is an LVEF of 40% or less)
MRA_POTASSIUM_BELOW: Final = 5.0  # mmol/L: an MRA is started only below this
SGLT2_HF_EGFR_FROM: Final = 20.0  # mL/min/1.73 m2: the trials' and labels' lower limit for heart failure
# The beta-blockers shown to lower mortality in HFrEF; metoprolol only as the succinate (extended-release) salt.
HFREF_BETA_BLOCKERS: Final = frozenset({"carvedilol", "bisoprolol"})
_SUCCINATE: Final = re.compile(r"\b(succinate|toprol|xl|er|extended|24 hr)\b", re.IGNORECASE)


def _known_not_reduced(facts: RuleFacts) -> bool:
    """The chart answers the EF question: heart failure recorded as preserved, or a current LVEF above 40%."""
    ef = facts.current("lvef")
    return bool(facts.value_sets.get("hfpef")) or (ef is not None and ef.value > HFREF_EF_AT_MOST)


def _reduced_ejection_fraction(facts: RuleFacts) -> tuple[str, ...]:
    """The handles that show HFrEF: a coded HFrEF, or heart failure with a current LVEF of 40% or less."""
    coded = facts.value_sets.get("hfref", ())
    ef = facts.current("lvef")
    measured = (
        (*facts.value_sets.get("heart-failure", ()), ef.handle)
        if ef is not None and ef.value <= HFREF_EF_AT_MOST and facts.value_sets.get("heart-failure")
        else ()
    )
    return tuple(dict.fromkeys((*coded, *measured)))


def hfref_therapy(facts: RuleFacts) -> Iterator[Finding]:
    """HFrEF without one of the four drug classes that lower mortality (AHA/ACC/HFSA 2022): RAAS blockade
    (ARNI, ACE inhibitor or ARB), an evidence-based beta-blocker, an MRA (unless potassium is 5.0 or more) and an
    SGLT2 inhibitor (unless eGFR is below 20). Unknown potassium or eGFR does not hide a class: the card says
    what it depends on."""
    shown_by = _reduced_ejection_fraction(facts)
    if not shown_by or facts.context.demographics.deceased:
        return
    potassium = facts.current("potassium")
    egfr = facts.current("egfr")
    beta_blockers = [
        e
        for e in facts.with_class("beta-blocker")
        if not HFREF_BETA_BLOCKERS.isdisjoint(e.ingredients)
        or ("metoprolol" in e.ingredients and _SUCCINATE.search(e.label))
    ]
    missing = [
        name
        for name, absent in (
            ("RAAS blockade (ARNI, ACEi or ARB)", not facts.with_class("ace-inhibitor", "arb", "arni")),
            ("an evidence-based beta-blocker", not beta_blockers),
            (
                "an MRA" if potassium is not None else "an MRA (if potassium is below 5.0)",
                not facts.with_class("mineralocorticoid-antagonist")
                and (potassium is None or potassium.value < MRA_POTASSIUM_BELOW),
            ),
            (
                "an SGLT2 inhibitor",
                not facts.with_class("sglt2-inhibitor")
                and (egfr is None or egfr.value >= SGLT2_HF_EGFR_FROM),
            ),
        )
        if absent
    ]
    if not missing:
        return
    ef = facts.current("lvef")
    said = f" (EF {ef.value:g}%)" if ef is not None else ""
    yield Finding(
        "rule.hfref-therapy-gap",
        "warning",
        _short(f"HFrEF{said} without {', '.join(missing)}: consider adding unless contraindicated"),
        "Each of the four drug classes lowers mortality in HFrEF; together they are the guideline's first-line "
        "therapy.",
        ("kb.hfref-four-drug-classes",),
        tuple(
            sorted(
                {*shown_by, *((potassium.handle,) if potassium else ()), *((egfr.handle,) if egfr else ())}
            )
        ),
    )


PJP_CD4_BELOW: Final = 200.0  # cells/uL
PJP_PROPHYLAXIS: Final = frozenset(
    {"sulfamethoxazole", "trimethoprim", "dapsone", "atovaquone", "pentamidine"}
)


def pjp_prophylaxis(facts: RuleFacts) -> Iterator[Finding]:
    """HIV with a current CD4 count below 200 and no Pneumocystis prophylaxis on record."""
    hiv = facts.value_sets.get("hiv", ())
    cd4 = facts.current("cd4")
    if not hiv or cd4 is None or cd4.value >= PJP_CD4_BELOW or facts.context.demographics.deceased:
        return
    if any(not PJP_PROPHYLAXIS.isdisjoint(e.ingredients) for e in facts.exposures):
        return
    yield Finding(
        "rule.pjp-prophylaxis-absent",
        "warning",
        _short(
            f"HIV with CD4 {cd4.value:g} cells/uL and no Pneumocystis prophylaxis: consider co-trimoxazole "
            "(one tablet daily)"
        ),
        "Below a CD4 count of 200, Pneumocystis pneumonia is a leading preventable cause of death in HIV.",
        ("kb.hiv-pjp-prophylaxis",),
        tuple(sorted({*hiv, cd4.handle})),
    )


# Milligrams of prednisone that one milligram of each systemic glucocorticoid matches (label equivalents:
# 5 mg prednisone = 4 mg methylprednisolone = 0.75 mg dexamethasone = 20 mg hydrocortisone).
PREDNISONE_EQUIVALENT: Final[dict[str, float]] = {
    "prednisone": 1.0,
    "prednisolone": 1.0,
    "methylprednisolone": 1.25,
    "dexamethasone": 5 / 0.75,
    "hydrocortisone": 0.25,
}
PJP_GLUCOCORTICOID_MG: Final = 20.0  # prednisone-equivalent mg a day
# A second cause of immunosuppression beside the glucocorticoid: ANCA vasculitis (whose rituximab or
# cyclophosphamide courses may already be over), a blood cancer, a transplant, or a solid cancer under treatment
# (NCCN and the ASCO immune-related adverse event guideline advise prophylaxis at 20 mg of prednisone a day).
PJP_SECOND_RISK_SETS: Final = {
    "anca-vasculitis": "ANCA vasculitis",
    "haematologic-malignancy": "a blood cancer",
    "solid-organ-transplant": "a transplant",
    "solid-cancer": "cancer",
}


def _prednisone_equivalent_mg(facts: RuleFacts) -> tuple[float, tuple[Exposure, ...]]:
    """The systemic glucocorticoids' daily dose in prednisone milligrams, and the drugs it comes from (drugs
    whose dose cannot be read add nothing: the rule then stays quiet rather than guess)."""
    total, drugs = 0.0, []
    for exposure in facts.exposures:
        if exposure.proposed or SKIN_EYE_EAR.search(exposure.label) or LOCAL_ROUTE.search(exposure.label):
            continue
        for ingredient, factor in PREDNISONE_EQUIVALENT.items():
            if ingredient in exposure.ingredients:
                mg = daily_mg(dosage_of(facts, exposure), strength_mg(exposure, ingredient))
                if mg is not None:
                    total += mg * factor
                    drugs.append(exposure)
    return total, tuple(drugs)


def pjp_prophylaxis_immunosuppressed(facts: RuleFacts) -> Iterator[Finding]:
    """A glucocorticoid at 20 mg of prednisone a day or more with a second cause of immunosuppression (another
    immunosuppressant, or a condition of PJP_SECOND_RISK_SETS) and no Pneumocystis prophylaxis."""
    if facts.context.demographics.deceased or facts.value_sets.get("hiv"):
        return  # HIV has its own CD4-based rule
    mg, steroids = _prednisone_equivalent_mg(facts)
    if mg < PJP_GLUCOCORTICOID_MG:
        return
    partners = tuple(
        e for e in facts.with_class("immunosuppressant") if not e.has("corticosteroid") and not e.proposed
    )
    risks = [name for name in PJP_SECOND_RISK_SETS if name in facts.value_sets]
    conditions = tuple(h for name in risks for h in facts.value_sets[name])
    if not partners and not conditions:
        return
    if any(not PJP_PROPHYLAXIS.isdisjoint(e.ingredients) for e in facts.exposures):
        return
    second = _names(partners) if partners else PJP_SECOND_RISK_SETS[risks[0]]
    yield Finding(
        "rule.pjp-prophylaxis-immunosuppressed",
        "warning",
        _short(
            f"Prednisone-equivalent {mg:g} mg a day with {second} and no Pneumocystis prophylaxis: consider "
            "co-trimoxazole"
        ),
        "Pneumocystis pneumonia is a leading infection in people on high-dose glucocorticoids with another "
        "immunosuppressant, and prophylaxis prevents most of it.",
        ("kb.pjp-prophylaxis-glucocorticoids",),
        tuple(sorted({*_handles(steroids), *_handles(partners), *conditions})),
    )


ISONIAZID_NEUROPATHY_RISK_SETS: Final = (
    "diabetes",
    "type-1-diabetes",
    "alcohol-use-disorder",
    "hiv",
    "ckd",
    "pregnancy",
    "lactation",
    "peripheral-neuropathy",
)


def isoniazid_without_pyridoxine(facts: RuleFacts) -> Iterator[Finding]:
    """Isoniazid without pyridoxine in someone at risk of its neuropathy (ATS/CDC/IDSA 2016)."""
    isoniazid = tuple(e for e in facts.exposures if "isoniazid" in e.ingredients)
    if not isoniazid or any("pyridoxine" in e.ingredients for e in facts.exposures):
        return
    risks = tuple(
        dict.fromkeys(h for name in ISONIAZID_NEUROPATHY_RISK_SETS for h in facts.value_sets.get(name, ()))
    )
    if not risks:
        return
    yield Finding(
        "rule.isoniazid-without-pyridoxine",
        "warning",
        _short(
            "Isoniazid without pyridoxine in a patient at risk of neuropathy: consider pyridoxine 25-50 mg daily"
        ),
        "Isoniazid depletes vitamin B6; diabetes, alcohol use, HIV, kidney disease and pregnancy raise the risk of "
        "its peripheral neuropathy.",
        ("kb.isoniazid-pyridoxine",),
        tuple(sorted({*risks, *_handles(isoniazid)})),
        _proposed(isoniazid),
    )


def antiplatelet_secondary_prevention(facts: RuleFacts) -> Iterator[Finding]:
    if facts.context.demographics.deceased or (facts.age is not None and facts.age < 18):
        return
    ischaemic = facts.value_sets.get("ischaemic-stroke", ())
    # A stroke of unrecorded type: antiplatelets help only after an ischaemic one, so the card says "if".
    untyped = () if ischaemic else facts.value_sets.get("stroke-type-unrecorded", ())
    stroke = (*ischaemic, *untyped)
    infarction = facts.value_sets.get("myocardial-infarction", ())
    # An anticoagulant already protects (and aspirin on top of one mostly adds bleeding).
    if not (stroke or infarction) or facts.with_class("antiplatelet", "salicylate", "anticoagulant"):
        return
    events = " and ".join(
        name
        for name, found in (
            ("ischaemic stroke", ischaemic),
            ("stroke (type not recorded)", untyped),
            ("myocardial infarction", infarction),
        )
        if found
    )
    option = (
        "if ischaemic, consider aspirin or clopidogrel unless contraindicated"
        if untyped
        else "consider aspirin or clopidogrel unless contraindicated"
    )
    evidence = tuple(
        kb
        for kb, found in (
            ("kb.stroke-antiplatelet-secondary-prevention", stroke),
            ("kb.chronic-coronary-disease-antiplatelet", infarction),
        )
        if found
    )
    yield Finding(
        "rule.antiplatelet-absent",
        "info",
        _say(f"No antiplatelet after {events}", option),
        "Long-term antiplatelet therapy lowers the risk of another stroke or heart attack.",
        evidence,
        _sorted(stroke, infarction),
    )


FOLIC_ACID_UNTIL_WEEKS: Final = 13  # neural-tube closure is early: the card matters in the first trimester


def prenatal_folic_acid(facts: RuleFacts) -> Iterator[Finding]:
    if not facts.pregnant or facts.context.demographics.deceased:
        return
    weeks = facts.context.pregnancy.weeks
    if weeks is not None and weeks >= FOLIC_ACID_UNTIL_WEEKS:
        return  # an undated pregnancy still asks (fail closed)
    if _takes_folate(facts):
        return
    # A teratogen in the pregnancy is the card that matters (rule.pregnancy-teratogen, critical): the urgent
    # obstetric review it asks for starts folic acid too, and a second card beside it was never the one raised.
    if facts.with_class("teratogen"):
        return
    yield Finding(
        "rule.prenatal-folic-acid-absent",
        "info",
        "Pregnant with no folic acid on the medication list: consider confirming a daily 0.4-0.8 mg supplement",
        "Daily folic acid lowers the risk of neural tube defects.",
        ("kb.uspstf-folic-acid-neural-tube",),
        facts.context.pregnancy.evidence,
    )


# AAN/AES/SMFM 2024: people of childbearing potential taking an antiseizure medication take at least 0.4 mg of
# folic acid daily, before any pregnancy. Gabapentinoids, mostly given for pain, are left out.
ANTISEIZURE_FOLIC_ACID_AGES: Final = (12, 50)
_FOLATE_WORDS: Final = ("folic", "folate", "prenatal")


def _takes_folate(facts: RuleFacts) -> bool:
    return any(e.has("folate") or any(w in e.label.lower() for w in _FOLATE_WORDS) for e in facts.exposures)


def antiseizure_folic_acid(facts: RuleFacts) -> Iterator[Finding]:
    """A woman of 12-50, not pregnant (rule.prenatal-folic-acid-absent and the teratogen card speak then), on a
    current antiseizure medication with no folic acid on the list."""
    demographics = facts.context.demographics
    age = facts.age
    low, high = ANTISEIZURE_FOLIC_ACID_AGES
    if age is None or not low <= age <= high or demographics.sex != "female" or demographics.deceased:
        return
    if facts.pregnant:
        return
    drugs = tuple(
        e
        for e in facts.with_class("anticonvulsant")
        if not e.has("gabapentinoid", "benzodiazepine") and not e.proposed
    )
    if not drugs or _takes_folate(facts):
        return
    yield Finding(
        "rule.antiseizure-folic-acid-absent",
        "info",
        _short(
            f"Age {demographics.age_label} on {_names(drugs)} with no folic acid on the list: consider at least "
            "0.4 mg daily"
        ),
        "Antiseizure medications raise the risk of major malformations, and folic acid taken before conception "
        "lowers the neural-tube risk.",
        ("kb.antiseizure-folic-acid",),
        _handles(drugs),
    )


# Glucose given to a thiamine-depleted drinker can precipitate Wernicke's encephalopathy: thiamine goes before
# or with intravenous dextrose (kb.thiamine-before-dextrose-alcohol). Oral glucose for a low reading is not held up.
_ORAL_GLUCOSE: Final = re.compile(r"\b(oral|tablets?|chewable|gel|by mouth|po)\b", re.IGNORECASE)


def thiamine_before_dextrose(facts: RuleFacts) -> Iterator[Finding]:
    """Alcohol use disorder or withdrawal on record, intravenous dextrose taken or drafted, no thiamine."""
    drinking = facts.value_sets.get("alcohol-use-disorder", ())
    if not drinking or facts.context.demographics.deceased:
        return
    dextrose = tuple(
        e for e in facts.with_ingredient("dextrose") if not _ORAL_GLUCOSE.search(route_text(facts, e))
    )
    if not dextrose or facts.with_ingredient("thiamine"):
        return
    yield Finding(
        "rule.thiamine-before-dextrose",
        "warning",
        _short(
            f"Alcohol use disorder with {_names(dextrose)} and no thiamine: consider thiamine (100 mg or more "
            "IV) before more dextrose"
        ),
        "Glucose raises thiamine use, and in a thiamine-depleted drinker it can tip into Wernicke's "
        "encephalopathy; thiamine given first prevents it.",
        ("kb.thiamine-before-dextrose-alcohol",),
        tuple(sorted({*drinking, *_handles(dextrose)})),
        _proposed(dextrose),
    )


# Antibiotics of the ACG 2024 eradication regimens: with any of them on the list (or drafted) the treatment is
# under way; a PPI alone heals the ulcer but leaves the infection, and the ulcer returns.
H_PYLORI_ERADICATION: Final = frozenset(
    {
        "clarithromycin",
        "amoxicillin",
        "metronidazole",
        "tetracycline",
        "bismuth subcitrate",
        "bismuth subsalicylate",
        "levofloxacin",
        "rifabutin",
    }
)


def h_pylori_eradication(facts: RuleFacts) -> Iterator[Finding]:
    """Active Helicobacter pylori infection on the problem list with no eradication regimen on the list."""
    infection = facts.value_sets.get("h-pylori-infection", ())
    if not infection or facts.context.demographics.deceased:
        return
    if any(not H_PYLORI_ERADICATION.isdisjoint(e.ingredients) for e in facts.exposures):
        return
    # The card shows what it rests on: the infection, an ulcer it caused, and acid suppression given alone.
    ulcers = facts.value_sets.get("peptic-ulcer", ())
    acid_suppression = facts.with_class("proton-pump-inhibitor", "h2-antagonist")
    yield Finding(
        "rule.h-pylori-eradication-absent",
        "warning",
        "H. pylori infection with no eradication regimen on the list: consider bismuth quadruple therapy for 14 "
        "days, then a test of cure",
        "Eradicating Helicobacter pylori heals ulcers for good and prevents rebleeding; acid suppression alone "
        "does not clear it.",
        ("kb.h-pylori-eradication",),
        tuple(dict.fromkeys((*infection, *ulcers, *_handles(acid_suppression)))),
    )


# CDC PrEP 2021: an HIV test before each three-month supply (every two months on injectable cabotegravir); PrEP
# continued over an unrecognised infection breeds resistance. Tenofovir with emtricitabine (Truvada, Descovy) or
# cabotegravir alone (Apretude), with no HIV on record, is PrEP.
PREP_HIV_TEST_DAYS: Final = 90
HIV_TEST = LabOrder("56888-1", "HIV 1+2 Ab and HIV1 p24 Ag [Presence] in Serum or Plasma by Immunoassay")
_ORAL_PREP: Final = (
    frozenset({"emtricitabine", "tenofovir disoproxil"}),
    frozenset({"emtricitabine", "tenofovir alafenamide"}),
    frozenset({"emtricitabine", "tenofovir"}),
)
_PREP: Final = (*_ORAL_PREP, frozenset({"cabotegravir"}))


def _prep(facts: RuleFacts, regimens: tuple[frozenset[str], ...]) -> tuple[Exposure, ...]:
    """The PrEP products among `regimens` on the list or drafted; none where HIV is on record (then the same drugs
    are treatment) or the patient has died."""
    if facts.ever("hiv") or facts.context.demographics.deceased:
        return ()
    return tuple(e for e in facts.exposures if frozenset(e.ingredients) in regimens)


def prep_hiv_test(facts: RuleFacts) -> Iterator[Finding]:
    """PrEP with no HIV test in the last 90 days (or none on record)."""
    prep = _prep(facts, _PREP)
    if not prep:
        return
    test = facts.result("hiv-test")
    if test is not None and test.days_ago is not None and test.days_ago <= PREP_HIV_TEST_DAYS:
        return
    when = (
        "no HIV test on record"
        if test is None
        else "an undated HIV test"
        if test.days_ago is None
        else f"the last HIV test {test.days_ago} days ago"
    )
    yield Finding(
        "rule.prep-hiv-test-due",
        "warning",
        _short(f"PrEP ({_names(prep)}) with {when}: consider an HIV test before the next supply"),
        "PrEP is continued only with a negative HIV test every 3 months, because PrEP alone cannot treat an "
        "infection and breeds resistance.",
        ("kb.cdc-prep-hiv-testing",),
        (*_handles(prep), *((test.handle,) if test is not None else ())),
        _proposed(prep),
        HIV_TEST,
    )


# Oral PrEP and kidney function (Truvada and Descovy labels, CDC 2021): emtricitabine with tenofovir disoproxil is
# not used for PrEP below a CrCl of 60 mL/min, with tenofovir alafenamide not below 30 (an unnamed tenofovir is held
# to the stricter line: fail closed).
PREP_TDF_FROM_CRCL: Final = 60.0
PREP_TAF_FROM_CRCL: Final = 30.0


def prep_kidney(facts: RuleFacts) -> Iterator[Finding]:
    oral = _prep(facts, _ORAL_PREP)
    if not oral:
        return
    kidney = renal_function(facts)
    if kidney.crcl is None:
        return  # rule.renal-function-unknown and the eGFR recheck ask for it
    for exposure in oral:
        alafenamide = "tenofovir alafenamide" in exposure.ingredients
        line = PREP_TAF_FROM_CRCL if alafenamide else PREP_TDF_FROM_CRCL
        if kidney.crcl >= line:
            continue
        option = (
            "consider injectable cabotegravir"
            if alafenamide
            else "consider emtricitabine/tenofovir alafenamide (to CrCl 30) or injectable cabotegravir"
        )
        yield Finding(
            "rule.prep-kidney",
            "warning",
            _short(f"PrEP ({_names([exposure])}) with CrCl {kidney.crcl:.0f} (below {line:g}): {option}"),
            "Tenofovir is cleared by the kidneys and can injure the proximal tubule; its PrEP labels set a lower "
            "limit of kidney function.",
            ("kb.prep-kidney-function",),
            (exposure.handle, *kidney.crcl_inputs),
            _proposed([exposure]),
        )


# ACR 2020 gout: titrate urate-lowering therapy to a serum urate below 6 mg/dL. A drug taken six months or more
# has had time to be titrated; a start is the prescriber's titration in progress.
URATE_TARGET_BELOW: Final = 6.0
URATE_TITRATED_BY_DAYS: Final = 180
_URATE_LOWERING: Final = frozenset({"allopurinol", "febuxostat"})


def urate_above_target(facts: RuleFacts) -> Iterator[Finding]:
    urate = facts.current("urate")
    if urate is None or urate.value < URATE_TARGET_BELOW or facts.context.demographics.deceased:
        return
    drugs = tuple(
        e
        for e in facts.exposures
        if not _URATE_LOWERING.isdisjoint(e.ingredients)
        and not e.proposed
        and e.started_days_ago is not None
        and e.started_days_ago >= URATE_TITRATED_BY_DAYS
    )
    if not drugs:
        return
    yield Finding(
        "rule.urate-above-target",
        "warning",
        _short(
            f"Urate {urate.value:g} mg/dL on {_names(drugs)} for 6 months or more: consider raising the dose "
            "step by step to a urate below 6"
        ),
        "Gout flares and tophi keep coming until serum urate is held below 6 mg/dL, so urate-lowering therapy "
        "is titrated to that target (ACR 2020).",
        ("kb.gout-treat-to-target",),
        (*_handles(drugs), urate.handle),
    )


AGRANULOCYTOSIS_ANC_BELOW: Final = 1.0  # x10^3/uL (ATA 2016: stop the antithyroid drug below 1000/mm3)


def antithyroid_agranulocytosis(facts: RuleFacts) -> Iterator[Finding]:
    drugs = tuple(e for e in facts.exposures if {"methimazole", "propylthiouracil"} & set(e.ingredients))
    anc = facts.current("neutrophils")
    if not drugs or anc is None or anc.value >= AGRANULOCYTOSIS_ANC_BELOW:
        return
    yield Finding(
        "rule.antithyroid-agranulocytosis",
        "critical",
        _short(
            f"Neutrophils {anc.value:g} x10^3/uL on {_names(drugs)}: consider stopping it today and urgent review "
            "for infection"
        ),
        "Antithyroid-drug agranulocytosis can kill within days through sepsis; the drug is stopped and not restarted.",
        ("kb.antithyroid-agranulocytosis",),
        (*_handles(drugs), anc.handle),
        _proposed(drugs),
    )


# Clozapine label, general population: interrupt below 1000/uL, three checks a week at 1000-1499/uL.
CLOZAPINE_ANC_INTERRUPT_BELOW: Final = 1.0  # x10^3/uL
CLOZAPINE_ANC_MILD_BELOW: Final = 1.5


def clozapine_neutropenia(facts: RuleFacts) -> Iterator[Finding]:
    drugs = facts.with_ingredient("clozapine")
    anc = facts.current("neutrophils")
    if not drugs or anc is None or anc.value >= CLOZAPINE_ANC_MILD_BELOW:
        return
    interrupt = anc.value < CLOZAPINE_ANC_INTERRUPT_BELOW
    yield Finding(
        "rule.clozapine-neutropenia",
        "critical" if interrupt else "warning",
        _short(
            f"Neutrophils {anc.value:g} x10^3/uL on clozapine: "
            + (
                "consider interrupting it today and checking for infection"
                if interrupt
                else "consider neutrophil counts three times a week"
            )
        ),
        "Clozapine can cause severe neutropenia; the label interrupts it below 1.0 x10^3/uL and watches closely "
        "below 1.5 (lower thresholds apply in benign ethnic neutropenia).",
        ("kb.clozapine-neutropenia",),
        (*_handles(drugs), anc.handle),
        _proposed(drugs),
    )


FUMARATES: Final = frozenset({"dimethyl fumarate", "diroximel fumarate", "monomethyl fumarate"})
FUMARATE_LYMPHOCYTES_BELOW: Final = 0.5  # x10^3/uL
FUMARATE_PERSISTING_DAYS: Final = 180  # "persisting for more than six months"


def fumarate_lymphopenia(facts: RuleFacts) -> Iterator[Finding]:
    """Lymphocytes below 0.5 on a fumarate ester: a warning once every count for six months has been that low
    (the label's point for interruption), information while it is newer."""
    drugs = facts.with_ingredient(*FUMARATES)
    latest = facts.current("lymphocytes")
    series = facts.context.series("lymphocytes")
    if not drugs or latest is None or series is None or latest.value >= FUMARATE_LYMPHOCYTES_BELOW:
        return
    low_run: list[Measurement] = []
    for m in series.measurements:
        if m.value >= FUMARATE_LYMPHOCYTES_BELOW or m.days_ago is None:
            break
        low_run.append(m)
    oldest = low_run[-1]
    assert oldest.days_ago is not None and latest.days_ago is not None  # the loop keeps dated values only
    persisting = oldest.days_ago - latest.days_ago >= FUMARATE_PERSISTING_DAYS
    yield Finding(
        "rule.fumarate-lymphopenia",
        "warning" if persisting else "info",
        _short(
            f"Lymphocytes {latest.value:g} x10^3/uL on {_names(drugs)}"
            + (
                " for over six months: consider interrupting it (PML risk)"
                if persisting
                else ": consider rechecking, and interrupting if it persists six months"
            )
        ),
        "Prolonged lymphopenia on dimethyl or diroximel fumarate carries a risk of PML; the label considers "
        "interruption when lymphocytes stay below 0.5 for over six months.",
        ("kb.fumarate-lymphopenia",),
        (*_handles(drugs), *dict.fromkeys(m.handle for m in low_run)),
        _proposed(drugs),
    )


IMIDS: Final = frozenset({"lenalidomide", "thalidomide", "pomalidomide"})
ANTITHROMBOTIC_CLASSES: Final = (
    "anticoagulant",
    "heparin",
    "doac",
    "vitamin-k-antagonist",
    "antiplatelet",
    "salicylate",
)


def imid_thromboprophylaxis(facts: RuleFacts) -> Iterator[Finding]:
    drugs = facts.with_ingredient(*IMIDS)
    if not drugs or facts.with_class(*ANTITHROMBOTIC_CLASSES) or facts.with_ingredient("aspirin"):
        return
    yield Finding(
        "rule.imid-thromboprophylaxis-absent",
        "warning",
        _short(
            f"{_names(drugs).capitalize()} with no aspirin or anticoagulant: consider VTE prophylaxis "
            "(aspirin, or LMWH or a DOAC if higher risk)"
        ),
        "Lenalidomide, thalidomide and pomalidomide raise the risk of blood clots, most with dexamethasone; "
        "their labels recommend thromboprophylaxis.",
        ("kb.imid-thromboprophylaxis",),
        _handles(drugs),
        _proposed(drugs),
    )


# USPSTF 2021: low-dose aspirin from 12 weeks (ideally before 16, up to 28) with a high-risk factor.
PREECLAMPSIA_ASPIRIN_FROM_WEEKS: Final = 12
PREECLAMPSIA_ASPIRIN_UNTIL_WEEKS: Final = 28
PREECLAMPSIA_HIGH_RISK_SETS: Final = (
    "hypertension",
    "diabetes",
    "type-1-diabetes",
    "ckd",
    "autoimmune-preeclampsia-risk",
)


def preeclampsia_aspirin(facts: RuleFacts) -> Iterator[Finding]:
    """Pregnant at 12-28 weeks with a high-risk factor and no aspirin. An undated pregnancy is not asked about:
    before 12 weeks aspirin is not yet advised."""
    weeks = facts.context.pregnancy.weeks
    if (
        not facts.pregnant
        or weeks is None
        or not PREECLAMPSIA_ASPIRIN_FROM_WEEKS <= weeks <= PREECLAMPSIA_ASPIRIN_UNTIL_WEEKS
    ):
        return
    risks = tuple(
        dict.fromkeys(h for name in PREECLAMPSIA_HIGH_RISK_SETS for h in facts.value_sets.get(name, ()))
    )
    if not risks or facts.with_class("salicylate", "antiplatelet") or facts.with_ingredient("aspirin"):
        return
    yield Finding(
        "rule.preeclampsia-aspirin-absent",
        "warning",
        _short(
            f"Pregnant at {weeks} weeks with a preeclampsia risk factor and no aspirin: consider aspirin 81 mg daily"
        ),
        "Low-dose aspirin from 12 weeks lowers preeclampsia, preterm birth and growth restriction in high-risk pregnancy.",
        ("kb.uspstf-aspirin-preeclampsia",),
        tuple(sorted({*risks, *facts.context.pregnancy.evidence})),
    )


MONITORING_RULES: tuple[Rule, ...] = (
    methotrexate_weekly_dosing,
    methotrexate_monitoring,
    methotrexate_folate,
    DIGOXIN_LEVEL_RECHECK,
    digoxin_level_high,
    TSH_RECHECK,
    hypoglycaemia_glucose,
    hba1c_overtreatment,
    antithyroid_agranulocytosis,
    clozapine_neutropenia,
    fumarate_lymphopenia,
    imid_thromboprophylaxis,
)
DRUG_DISEASE_RULES: tuple[Rule, ...] = (
    asthma_non_selective_beta_blocker,
    asthma_laba_without_ics,
    nsaid_pregnancy,
    beers_cns_burden,
    chc_migraine,
    isoniazid_without_pyridoxine,
)
# ADA 2025: an HbA1c 1.5 points or more above a 7% goal usually needs a second agent; 9% leaves no doubt.
HBA1C_INTENSIFY: Final = 9.0
GLUCOSE_LOWERING_CLASSES: Final = (
    "biguanide",
    "sulfonylurea",
    "insulin",
    "dpp4-inhibitor",
    "sglt2-inhibitor",
    "glp1-agonist",
    "thiazolidinedione",
)


def diabetes_intensification(facts: RuleFacts) -> Iterator[Finding]:
    """Type 2 diabetes with a current HbA1c of 9% or more on one non-insulin glucose-lowering drug or none: an
    option to add one (a GLP-1 agonist or SGLT2 inhibitor first). Type 1 diabetes, pregnancy and children are
    another clinic's decision."""
    age = facts.age
    if age is None or age < 18 or facts.pregnant or facts.has_condition("type-1-diabetes"):
        return
    diabetes = facts.value_sets.get("diabetes", ())
    hba1c = facts.current("hba1c")
    if not diabetes or hba1c is None or hba1c.value < HBA1C_INTENSIFY:
        return
    lowering = tuple(e for e in facts.with_class(*GLUCOSE_LOWERING_CLASSES) if not e.proposed)
    if len({e.ingredients for e in lowering}) > 1 or any(e.has("insulin") for e in lowering):
        return
    on = f"on {_names(lowering)} alone" if lowering else "on no glucose-lowering drug"
    yield Finding(
        "rule.diabetes-intensification-absent",
        "warning",
        _say(
            f"HbA1c {hba1c.value:g}% {on}",
            "consider adding a GLP-1 agonist or SGLT2 inhibitor (insulin if symptomatic)",
        ),
        "An HbA1c this far above goal rarely falls on one drug; ADA advises adding an agent with heart and "
        "kidney benefit rather than waiting.",
        ("kb.ada-2025-treatment-intensification",),
        _sorted((*_handles(lowering), *diabetes), hba1c.handle),
        (),
    )


CARE_GAP_EXTRA_RULES: tuple[Rule, ...] = (
    uncontrolled_blood_pressure,
    statin_indicated,
    statin_intensity,
    ldl_above_goal_on_high_intensity_statin,
    heart_failure_therapy,
    hfref_therapy,
    pjp_prophylaxis,
    pjp_prophylaxis_immunosuppressed,
    preeclampsia_aspirin,
    antiplatelet_secondary_prevention,
    prenatal_folic_acid,
    antiseizure_folic_acid,
    thiamine_before_dextrose,
    h_pylori_eradication,
    prep_hiv_test,
    prep_kidney,
    urate_above_target,
    diabetes_intensification,
)
