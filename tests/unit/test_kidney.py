"""Kidney function (CKD-EPI 2021, Cockcroft-Gault, KDIGO AKI), the renal dosing table and the kidney rules."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from importlib import resources
from typing import Any

import pytest

from plugin.context.model import (
    ClinicalContext,
    Code,
    Demographics,
    Dosage,
    DraftOrder,
    LabSeries,
    Measurement,
    Medication,
    Sex,
)
from plugin.knowledge import load_knowledge_base
from plugin.rules import catalog, label_limits
from plugin.rules.kidney import aki_stage, ckd_epi_2021, cockcroft_gault, renal_function, shown
from plugin.rules.model import Finding, RuleFacts
from plugin.rules.renal_dosing import NEW_ORDER_ONLY, RenalDosingError, parse_renal_dosing, renal_dosing
from plugin.rules.renal_rules import KIDNEY_RULES, AkiNephrotoxin, RenalDose, RenalFunctionUnknown
from tests.support.charts import copy_json, medication_request
from tests.support.rule_cases import PATIENT_ID, Chart, draft, lab, med, on, problem, reference

pytestmark = pytest.mark.unit

_DOSE, _UNKNOWN, _AKI = KIDNEY_RULES
assert isinstance(_DOSE, RenalDose) and isinstance(_UNKNOWN, RenalFunctionUnknown)
assert isinstance(_AKI, AkiNephrotoxin)
DOSE: RenalDose = _DOSE
UNKNOWN: RenalFunctionUnknown = _UNKNOWN
AKI: AkiNephrotoxin = _AKI


# --- the equations, against worked examples ------------------------------------------------------------


@pytest.mark.parametrize(
    ("creatinine", "age", "sex", "expected"),
    [
        # Female, Scr at kappa (0.7): 142 x 1 x 1 x 0.9938^50 (0.7328) x 1.012 = 105.3
        (0.7, 50, "female", 105.3),
        # Male 60, Scr 1.2: 142 x (1.2/0.9)^-1.200 (0.7081) x 0.9938^60 (0.6885) = 69.2
        (1.2, 60, "male", 69.2),
        # Male 40, Scr 1.0: 142 x (1.0/0.9)^-1.200 (0.8812) x 0.9938^40 (0.7798) = 97.6
        (1.0, 40, "male", 97.6),
        # Female 70, Scr 0.5 (below kappa): 142 x (0.5/0.7)^-0.241 (1.0845) x 0.9938^70 (0.6468) x 1.012 = 100.8
        (0.5, 70, "female", 100.8),
    ],
)
def test_ckd_epi_2021_worked_examples(creatinine: float, age: int, sex: str, expected: float) -> None:
    value = ckd_epi_2021(creatinine, age, sex)
    assert value is not None and round(value, 1) == expected


@pytest.mark.parametrize(
    ("creatinine", "age", "weight", "sex", "expected"),
    [
        ((1.0), 60, 80.0, "male", 88.9),  # (140-60) x 80 / (72 x 1.0)
        ((1.2), 80, 60.0, "female", 35.4),  # (140-80) x 60 / (72 x 1.2) x 0.85
        ((1.5), 50, 36.0, "male", 30.0),  # 90 x 36 / 108: exactly 30
    ],
)
def test_cockcroft_gault_worked_examples(
    creatinine: float, age: int, weight: float, sex: str, expected: float
) -> None:
    value = cockcroft_gault(creatinine, age, weight, sex)
    assert value is not None and round(value, 1) == expected


@pytest.mark.parametrize(("age", "sex"), [(17, "male"), (None, "male"), (50, "other"), (50, "unknown")])
def test_equations_refuse_children_unknown_age_and_other_sexes(age: int | None, sex: str) -> None:
    assert ckd_epi_2021(1.0, age, sex) is None
    assert cockcroft_gault(1.0, age, 70.0, sex) is None


def test_a_clearance_is_shown_cut_not_rounded() -> None:
    assert (shown(29.96), shown(30.0), shown(88.888)) == ("29.9", "30", "88.8")


# --- KDIGO AKI from the creatinine series ----------------------------------------------------------------


def series(*points: tuple[float, int | None]) -> LabSeries:
    """Creatinine values (mg/dL, days ago), newest first as the context keeps them."""
    measurements = tuple(
        Measurement(f"O{i}", "creatinine", value, "mg/dL", days) for i, (value, days) in enumerate(points, 1)
    )
    return LabSeries("creatinine", "Creatinine", measurements, None)


@pytest.mark.parametrize(
    ("points", "stage"),
    [
        (((1.3, 0), (1.0, 2)), 1),  # a 0.3 rise within 2 days (48 h read in whole days)
        (((1.29, 0), (1.0, 2)), None),  # just under 0.3
        (((1.31, 0), (1.0, 2)), 1),
        (((1.3, 0), (1.0, 3)), None),  # 0.3 but 3 days apart, and 1.3x: not AKI
        (((1.5, 0), (1.0, 7)), 1),  # 1.5x the lowest value of the prior 7 days
        (((1.49, 0), (1.0, 7)), None),  # just under 1.5x, and too far apart for the 0.3 rise
        (((1.51, 0), (1.0, 7)), 1),
        (((1.2, 0), (0.8, 6)), 1),  # 1.2 / 0.8 is 1.4999... in floating point: still 1.5x
        (((1.5, 0), (1.0, 8)), None),  # the baseline is outside the 7 days
        (((1.99, 0), (1.0, 5)), 1),
        (((2.0, 0), (1.0, 5)), 2),
        (((2.99, 0), (1.0, 5)), 2),
        (((3.0, 0), (1.0, 5)), 3),
        (((4.0, 1), (3.0, 2)), 3),  # a 0.3 rise to 4.0 mg/dL or more is stage 3 at any ratio
        (((1.6, 0), (1.4, 1), (1.0, 6)), 1),  # the lowest of the 7 days is the baseline
        (((1.5, 3), (1.0, 5)), 1),  # days are counted from the newest value, not from today
        (((1.5, 8), (1.0, 10)), None),  # the newest value is over a week old: history, not now
        (((1.5, None), (1.0, 2)), None),  # undated
        (((1.5, 0), (1.0, None)), None),
        (((1.5, 0),), None),  # one value shows no change
    ],
)
def test_kdigo_aki_stage(points: tuple[tuple[float, int | None], ...], stage: int | None) -> None:
    found = aki_stage(series(*points))
    assert (found.stage if found else None) == stage


def test_aki_names_the_value_it_was_measured_against() -> None:
    found = aki_stage(series((1.4, 0), (1.1, 1), (1.0, 6)))
    # 1.4x the 7-day lowest misses 1.5, so the 48-hour rise from 1.1 is the criterion met.
    assert found is not None and found.baseline.value == 1.1 and found.handles == ("O1", "O2")


# --- renal function of a context --------------------------------------------------------------------


def creatinine(value: float, days_ago: int = 3, resource_id: str = "creatinine") -> dict[str, Any]:
    return lab("creatinine", value, days_ago=days_ago, resource_id=resource_id)


def weight(kg: float, days_ago: int = 30) -> dict[str, Any]:
    return lab("weight", kg, days_ago=days_ago)


def egfr(value: float, days_ago: int = 7) -> dict[str, Any]:
    return lab("egfr", value, days_ago=days_ago)


def facts_of(chart: Chart) -> tuple[RuleFacts, Any]:
    built = chart.build()
    assert built.context.skipped == ()
    return RuleFacts.of(built.context), built


def test_a_current_recorded_egfr_is_used_before_one_computed() -> None:
    facts, _ = facts_of(Chart(age=60, gender="male", resources=(egfr(52), creatinine(1.2))))
    renal = renal_function(facts)
    assert (renal.egfr, renal.egfr_source) == (52, "recorded")


def test_a_stale_egfr_gives_way_to_one_computed_from_current_creatinine() -> None:
    facts, built = facts_of(Chart(age=60, gender="male", resources=(egfr(90, 400), creatinine(1.2))))
    renal = renal_function(facts)
    assert renal.egfr_source == "ckd-epi-2021" and renal.egfr is not None and round(renal.egfr, 1) == 69.2
    assert [built.handles.resolve(h) for h in renal.egfr_inputs] == ["Observation/creatinine"]


def test_stale_creatinine_and_weight_leave_kidney_function_unknown() -> None:
    facts, _ = facts_of(Chart(age=60, gender="male", resources=(creatinine(1.0, 366), weight(80, 366))))
    renal = renal_function(facts)
    assert renal.unknown and renal.crcl is None and renal.creatinine is None
    assert {m.analyte for m in renal.stale} == {"creatinine", "weight"}


def test_a_sex_other_than_female_or_male_leaves_kidney_function_unknown() -> None:
    facts, _ = facts_of(Chart(age=60, gender="other", resources=(creatinine(1.0), weight(80))))
    assert renal_function(facts).unknown


# --- the renal dosing table --------------------------------------------------------------------------


REQUIRED = {
    "apixaban",
    "fenofibrate",
    "fenofibric acid",
    "acamprosate",
    "probenecid",
    "varenicline",
    "famotidine",
    "nirmatrelvir",
    "rivaroxaban",
    "dabigatran",
    "edoxaban",
    "enoxaparin",
    "gabapentin",
    "pregabalin",
    "paliperidone",
    "nitrofurantoin",
    "metformin",
    "ciprofloxacin",
    "levofloxacin",
    "sulfamethoxazole + trimethoprim",
    "valacyclovir",
    "oxaliplatin",
    "digoxin",
    "spironolactone",
    "allopurinol",
    "colchicine",
    "baclofen",
    "lithium",
    "sitagliptin",
    "alendronate",
    "memantine",
    "duloxetine",
    "tramadol",
    "rosuvastatin",
    "levetiracetam",
    "metoclopramide",
    "risedronate",
    "sotalol",
    "dofetilide",
    "methotrexate",
    "amantadine",
    "trospium",
    "oseltamivir",
    "solifenacin",
    "fesoterodine",
    "saxagliptin",
    "magnesium hydroxide",
    "dalfampridine",
    "atenolol",
    "cetirizine",
    "topiramate",
    "lacosamide",
    "pramipexole",
    "amoxicillin",
    "cefdinir",
    "acyclovir",
    "famciclovir",
    "apremilast",
    "desvenlafaxine",
    "paroxetine",
    "mirabegron",
    "tolterodine",
    "zoledronic acid",
    "lenalidomide",
    "entecavir",
    "valganciclovir",
    "sodium phosphate",
    "cefuroxime",
    "cefazolin",
    "cefepime",
    "ceftazidime",
    "ceftazidime + avibactam",
    "piperacillin + tazobactam",
    "meropenem",
    "meropenem + vaborbactam",
    "ertapenem",
    "ampicillin + sulbactam",
    "cefpodoxime",
    "daptomycin",
    "fluconazole",
    "clarithromycin",
    "ganciclovir",
    "fondaparinux",
    "eplerenone",
    "finerenone",
    "sacubitril + valsartan",
    "lisinopril",
    "enalapril",
    "ramipril",
    "nadolol",
    "bisoprolol",
    "flecainide",
    "alogliptin",
    "canagliflozin",
    "dapagliflozin",
    "empagliflozin",
    "repaglinide",
    "venlafaxine",
    "milnacipran",
    "levomilnacipran",
    "febuxostat",
    "ibandronate",
    "tadalafil",
    "capecitabine",
    "bictegravir",
    "acyclovir (injected)",
    "morphine",
    "cisplatin",
}
TABLE = renal_dosing()
THRESHOLDS = [(drug, t) for drug in TABLE.drugs for t in drug.thresholds]


def test_the_table_covers_the_listed_drugs_and_cites_known_entries() -> None:
    assert {d.name for d in TABLE.drugs} == REQUIRED
    knowledge = load_knowledge_base()
    cited = {kb for d in TABLE.drugs for kb in d.evidence} | set(UNKNOWN.evidence) | set(AKI.evidence)
    assert sorted(kb for kb in cited if kb not in knowledge) == []


def test_the_enoxaparin_and_oxaliplatin_limits_are_crcl_30() -> None:
    for name in ("enoxaparin", "oxaliplatin"):
        (drug,) = [d for d in TABLE.drugs if d.name == name]
        assert drug.basis == "crcl" and [(t.bound, t.limit) for t in drug.thresholds] == [("below", 30.0)]


@pytest.mark.parametrize(
    ("drug", "threshold"), THRESHOLDS, ids=[f"{d.name}:{t.bound}-{t.limit:g}" for d, t in THRESHOLDS]
)
def test_every_threshold_at_just_below_and_just_above_its_limit(drug: Any, threshold: Any) -> None:
    limit = threshold.limit
    if threshold.bound == "below":
        assert (threshold.crossed(limit - 0.1), threshold.crossed(limit), threshold.crossed(limit + 0.1)) == (
            True,
            False,
            False,
        )
    elif threshold.bound == "at_or_below":
        assert (threshold.crossed(limit - 0.1), threshold.crossed(limit), threshold.crossed(limit + 0.1)) == (
            True,
            True,
            False,
        )
    else:
        assert (threshold.crossed(limit - 0.1), threshold.crossed(limit), threshold.crossed(limit + 0.1)) == (
            False,
            False,
            True,
        )


def test_the_narrowest_band_and_warnings_win() -> None:
    (gabapentin,) = [d for d in TABLE.drugs if d.name == "gabapentin"]
    assert [gabapentin.crossed(v, False).limit for v in (59, 29, 14)] == [60, 30, 15]  # type: ignore[union-attr]
    (rivaroxaban,) = [d for d in TABLE.drugs if d.name == "rivaroxaban"]
    assert rivaroxaban.crossed(10, False).action == "avoid"  # type: ignore[union-attr]
    (metformin,) = [d for d in TABLE.drugs if d.name == "metformin"]
    assert metformin.crossed(40, False) is None  # "do not start" speaks to new orders only
    assert metformin.crossed(40, True).action == "do not start"  # type: ignore[union-attr]


def _document() -> dict[str, Any]:
    text = resources.files("plugin").joinpath("knowledge/renal_dosing.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["drugs"][0].update(ingredients=["apixabann"]), "unknown ingredient"),
        (lambda d: d["drugs"][1]["thresholds"][0].update(below=-5), "above 0"),
        (lambda d: d["drugs"][1]["thresholds"][0].update(below=500), "at most"),
        (lambda d: d["drugs"][1]["thresholds"][0].update(above=20), "exactly one"),
        (lambda d: d["drugs"][1]["thresholds"][0].update(action="halve"), "unknown action"),
        (lambda d: d["drugs"][1]["thresholds"][0].update(option="use less"), "consider"),
        (lambda d: d["drugs"][1].update(basis="cystatin"), "basis"),
        (lambda d: d["drugs"][1].update(evidence=["not-an-id"]), "evidence"),
        (lambda d: d["drugs"][1].update(colour="red"), "unknown keys"),
        (lambda d: d["drugs"].append(copy.deepcopy(d["drugs"][1])), "listed twice"),
        (lambda d: d["drugs"][1].update(route="rectal"), "route must be one of"),
        # A route-specific entry beside one for every route would let a product match both.
        (
            lambda d: d["drugs"].append({**copy.deepcopy(d["drugs"][1]), "route": "parenteral"}),
            "listed twice",
        ),
        (lambda d: d.pop("version"), "about, version and drugs"),
        (lambda d: d["drugs"][1]["thresholds"][0].update(treatment_mg_per_kg_daily=1), "needs"),
    ],
)
def test_the_loader_fails_loudly(edit: Any, message: str) -> None:
    document = _document()
    edit(document)
    with pytest.raises(RenalDosingError, match=message):
        parse_renal_dosing(document)


def test_the_recheck_partition_matches_egfr_recheck() -> None:
    """The drugs this table leaves to rule.egfr-recheck are exactly the ones it covers."""
    covered = {cls for classes, *_ in catalog.EGFR_RECHECK.dependants for cls in classes}
    from plugin import terminology

    for drug in TABLE.drugs:
        classes = frozenset().union(*(terminology.classes_of(i) for i in drug.ingredients))
        assert (drug.recheck_by == "rule.egfr-recheck") == bool(classes & covered), drug.name


# --- the rules over charts ---------------------------------------------------------------------------


def run(rule: Any, chart: Chart) -> tuple[list[Finding], Any]:
    facts, built = facts_of(chart)
    return list(rule(facts)), built


def refs(built: Any, handles: tuple[str, ...]) -> set[str | None]:
    return {built.handles.resolve(h) for h in handles}


def check_text(finding: Finding) -> None:
    assert len(finding.summary) < 140 and "consider" in finding.summary, finding.summary
    assert finding.explanation.endswith(".") and finding.explanation.count(". ") == 0


ENOXAPARIN = med("enoxaparin")


@pytest.mark.parametrize(("kg", "fires"), [(35.9, True), (36.0, False), (36.1, False)])
def test_enoxaparin_at_crcl_30(kg: float, fires: bool) -> None:
    # Male 50, creatinine 1.5 mg/dL: CrCl = 90 x kg / 108, so 36 kg is exactly 30 mL/min.
    found, built = run(
        DOSE, Chart(age=50, gender="male", resources=(ENOXAPARIN, creatinine(1.5), weight(kg)))
    )
    assert bool(found) == fires
    if fires:
        (finding,) = found
        check_text(finding)
        assert finding.rule_id == "rule.renal-dose-crcl" and finding.severity == "info"
        assert "CrCl 29.9 (Cockcroft-Gault), label <30: reduce dose" in finding.summary
        assert finding.evidence == ("kb.enoxaparin-renal-dose",)
        assert refs(built, finding.inputs) == {
            reference(ENOXAPARIN),
            "Observation/creatinine",
            "Observation/weight",
        }


def test_avoid_is_a_warning_and_names_the_labelled_action() -> None:
    chart = Chart(age=70, gender="female", resources=(med("co-trimoxazole"), creatinine(3.0), weight(60)))
    (finding,), _ = run(DOSE, chart)  # CrCl 70 x 60 / 216 x 0.85 = 16.5: half dose, not yet below 15
    assert finding.severity == "info" and "half the usual regimen" in finding.summary
    chart = Chart(age=70, gender="female", resources=(med("co-trimoxazole"), creatinine(4.0), weight(60)))
    (finding,), _ = run(DOSE, chart)  # CrCl 12.4
    check_text(finding)
    assert finding.severity == "warning" and "label <15: avoid" in finding.summary


def medication_statement(drug: str, resource_id: str) -> dict[str, Any]:
    """The drug as a patient-reported MedicationStatement instead of a prescription."""
    request = med(drug)
    return {
        "resourceType": "MedicationStatement",
        "id": resource_id,
        "status": "active",
        "medicationCodeableConcept": request["medicationCodeableConcept"],
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": on(60),
    }


@pytest.mark.parametrize(
    "source",
    [
        med("gabapentin"),
        medication_statement("gabapentin", "gabapentin-statement"),
    ],
    ids=["MedicationRequest", "MedicationStatement"],
)
def test_gabapentin_from_either_medication_source(source: dict[str, Any]) -> None:
    # Female 80, creatinine 1.2, 60 kg: CrCl 35.4 (the worked example): 400-1400 mg a day.
    chart = Chart(age=80, gender="female", resources=(source, creatinine(1.2), weight(60)))
    (finding,), built = run(DOSE, chart)
    check_text(finding)
    assert "400-1400 mg" in finding.summary and reference(source) in refs(built, finding.inputs)
    assert finding.proposed == ()


def test_a_draft_order_is_checked_and_marked_proposed() -> None:
    order = draft("gabapentin")
    chart = Chart(age=80, gender="female", resources=(creatinine(1.2), weight(60)), drafts=(order,))
    (finding,), built = run(DOSE, chart)
    assert refs(built, finding.proposed) == {reference(order)}


def test_do_not_start_warns_on_a_new_order_only() -> None:
    # Spironolactone at recorded eGFR 25: the 30-50 band informs; "do not start" below 30 warns on a draft.
    order = draft("spironolactone")
    (finding,), _ = run(DOSE, Chart(resources=(egfr(25),), drafts=(order,)))
    assert finding.severity == "warning" and "label <30: do not start" in finding.summary
    (finding,), _ = run(DOSE, Chart(resources=(med("spironolactone"), egfr(25))))
    assert finding.severity == "info" and "25 mg every other day" in finding.summary


def test_metformin_and_nitrofurantoin_are_left_to_their_egfr_rules() -> None:
    chart = Chart(resources=(med("metformin"), med("nitrofurantoin"), egfr(20)))
    assert run(DOSE, chart)[0] == [] and run(UNKNOWN, chart)[0] == []


@pytest.mark.parametrize(
    ("age", "kg", "creatinine_value", "fires"),
    [(82, 58.0, 1.0, True), (82, 70.0, 1.6, True), (82, 70.0, 1.0, False), (50, 58.0, 1.6, True)],
)
def test_apixaban_two_of_three_criteria(age: int, kg: float, creatinine_value: float, fires: bool) -> None:
    chart = Chart(
        age=age, gender="female", resources=(med("apixaban"), creatinine(creatinine_value), weight(kg))
    )
    found, _ = run(DOSE, chart)
    assert bool(found) == fires
    if found:
        check_text(found[0])
        assert "2.5 mg twice daily" in found[0].summary


@pytest.mark.parametrize(
    ("problems", "fires"),
    [
        ((), True),  # no indication on record: the AF criteria are shown
        (("atrial-fibrillation",), True),
        (("deep-vein-thrombosis",), False),  # VTE treatment has its own doses, with no age or weight cut
        (("pulmonary-embolism",), False),
        (("deep-vein-thrombosis", "atrial-fibrillation"), True),
    ],
)
def test_apixaban_criteria_are_for_atrial_fibrillation(problems: tuple[str, ...], fires: bool) -> None:
    resources = (med("apixaban"), creatinine(1.0), weight(57), *(problem(p) for p in problems))
    found, _ = run(DOSE, Chart(age=82, gender="female", resources=resources))
    assert bool(found) is fires


@pytest.mark.parametrize(
    ("kg", "mg", "dosed"),
    [
        # Male 70, creatinine 1.0: CrCl = (140 - 70) x kg / 72.
        (83, 12, False),  # CrCl 80.7: no limit
        (82, 12, True),  # CrCl 79.7: at most 6 mg
        (82, 6, False),
        (52, 6, False),  # CrCl 50.6: 6 mg is the most
        (51, 6, True),  # CrCl 49.6: at most 3 mg
        (51, 3, False),
    ],
)
def test_paliperidone_dose_falls_with_clearance(kg: float, mg: int, dosed: bool) -> None:
    order = copy_json(med("gabapentin"))
    order["medicationCodeableConcept"] = {"text": f"paliperidone {mg} MG Extended Release Oral Tablet"}
    order["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = 1
    facts, _ = facts_of(Chart(age=70, gender="male", resources=(order, creatinine(1.0), weight(kg))))
    assert bool(list(DOSE(facts))) is dosed


def test_apixaban_undecided_asks_for_the_weight_decided_does_not() -> None:
    # Age 82 meets one criterion, creatinine 1.0 does not: the weight decides, and it is missing.
    (finding,), _ = run(UNKNOWN, Chart(age=82, resources=(med("apixaban"), creatinine(1.0))))
    assert "consider checking weight" in finding.summary and finding.order_lab is None
    # Age 50 with creatinine 1.0: no weight could reach two criteria.
    assert run(UNKNOWN, Chart(age=50, resources=(med("apixaban"), creatinine(1.0))))[0] == []


def test_stale_creatinine_and_weight_ask_for_both_and_decide_nothing() -> None:
    chart = Chart(resources=(ENOXAPARIN, creatinine(0.5, 400), weight(90, 400)))
    assert run(DOSE, chart)[0] == []
    (finding,), built = run(UNKNOWN, chart)
    check_text(finding)
    assert finding.rule_id == "rule.renal-function-unknown" and finding.severity == "info"
    assert "creatinine 400 days old, weight 400 days old" in finding.summary
    assert "consider checking creatinine and weight" in finding.summary
    assert finding.order_lab is not None and finding.order_lab.loinc == "2160-0"
    assert refs(built, finding.inputs) == {
        reference(ENOXAPARIN),
        "Observation/creatinine",
        "Observation/weight",
    }


def test_missing_sex_asks_for_a_check_by_hand() -> None:
    chart = Chart(gender="unknown", resources=(ENOXAPARIN, creatinine(1.0), weight(80)))
    assert run(DOSE, chart)[0] == []
    (finding,), _ = run(UNKNOWN, chart)
    assert "by hand" in finding.summary and finding.order_lab is None


def test_a_proposed_drug_without_kidney_function_is_marked_proposed() -> None:
    order = draft("enoxaparin")
    (finding,), built = run(UNKNOWN, Chart(drafts=(order,)))
    assert refs(built, finding.proposed) == {reference(order)} and "no creatinine" in finding.summary


def test_digoxin_gets_one_recheck_card() -> None:
    digoxin = med("digoxin")
    # No current eGFR: rule.egfr-recheck asks for it, and this rule stays quiet about digoxin.
    chart = Chart(resources=(digoxin, egfr(25, 400)))
    facts, _ = facts_of(chart)
    assert [f.rule_id for f in catalog.EGFR_RECHECK(facts)] == ["rule.egfr-recheck"]
    assert list(UNKNOWN(facts)) == []
    # Current eGFR but no weight for CrCl: the eGFR stands in (KDIGO 2024), so nobody asks for more.
    chart = Chart(resources=(digoxin, egfr(45), creatinine(1.3)))
    facts, _ = facts_of(chart)
    assert list(catalog.EGFR_RECHECK(facts)) == []
    assert list(UNKNOWN(facts)) == []
    assert list(DOSE(facts)) == []


@pytest.mark.parametrize(("value", "dosed"), [(29.9, True), (30, False)])
def test_the_egfr_stands_in_for_crcl_when_there_is_no_weight(value: float, dosed: bool) -> None:
    # KDIGO 2024 accepts eGFR for drug dosing: without a weight it decides, either way, and the card says so.
    facts, _ = facts_of(Chart(resources=(med("digoxin"), egfr(value))))
    findings = list(DOSE(facts))
    assert bool(findings) is dosed
    assert list(UNKNOWN(facts)) == []
    if dosed:
        assert "no weight for CrCl" in findings[0].summary and "eGFR 29.9" in findings[0].summary


@pytest.mark.parametrize(
    ("age", "drug", "problems", "asks"),
    [
        (64, "gabapentin", (), False),  # a younger adult, no kidney disease: dosed as usual
        (65, "gabapentin", (), True),
        (50, "gabapentin", ("ckd-3",), True),
        (30, "enoxaparin", (), True),  # an anticoagulant: asked at any age
    ],
)
def test_a_creatinine_is_asked_for_where_it_changes_the_dose(
    age: int, drug: str, problems: tuple[str, ...], asks: bool
) -> None:
    chart = Chart(age=age, resources=(med(drug), *(problem(p) for p in problems)))
    facts, _ = facts_of(chart)
    assert bool(list(UNKNOWN(facts))) is asks


@pytest.mark.parametrize(("times", "dosed"), [(3, False), (5, True)])
def test_gabapentin_within_the_labelled_range_for_its_crcl_needs_no_card(times: int, dosed: bool) -> None:
    # CrCl 30-59: 400-1400 mg a day. 300 mg x 3 = 900 is inside; 300 mg x 5 = 1,500 is over.
    order = copy_json(med("gabapentin"))
    order["medicationCodeableConcept"]["coding"][0]["display"] = "Gabapentin 300 MG Oral Capsule"
    order["medicationCodeableConcept"]["text"] = "Gabapentin 300 MG Oral Capsule"
    order["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = times
    facts, _ = facts_of(Chart(age=70, gender="male", resources=(order, creatinine(2.0), weight(80))))
    assert bool(list(DOSE(facts))) is dosed


@pytest.mark.parametrize(
    ("mg", "egfr", "dosed"), [(25, 22, False), (50, 22, True), (50, 38, False), (100, 38, True)]
)
def test_sitagliptin_at_its_labelled_dose_for_the_egfr_needs_no_card(
    mg: int, egfr: float, dosed: bool
) -> None:
    # eGFR 30 to under 45: 50 mg daily; under 30: 25 mg daily.
    order = copy_json(med("gabapentin"))
    order["medicationCodeableConcept"] = {"text": f"sitagliptin {mg} MG Oral Tablet"}
    order["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = 1
    facts, _ = facts_of(Chart(age=70, resources=(order, lab("egfr", egfr))))
    assert bool(list(DOSE(facts))) is dosed


@pytest.mark.parametrize(
    ("crcl", "per_day", "dosed"),
    [(50.5, 3, False), (50, 3, True), (50, 2, False), (24.5, 2, True), (24.5, 1, False), (9.5, 1, True)],
)
def test_intravenous_acyclovir_lengthens_its_interval_as_clearance_falls(
    crcl: float, per_day: int, dosed: bool
) -> None:
    # 10 mg/kg every 8 hours above CrCl 50; every 12 hours at 25-50; every 24 hours at 10-25; half below 10.
    iv = copy_json(med("gabapentin"))
    iv["medicationCodeableConcept"] = {"text": "acyclovir 50 MG/ML Injectable Solution"}
    iv["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = per_day
    # Male 68 with creatinine 1.0: CrCl = (140 - 68) x kg / 72, the weight itself.
    chart = Chart(age=68, gender="male", resources=(iv, creatinine(1.0), weight(crcl)))
    facts, _ = facts_of(chart)
    assert bool(list(DOSE(facts))) is dosed


def test_oral_acyclovir_keeps_its_own_limits() -> None:
    tablets = copy_json(med("gabapentin"))
    tablets["medicationCodeableConcept"] = {"text": "acyclovir 800 MG Oral Tablet"}
    tablets["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = 3
    facts, _ = facts_of(Chart(age=70, gender="male", resources=(tablets, creatinine(1.0), weight(40))))
    assert list(DOSE(facts)) == []  # CrCl about 39: no oral limit above 25


# --- AKI on nephrotoxins ----------------------------------------------------------------------------


def aki_chart(*drugs: dict[str, Any], now: float = 1.4, before: float = 1.0) -> Chart:
    return Chart(
        resources=(*drugs, creatinine(now, 0, "creatinine-now"), creatinine(before, 2, "creatinine-before"))
    )


@pytest.mark.parametrize(("now", "fires"), [(1.29, False), (1.3, True), (1.4, True)])
def test_aki_on_an_ace_inhibitor(now: float, fires: bool) -> None:
    lisinopril = med("lisinopril")
    found, built = run(AKI, aki_chart(lisinopril, now=now))
    assert bool(found) == fires
    if found:
        (finding,) = found
        check_text(finding)
        assert (finding.rule_id, finding.severity) == ("rule.aki-nephrotoxin", "warning")
        assert "AKI stage 1" in finding.summary and "holding" in finding.summary
        assert refs(built, finding.inputs) == {
            reference(lisinopril),
            "Observation/creatinine-now",
            "Observation/creatinine-before",
        }


def test_aki_names_every_nephrotoxin_and_a_draft() -> None:
    order = draft("ibuprofen")
    chart = aki_chart(med("furosemide"), now=3.1)
    chart = Chart(resources=chart.resources, drafts=(order,))
    (finding,), built = run(AKI, chart)
    assert "AKI stage 3" in finding.summary and "furosemide" in finding.summary
    assert refs(built, finding.proposed) == {reference(order)}


def _vancomycin(display: str, resource_id: str) -> dict[str, Any]:
    # The ingredient's RxNorm code with a product display: the route is read from the display.
    return medication_request(resource_id, PATIENT_ID, "11124", display, authored=on(3))


def test_oral_vancomycin_is_not_a_nephrotoxin_intravenous_is() -> None:
    oral = _vancomycin("Vancomycin 125 MG Oral Capsule", "vanco-oral")
    assert run(AKI, aki_chart(oral))[0] == []
    iv = _vancomycin("vancomycin 1000 MG Injection", "vanco-iv")
    (finding,), _ = run(AKI, aki_chart(iv))
    assert "vancomycin" in finding.summary


def test_no_aki_rule_without_a_nephrotoxin() -> None:
    assert run(AKI, aki_chart(med("acetaminophen"), now=3.0))[0] == []


# --- the card text across the whole table -----------------------------------------------------------


def _context(
    ingredients: tuple[str, ...],
    sex: Sex,
    crcl: float | None,
    egfr_value: float | None,
    proposed: bool,
    injected: bool = False,
) -> Any:
    form = "Injection" if injected else "Oral Tablet"
    display = " / ".join(f"{name.capitalize()} 100 MG" for name in ingredients) + f" {form}"
    medication = Medication(
        "M1",
        Code("urn:test", "x", display),
        ingredients,
        None,
        "active",
        Dosage(),
        10,
        "MedicationRequest",
    )
    labs = []
    if crcl is not None:
        # Male 90+ (the longest wording) with creatinine 1.0: CrCl = 50 x kg / 72, so kg = 1.44 x CrCl.
        labs += [
            LabSeries("creatinine", "Creatinine", (Measurement("O1", "creatinine", 1.0, "mg/dL", 1),), None),
            LabSeries("weight", "Weight", (Measurement("O2", "weight", 1.44 * crcl, "kg", 1),), None),
        ]
    if egfr_value is not None:
        labs.append(LabSeries("egfr", "eGFR", (Measurement("O3", "egfr", egfr_value, "mL/min", 1),), None))
    if proposed:
        order = DraftOrder(
            "D1", "MedicationRequest", medication.code, ingredients, None, Dosage(), "draft", "order"
        )
        return ClinicalContext(Demographics(90, sex), draft_orders=(order,), labs=tuple(labs))
    return ClinicalContext(Demographics(90, sex), medications=(medication,), labs=tuple(labs))


@pytest.mark.parametrize(
    ("drug", "threshold"), THRESHOLDS, ids=[f"{d.name}:{t.bound}-{t.limit:g}" for d, t in THRESHOLDS]
)
def test_every_threshold_makes_a_whole_card(drug: Any, threshold: Any) -> None:
    if drug.handled_by is not None:
        pytest.skip("decided by an older eGFR rule")
    value = threshold.limit + 1 if threshold.bound == "above" else threshold.limit - 0.5
    new_only, injected = threshold.action in NEW_ORDER_ONLY, drug.route == "parenteral"
    context = (
        _context(drug.ingredients, "male", value, None, new_only, injected)
        if drug.basis == "crcl"
        else _context(drug.ingredients, "male", None, value, new_only, injected)
    )
    (finding,) = DOSE(RuleFacts.of(context))
    check_text(finding)
    assert "…" not in finding.summary, finding.summary  # nothing cut: the option and the label both fit
    assert threshold.option in finding.summary


def test_apixaban_already_at_the_reduced_dose_needs_no_card() -> None:
    # Age 82 and creatinine 1.6 meet two criteria: 5 mg twice daily is flagged, 2.5 mg is what the label asks.
    reduced = copy_json(med("apixaban"))
    reduced["medicationCodeableConcept"]["coding"][0]["display"] = "apixaban 2.5 MG Oral Tablet"
    reduced["medicationCodeableConcept"]["text"] = "apixaban 2.5 MG Oral Tablet"
    for order, fires in ((med("apixaban"), True), (reduced, False)):
        facts, _ = facts_of(Chart(age=82, gender="female", resources=(order, creatinine(1.6), weight(70))))
        assert bool(list(DOSE(facts))) is fires


def _sotalol(per_day: int | None) -> dict[str, Any]:
    request = medication_request("sotalol", PATIENT_ID, "", "sotalol hydrochloride 80 MG Oral Tablet")
    del request["medicationCodeableConcept"]["coding"]
    if per_day is not None:
        request["dosageInstruction"] = [
            {
                "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            }
        ]
    return request


@pytest.mark.parametrize(
    ("kg", "per_day", "severity"),
    [
        (73, 2, None),  # CrCl 60.8: every 12 hours is labelled
        (72, 2, "info"),  # CrCl 60.0, at the line: twice a day is more often than every 24 hours
        (71, 2, "info"),  # CrCl 59.2
        (71, 1, None),  # once a day is within
        (71, None, "info"),  # a frequency that cannot be read is not within (fail closed)
        (48, 1, None),  # CrCl 40.0: once a day, not yet below 40
        (47, 1, "warning"),  # CrCl 39.2: the AF label's contraindication
    ],
)
def test_sotalol_interval_by_crcl(kg: float, per_day: int | None, severity: str | None) -> None:
    # Male 50, creatinine 1.5 mg/dL: CrCl = 90 x kg / 108.
    found, _ = run(
        DOSE, Chart(age=50, gender="male", resources=(_sotalol(per_day), creatinine(1.5), weight(kg)))
    )
    assert [f.severity for f in found] == ([severity] if severity else [])


def _ciprofloxacin(tablets: int, per_day: int) -> dict[str, Any]:
    request = medication_request("cipro", PATIENT_ID, "", "ciprofloxacin 250 MG Oral Tablet")
    del request["medicationCodeableConcept"]["coding"]
    request["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": tablets, "unit": "tablet"}}],
        }
    ]
    return request


@pytest.mark.parametrize(
    ("kg", "tablets", "per_day", "fires"),
    [
        (61, 3, 2, False),  # CrCl 50.8: above the line, 750 mg every 12 hours is the usual dose
        (60, 3, 2, True),  # CrCl 50.0, at the line: 1,500 mg a day is over 1,000
        (60, 2, 2, False),  # 500 mg every 12 hours is the labelled 250-500 mg every 12 hours
        (59, 2, 3, True),  # three times a day is more often than every 12 hours
        (59, 1, 4, True),  # 1,000 mg a day, but in four doses
        (35, 2, 2, True),  # CrCl 29.2: every 18 hours below 30
        (35, 1, 1, False),  # 250 mg once a day
    ],
)
def test_ciprofloxacin_dose_by_crcl(kg: float, tablets: int, per_day: int, fires: bool) -> None:
    # Male 50, creatinine 1.5 mg/dL: CrCl = 90 x kg / 108.
    found, _ = run(
        DOSE,
        Chart(
            age=50, gender="male", resources=(_ciprofloxacin(tablets, per_day), creatinine(1.5), weight(kg))
        ),
    )
    assert bool(found) is fires


def _renally_dosed(display: str, tablets: int, frequency: int, period: int) -> dict[str, Any]:
    request = medication_request("renal-drug", PATIENT_ID, "", display)
    del request["medicationCodeableConcept"]["coding"]
    request["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": frequency, "period": period, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": tablets, "unit": "tablet"}}],
        }
    ]
    return request


@pytest.mark.parametrize(
    ("display", "tablets", "frequency", "period", "kg", "fires"),
    [
        # Male 50, creatinine 1.5 mg/dL: CrCl = 90 x kg / 108. Levofloxacin below 50: 750 mg every 48 h or
        # 250 mg daily (at most 375 mg a day, once a day); below 20: every 48 h.
        ("levofloxacin 750 MG Oral Tablet", 1, 1, 2, 59, False),  # CrCl 49.2, every 48 h
        ("levofloxacin 750 MG Oral Tablet", 1, 1, 1, 59, True),  # daily is the normal-kidney dose
        ("levofloxacin 250 MG Oral Tablet", 1, 1, 1, 59, False),
        ("levofloxacin 750 MG Oral Tablet", 1, 1, 1, 60, False),  # CrCl 50.0: not below 50
        ("levofloxacin 250 MG Oral Tablet", 1, 1, 1, 23, True),  # CrCl 19.2: every 48 h below 20
        ("levofloxacin 250 MG Oral Tablet", 1, 1, 2, 23, False),
        # Meropenem at 25 or less: half the usual 1 g every 12 h (1 g a day at most); below 10 every 24 h.
        ("meropenem 500 MG Injection", 1, 2, 1, 30, False),  # CrCl 25.0: 500 mg every 12 h
        ("meropenem 1000 MG Injection", 1, 3, 1, 30, True),  # the normal-kidney 1 g every 8 h
        ("meropenem 1000 MG Injection", 1, 2, 1, 31, False),  # CrCl 25.8: the full dose every 12 h (26-50)
        ("meropenem 1000 MG Injection", 1, 2, 1, 30, True),  # CrCl 25.0: that is twice the halved dose
        ("meropenem 500 MG Injection", 1, 1, 1, 11, False),  # CrCl 9.2: 500 mg every 24 h
        ("meropenem 500 MG Injection", 1, 2, 1, 11, True),
    ],
)
def test_renal_limits_honour_the_labelled_reduced_regimen(
    display: str, tablets: int, frequency: int, period: int, kg: float, fires: bool
) -> None:
    order = _renally_dosed(display, tablets, frequency, period)
    found, _ = run(DOSE, Chart(age=50, gender="male", resources=(order, creatinine(1.5), weight(kg))))
    assert bool(found) is fires


@pytest.mark.parametrize(
    ("display", "carded"),
    [
        ("Acyclovir 50 MG/G Topical Cream", False),
        ("Zirgan (ganciclovir) 0.15 % ophthalmic gel", False),
        ("Acyclovir 800 MG Oral Tablet", True),
    ],
)
def test_kidney_limits_are_for_systemic_products_only(display: str, carded: bool) -> None:
    ingredient = "ganciclovir" if "ganciclovir" in display else "acyclovir"
    context = _context((ingredient,), "male", 9, None, False)
    (medication,) = context.medications
    named = replace(medication, code=replace(medication.code, display=display))
    assert bool(list(DOSE(RuleFacts.of(replace(context, medications=(named,)))))) is carded


def _enoxaparin_order(mg: float, per_day: int) -> dict[str, Any]:
    order = med("enoxaparin", "enoxaparin-dosed")
    order["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg"}}],
        }
    ]
    return order


@pytest.mark.parametrize(
    ("mg", "per_day", "fires"),
    [
        (30, 1, False),  # the renal prophylaxis dose
        (40, 1, True),  # the usual prophylaxis dose, not reduced
        (80, 1, False),  # 1 mg/kg once daily: the renal treatment dose at 80 kg
        (72, 1, False),  # within 10% of 1 mg/kg
        (71, 1, True),
        (80, 2, True),  # 1 mg/kg twice daily: the dose for normal kidneys
        (30, 2, True),
    ],
)
def test_enoxaparin_below_crcl_30_at_its_renal_doses(mg: float, per_day: int, fires: bool) -> None:
    # Male 80, 80 kg, creatinine 3.0: CrCl = (140 - 80) x 80 / (72 x 3.0) = 22 mL/min.
    chart = Chart(
        age=80, gender="male", resources=(_enoxaparin_order(mg, per_day), creatinine(3.0), weight(80))
    )
    found, _ = run(DOSE, chart)
    assert bool(found) is fires


def _dabigatran(mg_a_day: float) -> dict[str, Any]:
    order = med("dabigatran", "dabigatran-dosed")
    order["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": mg_a_day / 2, "unit": "mg"}}],
        }
    ]
    return order


@pytest.mark.parametrize(
    ("kg", "partner", "mg_a_day", "fires"),
    [
        (60.0, "dronedarone", 300, True),  # CrCl 50: reduce to 75 mg twice daily
        (60.2, "dronedarone", 300, False),  # CrCl 50.1
        (60.0, "dronedarone", 150, False),  # already 75 mg twice daily
        (36.0, "dronedarone", 300, True),  # CrCl 30
        (35.8, "amiodarone", 150, True),  # CrCl 29.8: avoid any P-gp inhibitor
        (36.0, "amiodarone", 300, False),  # amiodarone needs no change at 30-50
    ],
)
def test_dabigatran_with_a_p_gp_inhibitor_by_clearance(
    kg: float, partner: str, mg_a_day: float, fires: bool
) -> None:
    # Male 50, creatinine 1.5 mg/dL: CrCl = 90 x kg / 108.
    chart = Chart(
        age=50, gender="male", resources=(_dabigatran(mg_a_day), med(partner), creatinine(1.5), weight(kg))
    )
    found, _ = run(label_limits.dabigatran_pgp_inhibitor_kidney, chart)
    assert bool(found) is fires
