"""Checks blind chart reviews raised: AF without anticoagulation, label contraindications (cilostazol, fentanyl patches, bupropion, triptans in vascular disease), Beers checks (digoxin dose, drug-disease), antibiotics by stage of pregnancy, drug-induced low sodium or magnesium, decongestants with high BP."""

# Each threshold is named once here with the knowledge-base entry it follows; tests/unit/test_rules_gaps.py
# tries it at, below and above. A fact the chart does not state (sex, age, a start date) never lowers a score
# or silences a card: unknown is not absent.

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from plugin.context.model import Problem
from plugin.rules import dosing
from plugin.rules.catalog import NEW_START_DAYS, Rule, rescue_or_single_dose
from plugin.rules.depth import MAGNESIUM_LOW_MG_DL
from plugin.rules.dose_range import analgesic_nsaids, daily_or_unit_mg, dose_or_unit_mg, unit_mg
from plugin.rules.dosing import EXTENDED_RELEASE, LOCAL_ROUTE
from plugin.rules.high_harm import mme_per_day
from plugin.rules.kidney import renal_function
from plugin.rules.label_checks import GASTROPROTECTION
from plugin.rules.model import Exposure, Finding, LabOrder, RuleFacts, Severity
from plugin.rules.monitoring import OLDER_ADULT_AGE, bp_high
from plugin.rules.phrasing import handles as _handles
from plugin.rules.phrasing import names as _names
from plugin.rules.phrasing import proposed as _proposed
from plugin.rules.phrasing import short as _short
from plugin.rules.renal_dosing import renal_dosing
from plugin.rules.renal_rules import criteria_met

__all__ = [
    "AF_ANTICOAGULATE_AT",
    "AF_DOAC_DAILY_MG",
    "BEERS_DIGOXIN_MAX_MG",
    "GAP_CARE_RULES",
    "GAP_MEDICATION_RULES",
    "PARKINSON_ANTIEMETICS",
    "PARKINSON_SPARED",
    "PREGNANCY_STAGE_ANTIBIOTICS",
    "REPAGLINIDE_CYP2C8_INHIBITORS",
    "TRIPTAN_VASCULAR_CONDITIONS",
    "VTE_ACUTE_DAYS",
    "cha2ds2_vasc",
]

# --- rule.af-anticoagulation-absent ------------------------------------------------------------------------

# ACC/AHA/ACCP/HRS 2023 (kb.af-anticoagulation-cha2ds2-vasc): anticoagulate at a CHA2DS2-VASc of 2 or more in
# men and 3 or more in women (an annual stroke risk of 2% or more). Unknown sex is held to the men's line.
AF_ANTICOAGULATE_AT: Final[dict[str, int]] = {"male": 2, "female": 3}
_ONE_POINT: Final = {
    "heart-failure": "C",
    "hypertension": "H",
    "diabetes": "D",
    "type-1-diabetes": "D",
    # Vascular disease: prior myocardial infarction, peripheral arterial disease, and (as ESC 2020 counts it)
    # significant coronary disease.
    "myocardial-infarction": "V",
    "peripheral-arterial-disease": "V",
    "coronary-heart-disease": "V",
}
_STROKE: Final = ("stroke", "ischaemic-stroke", "stroke-type-unrecorded")


def cha2ds2_vasc(facts: RuleFacts) -> tuple[int, tuple[str, ...], tuple[str, ...]]:
    """The score from charted problems, age and sex; the letters scored and the problem handles behind them."""
    letters: dict[str, int] = {}
    inputs: list[str] = []
    for value_set, letter in _ONE_POINT.items():
        if handles := facts.value_sets.get(value_set, ()):
            letters[letter] = 1
            inputs += handles
    if stroke := [h for v in _STROKE for h in facts.value_sets.get(v, ())]:
        letters["S2"] = 2
        inputs += stroke
    age = facts.age
    if age is not None and age >= 75:
        letters["A2"] = 2
    elif age is not None and age >= 65:
        letters["A"] = 1
    if facts.context.demographics.sex == "female":
        letters["Sc"] = 1
    return sum(letters.values()), tuple(letters), tuple(dict.fromkeys(inputs))


# Drugs that can convert AF to sinus rhythm: ordered without anticoagulation they carry the stroke risk of a
# cardioversion, so the card is about that order.
RHYTHM_CONTROL_DRUGS: Final = frozenset(
    {"amiodarone", "dronedarone", "flecainide", "propafenone", "sotalol", "dofetilide", "ibutilide"}
)


def af_anticoagulation_absent(facts: RuleFacts) -> Iterator[Finding]:
    """AF with no anticoagulant: a warning from an annual stroke risk of about 2% (CHA2DS2-VASc 2 in men, 3 in
    women), information where anticoagulation is reasonable (1 in men, 2 in women), as the entry says. A rhythm
    drug ordered now is what the card is about: converting AF without anticoagulation risks a stroke."""
    af = facts.value_sets.get("atrial-fibrillation", ())
    if not af or facts.with_class("anticoagulant") or facts.context.demographics.deceased:
        return
    score, letters, inputs = cha2ds2_vasc(facts)
    line = AF_ANTICOAGULATE_AT["female" if facts.context.demographics.sex == "female" else "male"]
    if score < line - 1:
        return
    rhythm = tuple(e for e in facts.with_ingredient(*RHYTHM_CONTROL_DRUGS) if e.proposed)
    scored = f"Atrial fibrillation, CHA2DS2-VASc {score} ({', '.join(letters)}), no anticoagulant on the list"
    if score >= line:
        severity: Severity = "warning"
        summary = f"{scored}: consider anticoagulation or record why not"
        why = (
            "At this score the annual stroke risk is about 2% or more, and anticoagulation lowers it by about two "
            "thirds; aspirin is no substitute."
        )
    else:
        severity = "info"
        summary = f"{scored}: anticoagulation is reasonable; consider discussing it"
        why = "At this score the annual stroke risk is about 1-2%, where anticoagulation is reasonable (ACC/AHA 2023)."
    yield Finding(
        "rule.af-anticoagulation-absent",
        severity,
        _short(summary),
        why,
        ("kb.af-anticoagulation-cha2ds2-vasc", "kb.af-aspirin-not-alternative"),
        (*af, *inputs, *_handles(rhythm)),
        _proposed(rhythm),
    )


# --- rule.nsaid-uncontrolled-hypertension --------------------------------------------------------------------


def nsaid_uncontrolled_hypertension(facts: RuleFacts) -> Iterator[Finding]:
    """An analgesic NSAID taken with hypertension on the problem list and a current blood pressure at or above
    140/90: the NSAID is a removable cause, named before treatment is stepped up. Low-dose aspirin and skin
    products are not analgesic NSAIDs here."""
    hypertension = facts.value_sets.get("hypertension", ())
    nsaids = tuple(e for e in analgesic_nsaids(facts) if _taken_regularly(facts, e))
    if not hypertension or not nsaids:
        return
    systolic, diastolic = facts.current("systolic_bp"), facts.current("diastolic_bp")
    if not bp_high(systolic, diastolic):
        return
    readings = tuple(m for m in (systolic, diastolic) if m is not None)
    bp = "/".join(f"{m.value:g}" for m in readings)
    yield Finding(
        "rule.nsaid-uncontrolled-hypertension",
        "warning",
        _short(
            f"BP {bp} with hypertension on {_names(nsaids)}: consider acetaminophen or a topical NSAID and "
            "rechecking BP off it"
        ),
        "NSAIDs raise blood pressure and blunt antihypertensives; in uncontrolled hypertension they are a cause "
        "to remove before adding treatment.",
        ("kb.nsaid-uncontrolled-hypertension",),
        (*_handles(nsaids), *hypertension, *(m.handle for m in readings)),
        _proposed(nsaids),
    )


def _taken_regularly(facts: RuleFacts, exposure: Exposure) -> bool:
    """Scheduled by mouth at least once a day, as the dosage (or its text) says: an occasional or one-off dose
    (ketorolac in the emergency department) moves blood pressure little, and an unread dosage says nothing."""
    if dosing.is_parenteral(dosing.route_text(facts, exposure)):
        return False
    dosage = dosing.dosage_of(facts, exposure)
    if dosage is None or dosage.as_needed:
        return False
    times = dosing.per_day(dosage.frequency)
    return times is not None and times >= 1


# --- rule.benzodiazepine-ptsd --------------------------------------------------------------------------------


def benzodiazepine_ptsd(facts: RuleFacts) -> Iterator[Finding]:
    """A benzodiazepine with PTSD on the problem list: the VA/DoD guideline recommends against them there
    (no benefit for PTSD, worse recovery, dependence, and danger with alcohol or opioids). A seizure rescue
    (rectal or nasal diazepam, nasal midazolam) or a single injected dose is not treatment of PTSD."""
    ptsd = facts.value_sets.get("ptsd", ())
    if not ptsd:
        return
    drugs = tuple(e for e in facts.with_class("benzodiazepine") if not rescue_or_single_dose(e))
    if not drugs:
        return
    yield Finding(
        "rule.benzodiazepine-ptsd",
        "warning",
        _short(
            f"PTSD and {_names(drugs)}: consider a taper and an SSRI, SNRI or trauma-focused psychotherapy instead"
        ),
        "Benzodiazepines do not treat PTSD, may hinder recovery, and add dependence, falls and overdose risk "
        "(VA/DoD guideline).",
        ("kb.benzodiazepine-ptsd",),
        (*_handles(drugs), *ptsd),
        _proposed(drugs),
    )


# --- rule.chc-postpartum -------------------------------------------------------------------------------------

CHC_POSTPARTUM_AVOID_DAYS: Final = 21  # US MEC category 4
CHC_POSTPARTUM_CAUTION_DAYS: Final = 42  # category 3 with other VTE risk factors; 2 without


def chc_postpartum(facts: RuleFacts) -> Iterator[Finding]:
    """Estrogen-containing contraception within 21 days of a delivery (US MEC 4: the postpartum clot risk) or
    within 42 days (MEC 3 with other risk factors, such as a caesarean, and while breastfeeding under 30 days).
    An undated delivery record counts as recent: it is shown, not assumed old."""
    chc = tuple(e for e in facts.with_class("hormonal-contraceptive") if e.has("estrogen"))
    if not chc:
        return
    delivered = facts.began_within(CHC_POSTPARTUM_CAUTION_DAYS, "postpartum")
    if not delivered:
        return
    problems = {p.handle: p for p in (*facts.context.problems, *facts.context.past_problems)}
    ages = [problems[h].onset_days_ago for h in delivered if h in problems]
    days = min((a for a in ages if a is not None), default=None)
    early = days is None or days < CHC_POSTPARTUM_AVOID_DAYS
    when = "an undated delivery" if days is None else f"a delivery {days} days ago"
    yield Finding(
        "rule.chc-postpartum",
        "critical" if early else "warning",
        _short(
            f"{_names(chc).capitalize()} after {when}: consider a progestin-only method or an IUD "
            + ("(no estrogen before 21 days)" if early else "(estrogen from 42 days if other clot risks)")
        ),
        "The postpartum weeks carry a high clot risk that estrogen adds to: US MEC 4 before 21 days, 3 to 42 days "
        "with other risk factors.",
        ("kb.chc-postpartum",),
        (*_handles(chc), *delivered),
        _proposed(chc),
    )


# --- rule.osteoporosis-treatment-absent ---------------------------------------------------------------------

OSTEOPOROSIS_DRUGS: Final = frozenset(
    {"denosumab", "teriparatide", "abaloparatide", "romosozumab", "raloxifene"}
)
FRAGILITY_FRACTURE_FROM_AGE: Final = 50
FRAGILITY_FRACTURE_WITHIN_DAYS: Final = 5 * 365


def osteoporosis_treatment_absent(facts: RuleFacts) -> Iterator[Finding]:
    """A hip or vertebral fracture from 50 years (a fragility fracture establishes osteoporosis whatever the bone
    density), active or within five years, with no osteoporosis drug: the gap the secondary fracture prevention
    guidance names. A bisphosphonate stopped for a drug holiday is on the history, not current, so it is shown."""
    if facts.age is None or facts.age < FRAGILITY_FRACTURE_FROM_AGE or facts.context.demographics.deceased:
        return
    fractures = facts.began_within(FRAGILITY_FRACTURE_WITHIN_DAYS, "fragility-fracture", active_counts=True)
    if not fractures:
        return
    if facts.with_class("bisphosphonate") or facts.with_ingredient(*OSTEOPOROSIS_DRUGS):
        return
    yield Finding(
        "rule.osteoporosis-treatment-absent",
        "warning",
        _short(
            "Hip or vertebral fracture after 50 and no osteoporosis drug on the list: consider treatment "
            "(a bisphosphonate, or denosumab with reduced kidney function) with vitamin D and calcium"
        ),
        "A fragility fracture doubles the risk of the next one, most in the first two years, and osteoporosis "
        "drugs cut it by a third to two thirds.",
        ("kb.fragility-fracture-osteoporosis-treatment",),
        fractures,
    )


# --- rule.copd-ics-monotherapy -------------------------------------------------------------------------------


def copd_ics_monotherapy(facts: RuleFacts) -> Iterator[Finding]:
    """COPD (without asthma, where an ICS is the foundation) on an inhaled corticosteroid with no long-acting
    bronchodilator: GOLD does not recommend ICS alone, which adds pneumonia risk without the bronchodilator's
    benefit."""
    copd = facts.value_sets.get("copd", ())
    if not copd or facts.has_condition("asthma"):
        return
    ics = tuple(e for e in facts.with_class("ics") if not dosing.NASAL.search(e.label))
    if not ics or facts.with_class("laba", "lama"):
        return
    yield Finding(
        "rule.copd-ics-monotherapy",
        "warning",
        _short(
            f"COPD on {_names(ics)} without a long-acting bronchodilator: consider a LAMA/LABA "
            "(ICS alone is not recommended)"
        ),
        "In COPD an inhaled corticosteroid alone adds pneumonia risk without the benefit of long-acting "
        "bronchodilators, which are the foundation of maintenance treatment (GOLD).",
        ("kb.copd-ics-monotherapy", "kb.copd-initial-maintenance"),
        (*_handles(ics), *copd),
        _proposed(ics),
    )


# --- rule.beers-amiodarone-first-line ----------------------------------------------------------------------


def beers_amiodarone_first_line(facts: RuleFacts) -> Iterator[Finding]:
    """AGS Beers 2023: avoid amiodarone as first-line therapy for AF at 65+ unless heart failure or
    substantial left ventricular hypertrophy. Whether it was first-line, and hypertrophy, are not in the chart:
    the card is information that asks, not a warning that decides."""
    if facts.age is None or facts.age < OLDER_ADULT_AGE:
        return
    amiodarone = tuple(e for e in facts.exposures if "amiodarone" in e.ingredients)
    af = facts.value_sets.get("atrial-fibrillation", ())
    if not amiodarone or not af or facts.has_condition("heart-failure"):
        return
    yield Finding(
        "rule.beers-amiodarone-first-line",
        "info",
        _short(
            f"Age {facts.context.demographics.age_label}, amiodarone for atrial fibrillation without heart "
            "failure: if first-line, consider rate control or another rhythm drug"
        ),
        "Amiodarone's thyroid, lung, liver and eye toxicity outweighs its benefit as a first choice for AF in "
        "older adults (AGS Beers criteria).",
        ("kb.beers-amiodarone-first-line-af",),
        (*_handles(amiodarone), *af),
        _proposed(amiodarone),
    )


# --- rule.parkinson-dopamine-blocker and rule.cilostazol-heart-failure ----------------------------------------

# AGS Beers 2023 (drug-disease): in Parkinson disease avoid antipsychotics (quetiapine, clozapine and
# pimavanserin excepted) and the antiemetics metoclopramide, prochlorperazine and promethazine.
PARKINSON_SPARED: Final = frozenset({"quetiapine", "clozapine", "pimavanserin"})
PARKINSON_ANTIEMETICS: Final = frozenset({"metoclopramide", "prochlorperazine", "promethazine"})


def parkinson_dopamine_blocker(facts: RuleFacts) -> Iterator[Finding]:
    # Dementia with Lewy bodies carries the same, often worse, sensitivity to dopamine blockade.
    parkinson = (
        *facts.value_sets.get("parkinsons-disease", ()),
        *facts.value_sets.get("lewy-body-dementia", ()),
    )
    if not parkinson:
        return
    blockers = tuple(
        e
        for e in facts.exposures
        if (e.has("antipsychotic") and PARKINSON_SPARED.isdisjoint(e.ingredients))
        or not PARKINSON_ANTIEMETICS.isdisjoint(e.ingredients)
    )
    if not blockers:
        return
    yield Finding(
        "rule.parkinson-dopamine-blocker",
        "warning",
        _short(
            f"Parkinson disease or Lewy body dementia and {_names(blockers)}: consider quetiapine, clozapine or a non-dopamine-blocking "
            "antiemetic instead"
        ),
        "Dopamine-blocking drugs worsen parkinsonism (AGS Beers criteria).",
        ("kb.beers-parkinson-dopamine-blockers",),
        (*parkinson, *_handles(blockers)),
        _proposed(blockers),
    )


def cilostazol_heart_failure(facts: RuleFacts) -> Iterator[Finding]:
    failure = facts.value_sets.get("heart-failure", ())
    cilostazol = tuple(e for e in facts.exposures if "cilostazol" in e.ingredients)
    if not failure or not cilostazol:
        return
    yield Finding(
        "rule.cilostazol-heart-failure",
        "critical",
        _short("Heart failure and cilostazol, which its label contraindicates: consider stopping it"),
        "Cilostazol is a phosphodiesterase-3 inhibitor, a class that shortened survival in heart failure (boxed "
        "warning).",
        ("kb.cilostazol-heart-failure",),
        (*failure, *_handles(cilostazol)),
        _proposed(cilostazol),
    )


# --- rule.decongestant-high-blood-pressure -------------------------------------------------------------------

DECONGESTANTS: Final = frozenset({"pseudoephedrine", "phenylephrine"})


def decongestant_high_blood_pressure(facts: RuleFacts) -> Iterator[Finding]:
    """An oral sympathomimetic decongestant with a current blood pressure at or above 140/90 (the limit of
    rule.blood-pressure-uncontrolled): ACC/AHA 2017 lists decongestants among drugs that raise it."""
    decongestants = tuple(
        e
        for e in facts.exposures
        if not DECONGESTANTS.isdisjoint(e.ingredients) and not LOCAL_ROUTE.search(e.label)
    )
    if not decongestants:
        return
    systolic, diastolic = facts.current("systolic_bp"), facts.current("diastolic_bp")
    if not bp_high(systolic, diastolic):
        return
    shown = "/".join(f"{m.value:g}" for m in (systolic, diastolic) if m is not None)
    yield Finding(
        "rule.decongestant-high-blood-pressure",
        "warning",
        _short(
            f"BP {shown} with {_names(decongestants)}: consider stopping the decongestant (saline or a nasal steroid)"
        ),
        "Oral decongestants constrict blood vessels and raise blood pressure.",
        ("kb.decongestants-raise-blood-pressure",),
        (*_handles(decongestants), *(m.handle for m in (systolic, diastolic) if m is not None)),
        _proposed(decongestants),
    )


# --- label contraindications and Beers from held-out v5 -------------------------------------------------------

# Duragesic label: only for opioid-tolerant patients, at least 60 mg oral morphine a day (or its equivalent) for
# a week or longer. Other opioids' MME/day stands in for that history; a dose that cannot be read shows none.
OPIOID_TOLERANT_MME: Final = 60.0
_PATCH = re.compile(r"\b(transdermal|patch)\b", re.IGNORECASE)


def _other_opioids(facts: RuleFacts, new: list[Exposure]) -> tuple[list[Exposure], float]:
    """The opioids already taken beside `new` ones, and their known MME a day (an unreadable dose adds none)."""
    others = [e for e in facts.with_class("opioid") if e not in new and not e.proposed]
    return others, sum(mme_per_day(facts, e)[0] or 0.0 for e in others)


def fentanyl_patch_opioid_naive(facts: RuleFacts) -> Iterator[Finding]:
    patches = [
        e
        for e in facts.exposures
        if "fentanyl" in e.ingredients and _PATCH.search(e.label) and e.new(NEW_START_DAYS)
    ]
    if not patches:
        return
    others, known = _other_opioids(facts, patches)
    if any("fentanyl" in e.ingredients and _PATCH.search(e.label) for e in others):
        return  # already on an established patch: tolerant (two patches are the duplicate rule's)
    if known >= OPIOID_TOLERANT_MME:
        return
    shown = f"{round(known):g} MME/day of other opioids" if others else "no other opioid"
    yield Finding(
        "rule.fentanyl-patch-opioid-naive",
        "critical",
        _short(f"Fentanyl patch with {shown}: not shown to be opioid-tolerant; consider another analgesic"),
        "Transdermal fentanyl is contraindicated unless the patient already takes at least 60 MME a day: in others "
        "it can stop breathing.",
        ("kb.fentanyl-patch-opioid-tolerant",),
        (*_handles(patches), *_handles(others)),
        _proposed(patches),
    )


# Oral morphine and oxycodone solutions of 100 mg per 5 mL (20 mg/mL) are labelled for opioid-tolerant patients
# only: a millilitre mistaken for a milligram is a 20-fold overdose.
_ORAL_CONCENTRATE = re.compile(
    r"\b(100\s*mg\s*(?:/|per)\s*5\s*ml|20\s*mg\s*(?:/|per)\s*ml|concentrate|intensol)\b", re.IGNORECASE
)
CONCENTRATE_INGREDIENTS: Final = frozenset({"morphine", "oxycodone"})


def opioid_concentrate_opioid_naive(facts: RuleFacts) -> Iterator[Finding]:
    concentrates = [
        e
        for e in facts.exposures
        if not CONCENTRATE_INGREDIENTS.isdisjoint(e.ingredients)
        and _ORAL_CONCENTRATE.search(e.label)
        and e.new(NEW_START_DAYS)
    ]
    if not concentrates:
        return
    others, known = _other_opioids(facts, concentrates)
    if known >= OPIOID_TOLERANT_MME:
        return
    shown = f"{round(known):g} MME/day of other opioids" if others else "no other opioid"
    yield Finding(
        "rule.opioid-concentrate-opioid-naive",
        "critical",
        _short(
            f"{_names(concentrates).capitalize()} 20 mg/mL concentrate with {shown}: for opioid-tolerant patients "
            "only; consider a 2 mg/mL solution or tablets"
        ),
        "The 100 mg per 5 mL solutions are only for patients already tolerant of opioids; a dosing error in "
        "millilitres is a many-fold overdose.",
        ("kb.opioid-oral-concentrate-tolerant",),
        (*_handles(concentrates), *_handles(others)),
        _proposed(concentrates),
    )


def bupropion_seizure_risk(facts: RuleFacts) -> Iterator[Finding]:
    bupropion = tuple(e for e in facts.exposures if "bupropion" in e.ingredients)
    problems = (*facts.value_sets.get("epilepsy", ()), *facts.value_sets.get("eating-disorder", ()))
    if not bupropion or not problems:
        return
    yield Finding(
        "rule.bupropion-seizure-risk",
        "critical",
        _short(
            "Bupropion with a seizure disorder or an eating disorder, which its label contraindicates: consider another drug"
        ),
        "Bupropion lowers the seizure threshold, and seizures were more frequent in bulimia and anorexia nervosa.",
        ("kb.bupropion-seizure-contraindications",),
        (*problems, *_handles(bupropion)),
        _proposed(bupropion),
    )


# Drugs that cause hyponatraemia (AGS Beers 2023 list of SIADH-causing drugs); moderate below 130 mmol/L,
# profound below 125 (European hyponatraemia guideline 2014).
SODIUM_MODERATE: Final = 130.0
SODIUM_PROFOUND: Final = 125.0
_SODIUM_LOWERING_CLASSES: Final = ("ssri", "snri", "thiazide")
_SODIUM_LOWERING: Final = frozenset({"carbamazepine", "oxcarbazepine", "mirtazapine", "chlorpropamide"})


def hyponatraemia_on_lowering_drug(facts: RuleFacts) -> Iterator[Finding]:
    sodium = facts.current("sodium")
    if sodium is None or sodium.value >= SODIUM_MODERATE:
        return
    drugs = tuple(
        e
        for e in facts.exposures
        if e.has(*_SODIUM_LOWERING_CLASSES) or not _SODIUM_LOWERING.isdisjoint(e.ingredients)
    )
    if not drugs:
        return
    yield Finding(
        "rule.hyponatraemia-on-lowering-drug",
        "critical" if sodium.value < SODIUM_PROFOUND else "warning",
        _short(
            f"Sodium {sodium.value:g} mmol/L on {_names(drugs)}: consider stopping the likely cause and rechecking"
        ),
        "These drugs can cause hyponatraemia (SIADH or salt loss), which brings confusion, falls and seizures.",
        ("kb.drugs-lowering-sodium",),
        (sodium.handle, *_handles(drugs)),
        _proposed(drugs),
    )


PPIS: Final = frozenset(GASTROPROTECTION) - {"misoprostol"}


def ppi_low_magnesium(facts: RuleFacts) -> Iterator[Finding]:
    magnesium = facts.current("magnesium")
    ppis = facts.with_ingredient(*PPIS)
    if magnesium is None or magnesium.value >= MAGNESIUM_LOW_MG_DL or not ppis:
        return
    yield Finding(
        "rule.ppi-low-magnesium",
        "warning",
        _short(
            f"Magnesium {magnesium.value:g} mg/dL on {_names(ppis)}: consider whether the PPI is still needed and replacing magnesium"
        ),
        "Long-term proton-pump inhibitors can cause low magnesium, which can bring arrhythmias and seizures.",
        ("kb.ppi-hypomagnesaemia",),
        (magnesium.handle, *_handles(ppis)),
        _proposed(ppis),
    )


def beers_megestrol(facts: RuleFacts) -> Iterator[Finding]:
    if facts.age is None or facts.age < OLDER_ADULT_AGE:
        return
    megestrol = tuple(e for e in facts.exposures if "megestrol" in e.ingredients)
    if not megestrol:
        return
    yield Finding(
        "rule.beers-megestrol",
        "warning",
        _short(
            f"Age {facts.context.demographics.age_label} on megestrol: consider stopping it (little weight gain, more clots)"
        ),
        "Megestrol adds little weight in older adults and raises the risk of blood clots and death (AGS Beers criteria).",
        ("kb.beers-megestrol",),
        _handles(megestrol),
        _proposed(megestrol),
    )


def beers_systemic_estrogen(facts: RuleFacts) -> Iterator[Finding]:
    """Oral or transdermal estrogen from 65: Beers avoids it (breast and endometrial cancer, no cardioprotection
    or cognitive protection); a low-dose vaginal product is acceptable and is not counted."""
    if facts.age is None or facts.age < OLDER_ADULT_AGE:
        return
    estrogens = tuple(e for e in facts.with_class("estrogen") if not LOCAL_ROUTE.search(e.label))
    if not estrogens:
        return
    yield Finding(
        "rule.beers-systemic-estrogen",
        "warning",
        _short(
            f"Age {facts.context.demographics.age_label} on {_names(estrogens)}: consider tapering off systemic "
            "estrogen (vaginal estrogen is acceptable)"
        ),
        "In older adults systemic estrogen raises breast and endometrial cancer, clots and stroke and protects neither "
        "heart nor memory (AGS Beers criteria).",
        ("kb.beers-systemic-estrogen",),
        _handles(estrogens),
        _proposed(estrogens),
    )


# --- rule.triptan-vascular-disease -------------------------------------------------------------------------

# Triptan labels (section 4, Contraindications): ischaemic coronary artery disease, a history of stroke or
# TIA, and peripheral vascular disease, because triptans constrict arteries.
TRIPTAN_VASCULAR_CONDITIONS: Final = (
    "coronary-heart-disease",
    "myocardial-infarction",
    "stroke",
    "ischaemic-stroke",
    "stroke-type-unrecorded",
    "peripheral-arterial-disease",
)


def triptan_vascular_disease(facts: RuleFacts) -> Iterator[Finding]:
    triptans = facts.with_class("triptan")
    vascular = tuple(
        dict.fromkeys(h for v in TRIPTAN_VASCULAR_CONDITIONS for h in facts.value_sets.get(v, ()))
    )
    if not triptans or not vascular:
        return
    yield Finding(
        "rule.triptan-vascular-disease",
        "critical",
        _short(
            f"{_names(triptans).capitalize()} with ischaemic vascular disease on record, which its label "
            "contraindicates: consider a non-vasoconstricting migraine treatment"
        ),
        "Triptans constrict coronary and other arteries and can cause myocardial infarction or stroke in "
        "patients with ischaemic vascular disease (label contraindication).",
        ("kb.triptan-ischaemic-vascular-disease",),
        (*_handles(triptans), *vascular),
        _proposed(triptans),
    )


# --- rule.beers-digoxin-dose --------------------------------------------------------------------------------

BEERS_DIGOXIN_MAX_MG: Final = 0.125  # AGS Beers 2023 (kb.beers-digoxin): avoid more than 0.125 mg a day


def beers_digoxin_dose(facts: RuleFacts) -> Iterator[Finding]:
    """Digoxin above 0.125 mg a day at 65 or over. The daily dose where the dosage gives it, else the tablet
    strength (digoxin is taken once a day); a dose that cannot be read says nothing."""
    if facts.age is None or facts.age < OLDER_ADULT_AGE:
        return
    for exposure in facts.exposures:
        if "digoxin" not in exposure.ingredients:
            continue
        mg = daily_or_unit_mg(facts, exposure, "digoxin")
        if mg is None or mg <= BEERS_DIGOXIN_MAX_MG:
            continue
        yield Finding(
            "rule.beers-digoxin-dose",
            "warning",
            _short(
                f"Age {facts.context.demographics.age_label} on digoxin {mg:g} mg a day: consider at most "
                f"{BEERS_DIGOXIN_MAX_MG:g} mg a day and a level"
            ),
            "Above 0.125 mg a day digoxin adds toxicity in older adults without adding benefit in heart failure "
            "or atrial fibrillation (AGS Beers criteria).",
            ("kb.beers-digoxin",),
            (exposure.handle,),
            _proposed((exposure,)),
        )


# --- rule.pregnancy-stage-antibiotic ------------------------------------------------------------------------

# (ingredient, first week of concern, first week past it or None, the stage as the card says it, knowledge-base
# id). Antibiotics acceptable at other stages of pregnancy: sulfonamides displace bilirubin near delivery
# (kernicterus in the newborn), nitrofurantoin can cause haemolytic anaemia in the newborn at term, and
# trimethoprim antagonises folate in the first trimester.
PREGNANCY_STAGE_ANTIBIOTICS: Final[tuple[tuple[str, int, int | None, str, str], ...]] = (
    ("sulfamethoxazole", 28, None, "the third trimester", "kb.co-trimoxazole-pregnancy"),
    ("nitrofurantoin", 38, None, "term (38 weeks or more)", "kb.nitrofurantoin-pregnancy-term"),
    # Trimethoprim is a folate antagonist: in the first trimester only when no alternative suits (ACOG).
    ("trimethoprim", 0, 14, "the first trimester", "kb.co-trimoxazole-pregnancy"),
)


def pregnancy_stage_antibiotic(facts: RuleFacts) -> Iterator[Finding]:
    if not facts.pregnant:
        return
    weeks = facts.context.pregnancy.weeks
    said: set[str] = set()
    for ingredient, from_week, below_week, stage, kb in PREGNANCY_STAGE_ANTIBIOTICS:
        drugs = tuple(e for e in facts.exposures if ingredient in e.ingredients and e.handle not in said)
        if not drugs or (weeks is not None and not from_week <= weeks < (below_week or 99)):
            continue
        said.update(e.handle for e in drugs)
        # Without a dated pregnancy the stage cannot be placed: said as information, not silence.
        yield Finding(
            "rule.pregnancy-stage-antibiotic",
            "info" if weeks is None else "warning",
            _short(
                f"Pregnant ({'gestation unknown' if weeks is None else f'{weeks} weeks'}) and on "
                f"{_names(drugs)}: consider another antibiotic"
                + (" if near term or in the first trimester" if weeks is None else f" in {stage}")
            ),
            "At this stage this antibiotic can harm the baby (folate antagonism early, kernicterus with "
            "sulfonamides or haemolysis with nitrofurantoin near delivery), so another is preferred.",
            (kb,),
            (*_handles(drugs), *facts.context.pregnancy.evidence),
            _proposed(drugs),
        )


# --- rule.doac-dose-indication ----------------------------------------------------------------------------

# The daily doses each DOAC's label gives for non-valvular atrial fibrillation (mg a day): anything else is a
# dose for another indication (rivaroxaban 10 mg, VTE prophylaxis; 2.5 mg twice daily, vascular disease).
AF_DOAC_DAILY_MG: Final[dict[str, frozenset[float]]] = {
    "apixaban": frozenset({10.0, 5.0}),
    "rivaroxaban": frozenset({20.0, 15.0}),
    "dabigatran": frozenset({300.0, 150.0}),
    "edoxaban": frozenset({60.0, 30.0}),
}
# Apixaban's and rivaroxaban's extended-prevention doses (2.5 mg twice daily, 10 mg daily) follow at least six
# months of treatment; within this many days of a VTE they treat too little (labels, section 2).
VTE_ACUTE_DAYS: Final = 180
VTE_UNDER_DOSE_DAILY_MG: Final[dict[str, float]] = {"apixaban": 5.0, "rivaroxaban": 10.0}
# Treatment of an acute VTE starts higher (labels, section 2): apixaban 10 mg twice daily for 7 days, rivaroxaban
# 15 mg twice daily for 21 days. A first order at the maintenance dose (10 and 20 mg a day) inside that window
# skips it: (maintenance daily mg, lead-in days, the lead-in as the card offers it).
VTE_LEAD_IN: Final[dict[str, tuple[float, int, str]]] = {
    "apixaban": (10.0, 7, "10 mg twice daily for the first 7 days"),
    "rivaroxaban": (20.0, 21, "15 mg twice daily for the first 21 days"),
}


def doac_dose_indication(facts: RuleFacts) -> Iterator[Finding]:
    """A DOAC dose that is not the label's dose for the indication on record: for atrial fibrillation (no
    recent VTE), a daily dose outside the AF doses, or apixaban 2.5 mg twice daily with fewer than two of its
    reduction criteria (all three known); for a VTE within six months (no AF), an extended-prevention dose.
    A dose that cannot be read, or a chart with both indications, says nothing: the prescriber's choice stands."""
    af = facts.value_sets.get("atrial-fibrillation", ())
    problems = {p.handle: p for p in facts.context.problems}
    recent_vte = tuple(
        h
        for h in facts.value_sets.get("venous-thromboembolism", ())
        if (days := problems[h].onset_days_ago) is not None and days <= VTE_ACUTE_DAYS
    )
    if bool(af) == bool(recent_vte):
        return
    for exposure in facts.with_class("doac"):
        ingredient = next((i for i in exposure.ingredients if i in AF_DOAC_DAILY_MG), None)
        if (
            ingredient is None
            or (daily := dosing.daily_mg(dosing.dosage_of(facts, exposure), unit_mg(exposure, ingredient)))
            is None
        ):
            continue
        if af:
            reason, kidney = _af_dose_problem(facts, ingredient, daily)
            condition = (*af, *kidney)
        else:
            low = VTE_UNDER_DOSE_DAILY_MG.get(ingredient)
            reason = (
                f"{daily:g} mg a day is an extended-prevention dose, not treatment within 6 months of a VTE"
                if low is not None and daily <= low
                else _skipped_lead_in(facts, exposure, ingredient, daily, recent_vte, problems)
            )
            condition = recent_vte
        if reason is None:
            continue
        yield Finding(
            "rule.doac-dose-indication",
            "warning",
            _short(f"{ingredient.capitalize()}: {reason}: consider the labelled dose"),
            "A DOAC dose meant for another indication leaves the patient under-protected against clots.",
            (
                "kb.doac-dose-by-indication",
                *(("kb.apixaban-dose-criteria",) if ingredient == "apixaban" else ()),
            ),
            (exposure.handle, *condition),
            _proposed((exposure,)),
        )


def _skipped_lead_in(
    facts: RuleFacts,
    exposure: Exposure,
    ingredient: str,
    daily: float,
    recent_vte: tuple[str, ...],
    problems: Mapping[str, Problem],
) -> str | None:
    """A new order at the maintenance dose within the lead-in window of a VTE: with no other order of the drug
    on the chart it skips the lead-in; beside a current order of the drug (the lead-in being taken) it cuts the
    lead-in short. Another draft of the drug ordered beside it is the lead-in written out, so nothing is said."""
    lead_in = VTE_LEAD_IN.get(ingredient)
    if lead_in is None or not exposure.proposed:
        return None
    maintenance, days, option = lead_in
    newest = min((d for h in recent_vte if (d := problems[h].onset_days_ago) is not None), default=None)
    if abs(daily - maintenance) >= 0.01 or newest is None or newest >= days:
        return None
    others = [e for e in facts.with_ingredient(ingredient) if e.handle != exposure.handle]
    if not others:
        return f"{daily:g} mg a day from the start skips the lead-in of {option}"
    if all(not e.proposed for e in others):
        return f"{daily:g} mg a day on day {newest + 1} cuts short the lead-in of {option}"
    return None


# The reduced AF dose of the DOACs whose US labels reduce by creatinine clearance alone, and the CrCl (mL/min,
# Cockcroft-Gault) above which the full dose is labelled: rivaroxaban 15 mg daily at 50 or less, dabigatran 75 mg
# twice daily at 15-30, edoxaban 30 mg daily at 15-50 (its weight and P-gp reductions are for VTE only).
AF_REDUCED_DAILY_MG_UP_TO_CRCL: Final[dict[str, tuple[float, float]]] = {
    "rivaroxaban": (15.0, 50.0),
    "dabigatran": (150.0, 30.0),
    "edoxaban": (30.0, 50.0),
}


def _af_dose_problem(facts: RuleFacts, ingredient: str, daily: float) -> tuple[str | None, tuple[str, ...]]:
    """Why an AF dose is not the label's for this patient, with the kidney facts it rests on."""
    if not any(abs(daily - dose) < 0.01 for dose in AF_DOAC_DAILY_MG[ingredient]):
        return f"{daily:g} mg a day is not an atrial fibrillation dose", ()
    if (reduced := AF_REDUCED_DAILY_MG_UP_TO_CRCL.get(ingredient)) is not None:
        dose, up_to = reduced
        kidney = renal_function(facts)
        # A CrCl computed at the age cap is an upper bound, so it cannot show the full dose was due.
        if (
            abs(daily - dose) < 0.01
            and kidney.crcl is not None
            and not kidney.age_capped
            and kidney.crcl > up_to
        ):
            return (
                f"{daily:g} mg a day is the reduced dose, but CrCl is {kidney.crcl:.0f} (labelled above {up_to:g})",
                kidney.crcl_inputs,
            )
        return None, ()
    if ingredient != "apixaban" or daily > 5.0:
        return None, ()
    drug = renal_dosing().match(("apixaban",))
    if drug is None or drug.criteria is None:
        return None, ()
    met, unread, _ = criteria_met(drug.criteria, facts, renal_function(facts))
    if unread or len(met) >= drug.criteria.need:
        return None, ()
    return "2.5 mg twice daily with fewer than two reduction criteria (age 80, 60 kg, creatinine 1.5)", ()


# --- rule.repaglinide-cyp2c8-inhibitor ----------------------------------------------------------------------

# Repaglinide's label (sections 4 and 7): gemfibrozil is contraindicated (exposure about eightfold); with
# clopidogrel avoid, or keep repaglinide to at most 4 mg a day, because both block its CYP2C8 clearance and
# severe hypoglycaemia follows.
REPAGLINIDE_CYP2C8_INHIBITORS: Final[dict[str, Severity]] = {
    "gemfibrozil": "critical",
    "clopidogrel": "warning",
}


def repaglinide_cyp2c8_inhibitor(facts: RuleFacts) -> Iterator[Finding]:
    repaglinide = tuple(e for e in facts.exposures if "repaglinide" in e.ingredients)
    if not repaglinide:
        return
    for inhibitor, severity in REPAGLINIDE_CYP2C8_INHIBITORS.items():
        others = tuple(e for e in facts.exposures if inhibitor in e.ingredients)
        if not others:
            continue
        option = (
            "consider another glucose-lowering drug"
            if severity == "critical"
            else ("consider another glucose-lowering drug, or repaglinide at most 4 mg a day")
        )
        yield Finding(
            "rule.repaglinide-cyp2c8-inhibitor",
            severity,
            _short(f"Repaglinide with {inhibitor} can cause severe hypoglycaemia: {option}"),
            "Blocking CYP2C8 multiplies repaglinide levels (label interaction).",
            ("kb.repaglinide-cyp2c8-inhibitors",),
            (*_handles(repaglinide), *_handles(others)),
            _proposed((*repaglinide, *others)),
        )


# --- rule.testosterone-high-hematocrit ----------------------------------------------------------------------

TESTOSTERONE_HOLD_HEMATOCRIT: Final = 54.0  # Endocrine Society 2018: stop above 54 % until it falls


TESTOSTERONE_START_HEMATOCRIT: Final = 50.0  # Endocrine Society 2018: do not start above 50 %


def testosterone_high_hematocrit(facts: RuleFacts) -> Iterator[Finding]:
    """A hematocrit above 54% on testosterone, or above 50% when every testosterone order is a start (a draft,
    or ordered within 28 days): the guideline's line for starting is lower than its line for holding."""
    hematocrit = facts.current("hematocrit")
    testosterone = tuple(e for e in facts.exposures if "testosterone" in e.ingredients)
    if hematocrit is None or not testosterone:
        return
    starting = all(e.new(NEW_START_DAYS) for e in testosterone)
    limit = TESTOSTERONE_START_HEMATOCRIT if starting else TESTOSTERONE_HOLD_HEMATOCRIT
    if hematocrit.value <= limit:
        return
    yield Finding(
        "rule.testosterone-high-hematocrit",
        "warning",
        _short(
            f"Hematocrit {hematocrit.value:g}% before starting testosterone: consider treating the cause (sleep "
            "apnoea, smoking) before starting it"
            if starting
            else f"Hematocrit {hematocrit.value:g}% on testosterone: consider holding it until the hematocrit "
            "falls, then a lower dose"
        ),
        "Testosterone raises the red cell mass, and a hematocrit above 54% raises the risk of clots and stroke.",
        ("kb.testosterone-hematocrit",),
        (hematocrit.handle, *_handles(testosterone)),
        _proposed(testosterone),
    )


# --- Beers 2023: barbiturates and desmopressin ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BeersAvoid:
    """A drug the AGS Beers criteria say to avoid from 65, whatever the indication: one card naming it."""

    rule_id: str
    ingredients: frozenset[str]
    option: str  # "consider ...", after the drugs are named
    why: str
    evidence: str

    def __call__(self, facts: RuleFacts) -> Iterator[Finding]:
        if facts.age is None or facts.age < OLDER_ADULT_AGE:
            return
        drugs = facts.with_ingredient(*self.ingredients)
        if not drugs:
            return
        yield Finding(
            self.rule_id,
            "warning",
            _short(f"Age {facts.context.demographics.age_label} on {_names(drugs)}: {self.option}"),
            self.why,
            (self.evidence,),
            _handles(drugs),
            _proposed(drugs),
        )


BARBITURATES: Final = frozenset(
    {"butalbital", "phenobarbital", "butabarbital", "secobarbital", "pentobarbital"}
)
beers_barbiturate: Final = BeersAvoid(
    "rule.beers-barbiturate",
    BARBITURATES,
    "consider a taper and another treatment",
    "Barbiturates bring dependence, tolerance and overdose risk at low doses in older adults (AGS Beers criteria).",
    "kb.beers-barbiturates",
)
# Beers 2023 skeletal muscle relaxants: poorly tolerated (anticholinergic effects, sedation, fracture risk) at
# doses of doubtful effect. Baclofen and tizanidine are spasticity drugs with their own kidney and interaction
# checks, not in this list.
BEERS_MUSCLE_RELAXANTS: Final = frozenset(
    {"carisoprodol", "chlorzoxazone", "cyclobenzaprine", "metaxalone", "methocarbamol", "orphenadrine"}
)
beers_skeletal_muscle_relaxant: Final = BeersAvoid(
    "rule.beers-skeletal-muscle-relaxant",
    BEERS_MUSCLE_RELAXANTS,
    "consider stopping it (heat, acetaminophen, physical therapy)",
    "Muscle relaxants sedate, add anticholinergic effects and raise fracture risk in older adults, with little "
    "benefit at tolerated doses (AGS Beers criteria).",
    "kb.beers-skeletal-muscle-relaxants",
)
beers_meperidine: Final = BeersAvoid(
    "rule.beers-meperidine",
    frozenset({"meperidine"}),
    "consider another opioid (morphine, hydromorphone) at a low dose",
    "Meperidine's metabolite normeperidine accumulates, above all with reduced kidney function, and causes "
    "delirium and seizures; it is a poor oral analgesic (AGS Beers criteria).",
    "kb.beers-meperidine",
)

beers_antiparkinsonian_anticholinergic: Final = BeersAvoid(
    "rule.beers-antiparkinsonian-anticholinergic",
    frozenset({"benztropine", "trihexyphenidyl"}),
    "consider a slow taper (no extrapyramidal symptoms) or another treatment",
    "Benztropine and trihexyphenidyl are strongly anticholinergic (confusion, urinary retention, constipation, "
    "falls); Beers advises against them to prevent antipsychotic side effects and has better Parkinson drugs.",
    "kb.beers-antiparkinsonian-anticholinergics",
)


def beers_desmopressin(facts: RuleFacts) -> Iterator[Finding]:
    """Desmopressin for nocturia or nocturnal polyuria at 65 or over; diabetes insipidus is its indication."""
    if facts.age is None or facts.age < OLDER_ADULT_AGE or facts.has_condition("diabetes-insipidus"):
        return
    drugs = tuple(e for e in facts.exposures if "desmopressin" in e.ingredients)
    if not drugs:
        return
    yield Finding(
        "rule.beers-desmopressin",
        "warning",
        _short(
            f"Age {facts.context.demographics.age_label} on desmopressin without diabetes insipidus: if for "
            "nocturia, consider stopping it (hyponatraemia)"
        ),
        "In older adults desmopressin for nocturia carries a high risk of hyponatraemia (AGS Beers criteria).",
        ("kb.beers-desmopressin",),
        _handles(drugs),
        _proposed(drugs),
    )


# --- rule.zolpidem-dose-women --------------------------------------------------------------------------------

ZOLPIDEM_WOMEN_MAX_MG: Final = {"immediate": 5.0, "extended": 6.25}  # FDA 2013 (kb.zolpidem-dose-women)


ZOLPIDEM_BEERS_FROM_AGE: Final = 65
# Drugs whose own card bars a sedative hypnotic outright: a lower zolpidem dose is then the wrong advice.
_HYPNOTIC_BARRED_BY: Final = frozenset({"sodium oxybate"})


def zolpidem_dose_women(facts: RuleFacts) -> Iterator[Finding]:
    """Zolpidem above the FDA's dose for women. From 65 the Beers card (avoid Z-drugs) speaks instead, and beside
    sodium oxybate its contraindication card does: neither is answered by a lower dose."""
    if facts.context.demographics.sex != "female":
        return
    if (facts.age is not None and facts.age >= ZOLPIDEM_BEERS_FROM_AGE) or any(
        not _HYPNOTIC_BARRED_BY.isdisjoint(e.ingredients) for e in facts.exposures
    ):
        return
    for exposure in facts.exposures:
        if "zolpidem" not in exposure.ingredients or LOCAL_ROUTE.search(exposure.label):
            continue
        mg = dose_or_unit_mg(facts, exposure, "zolpidem")
        limit = ZOLPIDEM_WOMEN_MAX_MG["extended" if EXTENDED_RELEASE.search(exposure.label) else "immediate"]
        if mg is None or mg <= limit:
            continue
        yield Finding(
            "rule.zolpidem-dose-women",
            "warning",
            _short(f"Zolpidem {mg:g} mg for a woman: consider {limit:g} mg (next-morning impairment)"),
            "Women clear zolpidem more slowly, so the FDA lowered their recommended dose because of next-morning "
            "impairment, including driving.",
            ("kb.zolpidem-dose-women",),
            (exposure.handle,),
            _proposed((exposure,)),
        )


# --- rule.bph-urinary-retention-drug -------------------------------------------------------------------------

# Antimuscarinics prescribed for the bladder are the exception Beers 2023 makes for anticholinergics in men
# with lower urinary tract symptoms; decongestants tighten the bladder neck at any age.
BLADDER_ANTIMUSCARINICS: Final = frozenset(
    {"oxybutynin", "tolterodine", "solifenacin", "trospium", "darifenacin", "fesoterodine"}
)


def bph_urinary_retention_drug(facts: RuleFacts) -> Iterator[Finding]:
    bph = facts.value_sets.get("bph", ())
    # An indwelling catheter already drains the bladder: retention is no longer what these drugs risk.
    if not bph or facts.has_condition("indwelling-urinary-catheter"):
        return
    older = facts.age is not None and facts.age >= OLDER_ADULT_AGE
    drugs = tuple(
        e
        for e in facts.exposures
        if not LOCAL_ROUTE.search(e.label)
        and (
            not DECONGESTANTS.isdisjoint(e.ingredients)
            or (older and e.has("anticholinergic") and BLADDER_ANTIMUSCARINICS.isdisjoint(e.ingredients))
        )
    )
    if not drugs:
        return
    yield Finding(
        "rule.bph-urinary-retention-drug",
        "warning",
        _short(f"Enlarged prostate with {_names(drugs)}: consider another drug (urinary retention)"),
        "Decongestants and anticholinergic drugs can cause urinary retention in men with an enlarged prostate "
        "(AGS Beers criteria; product labels).",
        ("kb.bph-decongestant-anticholinergic",),
        (*bph, *_handles(drugs)),
        _proposed(drugs),
    )


# --- rule.phentermine-cardiovascular -------------------------------------------------------------------------

_PHENTERMINE_CONTRAINDICATING: Final = (
    "coronary-heart-disease",
    "myocardial-infarction",
    "stroke",
    "heart-failure",
)


def phentermine_cardiovascular(facts: RuleFacts) -> Iterator[Finding]:
    """Phentermine with cardiovascular disease (a label contraindication) or a current BP of 140/90 or more."""
    drugs = tuple(e for e in facts.exposures if "phentermine" in e.ingredients)
    if not drugs:
        return
    disease = tuple(h for v in _PHENTERMINE_CONTRAINDICATING for h in facts.value_sets.get(v, ()))
    systolic, diastolic = facts.current("systolic_bp"), facts.current("diastolic_bp")
    high = bp_high(systolic, diastolic)
    if not disease and not high:
        return
    bp = tuple(m.handle for m in (systolic, diastolic) if m is not None) if high else ()
    reason = "cardiovascular disease" if disease else "blood pressure at or above 140/90"
    yield Finding(
        "rule.phentermine-cardiovascular",
        "warning",
        _short(f"Phentermine with {reason}: consider stopping it"),
        "Phentermine is a sympathomimetic that raises blood pressure and heart rate; its label contraindicates "
        "it in cardiovascular disease.",
        ("kb.phentermine-cardiovascular",),
        (*_handles(drugs), *disease, *bp),
        _proposed(drugs),
    )


# --- from held-out v9: interactions by name, and checks of a drug's own use ----------------------------------


def warfarin_capecitabine(facts: RuleFacts) -> Iterator[Finding]:
    vka = facts.with_class("vitamin-k-antagonist")
    capecitabine = tuple(e for e in facts.exposures if "capecitabine" in e.ingredients)
    if not vka or not capecitabine:
        return
    yield Finding(
        "rule.warfarin-capecitabine",
        "critical",
        _short(
            "Warfarin with capecitabine: bleeding and death reported; consider checking the INR now and weekly"
        ),
        "Capecitabine inhibits warfarin's clearance and can raise the INR sharply, even a month after it stops "
        "(boxed warning).",
        ("kb.warfarin-capecitabine",),
        (*_handles(vka), *_handles(capecitabine)),
        _proposed((*vka, *capecitabine)),
    )


def clozapine_cyp1a2_inhibitor(facts: RuleFacts) -> Iterator[Finding]:
    clozapine = tuple(e for e in facts.exposures if "clozapine" in e.ingredients)
    inhibitors = tuple(
        e for e in facts.with_class("strong-cyp1a2-inhibitor") if not LOCAL_ROUTE.search(e.label)
    )
    if not clozapine or not inhibitors:
        return
    yield Finding(
        "rule.clozapine-cyp1a2-inhibitor",
        "critical",
        _short(
            f"Clozapine with {_names(inhibitors)}: consider another drug, or a third of the clozapine dose and levels"
        ),
        "Strong CYP1A2 inhibitors multiply clozapine levels, causing sedation, seizures and hypotension (label).",
        ("kb.clozapine-cyp1a2-inhibitors",),
        (*_handles(clozapine), *_handles(inhibitors)),
        _proposed((*clozapine, *inhibitors)),
    )


# Strong inducers of CYP3A4 (and P-glycoprotein) named by their labels and the US MEC.
ENZYME_INDUCERS: Final = frozenset(
    {
        "rifampin",
        "rifabutin",
        "rifapentine",
        "carbamazepine",
        "phenytoin",
        "fosphenytoin",
        "phenobarbital",
        "primidone",
        "oxcarbazepine",
        "st. john's wort",
    }
)
# Contraceptives an inducer does not weaken: the injection and the intrauterine devices.
_INDUCER_SPARED: Final = re.compile(
    r"\b(intrauterine|iud|injectable|injection|medroxyprogesterone)\b", re.IGNORECASE
)


# Topiramate induces ethinyl estradiol's metabolism above 200 mg a day (Topamax label; US MEC category 3); it does
# not lower DOAC levels. A dose that cannot be read is counted (the MEC lists topiramate without a dose).
TOPIRAMATE_INDUCING_DAILY_MG: Final = 200.0


def _inducing_topiramate(facts: RuleFacts) -> tuple[Exposure, ...]:
    return tuple(
        e
        for e in facts.with_ingredient("topiramate")
        if (daily := dosing.daily_mg(dosing.dosage_of(facts, e), unit_mg(e, "topiramate"))) is None
        or daily > TOPIRAMATE_INDUCING_DAILY_MG
    )


def enzyme_inducer_interaction(facts: RuleFacts) -> Iterator[Finding]:
    strong = facts.with_ingredient(*ENZYME_INDUCERS)
    topiramate = _inducing_topiramate(facts)
    # Bosentan induces CYP3A4 enough to make hormonal contraception unreliable (its label and REMS ask for a
    # second method); its effect on DOACs is not labelled, so it joins only the contraceptive pairing.
    bosentan = facts.with_ingredient("bosentan")
    if not strong and not topiramate and not bosentan:
        return
    doacs = tuple(
        e
        for e in facts.with_class("doac")
        if {"apixaban", "rivaroxaban", "dabigatran", "edoxaban"} & set(e.ingredients)
    )
    contraceptives = tuple(
        e
        for e in facts.with_class("hormonal-contraceptive")
        if not _INDUCER_SPARED.search(e.label) and not LOCAL_ROUTE.search(e.label)
    )
    for inducers, affected, summary, why, kb in (
        (
            strong,
            doacs,
            "lowers its level (clots); consider another anticoagulant",
            "Strong CYP3A4 and P-glycoprotein inducers cut DOAC levels by half or more; the labels advise avoiding them.",
            "kb.doac-strong-inducers",
        ),
        (
            (*strong, *topiramate, *bosentan),
            contraceptives,
            "can make it fail; consider an IUD or the injection",
            "Enzyme inducers speed the breakdown of contraceptive hormones (US MEC category 3 for pills, patch, ring "
            "and implant).",
            "kb.enzyme-inducer-contraception",
        ),
    ):
        if not affected or not inducers:
            continue
        cited = (kb, "kb.bosentan-hormonal-contraception") if any(e in bosentan for e in inducers) else (kb,)
        yield Finding(
            "rule.enzyme-inducer-interaction",
            "warning",
            _short(f"{_names(inducers).capitalize()} with {_names(affected)} {summary}"),
            why,
            cited,
            (*_handles(inducers), *_handles(affected)),
            _proposed((*inducers, *affected)),
        )


LAMOTRIGINE_VALPROATE_START_MG: Final = 12.5  # 25 mg every other day


def lamotrigine_valproate_start(facts: RuleFacts) -> Iterator[Finding]:
    """Lamotrigine started on valproate: the label halves the titration (25 mg every other day for two weeks),
    because valproate doubles lamotrigine's level and serious rashes follow fast titration. A start is a draft or
    an order within 28 days; a dose that cannot be read is asked about."""
    valproate = tuple(e for e in facts.with_class("valproate") if not e.proposed)
    starts = tuple(e for e in facts.exposures if "lamotrigine" in e.ingredients and e.new(NEW_START_DAYS))
    yield from _valproate_added_to_lamotrigine(facts)
    if not valproate or not starts:
        return
    for exposure in starts:
        daily = dosing.daily_mg(dosing.dosage_of(facts, exposure), unit_mg(exposure, "lamotrigine"))
        if daily is not None and daily <= LAMOTRIGINE_VALPROATE_START_MG:
            continue
        said = "dose unread" if daily is None else f"{daily:g} mg a day"
        yield Finding(
            "rule.lamotrigine-valproate-start",
            "critical",
            _short(
                f"Lamotrigine started on valproate ({said}): consider 25 mg every other day for two weeks"
            ),
            "Valproate doubles lamotrigine levels; the standard titration then risks Stevens-Johnson syndrome (label).",
            ("kb.lamotrigine-valproate",),
            (exposure.handle, *_handles(valproate)),
            _proposed((exposure,)),
        )


def _valproate_added_to_lamotrigine(facts: RuleFacts) -> Iterator[Finding]:
    """The other order of events: valproate started (a draft or an order within 28 days) for a patient on
    established lamotrigine, whose dose the label then lowers (roughly halved) as valproate doubles its level."""
    added = tuple(e for e in facts.with_class("valproate") if e.new(NEW_START_DAYS))
    established = tuple(
        e for e in facts.with_ingredient("lamotrigine") if e.taken_longer_than(NEW_START_DAYS)
    )
    if not added or not established:
        return
    daily = dosing.daily_mg(dosing.dosage_of(facts, established[0]), unit_mg(established[0], "lamotrigine"))
    said = "dose unread" if daily is None else f"{daily:g} mg a day"
    yield Finding(
        "rule.lamotrigine-valproate-start",
        "critical",
        _short(
            f"Valproate added to lamotrigine ({said}): consider lowering the lamotrigine dose (about half)"
        ),
        "Valproate doubles lamotrigine levels; without a lower lamotrigine dose, toxicity and serious rash follow "
        "(label).",
        ("kb.lamotrigine-valproate",),
        (*_handles(added), *_handles(established)),
        _proposed(added),
    )


LEVOTHYROXINE_SUPPRESSED_TSH: Final = 0.1  # mIU/L: ATA 2014 / AACE: over-replacement below this


def levothyroxine_over_replacement(facts: RuleFacts) -> Iterator[Finding]:
    tsh = facts.current("tsh")
    drugs = tuple(e for e in facts.with_class("thyroid-hormone") if not e.proposed)
    if tsh is None or tsh.value >= LEVOTHYROXINE_SUPPRESSED_TSH or not drugs:
        return
    yield Finding(
        "rule.levothyroxine-over-replacement",
        "warning",
        _short(
            f"TSH {tsh.value:g} mIU/L on {_names(drugs)}: consider a lower dose unless suppression is intended"
        ),
        "A suppressed TSH on thyroid hormone raises the risk of atrial fibrillation and bone loss, above all in "
        "older adults.",
        ("kb.levothyroxine-over-replacement",),
        (tsh.handle, *_handles(drugs)),
        _proposed(drugs),
    )


BENZOCAINE_MIN_AGE: Final = 2  # FDA 2018: no benzocaine teething products under 2 (methaemoglobinaemia)


def benzocaine_under_2(facts: RuleFacts) -> Iterator[Finding]:
    if facts.age is None or facts.age >= BENZOCAINE_MIN_AGE:
        return
    drugs = tuple(e for e in facts.exposures if "benzocaine" in e.ingredients)
    if not drugs:
        return
    yield Finding(
        "rule.benzocaine-under-2",
        "warning",
        _short(
            f"Benzocaine ({_names(drugs)}) for a child under 2: consider stopping it (methaemoglobinaemia)"
        ),
        "The FDA advises against benzocaine for teething or in children under 2: it can cause methaemoglobinaemia.",
        ("kb.benzocaine-under-2",),
        _handles(drugs),
        _proposed(drugs),
    )


def beers_nifedipine_immediate_release(facts: RuleFacts) -> Iterator[Finding]:
    if facts.age is None or facts.age < OLDER_ADULT_AGE:
        return
    drugs = tuple(
        e for e in facts.exposures if "nifedipine" in e.ingredients and not EXTENDED_RELEASE.search(e.label)
    )
    if not drugs:
        return
    yield Finding(
        "rule.beers-nifedipine-immediate-release",
        "warning",
        _short(
            f"Age {facts.context.demographics.age_label} on immediate-release nifedipine: consider an extended-release calcium-channel blocker"
        ),
        "Immediate-release nifedipine can drop blood pressure suddenly and cause myocardial ischaemia (AGS Beers criteria).",
        ("kb.beers-nifedipine-immediate-release",),
        _handles(drugs),
        _proposed(drugs),
    )


# --- rule.metformin-vitamin-b12 -------------------------------------------------------------------------------


def metformin_vitamin_b12(facts: RuleFacts) -> Iterator[Finding]:
    """Established metformin with neuropathy or anaemia on record and no B12 level within a year (ADA: periodic
    B12 on long-term metformin, above all with neuropathy or anaemia). A stale level is shown."""
    metformin = tuple(e for e in facts.with_class("biguanide") if not e.new(NEW_START_DAYS))
    reasons = (*facts.value_sets.get("peripheral-neuropathy", ()), *facts.value_sets.get("anaemia", ()))
    if not metformin or not reasons or facts.current("vitamin_b12") is not None:
        return
    stale = facts.stale("vitamin_b12")
    yield Finding(
        "rule.metformin-vitamin-b12",
        "info",
        _short(
            "On metformin with neuropathy or anaemia and "
            + ("no B12 level on record" if stale is None else "an old B12 level")
            + ": consider checking vitamin B12"
        ),
        "Long-term metformin lowers vitamin B12, which can cause or worsen neuropathy and anaemia.",
        ("kb.metformin-vitamin-b12",),
        (*_handles(metformin), *reasons, *((stale.handle,) if stale is not None else ())),
        (),
        LabOrder("2132-9", "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma"),
    )


# --- rule.codeine-tramadol-breastfeeding and rule.rizatriptan-propranolol ----------------------------------

_ULTRA_RAPID_PRODRUG_OPIOIDS: Final = frozenset({"codeine", "tramadol"})


def codeine_tramadol_breastfeeding(facts: RuleFacts) -> Iterator[Finding]:
    lactation = facts.value_sets.get("lactation", ())
    drugs = facts.with_ingredient(*_ULTRA_RAPID_PRODRUG_OPIOIDS)
    if not lactation or not drugs:
        return
    yield Finding(
        "rule.codeine-tramadol-breastfeeding",
        "warning",
        _short(f"Breastfeeding and {_names(drugs)}: consider acetaminophen or ibuprofen instead"),
        "In mothers who metabolise codeine or tramadol ultra-rapidly, breast milk can carry enough morphine or "
        "O-desmethyltramadol to stop an infant breathing (FDA 2017).",
        ("kb.codeine-tramadol-breastfeeding",),
        (*lactation, *_handles(drugs)),
        _proposed(drugs),
    )


RIZATRIPTAN_WITH_PROPRANOLOL_MG: Final = (
    5.0  # Maxalt label: 5 mg a dose, at most 15 mg a day, with propranolol
)


def rizatriptan_propranolol(facts: RuleFacts) -> Iterator[Finding]:
    propranolol = tuple(e for e in facts.exposures if "propranolol" in e.ingredients)
    if not propranolol:
        return
    for exposure in facts.exposures:
        if "rizatriptan" not in exposure.ingredients:
            continue
        mg = dose_or_unit_mg(facts, exposure, "rizatriptan")
        if mg is not None and mg <= RIZATRIPTAN_WITH_PROPRANOLOL_MG:
            continue
        yield Finding(
            "rule.rizatriptan-propranolol",
            "warning",
            _short("Rizatriptan with propranolol: consider 5 mg a dose, at most 15 mg a day"),
            "Propranolol raises rizatriptan levels by about 70%, so its label halves the dose.",
            ("kb.rizatriptan-propranolol",),
            (exposure.handle, *_handles(propranolol)),
            _proposed((exposure,)),
        )


GAP_MEDICATION_RULES: Final[tuple[Rule, ...]] = (
    codeine_tramadol_breastfeeding,
    rizatriptan_propranolol,
    metformin_vitamin_b12,
    warfarin_capecitabine,
    clozapine_cyp1a2_inhibitor,
    enzyme_inducer_interaction,
    lamotrigine_valproate_start,
    levothyroxine_over_replacement,
    benzocaine_under_2,
    beers_nifedipine_immediate_release,
    beers_barbiturate,
    beers_skeletal_muscle_relaxant,
    beers_meperidine,
    beers_antiparkinsonian_anticholinergic,
    beers_desmopressin,
    zolpidem_dose_women,
    bph_urinary_retention_drug,
    phentermine_cardiovascular,
    testosterone_high_hematocrit,
    repaglinide_cyp2c8_inhibitor,
    doac_dose_indication,
    triptan_vascular_disease,
    beers_digoxin_dose,
    pregnancy_stage_antibiotic,
    fentanyl_patch_opioid_naive,
    opioid_concentrate_opioid_naive,
    bupropion_seizure_risk,
    hyponatraemia_on_lowering_drug,
    ppi_low_magnesium,
    beers_megestrol,
    beers_systemic_estrogen,
    decongestant_high_blood_pressure,
    beers_amiodarone_first_line,
    parkinson_dopamine_blocker,
    cilostazol_heart_failure,
)
GAP_CARE_RULES: Final[tuple[Rule, ...]] = (
    af_anticoagulation_absent,
    osteoporosis_treatment_absent,
    copd_ics_monotherapy,
    nsaid_uncontrolled_hypertension,
    benzodiazepine_ptsd,
    chc_postpartum,
)
