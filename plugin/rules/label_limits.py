"""Label limits a dose table cannot hold: doses by age, weight, duration or interval, and drug-condition pairs
that depend on the drug's form or dose (ticagrelor with aspirin above 100 mg, NSAIDs in cirrhosis)."""

# Each rule reads what it needs from the chart and fails closed where the label's condition cannot be read: an
# unreadable aspirin dose beside ticagrelor is asked about, a weight-based limit without a current weight says
# nothing (rule.dose-weight-unknown asks for weights where a table limit needs one).

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from plugin.context.model import Measurement
from plugin.rules.dose_range import (
    analgesic_nsaids,
    daily_or_unit_mg,
    dose_or_unit_mg,
    low_dose_aspirin,
    unit_mg,
)
from plugin.rules.dosing import (
    EXTENDED_RELEASE,
    LOCAL_ROUTE,
    PARENTERAL,
    SKIN_EYE_EAR,
    daily_mg,
    dosage_of,
    is_parenteral,
    per_day,
    route_text,
)
from plugin.rules.kidney import aki_against_reference, renal_function, shown
from plugin.rules.label_checks import LONG_ACTING_SULFONYLUREAS, DrugCondition
from plugin.rules.model import Exposure, Finding, RuleFacts, Severity
from plugin.rules.monitoring import OLDER_ADULT_AGE
from plugin.rules.phrasing import handles as _handles
from plugin.rules.phrasing import names as _names
from plugin.rules.phrasing import proposed as _proposed
from plugin.rules.phrasing import short as _short

__all__ = [
    "BISPHOSPHONATE_INTERVALS",
    "HYDROXYCHLOROQUINE_MAX_MG_PER_KG",
    "LABEL_LIMIT_CARE_GAP_RULES",
    "LABEL_LIMIT_RULES",
    "LOPERAMIDE_MIN_AGE",
    "METOCLOPRAMIDE_MAX_DAYS",
    "PRASUGREL_AGE",
    "PRASUGREL_WEIGHT_KG",
]


# --- NSAIDs in cirrhosis -------------------------------------------------------------------------------------


# In cirrhosis NSAIDs precipitate kidney injury and hepatorenal syndrome; skin NSAIDs and antiplatelet aspirin do
# not count (dose_range.analgesic_nsaids).
NSAID_CIRRHOSIS = DrugCondition(
    "rule.nsaid-cirrhosis",
    (),
    (),
    ("cirrhosis",),
    "warning",
    "kb.nsaid-cirrhosis",
    "Cirrhosis",
    "consider acetaminophen up to 2 g a day instead",
    "In cirrhosis NSAIDs precipitate kidney injury and hepatorenal syndrome, blunt diuretics and add bleeding "
    "(AASLD 2021).",
    select=analgesic_nsaids,
)


# --- Beers: alpha-1 blockers for blood pressure --------------------------------------------------------------

ALPHA_1_BLOCKERS: Final = frozenset({"doxazosin", "prazosin", "terazosin"})


def beers_alpha_blocker_hypertension(facts: RuleFacts) -> Iterator[Finding]:
    """An older adult on doxazosin, prazosin or terazosin with hypertension and no prostatic hyperplasia on
    record: the drug is treating blood pressure, which Beers advises against. With BPH on record it is left
    alone (the criterion is about blood pressure); without hypertension the indication is unknown."""
    if facts.age is None or facts.age < OLDER_ADULT_AGE or facts.has_condition("bph"):
        return
    hypertension = facts.value_sets.get("hypertension", ())
    drugs = facts.with_ingredient(*ALPHA_1_BLOCKERS)
    if not drugs or not hypertension:
        return
    yield Finding(
        "rule.beers-alpha-blocker-hypertension",
        "warning",
        _short(
            f"Age {facts.context.demographics.age_label} on {_names(drugs)} for blood pressure: consider another "
            "antihypertensive (falls)"
        ),
        "Peripheral alpha-1 blockers cause orthostatic hypotension and falls; Beers 2023 advises against them as "
        "antihypertensives in older adults.",
        ("kb.beers-alpha1-blocker-hypertension",),
        tuple(sorted({*hypertension, *_handles(drugs)})),
        _proposed(drugs),
    )


# --- ticagrelor with aspirin above 100 mg -------------------------------------------------------------------


def ticagrelor_aspirin_dose(facts: RuleFacts) -> Iterator[Finding]:
    ticagrelor = facts.with_ingredient("ticagrelor")
    aspirin = tuple(e for e in facts.with_ingredient("aspirin") if not low_dose_aspirin(facts, e))
    if not ticagrelor or not aspirin:
        return
    doses = [daily_or_unit_mg(facts, e, "aspirin") for e in aspirin]
    known = [d for d in doses if d is not None]
    said = f"aspirin {max(known):g} mg a day" if len(known) == len(doses) else "aspirin of unreadable dose"
    yield Finding(
        "rule.ticagrelor-aspirin-dose",
        "warning",
        _short(f"Ticagrelor with {said}: consider aspirin 75-100 mg a day"),
        "Aspirin above 100 mg a day makes ticagrelor less effective (boxed warning).",
        ("kb.ticagrelor-aspirin-dose",),
        _handles(ticagrelor, aspirin),
        _proposed(ticagrelor, aspirin),
    )


# --- prasugrel by age and weight ------------------------------------------------------------------------------

PRASUGREL_AGE: Final = 75  # generally not recommended from here, unless diabetes or a prior MI
PRASUGREL_WEIGHT_KG: Final = 60  # below this, 5 mg a day
PRASUGREL_LOW_WEIGHT_MG: Final = 5.0


def prasugrel_age_weight(facts: RuleFacts) -> Iterator[Finding]:
    prasugrel = facts.with_ingredient("prasugrel")
    if not prasugrel:
        return
    high_risk = (*facts.value_sets.get("diabetes", ()), *facts.value_sets.get("myocardial-infarction", ()))
    weight = facts.current("weight")
    inputs: tuple[str, ...] = ()
    if facts.age is not None and facts.age >= PRASUGREL_AGE and not high_risk:
        reason = f"at {facts.age}"
    elif weight is not None and weight.value < PRASUGREL_WEIGHT_KG:
        prasugrel = tuple(
            e
            for e in prasugrel
            if (mg := daily_or_unit_mg(facts, e, "prasugrel")) is None or mg > PRASUGREL_LOW_WEIGHT_MG
        )
        reason, inputs = f"at {weight.value:g} kg", (weight.handle,)
        if not prasugrel:
            return
    else:
        return
    yield Finding(
        "rule.prasugrel-age-weight",
        "warning",
        _short(f"Prasugrel {reason}: consider clopidogrel or ticagrelor, or 5 mg a day"),
        "Prasugrel bleeds more from 75 (fatal and intracranial bleeds) and in people under 60 kg; its boxed "
        "warning advises against it at 75 and over except with diabetes or a prior MI.",
        ("kb.prasugrel-age-weight",),
        (*_handles(prasugrel), *inputs),
        _proposed(prasugrel),
    )


# --- hydroxychloroquine per kilogram --------------------------------------------------------------------------

HYDROXYCHLOROQUINE_MAX_MG_PER_KG: Final = 5.0  # a day, of real body weight (AAO 2016)


def hydroxychloroquine_dose_weight(facts: RuleFacts) -> Iterator[Finding]:
    weight = facts.current("weight")
    if weight is None or weight.value <= 0:
        return
    for exposure in facts.with_ingredient("hydroxychloroquine"):
        mg = daily_mg(dosage_of(facts, exposure), unit_mg(exposure, "hydroxychloroquine"))
        if mg is None or mg / weight.value <= HYDROXYCHLOROQUINE_MAX_MG_PER_KG:
            continue
        yield Finding(
            "rule.hydroxychloroquine-dose-weight",
            "warning",
            _short(
                f"Hydroxychloroquine {mg:g} mg a day is {mg / weight.value:.1f} mg/kg at {weight.value:g} kg: "
                f"consider at most {HYDROXYCHLOROQUINE_MAX_MG_PER_KG * weight.value:.0f} mg a day"
            ),
            "Retinal toxicity rises with the dose per kilogram; ophthalmology advises at most 5 mg/kg a day of "
            "real body weight.",
            ("kb.hydroxychloroquine-dose-weight",),
            (exposure.handle, weight.handle),
            _proposed((exposure,)),
        )


# --- products never given under an age -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnderAge:
    """A product its label (or public-health advice) rules out below an age in whole years."""

    rule_id: str
    ingredient: str
    min_age: int
    evidence: str
    name: str  # how the summary names the product
    limit: str  # what the summary says of the age limit
    option: str
    why: str
    # Products often recorded by their text alone ("children's honey cough syrup").
    text: re.Pattern[str] | None = None

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        if facts.age is None or facts.age >= self.min_age:
            return
        drugs = tuple(
            e
            for e in facts.exposures
            if self.ingredient in e.ingredients or (self.text is not None and self.text.search(e.label))
        )
        if not drugs:
            return
        yield Finding(
            self.rule_id,
            "critical",
            _short(f"{self.name} at {facts.context.demographics.age_label}: {self.limit}; {self.option}"),
            self.why,
            (self.evidence,),
            _handles(drugs),
            _proposed(drugs),
        )


LOPERAMIDE_MIN_AGE: Final = 2
LOPERAMIDE_UNDER_2 = UnderAge(
    "rule.loperamide-under-2",
    "loperamide",
    LOPERAMIDE_MIN_AGE,
    "kb.loperamide-age-and-dose",
    "Loperamide",
    "contraindicated under 2",
    "consider oral rehydration and stopping it",
    "Under 2, loperamide has caused respiratory depression, paralytic ileus and cardiac events; its label "
    "contraindicates it.",
)
BENZONATATE_UNDER_10 = UnderAge(
    "rule.benzonatate-under-10",
    "benzonatate",
    10,  # FDA 2010: deaths from accidental ingestion under 10
    "kb.benzonatate-under-10",
    "Benzonatate",
    "not for children under 10",
    "consider honey (from 1 year) or fluids",
    "In young children one or two capsules have caused seizures, cardiac arrest and death within an hour.",
)
HONEY_UNDER_1 = UnderAge(
    "rule.honey-under-1",
    "honey",
    1,  # infant botulism
    "kb.honey-under-1-year",
    "Honey",
    "not under 12 months (infant botulism)",
    "consider stopping it",
    "Honey can carry botulism spores that an infant's gut lets grow; no honey product is safe before 12 months.",
    text=re.compile(r"\bhoney\b", re.IGNORECASE),
)


IBUPROFEN_FROM_DAYS: Final = 182  # six months: the infant products' labelled lower age

# --- ceftriaxone with intravenous calcium in a neonate --------------------------------------------------------

NEONATE_THROUGH_DAYS: Final = 28
_CALCIUM_IV: Final = frozenset({"calcium gluconate", "calcium chloride"})


def ceftriaxone_neonate_calcium(facts: RuleFacts) -> Iterator[Finding]:
    """Ceftriaxone in a neonate of 28 days or less with intravenous calcium or parenteral nutrition (which
    carries calcium): the label contraindicates it, after fatal ceftriaxone-calcium precipitates in the lungs and
    kidneys, whatever the line or the timing."""
    days = facts.context.demographics.age_days
    if days is None or days > NEONATE_THROUGH_DAYS:
        return
    ceftriaxone = facts.with_ingredient("ceftriaxone")
    calcium = tuple(
        e
        for e in facts.exposures
        if (not _CALCIUM_IV.isdisjoint(e.ingredients) and is_parenteral(route_text(facts, e)))
        or "parenteral nutrition" in e.ingredients
    )
    if not ceftriaxone or not calcium:
        return
    yield Finding(
        "rule.ceftriaxone-neonate-calcium",
        "critical",
        _short(
            f"Ceftriaxone in a {days}-day-old with {_names(calcium)}: consider cefotaxime or another cephalosporin"
        ),
        "Ceftriaxone and intravenous calcium form fatal precipitates in neonates, even through separate lines; the "
        "label contraindicates ceftriaxone with calcium-containing infusions up to 28 days of age.",
        ("kb.ceftriaxone-neonate-calcium",),
        (*_handles(ceftriaxone), *_handles(calcium)),
        _proposed((*ceftriaxone, *calcium)),
    )


def ibuprofen_under_6_months(facts: RuleFacts) -> Iterator[Finding]:
    days = facts.context.demographics.age_days
    if days is None or days >= IBUPROFEN_FROM_DAYS:
        return
    drugs = tuple(e for e in facts.with_ingredient("ibuprofen") if not SKIN_EYE_EAR.search(e.label))
    if not drugs:
        return
    yield Finding(
        "rule.ibuprofen-under-6-months",
        "warning",
        _short(
            f"Ibuprofen at {days // 7} weeks old: not under 6 months; consider acetaminophen dosed by weight"
        ),
        "Ibuprofen is not labelled under six months, when infants' kidneys are least able to handle NSAIDs.",
        ("kb.ibuprofen-under-6-months",),
        _handles(drugs),
        _proposed(drugs),
    )


def beers_mineral_oil(facts: RuleFacts) -> Iterator[Finding]:
    if facts.age is None or facts.age < OLDER_ADULT_AGE:
        return
    # An enema or a skin product is not swallowed, so it cannot be aspirated.
    oil = tuple(
        e
        for e in facts.with_ingredient("mineral oil")
        if not LOCAL_ROUTE.search(e.label) and "enema" not in e.label.lower()
    )
    if not oil:
        return
    yield Finding(
        "rule.beers-mineral-oil",
        "warning",
        _short(
            f"Oral mineral oil at {facts.age}: Beers says avoid (aspiration pneumonia); consider PEG or a senna"
        ),
        "Aspirated mineral oil causes lipoid pneumonia; older adults, above all with swallowing problems, are at risk.",
        ("kb.beers-mineral-oil",),
        _handles(oil),
        _proposed(oil),
    )


# --- Beers: correction-scale insulin without basal insulin -----------------------------------------------------

PRANDIAL_INSULINS: Final = frozenset(
    {"insulin lispro", "insulin aspart", "insulin glulisine", "insulin regular"}
)
_PUMP: Final = re.compile(r"\b(pump|omnipod|t:slim|medtronic|minimed)\b", re.IGNORECASE)


def beers_sliding_scale_insulin(facts: RuleFacts) -> Iterator[Finding]:
    """At 65 and over, insulin that is only short- or rapid-acting (a correction scale) with no basal insulin.
    Type 1 diabetes and pumps, which deliver basal needs as rapid-acting insulin, are left out."""
    if facts.age is None or facts.age < OLDER_ADULT_AGE or facts.value_sets.get("type-1-diabetes"):
        return
    insulins = facts.with_class("insulin")
    if not insulins or any(_PUMP.search(e.label) for e in insulins):
        return
    if not all(set(e.ingredients) and set(e.ingredients) <= PRANDIAL_INSULINS for e in insulins):
        return  # a basal, premixed or unresolved insulin is on the list
    yield Finding(
        "rule.beers-sliding-scale-insulin",
        "warning",
        _short(
            f"Only rapid- or short-acting insulin at {facts.age} ({_names(insulins)}): Beers says avoid a correction "
            "scale alone; consider basal insulin"
        ),
        "Insulin given only by a correction scale brings hypoglycaemia without better control in older adults.",
        ("kb.beers-sliding-scale-insulin",),
        _handles(insulins),
        _proposed(insulins),
    )


# --- bisphosphonates beyond five years ---------------------------------------------------------------------------

# ASBMR reassesses at 5 years and has no trial data beyond 10: the card is kept for therapy past 10 years, where
# continuing is no longer evidence-based for anyone, so that a routine 6-year prescription does not raise it.
BISPHOSPHONATE_REVIEW_DAYS: Final = 10 * 365


def bisphosphonate_long_term(facts: RuleFacts) -> Iterator[Finding]:
    """An oral bisphosphonate taken for more than ten years: beyond the trials, where ASBMR advises reassessing
    (a drug holiday for lower-risk patients; thigh or groin pain needs imaging for an atypical femur fracture)."""
    long_term = tuple(
        e for e in facts.with_class("bisphosphonate") if e.taken_longer_than(BISPHOSPHONATE_REVIEW_DAYS)
    )
    if not long_term:
        return
    years = max(e.started_days_ago or 0 for e in long_term) // 365
    yield Finding(
        "rule.bisphosphonate-long-term",
        "info",
        _short(
            f"{_names(long_term).capitalize()} for about {years} years: consider reassessing (a drug holiday) and "
            "asking about thigh or groin pain"
        ),
        "After 5 years of an oral bisphosphonate the fracture benefit levels off while atypical femur fractures "
        "become more common.",
        ("kb.bisphosphonate-duration",),
        _handles(long_term),
        _proposed(long_term),
    )


# --- metoclopramide beyond 12 weeks ---------------------------------------------------------------------------

METOCLOPRAMIDE_MAX_DAYS: Final = 84  # 12 weeks (boxed warning)


def metoclopramide_long_term(facts: RuleFacts) -> Iterator[Finding]:
    """Metoclopramide ordered more than 12 weeks ago and still taken. An undated record is not known to be long."""
    long_term = tuple(
        e for e in facts.with_ingredient("metoclopramide") if e.taken_longer_than(METOCLOPRAMIDE_MAX_DAYS)
    )
    if not long_term:
        return
    weeks = max(e.started_days_ago or 0 for e in long_term) // 7
    yield Finding(
        "rule.metoclopramide-long-term",
        "warning",
        _short(
            f"Metoclopramide for about {weeks} weeks (over 12): consider stopping it and checking for abnormal "
            "movements"
        ),
        "Tardive dyskinesia, often permanent, rises with duration; the boxed warning says to avoid use beyond "
        "12 weeks.",
        ("kb.metoclopramide-long-term",),
        _handles(long_term),
        _proposed(long_term),
    )


# --- weekly and monthly bisphosphonates taken daily -----------------------------------------------------------

# (ingredient, strength in mg, days between doses): the weekly and monthly strengths of the labels.
BISPHOSPHONATE_INTERVALS: Final = (
    ("alendronate", 70.0, 7),
    ("risedronate", 35.0, 7),
    ("risedronate", 150.0, 30),
    ("ibandronate", 150.0, 30),
)


def _more_often_than(facts: RuleFacts, exposure: Exposure, days: int) -> float | None:
    """Doses a day when the order gives more than one dose per `days` (a daily order of a weekly product is 7
    doses a week); None when it does not, or its frequency cannot be read."""
    dosage = dosage_of(facts, exposure)
    times = per_day(dosage.frequency) if dosage is not None else None
    return times if times is not None and times * days > 1.0 + 1e-9 else None


def bisphosphonate_interval(facts: RuleFacts) -> Iterator[Finding]:
    for exposure in facts.with_class("bisphosphonate"):
        for ingredient, strength, days in BISPHOSPHONATE_INTERVALS:
            if ingredient not in exposure.ingredients or unit_mg(exposure, ingredient) != strength:
                continue
            times = _more_often_than(facts, exposure, days)
            if times is None:
                continue
            every = "week" if days == 7 else "month"
            yield Finding(
                "rule.bisphosphonate-interval",
                "critical",
                _short(
                    f"{ingredient.capitalize()} {strength:g} mg is a once-a-{every} dose, ordered "
                    f"{times:g} time(s) a day: consider once a {every}"
                ),
                f"The {strength:g} mg strength is taken once a {every}; taken daily it is a {days}-fold overdose "
                "(oesophageal injury, hypocalcaemia).",
                ("kb.bisphosphonate-dosing-interval",),
                (exposure.handle,),
                _proposed((exposure,)),
            )
            break


# --- once-weekly GLP-1 receptor agonist injections ordered more often -----------------------------------------

WEEKLY_INCRETINS: Final = ("semaglutide", "dulaglutide", "tirzepatide", "exenatide")
# Oral semaglutide (Rybelsus) is daily, and immediate-release exenatide (Byetta) is twice daily: only the
# weekly forms are held to once a week.
_WEEKLY_FORM: Final = re.compile(
    r"\b(ozempic|wegovy|trulicity|mounjaro|zepbound|bydureon|pen|injector|injection|inject\w*|subcutaneous"
    r"|prefilled|auto-?injector)\b",
    re.IGNORECASE,
)
_WEEKLY_EXENATIDE: Final = re.compile(r"\b(bydureon|bcise|extended)\b", re.IGNORECASE)
_DAILY_FORM: Final = re.compile(r"\b(oral|tablet|rybelsus|byetta)\b", re.IGNORECASE)


def weekly_incretin_interval(facts: RuleFacts) -> Iterator[Finding]:
    for exposure in facts.with_class("glp1-agonist"):
        ingredient = next((i for i in WEEKLY_INCRETINS if i in exposure.ingredients), None)
        if (
            ingredient is None
            or _DAILY_FORM.search(exposure.label)
            or not _WEEKLY_FORM.search(exposure.label)
        ):
            continue
        if ingredient == "exenatide" and not _WEEKLY_EXENATIDE.search(exposure.label):
            continue  # Byetta pens are injected twice a day
        times = _more_often_than(facts, exposure, 7)
        if times is None:
            continue
        yield Finding(
            "rule.weekly-incretin-interval",
            "critical",
            _short(
                f"{_names((exposure,)).capitalize()} is a once-weekly injection, ordered {times:g} time(s) a day: "
                "consider once a week"
            ),
            "Taken daily, a weekly GLP-1 receptor agonist is a seven-fold overdose (severe vomiting, dehydration, "
            "acute kidney injury, pancreatitis).",
            ("kb.weekly-glp1-agonist-interval",),
            (exposure.handle,),
            _proposed((exposure,)),
        )


# --- levothyroxine started at full dose in an older or coronary patient --------------------------------------

LEVOTHYROXINE_START_MCG: Final = (
    50.0  # the label's start for older patients and coronary disease: 12.5-25 mcg
)
LEVOTHYROXINE_CAUTIOUS_AGE: Final = 65


def levothyroxine_full_dose_start(facts: RuleFacts) -> Iterator[Finding]:
    """A new levothyroxine order above 50 mcg a day for someone not already taking thyroid hormone, aged 65 or
    over or with coronary disease: the label starts low (12.5-25 mcg) and titrates, because a full dose can
    provoke angina, infarction or atrial fibrillation."""
    if any(not e.proposed for e in facts.with_class("thyroid-hormone")):
        return
    age = facts.age
    coronary = (
        *facts.value_sets.get("coronary-heart-disease", ()),
        *facts.value_sets.get("myocardial-infarction", ()),
    )
    if not coronary and (age is None or age < LEVOTHYROXINE_CAUTIOUS_AGE):
        return
    for exposure in facts.with_ingredient("levothyroxine"):
        if not exposure.proposed:
            continue
        mg = daily_or_unit_mg(facts, exposure, "levothyroxine")
        if mg is None or mg * 1000 <= LEVOTHYROXINE_START_MCG + 1e-9:
            continue
        who = "coronary disease" if coronary else f"age {facts.context.demographics.age_label}"
        yield Finding(
            "rule.levothyroxine-full-dose-start",
            "warning",
            _short(
                f"Levothyroxine started at {mg * 1000:g} mcg a day with {who}: consider 12.5-25 mcg, raised "
                "every 4-6 weeks on TSH"
            ),
            "In older adults and coronary disease a full starting dose can provoke angina, infarction or atrial "
            "fibrillation; the label starts low and titrates.",
            ("kb.levothyroxine-start-low",),
            (exposure.handle, *sorted(coronary)),
            _proposed((exposure,)),
        )


# --- levothyroxine ordered at long intervals ------------------------------------------------------------------

# Levothyroxine is taken once a day; once a week is an accepted regimen for poor adherence. Anything rarer is a
# directions error (or gross under-replacement).
LEVOTHYROXINE_LONGEST_INTERVAL_DAYS: Final = 7


def levothyroxine_interval(facts: RuleFacts) -> Iterator[Finding]:
    for exposure in facts.with_class("thyroid-hormone"):
        dosage = dosage_of(facts, exposure)
        times = per_day(dosage.frequency) if dosage is not None else None
        if times is None or times * LEVOTHYROXINE_LONGEST_INTERVAL_DAYS >= 1.0 - 1e-9:
            continue
        yield Finding(
            "rule.levothyroxine-interval",
            "warning",
            _short(
                f"{_names((exposure,)).capitalize()} ordered once every {1 / times:.0f} days: consider checking the "
                "directions (once daily)"
            ),
            "Thyroid hormone is taken once a day; an order this far apart is a directions error or leaves the "
            "patient hypothyroid.",
            ("kb.levothyroxine-once-daily",),
            (exposure.handle,),
            _proposed((exposure,)),
        )


# --- blood pressure before combined hormonal contraception -------------------------------------------------

CHC_BP_MAX_AGE_DAYS: Final = 365


def chc_blood_pressure_unknown(facts: RuleFacts) -> Iterator[Finding]:
    """Estrogen-containing contraception with no blood pressure within a year: US SPR asks for one before
    starting, and the MEC category depends on it (rule.chc-hypertension reads it when there is one)."""
    chc = tuple(e for e in facts.exposures if "ethinyl estradiol" in e.ingredients)
    if not chc:
        return
    latest = facts.latest("systolic_bp")
    if latest is not None and latest.days_ago is not None and latest.days_ago <= CHC_BP_MAX_AGE_DAYS:
        return
    when = (
        "no blood pressure on record"
        if latest is None
        else "only an undated blood pressure"
        if latest.days_ago is None
        else f"the last blood pressure {latest.days_ago // 30} months ago"
    )
    yield Finding(
        "rule.chc-blood-pressure-unknown",
        "info",
        _short(f"Combined hormonal contraception with {when}: consider measuring blood pressure"),
        "A blood pressure is needed before combined hormonal contraception (US SPR 2024); hypertension changes "
        "its eligibility category.",
        ("kb.us-spr-chc-blood-pressure",),
        (*_handles(chc), *((latest.handle,) if latest is not None else ())),
        _proposed(chc),
    )


# --- SGLT2 inhibitor for type 2 diabetes with CKD -----------------------------------------------------------

SGLT2_FROM_EGFR: Final = 20.0  # KDIGO 2022: start at eGFR 20 or more
CKD_BELOW_EGFR: Final = 60.0
# From 80 the start weighs frailty, volume depletion and time to benefit (ADA Standards, older adults): the
# prescriber's call, not a gap card. Blind reviews of charts of patients over 80 raised it in none of eight.
SGLT2_GAP_UNTIL_AGE: Final = 80
ALBUMINURIA_FROM_UACR: Final = 30.0  # mg/g: KDIGO category A2 or A3, CKD whatever the eGFR
ALBUMINURIA_WITHIN_DAYS: Final = 730  # both of the two raised values


def diabetes_ckd_sglt2_absent(facts: RuleFacts) -> Iterator[Finding]:
    """Type 2 diabetes with CKD (on the problem list, a current eGFR under 60, or two current urine albumin-to-
    creatinine ratios of 30 mg/g or more, persistent as KDIGO defines CKD) and a current eGFR of 20 or more,
    without an SGLT2 inhibitor, under 80 and outside acute kidney injury. Without a current eGFR the start
    cannot be judged: nothing here (the eGFR recheck asks for one where a drug depends on it)."""
    diabetes = facts.value_sets.get("diabetes", ())
    if not diabetes or facts.has_condition("type-1-diabetes") or facts.with_class("sglt2-inhibitor"):
        return
    if not facts.context.in_force("sglt2i-diabetes-ckd"):
        return
    if facts.age is not None and facts.age >= SGLT2_GAP_UNTIL_AGE:
        return
    kidney = renal_function(facts)
    if kidney.egfr is None or kidney.egfr < SGLT2_FROM_EGFR:
        return
    # During acute kidney injury the eGFR is no steady state and a start waits for recovery.
    if facts.has_condition("acute-kidney-injury") or aki_against_reference(
        facts.context.series("creatinine")
    ):
        return
    ckd = (*facts.value_sets.get("ckd", ()), *facts.value_sets.get("diabetic-kidney-disease", ()))
    albuminuria = _persistent_albuminuria(facts)
    if not ckd and kidney.egfr >= CKD_BELOW_EGFR and not albuminuria:
        return
    what = (
        "CKD"
        if ckd
        else f"eGFR {shown(kidney.egfr)}"
        if kidney.egfr < CKD_BELOW_EGFR
        else f"albuminuria (UACR {albuminuria[0].value:g} mg/g)"
    )
    yield Finding(
        "rule.diabetes-ckd-sglt2-absent",
        "info",
        _short(
            f"Type 2 diabetes with {what} and no SGLT2 inhibitor: consider one (kidney and heart protection)"
        ),
        "In type 2 diabetes with CKD and an eGFR of 20 or more, an SGLT2 inhibitor slows kidney decline and cuts "
        "heart failure (KDIGO 2022, 1A).",
        ("kb.kdigo-2022-diabetes-ckd-sglt2i",),
        tuple(sorted({*diabetes, *ckd, *kidney.egfr_inputs, *(m.handle for m in albuminuria)})),
    )


def _persistent_albuminuria(facts: RuleFacts) -> tuple[Measurement, ...]:
    """The latest two urine albumin-to-creatinine ratios when both are from the last two years and 30 mg/g or
    more (newest first); one raised value may be transient (exercise, infection), so it is not CKD yet."""
    series = facts.context.series("uacr")
    if series is None:
        return ()
    latest_two = series.measurements[:2]
    if len(latest_two) == 2 and all(
        m.value >= ALBUMINURIA_FROM_UACR and m.days_ago is not None and m.days_ago <= ALBUMINURIA_WITHIN_DAYS
        for m in latest_two
    ):
        return latest_two
    return ()


# --- glyburide with reduced kidney function --------------------------------------------------------------------

GLYBURIDE_AVOID_BELOW_EGFR: Final = 60.0  # KDIGO 2022: avoid glyburide in CKD G3a-G5


def glyburide_kidney_disease(facts: RuleFacts) -> Iterator[Finding]:
    """Glyburide with a current eGFR under 60, under 65 years (from 65 the Beers long-acting sulfonylurea card
    gives the same advice): its active metabolites accumulate and cause prolonged hypoglycaemia."""
    if facts.age is None or facts.age >= OLDER_ADULT_AGE:
        return
    drugs = facts.with_ingredient("glyburide")
    kidney = renal_function(facts)
    if not drugs or kidney.egfr is None or kidney.egfr >= GLYBURIDE_AVOID_BELOW_EGFR:
        return
    yield Finding(
        "rule.glyburide-kidney-disease",
        "warning",
        _short(
            f"{_names(drugs).capitalize()} with eGFR {shown(kidney.egfr)}: consider glipizide or a drug with less "
            "hypoglycaemia"
        ),
        "Glyburide's active metabolites are cleared by the kidneys; with reduced function they accumulate and cause "
        "prolonged hypoglycaemia (KDIGO 2022).",
        ("kb.glyburide-kidney-disease",),
        (*_handles(drugs), *kidney.egfr_inputs),
        _proposed(drugs),
    )


# --- Beers: a sulfonylurea as the only glucose-lowering drug --------------------------------------------------

_GLUCOSE_LOWERING: Final = (
    "biguanide",
    "sulfonylurea",
    "insulin",
    "sglt2-inhibitor",
    "glp1-agonist",
    "dpp4-inhibitor",
    "thiazolidinedione",
)


def beers_sulfonylurea_monotherapy(facts: RuleFacts) -> Iterator[Finding]:
    """An older adult whose only glucose-lowering drug is a short-acting sulfonylurea (the long-acting ones have
    their own card): Beers 2023 advises against sulfonylureas as first-line therapy."""
    if facts.age is None or facts.age < OLDER_ADULT_AGE:
        return
    lowering = facts.with_class(*_GLUCOSE_LOWERING)
    if not lowering or not all(e.has("sulfonylurea") for e in lowering):
        return
    if any(not set(LONG_ACTING_SULFONYLUREAS).isdisjoint(e.ingredients) for e in lowering):
        return
    yield Finding(
        "rule.beers-sulfonylurea-monotherapy",
        "warning",
        _short(
            f"Age {facts.context.demographics.age_label} on {_names(lowering)} alone: consider metformin, an SGLT2 "
            "inhibitor or a GLP-1 agonist instead"
        ),
        "Sulfonylureas cause hypoglycaemia in older adults; Beers 2023 advises against them as first-line "
        "therapy unless the alternatives cannot be used.",
        ("kb.beers-sulfonylureas",),
        _handles(lowering),
        _proposed(lowering),
    )


# --- a DOAC's venous-thromboembolism lead-in dose continued past its days ------------------------------------

# (ingredient, lead-in milligrams a day, lead-in days, the maintenance dose): Eliquis and Xarelto labels, VTE
# treatment.
DOAC_LEAD_IN: Final = (
    ("apixaban", 20.0, 7, "5 mg twice daily"),
    ("rivaroxaban", 30.0, 21, "20 mg once daily"),
)


def doac_lead_in_beyond_its_days(facts: RuleFacts) -> Iterator[Finding]:
    """Apixaban 10 mg twice daily past day 7, or rivaroxaban 15 mg twice daily past day 21, of treatment for a
    clot: the lead-in dose doubled and continued. The days count from the newest DVT or PE on record or the
    order, whichever is older (a refill carries the lead-in directions on); with neither dated, nothing is said."""
    clots = set(facts.value_sets.get("venous-thromboembolism", ()))
    onsets = [
        p.onset_days_ago for p in facts.context.problems if p.handle in clots and p.onset_days_ago is not None
    ]
    clot_days = min(onsets) if onsets else None
    for ingredient, lead_in_mg, lead_in_days, maintenance in DOAC_LEAD_IN:
        for exposure in facts.with_ingredient(ingredient):
            mg = daily_mg(dosage_of(facts, exposure), unit_mg(exposure, ingredient))
            if mg is None or abs(mg - lead_in_mg) > 0.01:  # exactly the lead-in dose
                continue
            known = [d for d in (clot_days, exposure.started_days_ago) if d is not None]
            if not known or max(known) <= lead_in_days:
                continue
            yield Finding(
                "rule.doac-lead-in-beyond-its-days",
                "critical",
                _short(
                    f"{ingredient.capitalize()} {mg:g} mg a day on day {max(known)} of treatment: the lead-in dose "
                    f"is for {lead_in_days} days; consider {maintenance}"
                ),
                "The doubled lead-in dose is for the first days of clot treatment only; continued, it doubles the "
                "anticoagulant and the bleeding risk.",
                ("kb.doac-vte-lead-in-dose",),
                (*_handles((exposure,)), *sorted(clots)),
                _proposed((exposure,)),
            )


# --- Beers: central alpha-agonists for blood pressure ---------------------------------------------------------


def beers_central_alpha_agonist_hypertension(facts: RuleFacts) -> Iterator[Finding]:
    """An older adult with hypertension on clonidine, guanfacine or methyldopa: Beers 2023 advises against
    them as routine antihypertensives (sedation, bradycardia, orthostatic hypotension, rebound on stopping)."""
    if facts.age is None or facts.age < OLDER_ADULT_AGE:
        return
    hypertension = facts.value_sets.get("hypertension", ())
    drugs = facts.with_class("central-alpha-agonist")
    if not drugs or not hypertension:
        return
    yield Finding(
        "rule.beers-central-alpha-agonist",
        "warning",
        _short(
            f"Age {facts.context.demographics.age_label} on {_names(drugs)} for blood pressure: consider "
            "another antihypertensive, tapering it slowly (rebound hypertension)"
        ),
        "Central alpha-agonists cause sedation, bradycardia and orthostatic hypotension in older adults; Beers "
        "2023 advises against them as routine antihypertensives.",
        ("kb.beers-central-alpha-agonists",),
        tuple(sorted({*hypertension, *_handles(drugs)})),
        _proposed(drugs),
    )


# --- cough, cold and sedating antihistamine products under 2, opioid cough medicines under 18 ----------------

COUGH_COLD_MIN_AGE: Final = 4  # FDA 2008 says under 2; the products' labels since say "do not use under 4"
COUGH_COLD_CRITICAL_UNDER_AGE: Final = 2  # the FDA's own line: the serious harms were reported under 2
COUGH_COLD_INGREDIENTS: Final = frozenset(
    {
        "brompheniramine",
        "carbinoxamine",
        "chlorpheniramine",
        "clemastine",
        "dexbrompheniramine",
        "dextromethorphan",
        "diphenhydramine",
        "doxylamine",
        "guaifenesin",
        "phenylephrine",
        "pseudoephedrine",
        "triprolidine",
    }
)


def cough_cold_under_4(facts: RuleFacts) -> Iterator[Finding]:
    """A swallowed cough, cold or sedating-antihistamine product for a child under 4 (promethazine has its own,
    critical, card): critical under 2, where the FDA advises against them, a warning from 2 to 3, where the
    labels do. Skin, nose and eye products are not swallowed and do not count."""
    if facts.age is None or facts.age >= COUGH_COLD_MIN_AGE:
        return
    drugs = tuple(
        e
        for e in facts.exposures
        if not COUGH_COLD_INGREDIENTS.isdisjoint(e.ingredients)
        and "promethazine" not in e.ingredients
        and not LOCAL_ROUTE.search(e.label)
    )
    if not drugs:
        return
    yield Finding(
        "rule.cough-cold-under-4",
        "critical" if facts.age < COUGH_COLD_CRITICAL_UNDER_AGE else "warning",
        _short(
            f"{_names(drugs).capitalize()} at {facts.context.demographics.age_label}: not for children under 4; "
            "consider stopping it (fluids, saline, suction; never to make a child sleep)"
        ),
        "Cough, cold and sedating antihistamine products have caused convulsions, fast heart rates, breathing "
        "problems and deaths in young children, and they do not help.",
        ("kb.cough-cold-products-young-children",),
        _handles(drugs),
        _proposed(drugs),
    )


OPIOID_COUGH_MIN_AGE: Final = 18  # FDA 2018: prescription opioid cough and cold medicines are for adults only
CODEINE_MIN_AGE: Final = 12  # under 12 rule.paediatric-codeine-tramadol already says contraindicated
_COUGH_PARTNERS: Final = frozenset(
    {
        "promethazine",
        "guaifenesin",
        "chlorpheniramine",
        "brompheniramine",
        "homatropine",
        "pseudoephedrine",
        "phenylephrine",
        "triprolidine",
        "pyrilamine",
    }
)
_COUGH_TEXT: Final = re.compile(r"\b(cough|antitussive|tussi\w*|tuzistra|hycodan)\b", re.IGNORECASE)


def opioid_cough_medicine_under_18(facts: RuleFacts) -> Iterator[Finding]:
    """A codeine or hydrocodone cough product (with an antihistamine, expectorant, decongestant or
    homatropine, or named for cough) under 18; codeine under 12 is left to its own contraindication card."""
    age = facts.age
    if age is None or age >= OPIOID_COUGH_MIN_AGE:
        return
    drugs = tuple(
        e
        for e in facts.exposures
        if {"codeine", "hydrocodone"} & set(e.ingredients)
        and (not _COUGH_PARTNERS.isdisjoint(e.ingredients) or _COUGH_TEXT.search(e.label))
        and not (age < CODEINE_MIN_AGE and "codeine" in e.ingredients)
    )
    if not drugs:
        return
    yield Finding(
        "rule.opioid-cough-medicine-under-18",
        "critical",
        _short(
            f"Opioid cough medicine ({_names(drugs)}) at age {age}: for adults only; consider honey, fluids or "
            "dextromethorphan"
        ),
        "Since 2018 codeine and hydrocodone cough medicines are labelled for adults only: in children the risks "
        "(slowed breathing, misuse) outweigh any benefit.",
        ("kb.opioid-cough-medicines-under-18",),
        _handles(drugs),
        _proposed(drugs),
    )


# --- swallowed drugs a label rules out in the first weeks of life ---------------------------------------------


@dataclass(frozen=True, slots=True)
class UnderAgeDays:
    """A swallowed (or injected) drug its label rules out below an age in days; skin, eye and local products do
    not count (the newborn erythromycin eye ointment)."""

    rule_id: str
    ingredient: str
    min_days: int
    severity: Severity
    evidence: str
    limit: str  # what the summary says of the age limit
    option: str
    why: str

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        days = facts.context.demographics.age_days
        if days is None or days >= self.min_days:
            return
        drugs = tuple(
            e
            for e in facts.with_ingredient(self.ingredient)
            if not SKIN_EYE_EAR.search(e.label) and not LOCAL_ROUTE.search(e.label)
        )
        if not drugs:
            return
        yield Finding(
            self.rule_id,
            self.severity,
            _short(
                f"{_names(drugs).capitalize()} at {facts.context.demographics.age_label}: {self.limit}; {self.option}"
            ),
            self.why,
            (self.evidence,),
            _handles(drugs),
            _proposed(drugs),
        )


SULFONAMIDE_UNDER_2_MONTHS = UnderAgeDays(
    "rule.sulfonamide-under-2-months",
    "sulfamethoxazole",
    60,  # two months: the TMP-SMX label's lower age
    "critical",
    "kb.sulfonamide-under-2-months",
    "contraindicated under 2 months (kernicterus)",
    "consider another antibiotic the culture allows",
    "Sulfonamides displace bilirubin from albumin, and in the first two months that free bilirubin can reach "
    "the brain (kernicterus).",
)
ERYTHROMYCIN_UNDER_6_WEEKS = UnderAgeDays(
    "rule.erythromycin-under-6-weeks",
    "erythromycin",
    42,  # six weeks: pyloric stenosis risk is highest in the first two
    "warning",
    "kb.erythromycin-infant-pyloric-stenosis",
    "pyloric stenosis risk under 6 weeks",
    "consider azithromycin (pertussis)",
    "Erythromycin in the first weeks of life raises the risk of infantile hypertrophic pyloric stenosis "
    "several-fold; azithromycin is preferred for pertussis under one month.",
)


# --- extended-release opioids ordered more often than their label's interval ---------------------------------

# Doses a day the label allows for each extended-release opioid tablet or capsule (OxyContin, oxymorphone ER and
# tapentadol ER every 12 hours; MS Contin every 8 or 12 hours).
EXTENDED_RELEASE_OPIOID_DOSES_A_DAY: Final = (
    ("oxycodone", 2.0),
    ("oxymorphone", 2.0),
    ("tapentadol", 2.0),
    ("morphine", 3.0),
)


def extended_release_opioid_interval(facts: RuleFacts) -> Iterator[Finding]:
    for exposure in facts.with_class("opioid"):
        if not EXTENDED_RELEASE.search(exposure.label):
            continue
        # Tablets and capsules only: no patch is in the table, so a patch's `allowed` is None.
        allowed = next((n for i, n in EXTENDED_RELEASE_OPIOID_DOSES_A_DAY if i in exposure.ingredients), None)
        dosage = dosage_of(facts, exposure)
        times = per_day(dosage.frequency) if dosage is not None else None
        if allowed is None or times is None or times <= allowed + 1e-9:
            continue
        yield Finding(
            "rule.extended-release-opioid-interval",
            "critical",
            _short(
                f"Extended-release {_names((exposure,))} ordered {times:g} times a day: its label allows "
                f"{allowed:g}; consider the labelled interval"
            ),
            "An extended-release opioid given more often than its interval stacks doses: more opioid a day and "
            "peaks that cause sedation and slowed breathing.",
            ("kb.extended-release-opioid-interval",),
            (exposure.handle,),
            _proposed((exposure,)),
        )


# --- clindamycin after a recent C. difficile infection --------------------------------------------------------

C_DIFFICILE_RECENT_DAYS: Final = 90  # recurrence risk is highest in the first 8 weeks; a margin beyond them


def clindamycin_after_c_difficile(facts: RuleFacts) -> Iterator[Finding]:
    """Systemic clindamycin with C. difficile infection active, or one that began within 90 days (resolved or
    not); an undated past infection counts too: it is shown, not assumed to be old."""
    drugs = tuple(
        e
        for e in facts.with_ingredient("clindamycin")
        if not LOCAL_ROUTE.search(e.label) and not SKIN_EYE_EAR.search(e.label)
    )
    if not drugs:
        return
    recent = facts.began_within(C_DIFFICILE_RECENT_DAYS, "c-difficile-infection", active_counts=True)
    if not recent:
        return
    yield Finding(
        "rule.clindamycin-after-c-difficile",
        "warning",
        _short(
            f"Recent C. difficile infection with {_names(drugs)}: consider an antibiotic less linked to "
            "recurrence (cephalexin or doxycycline, as the infection allows)"
        ),
        "Clindamycin is among the antibiotics most strongly linked to C. difficile, and recurrence is most likely "
        "in the weeks after an episode.",
        ("kb.clindamycin-after-c-difficile",),
        tuple(sorted({*recent, *_handles(drugs)})),
        _proposed(drugs),
    )


def metronidazole_for_c_difficile(facts: RuleFacts) -> Iterator[Finding]:
    """Oral metronidazole with an active C. difficile infection and neither oral vancomycin nor fidaxomicin:
    IDSA/SHEA 2021 treat with fidaxomicin or oral vancomycin, metronidazole only when neither is available."""
    active = facts.value_sets.get("c-difficile-infection", ())
    metronidazole = tuple(
        e
        for e in facts.with_ingredient("metronidazole")
        if e.new(C_DIFFICILE_RECENT_DAYS)
        and not LOCAL_ROUTE.search(e.label)
        and not SKIN_EYE_EAR.search(e.label)
    )
    if not active or not metronidazole:
        return
    if facts.with_ingredient("fidaxomicin") or any(
        not PARENTERAL.search(route_text(facts, e)) for e in facts.with_ingredient("vancomycin")
    ):
        return  # given with (or as a bridge to) a first-line drug
    yield Finding(
        "rule.c-difficile-metronidazole",
        "warning",
        _short(
            f"C. difficile infection treated with {_names(metronidazole)}: consider oral vancomycin 125 mg four "
            "times daily or fidaxomicin 200 mg twice daily for 10 days"
        ),
        "Metronidazole cures fewer C. difficile infections than oral vancomycin or fidaxomicin and is kept for when "
        "neither can be had.",
        ("kb.c-difficile-first-line-treatment",),
        tuple(sorted({*active, *_handles(metronidazole)})),
        _proposed(metronidazole),
    )


# --- super-potent topical steroids under 12 --------------------------------------------------------------------


def _age_phrase(facts: RuleFacts) -> str:
    """ "10 months" for an infant (days of life are kept under 2 years), else "age 9"."""
    days = facts.context.demographics.age_days
    return f"{days * 12 // 365} months" if days is not None else f"age {facts.context.demographics.age_label}"


SUPER_POTENT_STEROIDS: Final = frozenset({"clobetasol", "halobetasol", "diflorasone"})
SUPER_POTENT_MIN_AGE: Final = 12


def super_potent_steroid_child(facts: RuleFacts) -> Iterator[Finding]:
    """Clobetasol, halobetasol or diflorasone under 12: their labels do not recommend them (adrenal suppression
    and skin atrophy through a child's larger surface area)."""
    age = facts.age
    if age is None or age >= SUPER_POTENT_MIN_AGE:
        return
    drugs = facts.with_ingredient(*SUPER_POTENT_STEROIDS)
    if not drugs:
        return
    yield Finding(
        "rule.super-potent-steroid-child",
        "warning",
        _short(
            f"{_names(drugs).capitalize()} at {_age_phrase(facts)}: not recommended under 12; "
            "consider a low-potency steroid such as hydrocortisone 1-2.5%"
        ),
        "Super-potent topical steroids suppress the adrenal axis and thin the skin more in children, whose skin "
        "absorbs more for their size.",
        ("kb.super-potent-topical-steroid-children",),
        _handles(drugs),
        _proposed(drugs),
    )


# --- ketorolac single doses by age and weight -------------------------------------------------------------------

KETOROLAC_REDUCED_PARENTERAL_MG: Final = 15.0  # 65 or over, under 50 kg, or raised creatinine
KETOROLAC_CHILD_MG_PER_KG: Final = 0.5  # a single IV or IM dose at 2-16 years
KETOROLAC_DOSE_TOLERANCE: Final = 0.1


def ketorolac_dose_age_weight(facts: RuleFacts) -> Iterator[Finding]:
    """A parenteral ketorolac dose above the label's for age and weight: 15 mg from 65 or under 50 kg; 0.5 mg/kg
    (at most 30 mg) for children."""
    age = facts.age
    if age is None:
        return
    reading = facts.current("weight")
    weight = reading.value if reading is not None else None
    for drug in facts.with_ingredient("ketorolac"):
        dosage = dosage_of(facts, drug)
        if not PARENTERAL.search(route_text(facts, drug)):
            continue  # oral and nasal ketorolac have other limits
        dose = dose_or_unit_mg(facts, drug, "ketorolac") if dosage is not None and dosage.dose else None
        if dose is None:
            continue
        if age < 17:
            if weight is None:
                continue
            limit = min(KETOROLAC_CHILD_MG_PER_KG * weight, 30.0)
            who = f"{shown(weight)} kg, age {facts.context.demographics.age_label}"
        elif age >= OLDER_ADULT_AGE or (weight is not None and weight < 50):
            limit = KETOROLAC_REDUCED_PARENTERAL_MG
            who = f"age {facts.context.demographics.age_label}" + (
                f", {shown(weight)} kg" if weight is not None else ""
            )
        else:
            continue
        if dose <= limit * (1 + KETOROLAC_DOSE_TOLERANCE):
            continue
        yield Finding(
            "rule.ketorolac-dose-age-weight",
            "warning",
            _short(
                f"Ketorolac {dose:g} mg IV/IM at {who}: label single dose {limit:g} mg; consider {limit:g} mg"
            ),
            "Ketorolac's kidney and bleeding harms rise with dose; the label halves the dose from 65 and under 50 kg "
            "and gives children 0.5 mg/kg.",
            ("kb.ketorolac-dose-age-weight",),
            (drug.handle, *((reading.handle,) if reading is not None else ())),
            _proposed([drug]),
        )


# --- dual antiplatelet therapy long after a minor stroke --------------------------------------------------------

DAPT_AFTER_STROKE_DAYS: Final = (
    90  # POINT and CHANCE: 21 days, at most 90 after a minor stroke or high-risk TIA
)
_STROKE_SETS: Final = ("ischaemic-stroke", "stroke", "stroke-type-unrecorded", "transient-ischaemic-attack")
_P2Y12_INHIBITORS: Final = frozenset({"clopidogrel", "ticagrelor", "prasugrel"})


def dual_antiplatelet_after_stroke(facts: RuleFacts) -> Iterator[Finding]:
    """Aspirin with a P2Y12 inhibitor more than 90 days after the latest stroke or TIA, with no coronary or
    peripheral arterial indication on record: beyond the first weeks, the pair adds bleeding without preventing
    strokes. An undated stroke is not known to be old, so it says nothing here."""
    if any(
        facts.ever(name)
        for name in ("coronary-heart-disease", "myocardial-infarction", "peripheral-arterial-disease")
    ):
        return
    strokes = {h for name in _STROKE_SETS for h in facts.ever(name)}
    if not strokes or facts.began_within(DAPT_AFTER_STROKE_DAYS, *_STROKE_SETS):
        return
    aspirin = tuple(e for e in facts.exposures if "aspirin" in e.ingredients and low_dose_aspirin(facts, e))
    p2y12 = facts.with_ingredient(*_P2Y12_INHIBITORS)
    if not aspirin or not p2y12:
        return
    yield Finding(
        "rule.dual-antiplatelet-after-stroke",
        "warning",
        _short(
            f"{_names(aspirin).capitalize()} with {_names(p2y12)} more than 90 days after the last stroke or TIA: "
            "consider one antiplatelet"
        ),
        "Dual antiplatelet therapy after a minor stroke or TIA is for 21-90 days; continued longer it raises major "
        "bleeding without further stroke prevention.",
        ("kb.dapt-after-minor-stroke-duration",),
        tuple(sorted({*strokes, *_handles(aspirin, p2y12)})),
        _proposed(aspirin, p2y12),
    )


# --- dabigatran with P-gp inhibitors by kidney function -------------------------------------------------------

# Pradaxa label: at CrCl 30-50 with dronedarone or systemic ketoconazole, 75 mg twice daily (atrial fibrillation);
# below 30, avoid any P-gp inhibitor.
DABIGATRAN_REDUCE_WITH: Final = frozenset({"dronedarone", "ketoconazole"})
DABIGATRAN_AVOID_BELOW_30_WITH: Final = frozenset(
    {"dronedarone", "ketoconazole", "amiodarone", "verapamil", "quinidine", "clarithromycin", "ticagrelor"}
)
DABIGATRAN_REDUCED_DAILY_MG: Final = 150.0


def dabigatran_pgp_inhibitor_kidney(facts: RuleFacts) -> Iterator[Finding]:
    """Dabigatran with a P-gp inhibitor the label names, judged by Cockcroft-Gault clearance: at 30-50 with
    dronedarone or ketoconazole above 75 mg twice daily; below 30 with any of them."""
    dabigatran = facts.with_ingredient("dabigatran")
    if not dabigatran:
        return
    crcl = renal_function(facts).crcl
    if crcl is None or crcl > 50:
        return
    named = DABIGATRAN_AVOID_BELOW_30_WITH if crcl < 30 else DABIGATRAN_REDUCE_WITH
    inhibitors = tuple(
        e for e in facts.exposures if not named.isdisjoint(e.ingredients) and not SKIN_EYE_EAR.search(e.label)
    )
    if not inhibitors:
        return
    for drug in dabigatran:
        if crcl >= 30:
            daily = daily_mg(
                dosage_of(facts, drug), unit_mg(drug, "dabigatran")
            )  # twice daily: no unit guess
            if daily is not None and daily <= DABIGATRAN_REDUCED_DAILY_MG:
                continue  # already 75 mg twice daily
            option = "consider 75 mg twice daily"
        else:
            option = "consider another anticoagulant"
        yield Finding(
            "rule.dabigatran-pgp-inhibitor-kidney",
            "warning",
            _short(f"Dabigatran with {_names(inhibitors)} at CrCl {shown(crcl)}: {option}"),
            "P-gp inhibitors raise dabigatran levels, and reduced kidney clearance adds to them: bleeding risk rises.",
            ("kb.dabigatran-pgp-inhibitor-kidney",),
            (drug.handle, *_handles(inhibitors), *renal_function(facts).crcl_inputs),
            _proposed([drug], inhibitors),
        )


LABEL_LIMIT_RULES: Final = (
    NSAID_CIRRHOSIS,
    dabigatran_pgp_inhibitor_kidney,
    metronidazole_for_c_difficile,
    super_potent_steroid_child,
    ketorolac_dose_age_weight,
    dual_antiplatelet_after_stroke,
    beers_alpha_blocker_hypertension,
    ticagrelor_aspirin_dose,
    prasugrel_age_weight,
    hydroxychloroquine_dose_weight,
    LOPERAMIDE_UNDER_2,
    BENZONATATE_UNDER_10,
    HONEY_UNDER_1,
    ibuprofen_under_6_months,
    ceftriaxone_neonate_calcium,
    beers_mineral_oil,
    beers_sliding_scale_insulin,
    bisphosphonate_long_term,
    metoclopramide_long_term,
    bisphosphonate_interval,
    weekly_incretin_interval,
    levothyroxine_interval,
    levothyroxine_full_dose_start,
    chc_blood_pressure_unknown,
    beers_sulfonylurea_monotherapy,
    glyburide_kidney_disease,
    doac_lead_in_beyond_its_days,
    beers_central_alpha_agonist_hypertension,
    cough_cold_under_4,
    opioid_cough_medicine_under_18,
    SULFONAMIDE_UNDER_2_MONTHS,
    ERYTHROMYCIN_UNDER_6_WEEKS,
    extended_release_opioid_interval,
    clindamycin_after_c_difficile,
)
# Patient-view only: what the chart lacks.
LABEL_LIMIT_CARE_GAP_RULES: Final = (diabetes_ckd_sglt2_absent,)
