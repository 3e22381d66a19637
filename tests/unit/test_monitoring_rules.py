"""Monitoring, drug-disease and care-gap rules (plugin.rules.monitoring), and the seasonal influenza care gap:
positive and negative cases through real FHIR parsing, thresholds at, below and above, validity windows."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest

from plugin.context.build import build_context
from plugin.knowledge import load_knowledge_base
from plugin.rules import catalog, monitoring
from plugin.rules.catalog import Rule
from plugin.rules.freshness import lab_windows
from plugin.rules.model import Finding, RuleFacts, Severity
from plugin.rules.monitoring import (
    CARE_GAP_EXTRA_RULES,
    DRUG_DISEASE_RULES,
    MONITORING_RULES,
    repeats_within_a_week,
)
from tests.support.charts import LOINC, SNOMED, UCUM, JsonDict, copy_json, medication_request
from tests.support.rule_cases import (
    OBSERVATION_CATEGORY,
    PATIENT_ID,
    Case,
    Chart,
    Expected,
    check_finding,
    draft,
    lab,
    med,
    named_result,
    on,
    problem,
    vaccine,
)

pytestmark = pytest.mark.unit

RULES: tuple[Rule, ...] = (*MONITORING_RULES, *DRUG_DISEASE_RULES, *CARE_GAP_EXTRA_RULES)


# --- chart pieces -----------------------------------------------------------------------------------------


def dosed(resource: JsonDict, frequency: float, period: float, unit: str) -> JsonDict:
    """The resource with one dosage timing ("1 per 1 wk"), on a request or a statement."""
    changed: JsonDict = copy_json(resource)
    key = "dosage" if changed["resourceType"] == "MedicationStatement" else "dosageInstruction"
    changed[key] = [
        {
            "timing": {"repeat": {"frequency": frequency, "period": period, "periodUnit": unit}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
        }
    ]
    return changed


def undosed(resource: JsonDict) -> JsonDict:
    changed: JsonDict = copy_json(resource)
    changed.pop("dosageInstruction", None)
    return changed


def statement(drug: str, resource_id: str | None = None) -> JsonDict:
    """A MedicationStatement (patient-reported) of one of the DRUGS, with the request's daily timing."""
    request = med(drug, resource_id or f"statement-{drug}")
    return {
        "resourceType": "MedicationStatement",
        "id": request["id"],
        "status": "active",
        "subject": request["subject"],
        "medicationCodeableConcept": request["medicationCodeableConcept"],
        "effectiveDateTime": request["authoredOn"],
        "dosage": request["dosageInstruction"],
    }


def weekly(resource: JsonDict) -> JsonDict:
    return dosed(resource, 1, 1, "wk")


def daily(resource: JsonDict) -> JsonDict:
    return dosed(resource, 1, 1, "d")


def bp_panel(systolic: float, diastolic: float, days_ago: int = 7, resource_id: str = "bp") -> JsonDict:
    """One blood-pressure panel Observation with its two components, as Synthea and most EHRs send it."""

    def component(code: str, display: str, value: float) -> JsonDict:
        return {
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "valueQuantity": {"value": value, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
        }

    return {
        "resourceType": "Observation",
        "id": resource_id,
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": f"{on(days_ago)}T09:30:00Z",
        "component": [
            component("8480-6", "Systolic blood pressure", systolic),
            component("8462-4", "Diastolic blood pressure", diastolic),
        ],
    }


def bp(systolic: float, diastolic: float, days_ago: int = 7) -> tuple[JsonDict, JsonDict]:
    """Systolic and diastolic sent as two Observations."""
    return (
        lab("systolic_bp", systolic, days_ago=days_ago, resource_id="sbp"),
        lab("diastolic_bp", diastolic, days_ago=days_ago, resource_id="dbp"),
    )


METHOTREXATE_DAILY = daily(med("methotrexate"))
METHOTREXATE_WEEKLY = weekly(med("methotrexate"))
METHOTREXATE_DRAFT_DAILY = daily(draft("methotrexate"))
METHOTREXATE_STATEMENT_DAILY = daily(statement("methotrexate"))
METHOTREXATE_INJECTION_DAILY = daily(
    medication_request("mtx-injection", PATIENT_ID, "6851", "Methotrexate 25 MG/ML Injectable Solution")
)
FOLIC_ACID = med("folic-acid")
DIGOXIN = med("digoxin")
LEVOTHYROXINE = med("levothyroxine")
INSULIN = med("insulin")
GLIPIZIDE = med("glipizide")
PROPRANOLOL = med("propranolol")
METOPROLOL = med("metoprolol")
SALMETEROL = med("salmeterol")
FLUTICASONE = med("fluticasone")
ICS_LABA = med("fluticasone-salmeterol")
IBUPROFEN = med("ibuprofen")
ASPIRIN = med("aspirin")
SERTRALINE = med("sertraline")
GABAPENTIN = med("gabapentin")
OXYCODONE = med("oxycodone")
CYCLOBENZAPRINE = med("cyclobenzaprine")
ALPRAZOLAM = med("alprazolam")
TRAMADOL = med("tramadol")
PATCH = med("contraceptive-patch")
LISINOPRIL = med("lisinopril")
ATORVASTATIN = med("atorvastatin")
CLOPIDOGREL = med("clopidogrel")
WARFARIN = med("warfarin")

ASTHMA = problem("asthma")
PREGNANCY = problem("pregnancy")
PREGNANT_16_WEEKS = problem("pregnancy", "pregnancy-16w", onset_days_ago=112)
HYPERTENSION_PROBLEM = problem("hypertension")
DIABETES = problem("diabetes")
MIGRAINE = problem("migraine")
MIGRAINE_AURA = problem("migraine-with-aura")
MIGRAINE_NO_AURA = problem("migraine-without-aura")
MI = problem("myocardial-infarction")
STROKE = problem("ischaemic-stroke")
UNTYPED_STROKE = problem("stroke-untyped")
HEART_FAILURE = problem("heart-failure")


def once_daily(resource: JsonDict) -> JsonDict:
    """The prescription taken once a day (the table's default is three times)."""
    out = copy_json(resource)
    out["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = 1
    return out


ATORVASTATIN_20_DAILY = once_daily(med("atorvastatin"))
ATORVASTATIN_40_DAILY = once_daily(med("atorvastatin-40"))
SIMVASTATIN_10_DAILY = once_daily(med("simvastatin-10"))
PAD = problem("peripheral-arterial-disease")


def mtx_labs(days_ago: int = 30, *, skip: Iterable[str] = ()) -> tuple[JsonDict, ...]:
    values = {"hemoglobin": 13.0, "platelets": 250.0, "alt": 25.0, "egfr": 80.0}
    return tuple(lab(a, v, days_ago=days_ago) for a, v in values.items() if a not in skip)


# --- the case table -------------------------------------------------------------------------------------


def chart(
    *resources: JsonDict, age: int = 50, drafts: tuple[JsonDict, ...] = (), gender: str = "female"
) -> Chart:
    return Chart(age=age, gender=gender, resources=resources, drafts=drafts)


MTX_DOSING = ("kb.methotrexate-weekly-dosing",)
MTX_MONITORING = ("kb.methotrexate-blood-monitoring",)
DIGOXIN_KB = ("kb.digoxin-monitoring",)
DIGOXIN_TOXIC_KB = ("kb.digoxin-toxicity", "kb.digoxin-monitoring")
DIGOXIN_RANGE_KB = ("kb.digoxin-level-above-heart-failure-range", "kb.digoxin-monitoring")
TSH_KB = ("kb.hypothyroidism-tsh-monitoring",)
HYPO = ("kb.ada-2025-hypoglycaemia-levels",)
OLDER = ("kb.ada-2025-older-adults-deintensify", "kb.ada-2025-glycaemic-goals")
ADULT = ("kb.ada-2025-glycaemic-goals",)
BP_KB = ("kb.hypertension-follow-up-until-controlled", "kb.hypertension-treatment-target")


def _glucose(value: float, days_ago: int = 3) -> JsonDict:
    return lab("glucose", value, days_ago=days_ago)


def _hba1c(value: float, days_ago: int = 30) -> JsonDict:
    return lab("hba1c", value, days_ago=days_ago)


def _digoxin(value: float, days_ago: int = 30) -> JsonDict:
    return lab("digoxin", value, days_ago=days_ago)


def _glucose_case(value: float, severity: Severity | None, drug: JsonDict = INSULIN) -> Case:
    glucose = _glucose(value)
    expected = (
        () if severity is None else (Expected("rule.hypoglycaemia-glucose", severity, HYPO, (drug, glucose)),)
    )
    return Case(
        f"glucose/{value:g}-{drug['id']}", monitoring.hypoglycaemia_glucose, chart(drug, glucose), expected
    )


def _hba1c_case(value: float, age: int, severity: Severity | None, drug: JsonDict = INSULIN) -> Case:
    a1c = _hba1c(value)
    evidence = OLDER if age >= 65 else ADULT
    expected = (
        () if severity is None else (Expected("rule.hba1c-overtreatment", severity, evidence, (drug, a1c)),)
    )
    return Case(
        f"hba1c/{value:g}-age-{age}-{drug['id']}",
        monitoring.hba1c_overtreatment,
        chart(drug, a1c, age=age),
        expected,
    )


def _bp_case(systolic: float, diastolic: float, fires: bool) -> Case:
    readings = bp(systolic, diastolic)
    expected = (
        (Expected("rule.blood-pressure-uncontrolled", "info", BP_KB, (LISINOPRIL, *readings)),)
        if fires
        else ()
    )
    return Case(
        f"bp/{systolic:g}-{diastolic:g}",
        monitoring.uncontrolled_blood_pressure,
        chart(LISINOPRIL, *readings),
        expected,
    )


def _statin_diabetes_case(age: int, fires: bool) -> Case:
    expected = (
        (
            Expected(
                "rule.statin-indicated-absent", "info", ("kb.ada-2025-statin-diabetes-40-75",), (DIABETES,)
            ),
        )
        if fires
        else ()
    )
    return Case(f"statin/diabetes-age-{age}", monitoring.statin_indicated, chart(DIABETES, age=age), expected)


def _ldl_case(value: float, fires: bool, age: int = 30) -> Case:
    ldl = lab("ldl", value, days_ago=60)
    expected = (
        (Expected("rule.statin-indicated-absent", "info", ("kb.ldl-190-high-intensity-statin",), (ldl,)),)
        if fires
        else ()
    )
    return Case(f"statin/ldl-{value:g}-age-{age}", monitoring.statin_indicated, chart(ldl, age=age), expected)


STALE_DIGOXIN_LOW = _digoxin(1.2, days_ago=400)
STALE_DIGOXIN_HIGH = _digoxin(2.4, days_ago=400)
STALE_DIGOXIN_LINE = _digoxin(2.0, days_ago=400)
STALE_TSH = lab("tsh", 2.1, days_ago=366)
STALE_GLUCOSE = _glucose(50, days_ago=31)
STALE_HBA1C = _hba1c(5.8, days_ago=200)
STALE_LDL = lab("ldl", 200, days_ago=400)
STALE_BP = bp(150, 95, days_ago=100)
HIGH_DIGOXIN = _digoxin(2.1)
VERY_HIGH_DIGOXIN = _digoxin(2.5)
EGFR_OLD_FOR_MTX = lab("egfr", 80, days_ago=200)
CREATININE = lab("creatinine", 0.9, days_ago=30)
MTX_LABS_91 = mtx_labs(91)
PANEL = bp_panel(150, 85)


def _by_text(resource_id: str, display: str, days_ago: int) -> JsonDict:
    """A prescription recorded by its text alone, as EHRs record many products."""
    request = medication_request(resource_id, PATIENT_ID, "", display, authored=on(days_ago))
    del request["medicationCodeableConcept"]["coding"]
    return request


def _glucocorticoid(display: str, resource_id: str = "steroid") -> JsonDict:
    """One tablet a day of a glucocorticoid named with its strength (prednisone-equivalents are read from it)."""
    return dosed(_by_text(resource_id, display, 60), 1, 1, "d")


def _gpa() -> JsonDict:
    condition = problem("asthma", "gpa")
    coding = {"system": "http://snomed.info/sct", "code": "195353004", "display": "Wegener's granulomatosis"}
    condition["code"] = {"coding": [coding], "text": "Granulomatosis with polyangiitis"}
    return condition


def _melanoma() -> JsonDict:
    condition = problem("asthma", "melanoma")
    condition["code"] = {"text": "Malignant melanoma of skin, metastatic"}
    return condition


MYCOPHENOLATE = _by_text("mmf", "mycophenolate mofetil 500 MG Oral Tablet", 300)
D5W = _by_text("d5w", "dextrose 5 % Injectable Solution", 1)
THIAMINE = _by_text("thiamine", "thiamine 100 MG/ML Injectable Solution", 1)
GLUCOSE_TABLETS = _by_text("glucose", "dextrose 4 G Chewable Tablet", 30)


def _alcohol_use_disorder() -> JsonDict:
    condition = problem("asthma", "aud")
    condition["code"] = {"text": "Alcohol withdrawal"}
    return condition


ALCOHOL_USE_DISORDER = _alcohol_use_disorder()


def _h_pylori() -> JsonDict:
    condition = problem("asthma", "hp")
    condition["code"] = {"text": "H. pylori infection (antral biopsy positive)"}
    return condition


H_PYLORI = _h_pylori()
TRUVADA = _by_text("truvada", "emtricitabine 200 MG / tenofovir disoproxil fumarate 300 MG Oral Tablet", 80)
DESCOVY = _by_text("descovy", "emtricitabine 200 MG / tenofovir alafenamide 25 MG Oral Tablet", 80)
# Male 58, 80 kg, creatinine 1.6: Cockcroft-Gault CrCl (140 - 58) x 80 / (72 x 1.6) = 56.9 mL/min.
PREP_CREATININE = lab("creatinine", 1.6, 10)
PREP_WEIGHT = lab("weight", 80, 10)
BACTRIM = _by_text("smx", "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet", 30)


CASES: tuple[Case, ...] = (
    # Methotrexate: daily dosing.
    Case(
        "mtx-daily/draft-order",
        monitoring.methotrexate_weekly_dosing,
        chart(drafts=(METHOTREXATE_DRAFT_DAILY,)),
        (
            Expected(
                "rule.methotrexate-daily-dosing",
                "critical",
                MTX_DOSING,
                (METHOTREXATE_DRAFT_DAILY,),
                (METHOTREXATE_DRAFT_DAILY,),
                mentions=("1 per 1 d",),
            ),
        ),
    ),
    Case(
        "mtx-daily/medication-request",
        monitoring.methotrexate_weekly_dosing,
        chart(METHOTREXATE_DAILY),
        (Expected("rule.methotrexate-daily-dosing", "warning", MTX_DOSING, (METHOTREXATE_DAILY,)),),
    ),
    Case(
        "mtx-daily/medication-statement",
        monitoring.methotrexate_weekly_dosing,
        chart(METHOTREXATE_STATEMENT_DAILY),
        (Expected("rule.methotrexate-daily-dosing", "warning", MTX_DOSING, (METHOTREXATE_STATEMENT_DAILY,)),),
    ),
    Case(
        "mtx-daily/twice-a-day",
        monitoring.methotrexate_weekly_dosing,
        chart(dosed(med("methotrexate", "mtx-bd"), 2, 1, "d")),
        (
            Expected(
                "rule.methotrexate-daily-dosing",
                "warning",
                MTX_DOSING,
                (dosed(med("methotrexate", "mtx-bd"), 2, 1, "d"),),
            ),
        ),
    ),
    Case("mtx-daily/weekly", monitoring.methotrexate_weekly_dosing, chart(METHOTREXATE_WEEKLY)),
    Case(
        "mtx-daily/weekly-split-over-a-day",
        monitoring.methotrexate_weekly_dosing,
        chart(dosed(med("methotrexate"), 3, 1, "wk")),
    ),
    Case(
        "mtx-daily/weekly-draft",
        monitoring.methotrexate_weekly_dosing,
        chart(drafts=(weekly(draft("methotrexate")),)),
    ),
    Case("mtx-daily/no-timing", monitoring.methotrexate_weekly_dosing, chart(undosed(med("methotrexate")))),
    Case("mtx-daily/injectable", monitoring.methotrexate_weekly_dosing, chart(METHOTREXATE_INJECTION_DAILY)),
    # Methotrexate: monitoring within the 90-day panel window.
    Case(
        "mtx-labs/all-current", monitoring.methotrexate_monitoring, chart(METHOTREXATE_WEEKLY, *mtx_labs(30))
    ),
    Case(
        "mtx-labs/at-90-days", monitoring.methotrexate_monitoring, chart(METHOTREXATE_WEEKLY, *mtx_labs(90))
    ),
    Case(
        "mtx-labs/creatinine-for-egfr",
        monitoring.methotrexate_monitoring,
        chart(METHOTREXATE_WEEKLY, CREATININE, *mtx_labs(30, skip=("egfr",))),
    ),
    Case(
        "mtx-labs/none",
        monitoring.methotrexate_monitoring,
        chart(METHOTREXATE_WEEKLY),
        (
            Expected(
                "rule.methotrexate-monitoring",
                "warning",
                MTX_MONITORING,
                (METHOTREXATE_WEEKLY,),
                order_lab="58410-2",
                mentions=("blood count", "renal function", "ALT"),
            ),
        ),
    ),
    Case(
        "mtx-labs/at-91-days",
        monitoring.methotrexate_monitoring,
        chart(METHOTREXATE_WEEKLY, *MTX_LABS_91),
        (
            Expected(
                "rule.methotrexate-monitoring",
                "warning",
                MTX_MONITORING,
                (METHOTREXATE_WEEKLY, *MTX_LABS_91),
                order_lab="58410-2",
            ),
        ),
    ),
    Case(
        "mtx-labs/egfr-current-for-metformin-but-old-for-methotrexate",
        monitoring.methotrexate_monitoring,
        chart(METHOTREXATE_WEEKLY, EGFR_OLD_FOR_MTX, *mtx_labs(30, skip=("egfr",))),
        (
            Expected(
                "rule.methotrexate-monitoring",
                "warning",
                MTX_MONITORING,
                (METHOTREXATE_WEEKLY, EGFR_OLD_FOR_MTX),
                order_lab="33914-3",
                mentions=("renal function",),
            ),
        ),
    ),
    Case(
        "mtx-labs/alt-missing",
        monitoring.methotrexate_monitoring,
        chart(METHOTREXATE_WEEKLY, *mtx_labs(30, skip=("alt",))),
        (
            Expected(
                "rule.methotrexate-monitoring",
                "warning",
                MTX_MONITORING,
                (METHOTREXATE_WEEKLY,),
                order_lab="1742-6",
                mentions=("ALT",),
            ),
        ),
    ),
    Case(
        "mtx-labs/platelets-missing",
        monitoring.methotrexate_monitoring,
        chart(METHOTREXATE_WEEKLY, *mtx_labs(30, skip=("platelets",))),
        (
            Expected(
                "rule.methotrexate-monitoring",
                "warning",
                MTX_MONITORING,
                (METHOTREXATE_WEEKLY, lab("hemoglobin", 13.0, days_ago=30)),
                order_lab="58410-2",
                mentions=("blood count",),
            ),
        ),
    ),
    Case(
        "mtx-labs/new-draft-needs-baseline",
        monitoring.methotrexate_monitoring,
        chart(drafts=(weekly(draft("methotrexate")),)),
        (
            Expected(
                "rule.methotrexate-monitoring",
                "warning",
                MTX_MONITORING,
                (weekly(draft("methotrexate")),),
                (weekly(draft("methotrexate")),),
                order_lab="58410-2",
            ),
        ),
    ),
    Case("mtx-labs/no-methotrexate", monitoring.methotrexate_monitoring, chart(FOLIC_ACID)),
    # Methotrexate: folate.
    Case(
        "mtx-folate/absent",
        monitoring.methotrexate_folate,
        chart(METHOTREXATE_WEEKLY),
        (
            Expected(
                "rule.methotrexate-without-folate",
                "info",
                ("kb.methotrexate-folic-acid",),
                (METHOTREXATE_WEEKLY,),
            ),
        ),
    ),
    Case("mtx-folate/prescribed", monitoring.methotrexate_folate, chart(METHOTREXATE_WEEKLY, FOLIC_ACID)),
    Case(
        "mtx-folate/reported-statement",
        monitoring.methotrexate_folate,
        chart(METHOTREXATE_WEEKLY, statement("folic-acid")),
    ),
    # Digoxin level: missing or stale (12-month window), and high.
    Case(
        "digoxin-level/none",
        monitoring.DIGOXIN_LEVEL_RECHECK,
        chart(DIGOXIN),
        (Expected("rule.digoxin-level-recheck", "info", DIGOXIN_KB, (DIGOXIN,), order_lab="10535-3"),),
    ),
    Case(
        "digoxin-level/stale-normal",
        monitoring.DIGOXIN_LEVEL_RECHECK,
        chart(DIGOXIN, STALE_DIGOXIN_LOW),
        (
            Expected(
                "rule.digoxin-level-recheck",
                "info",
                DIGOXIN_KB,
                (DIGOXIN, STALE_DIGOXIN_LOW),
                order_lab="10535-3",
            ),
        ),
    ),
    Case(
        "digoxin-level/stale-high",
        monitoring.DIGOXIN_LEVEL_RECHECK,
        chart(DIGOXIN, STALE_DIGOXIN_HIGH),
        (
            Expected(
                "rule.digoxin-level-recheck",
                "warning",
                DIGOXIN_KB,
                (DIGOXIN, STALE_DIGOXIN_HIGH),
                order_lab="10535-3",
            ),
        ),
    ),
    Case(
        "digoxin-level/stale-at-2.0",
        monitoring.DIGOXIN_LEVEL_RECHECK,
        chart(DIGOXIN, STALE_DIGOXIN_LINE),
        (
            Expected(
                "rule.digoxin-level-recheck",
                "info",
                DIGOXIN_KB,
                (DIGOXIN, STALE_DIGOXIN_LINE),
                order_lab="10535-3",
            ),
        ),
    ),
    Case(
        "digoxin-level/at-365-days",
        monitoring.DIGOXIN_LEVEL_RECHECK,
        chart(DIGOXIN, _digoxin(1.0, days_ago=365)),
    ),
    Case("digoxin-level/no-digoxin", monitoring.DIGOXIN_LEVEL_RECHECK, chart(LEVOTHYROXINE)),
    Case(
        "digoxin-high/2.1",
        monitoring.digoxin_level_high,
        chart(DIGOXIN, HIGH_DIGOXIN),
        (
            Expected(
                "rule.digoxin-level-high",
                "critical",
                DIGOXIN_TOXIC_KB,
                (DIGOXIN, HIGH_DIGOXIN),
                mentions=("2.1", "holding"),
            ),
        ),
    ),
    Case(
        "digoxin-high/not-on-the-list",
        monitoring.digoxin_level_high,
        chart(VERY_HIGH_DIGOXIN),
        (Expected("rule.digoxin-level-high", "critical", DIGOXIN_TOXIC_KB, (VERY_HIGH_DIGOXIN,)),),
    ),
    *(
        Case(
            f"digoxin-high/{value}",
            monitoring.digoxin_level_high,
            chart(DIGOXIN, level := _digoxin(value)),
            (
                Expected(
                    "rule.digoxin-level-high",
                    "warning",
                    DIGOXIN_RANGE_KB,
                    (DIGOXIN, level),
                    mentions=(f"{value:g}", "lower dose"),
                ),
            ),
        )
        for value in (2.0, 1.9, 1.2)
    ),
    Case("digoxin-high/1.1", monitoring.digoxin_level_high, chart(DIGOXIN, _digoxin(1.1))),
    Case(
        "digoxin-high/stale-2.4-is-not-current",
        monitoring.digoxin_level_high,
        chart(DIGOXIN, STALE_DIGOXIN_HIGH),
    ),
    # Levothyroxine and TSH (12-month window).
    Case(
        "tsh/none",
        monitoring.TSH_RECHECK,
        chart(LEVOTHYROXINE),
        (Expected("rule.levothyroxine-tsh-recheck", "info", TSH_KB, (LEVOTHYROXINE,), order_lab="3016-3"),),
    ),
    Case(
        "tsh/366-days",
        monitoring.TSH_RECHECK,
        chart(LEVOTHYROXINE, STALE_TSH),
        (
            Expected(
                "rule.levothyroxine-tsh-recheck",
                "info",
                TSH_KB,
                (LEVOTHYROXINE, STALE_TSH),
                order_lab="3016-3",
            ),
        ),
    ),
    Case(
        "tsh/statement-none",
        monitoring.TSH_RECHECK,
        chart(statement("levothyroxine")),
        (
            Expected(
                "rule.levothyroxine-tsh-recheck",
                "info",
                TSH_KB,
                (statement("levothyroxine"),),
                order_lab="3016-3",
            ),
        ),
    ),
    Case("tsh/365-days", monitoring.TSH_RECHECK, chart(LEVOTHYROXINE, lab("tsh", 2.1, days_ago=365))),
    Case("tsh/no-levothyroxine", monitoring.TSH_RECHECK, chart(DIGOXIN)),
    # Hypoglycaemia: glucose below 70 (level 1) and 54 (level 2), 30-day window.
    _glucose_case(71, None),
    _glucose_case(70, None),
    _glucose_case(69, "warning"),
    _glucose_case(54, "warning"),
    _glucose_case(53, "critical"),
    _glucose_case(50, "critical", GLIPIZIDE),
    Case("glucose/no-insulin", monitoring.hypoglycaemia_glucose, chart(LISINOPRIL, _glucose(50))),
    Case(
        "glucose/at-30-days",
        monitoring.hypoglycaemia_glucose,
        chart(INSULIN, _glucose(60, days_ago=30)),
        (Expected("rule.hypoglycaemia-glucose", "warning", HYPO, (INSULIN, _glucose(60, days_ago=30))),),
    ),
    Case(
        "glucose/stale-low",
        monitoring.hypoglycaemia_glucose,
        chart(INSULIN, STALE_GLUCOSE),
        (
            Expected(
                "rule.hypoglycaemia-glucose-recheck",
                "info",
                ("kb.ada-hypoglycaemia-ask-each-visit", *HYPO),
                (INSULIN, STALE_GLUCOSE),
                order_lab="2345-7",
            ),
        ),
    ),
    Case(
        "glucose/stale-normal", monitoring.hypoglycaemia_glucose, chart(INSULIN, _glucose(110, days_ago=31))
    ),
    Case(
        "glucose/draft-insulin",
        monitoring.hypoglycaemia_glucose,
        chart(_glucose(50), drafts=(draft("insulin"),)),
        (
            Expected(
                "rule.hypoglycaemia-glucose",
                "critical",
                HYPO,
                (draft("insulin"), _glucose(50)),
                (draft("insulin"),),
            ),
        ),
    ),
    # Over-treatment: HbA1c below 6.5% from 65, below 6.0% at 18-64, on insulin or a sulfonylurea.
    _hba1c_case(6.6, 70, None),
    _hba1c_case(6.5, 70, None),
    _hba1c_case(6.4, 70, "warning"),
    _hba1c_case(5.9, 70, "warning", GLIPIZIDE),
    _hba1c_case(6.4, 50, None),
    _hba1c_case(6.0, 50, None),
    _hba1c_case(5.9, 50, "info"),
    _hba1c_case(5.9, 50, "info", GLIPIZIDE),
    _hba1c_case(5.5, 16, None),
    Case("hba1c/no-drug", monitoring.hba1c_overtreatment, chart(LISINOPRIL, _hba1c(5.5), age=70)),
    Case("hba1c/pregnant", monitoring.hba1c_overtreatment, chart(INSULIN, PREGNANCY, _hba1c(5.8), age=30)),
    Case(
        "hba1c/stale-low-no-diabetes-on-record",
        monitoring.hba1c_overtreatment,
        chart(INSULIN, STALE_HBA1C, age=70),
        (
            Expected(
                "rule.hba1c-overtreatment-recheck",
                "info",
                ("kb.ada-hba1c-testing-frequency", *OLDER),
                (INSULIN, STALE_HBA1C),
                order_lab="4548-4",
            ),
        ),
    ),
    Case(
        "hba1c/stale-low-diabetes-care-gap-asks-already",
        monitoring.hba1c_overtreatment,
        chart(INSULIN, DIABETES, STALE_HBA1C, age=70),
    ),
    # Non-selective beta-blockers in asthma.
    Case(
        "beta-blocker-asthma/propranolol",
        monitoring.asthma_non_selective_beta_blocker,
        chart(PROPRANOLOL, ASTHMA),
        (
            Expected(
                "rule.asthma-non-selective-beta-blocker",
                "warning",
                ("kb.beta-blocker-asthma",),
                (PROPRANOLOL, ASTHMA),
            ),
        ),
    ),
    Case(
        "beta-blocker-asthma/draft",
        monitoring.asthma_non_selective_beta_blocker,
        chart(ASTHMA, drafts=(draft("propranolol"),)),
        (
            Expected(
                "rule.asthma-non-selective-beta-blocker",
                "warning",
                ("kb.beta-blocker-asthma",),
                (draft("propranolol"), ASTHMA),
                (draft("propranolol"),),
            ),
        ),
    ),
    Case(
        "beta-blocker-asthma/cardioselective",
        monitoring.asthma_non_selective_beta_blocker,
        chart(METOPROLOL, ASTHMA),
    ),
    Case("beta-blocker-asthma/no-asthma", monitoring.asthma_non_selective_beta_blocker, chart(PROPRANOLOL)),
    # LABA without ICS in asthma.
    Case(
        "laba/alone",
        monitoring.asthma_laba_without_ics,
        chart(SALMETEROL, ASTHMA),
        (
            Expected(
                "rule.asthma-laba-without-ics",
                "critical",
                ("kb.laba-without-ics-asthma", "kb.salmeterol-asthma-without-ics-contraindicated"),
                (SALMETEROL, ASTHMA),
            ),
        ),
    ),
    Case("laba/combination-inhaler", monitoring.asthma_laba_without_ics, chart(ICS_LABA, ASTHMA)),
    Case("laba/separate-ics", monitoring.asthma_laba_without_ics, chart(SALMETEROL, FLUTICASONE, ASTHMA)),
    Case("laba/no-asthma", monitoring.asthma_laba_without_ics, chart(SALMETEROL)),
    # NSAIDs in pregnancy (gestation unknown: information only).
    Case(
        "nsaid-pregnancy/ibuprofen",
        monitoring.nsaid_pregnancy,
        chart(IBUPROFEN, PREGNANCY, age=30),
        (
            Expected(
                "rule.nsaid-pregnancy",
                "info",
                ("kb.nsaid-pregnancy-20-weeks",),
                (IBUPROFEN, PREGNANCY),
                mentions=("gestation unknown",),
            ),
        ),
    ),
    # Dated pregnancy (weeks from the pregnancy problem's onset): warning from 20 weeks, nothing before.
    Case(
        "nsaid-pregnancy/20-weeks",
        monitoring.nsaid_pregnancy,
        chart(problem("pregnancy", "pregnancy-20w", onset_days_ago=140), IBUPROFEN, age=30),
        (
            Expected(
                "rule.nsaid-pregnancy",
                "warning",
                ("kb.nsaid-pregnancy-20-weeks",),
                (IBUPROFEN, problem("pregnancy", "pregnancy-20w", onset_days_ago=140)),
                mentions=("20 weeks", "acetaminophen"),
            ),
        ),
    ),
    Case(
        "nsaid-pregnancy/19-weeks",
        monitoring.nsaid_pregnancy,
        chart(problem("pregnancy", "pregnancy-19w", onset_days_ago=139), IBUPROFEN, age=30),
    ),
    Case(
        "nsaid-pregnancy/draft-celecoxib",
        monitoring.nsaid_pregnancy,
        chart(PREGNANCY, age=30, drafts=(draft("celecoxib"),)),
        (
            Expected(
                "rule.nsaid-pregnancy",
                "info",
                ("kb.nsaid-pregnancy-20-weeks",),
                (draft("celecoxib"), PREGNANCY),
                (draft("celecoxib"),),
            ),
        ),
    ),
    Case("nsaid-pregnancy/low-dose-aspirin", monitoring.nsaid_pregnancy, chart(ASPIRIN, PREGNANCY, age=30)),
    Case("nsaid-pregnancy/not-pregnant", monitoring.nsaid_pregnancy, chart(IBUPROFEN, age=30)),
    # Beers: three or more CNS-active drugs from 65.
    Case(
        "cns-burden/three",
        monitoring.beers_cns_burden,
        chart(SERTRALINE, GABAPENTIN, OXYCODONE, age=70),
        (
            Expected(
                "rule.beers-cns-active-burden",
                "warning",
                ("kb.beers-cns-active-combination",),
                (SERTRALINE, GABAPENTIN, OXYCODONE),
                mentions=("3 CNS-active",),
            ),
        ),
    ),
    Case(
        "cns-burden/relaxant-benzodiazepine-opioid",
        monitoring.beers_cns_burden,
        chart(CYCLOBENZAPRINE, ALPRAZOLAM, TRAMADOL, age=80),
        (
            Expected(
                "rule.beers-cns-active-burden",
                "warning",
                ("kb.beers-cns-active-combination",),
                (CYCLOBENZAPRINE, ALPRAZOLAM, TRAMADOL),
            ),
        ),
    ),
    Case(
        "cns-burden/third-drafted",
        monitoring.beers_cns_burden,
        chart(SERTRALINE, GABAPENTIN, age=70, drafts=(draft("oxycodone"),)),
        (
            Expected(
                "rule.beers-cns-active-burden",
                "warning",
                ("kb.beers-cns-active-combination",),
                (SERTRALINE, GABAPENTIN, draft("oxycodone")),
                (draft("oxycodone"),),
            ),
        ),
    ),
    Case("cns-burden/two", monitoring.beers_cns_burden, chart(SERTRALINE, GABAPENTIN, age=70)),
    Case(
        "cns-burden/renewal-is-one-drug",
        monitoring.beers_cns_burden,
        chart(SERTRALINE, GABAPENTIN, age=70, drafts=(draft("sertraline"),)),
    ),
    Case("cns-burden/age-64", monitoring.beers_cns_burden, chart(SERTRALINE, GABAPENTIN, OXYCODONE, age=64)),
    # Combined hormonal contraception and migraine.
    Case(
        "chc-migraine/with-aura",
        monitoring.chc_migraine,
        chart(PATCH, MIGRAINE_AURA, age=28),
        (Expected("rule.chc-migraine", "critical", ("kb.chc-migraine-with-aura",), (PATCH, MIGRAINE_AURA)),),
    ),
    Case(
        "chc-migraine/aura-unknown",
        monitoring.chc_migraine,
        chart(PATCH, MIGRAINE, age=28),
        (
            Expected(
                "rule.chc-migraine",
                "warning",
                ("kb.chc-migraine-with-aura",),
                (PATCH, MIGRAINE),
                mentions=("aura",),
            ),
        ),
    ),
    Case("chc-migraine/without-aura", monitoring.chc_migraine, chart(PATCH, MIGRAINE_NO_AURA, age=28)),
    Case("chc-migraine/no-contraceptive", monitoring.chc_migraine, chart(MIGRAINE_AURA, age=28)),
    Case("chc-migraine/no-migraine", monitoring.chc_migraine, chart(PATCH, age=28)),
    # Blood pressure on treatment: 140/90 and the 90-day window.
    _bp_case(139, 89, fires=False),
    _bp_case(140, 80, fires=True),
    _bp_case(141, 70, fires=True),
    _bp_case(130, 90, fires=True),
    _bp_case(130, 91, fires=True),
    Case(
        "bp/panel",
        monitoring.uncontrolled_blood_pressure,
        chart(LISINOPRIL, PANEL),
        (
            Expected(
                "rule.blood-pressure-uncontrolled", "info", BP_KB, (LISINOPRIL, PANEL), mentions=("150/85",)
            ),
        ),
    ),
    Case(
        "bp/at-90-days",
        monitoring.uncontrolled_blood_pressure,
        chart(LISINOPRIL, *bp(150, 95, days_ago=90)),
        (
            Expected(
                "rule.blood-pressure-uncontrolled", "info", BP_KB, (LISINOPRIL, *bp(150, 95, days_ago=90))
            ),
        ),
    ),
    Case(
        "bp/stale-high-asks-for-a-reading",
        monitoring.uncontrolled_blood_pressure,
        chart(LISINOPRIL, *STALE_BP),
        (
            Expected(
                "rule.blood-pressure-recheck", "info", BP_KB, (LISINOPRIL, *STALE_BP), mentions=("100 days",)
            ),
        ),
    ),
    Case(
        "bp/stale-normal",
        monitoring.uncontrolled_blood_pressure,
        chart(LISINOPRIL, *bp(130, 80, days_ago=100)),
    ),
    Case("bp/untreated", monitoring.uncontrolled_blood_pressure, chart(*bp(160, 100))),
    Case("bp/age-17", monitoring.uncontrolled_blood_pressure, chart(LISINOPRIL, *bp(150, 95), age=17)),
    # Statin indicated: diabetes 40-75, ASCVD, LDL 190 or more.
    _statin_diabetes_case(39, False),
    _statin_diabetes_case(40, True),
    _statin_diabetes_case(75, True),
    _statin_diabetes_case(76, False),
    _ldl_case(189, False),
    _ldl_case(190, True),
    _ldl_case(191, True),
    _ldl_case(250, False, age=80),
    Case("statin/diabetes-on-statin", monitoring.statin_indicated, chart(DIABETES, ATORVASTATIN, age=55)),
    Case("statin/diabetes-pregnant", monitoring.statin_indicated, chart(DIABETES, PREGNANCY, age=40)),
    Case(
        "statin/myocardial-infarction-at-80",
        monitoring.statin_indicated,
        chart(MI, age=80),
        (Expected("rule.statin-indicated-absent", "info", ("kb.ascvd-high-intensity-statin",), (MI,)),),
    ),
    Case(
        "statin/pad-and-diabetes",
        monitoring.statin_indicated,
        chart(PAD, DIABETES, age=60),
        (
            Expected(
                "rule.statin-indicated-absent",
                "info",
                ("kb.ascvd-high-intensity-statin", "kb.ada-2025-statin-diabetes-40-75"),
                (PAD, DIABETES),
            ),
        ),
    ),
    Case(
        "statin/stale-ldl",
        monitoring.statin_indicated,
        chart(STALE_LDL, age=30),
        (
            Expected(
                "rule.ldl-recheck",
                "info",
                ("kb.ldl-190-high-intensity-statin",),
                (STALE_LDL,),
                order_lab="13457-7",
            ),
        ),
    ),
    # Antiplatelet after ischaemic stroke or myocardial infarction.
    Case(
        "antiplatelet/after-mi",
        monitoring.antiplatelet_secondary_prevention,
        chart(MI, age=60),
        (Expected("rule.antiplatelet-absent", "info", ("kb.chronic-coronary-disease-antiplatelet",), (MI,)),),
    ),
    Case(
        "antiplatelet/after-stroke-and-mi",
        monitoring.antiplatelet_secondary_prevention,
        chart(STROKE, MI, age=60),
        (
            Expected(
                "rule.antiplatelet-absent",
                "info",
                ("kb.stroke-antiplatelet-secondary-prevention", "kb.chronic-coronary-disease-antiplatelet"),
                (STROKE, MI),
            ),
        ),
    ),
    Case("antiplatelet/aspirin", monitoring.antiplatelet_secondary_prevention, chart(MI, ASPIRIN, age=60)),
    Case(
        "antiplatelet/clopidogrel",
        monitoring.antiplatelet_secondary_prevention,
        chart(STROKE, CLOPIDOGREL, age=60),
    ),
    Case(
        "antiplatelet/anticoagulated",
        monitoring.antiplatelet_secondary_prevention,
        chart(STROKE, WARFARIN, age=60),
    ),
    # A stroke of unrecorded type (SNOMED 230690007): an option framed "if ischaemic".
    Case(
        "antiplatelet/after-untyped-stroke",
        monitoring.antiplatelet_secondary_prevention,
        chart(UNTYPED_STROKE, age=60),
        (
            Expected(
                "rule.antiplatelet-absent",
                "info",
                ("kb.stroke-antiplatelet-secondary-prevention",),
                (UNTYPED_STROKE,),
                mentions=("type not recorded", "if ischaemic"),
            ),
        ),
    ),
    # Type 2 diabetes with HbA1c 9% or more on one non-insulin drug or none (ADA 2025): add a second agent.
    *(
        Case(
            f"diabetes-intensification/hba1c-{value:g}",
            monitoring.diabetes_intensification,
            chart(DIABETES, med("metformin"), lab("hba1c", value), age=52),
            (
                Expected(
                    "rule.diabetes-intensification-absent",
                    "warning",
                    ("kb.ada-2025-treatment-intensification",),
                    (DIABETES, med("metformin"), lab("hba1c", value)),
                    mentions=(f"HbA1c {value:g}%", "alone", "GLP-1 agonist or SGLT2 inhibitor"),
                ),
            ),
        )
        for value in (9.0, 9.1)
    ),
    Case(
        "diabetes-intensification/no-drug",
        monitoring.diabetes_intensification,
        chart(DIABETES, lab("hba1c", 10.2), age=52),
        (
            Expected(
                "rule.diabetes-intensification-absent",
                "warning",
                ("kb.ada-2025-treatment-intensification",),
                (DIABETES, lab("hba1c", 10.2)),
                mentions=("on no glucose-lowering drug",),
            ),
        ),
    ),
    Case(
        "diabetes-intensification/hba1c-8.9",
        monitoring.diabetes_intensification,
        chart(DIABETES, med("metformin"), lab("hba1c", 8.9), age=52),
    ),
    Case(
        "diabetes-intensification/two-drugs",
        monitoring.diabetes_intensification,
        chart(DIABETES, med("metformin"), GLIPIZIDE, lab("hba1c", 9.6), age=52),
    ),
    Case(
        "diabetes-intensification/insulin",
        monitoring.diabetes_intensification,
        chart(DIABETES, INSULIN, lab("hba1c", 9.6), age=52),
    ),
    Case(
        "diabetes-intensification/type-1",
        monitoring.diabetes_intensification,
        chart(DIABETES, problem("type-1-diabetes"), lab("hba1c", 9.6), age=30),
    ),
    # Statin intensity with atherosclerotic disease, 75 or under (ACC/AHA 2018): high is atorvastatin 40+.
    Case(
        "statin-intensity/simvastatin-10-after-mi",
        monitoring.statin_intensity,
        chart(MI, SIMVASTATIN_10_DAILY, lab("ldl", 98.8), age=60),
        (
            Expected(
                "rule.statin-intensity-low",
                "info",
                ("kb.ascvd-high-intensity-statin",),
                (MI, SIMVASTATIN_10_DAILY, lab("ldl", 98.8)),
                mentions=("simvastatin 10 mg", "LDL 98.8", "atorvastatin 40-80 mg"),
            ),
        ),
    ),
    Case(
        "statin-intensity/atorvastatin-20-after-stroke-age-75",
        monitoring.statin_intensity,
        chart(STROKE, ATORVASTATIN_20_DAILY, age=75),
        (
            Expected(
                "rule.statin-intensity-low",
                "info",
                ("kb.ascvd-high-intensity-statin",),
                (STROKE, ATORVASTATIN_20_DAILY),
                mentions=("atorvastatin 20 mg",),
            ),
        ),
    ),
    Case(
        "statin-intensity/atorvastatin-40",
        monitoring.statin_intensity,
        chart(MI, ATORVASTATIN_40_DAILY, age=60),
    ),
    Case("statin-intensity/age-76", monitoring.statin_intensity, chart(MI, SIMVASTATIN_10_DAILY, age=76)),
    # LDL 70 mg/dL or more at least 4 weeks into a high-intensity statin (ACC/AHA 2018): ezetimibe, then PCSK9.
    Case(
        "ldl-above-goal/atorvastatin-40-ldl-88",
        monitoring.ldl_above_goal_on_high_intensity_statin,
        chart(MI, ATORVASTATIN_40_DAILY, lab("ldl", 88.0), age=64),
        (
            Expected(
                "rule.ldl-above-goal-on-statin",
                "info",
                ("kb.ascvd-ldl-nonstatin-add-on",),
                (MI, ATORVASTATIN_40_DAILY, lab("ldl", 88.0)),
                mentions=("LDL 88 mg/dL", "ezetimibe"),
            ),
        ),
    ),
    Case(
        "ldl-above-goal/ldl-69",
        monitoring.ldl_above_goal_on_high_intensity_statin,
        chart(MI, ATORVASTATIN_40_DAILY, lab("ldl", 69.0), age=64),
    ),
    Case(
        "statin-intensity/ldl-at-goal",
        monitoring.statin_intensity,
        chart(MI, SIMVASTATIN_10_DAILY, lab("ldl", 69.9), age=60),
    ),
    Case(
        "statin-intensity/no-ascvd",
        monitoring.statin_intensity,
        chart(DIABETES, SIMVASTATIN_10_DAILY, age=60),
    ),
    # Heart failure without RAAS blockade or an MRA: ask about the ejection fraction.
    Case(
        "heart-failure-therapy/none",
        monitoring.heart_failure_therapy,
        chart(HEART_FAILURE, med("furosemide"), age=70),
        (
            Expected(
                "rule.heart-failure-therapy-gap",
                "info",
                ("kb.hfref-raas-inhibition", "kb.hfref-mra"),
                (HEART_FAILURE,),
                mentions=("if the ejection fraction is reduced",),
            ),
        ),
    ),
    Case(
        "heart-failure-therapy/on-lisinopril",
        monitoring.heart_failure_therapy,
        chart(HEART_FAILURE, LISINOPRIL, age=70),
    ),
    Case(
        "heart-failure-therapy/no-heart-failure",
        monitoring.heart_failure_therapy,
        chart(med("furosemide"), age=70),
    ),
    # HFrEF and its four drug classes (more thresholds in test_gdmt_hiv_tb_gaps.py).
    Case(
        "hfref-therapy/ef-30-on-lisinopril-and-carvedilol",
        monitoring.hfref_therapy,
        chart(HEART_FAILURE, lab("lvef", 30, 100), LISINOPRIL, med("carvedilol"), age=70),
        (
            Expected(
                "rule.hfref-therapy-gap",
                "warning",
                ("kb.hfref-four-drug-classes",),
                (HEART_FAILURE, lab("lvef", 30, 100)),
                mentions=("EF 30%", "an MRA", "an SGLT2 inhibitor"),
            ),
        ),
    ),
    Case("hfref-therapy/ef-55", monitoring.hfref_therapy, chart(HEART_FAILURE, lab("lvef", 55, 100), age=70)),
    # Pneumocystis prophylaxis in HIV (more thresholds in test_gdmt_hiv_tb_gaps.py).
    Case(
        "pjp-prophylaxis/cd4-150",
        monitoring.pjp_prophylaxis,
        chart(problem("hiv"), lab("cd4", 150, 20), age=40),
        (
            Expected(
                "rule.pjp-prophylaxis-absent",
                "warning",
                ("kb.hiv-pjp-prophylaxis",),
                (problem("hiv"), lab("cd4", 150, 20)),
                mentions=("CD4 150", "co-trimoxazole"),
            ),
        ),
    ),
    Case(
        "pjp-prophylaxis/cd4-450",
        monitoring.pjp_prophylaxis,
        chart(problem("hiv"), lab("cd4", 450, 20), age=40),
    ),
    Case(
        "isoniazid-pyridoxine/diabetes",
        monitoring.isoniazid_without_pyridoxine,
        chart(DIABETES, med("isoniazid"), age=40),
        (
            Expected(
                "rule.isoniazid-without-pyridoxine",
                "warning",
                ("kb.isoniazid-pyridoxine",),
                (DIABETES, med("isoniazid")),
                mentions=("pyridoxine 25-50 mg",),
            ),
        ),
    ),
    Case(
        "isoniazid-pyridoxine/taken",
        monitoring.isoniazid_without_pyridoxine,
        chart(DIABETES, med("isoniazid"), med("pyridoxine"), age=40),
    ),
    Case(
        "antithyroid-agranulocytosis/anc-0.3",
        monitoring.antithyroid_agranulocytosis,
        chart(med("methimazole"), lab("neutrophils", 0.3, 1), age=38),
        (
            Expected(
                "rule.antithyroid-agranulocytosis",
                "critical",
                ("kb.antithyroid-agranulocytosis",),
                (med("methimazole"), lab("neutrophils", 0.3, 1)),
                mentions=("Neutrophils 0.3", "stopping it today"),
            ),
        ),
    ),
    Case(
        "antithyroid-agranulocytosis/anc-1.0",
        monitoring.antithyroid_agranulocytosis,
        chart(med("methimazole"), lab("neutrophils", 1.0, 1), age=38),
    ),
    Case(
        "clozapine-neutropenia/anc-0.8",
        monitoring.clozapine_neutropenia,
        chart(med("clozapine"), lab("neutrophils", 0.8, 1), age=38),
        (
            Expected(
                "rule.clozapine-neutropenia",
                "critical",
                ("kb.clozapine-neutropenia",),
                (med("clozapine"), lab("neutrophils", 0.8, 1)),
                mentions=("Neutrophils 0.8", "interrupting"),
            ),
        ),
    ),
    Case(
        "clozapine-neutropenia/anc-1.0",
        monitoring.clozapine_neutropenia,
        chart(med("clozapine"), lab("neutrophils", 1.0, 1), age=38),
        (
            Expected(
                "rule.clozapine-neutropenia",
                "warning",
                ("kb.clozapine-neutropenia",),
                (med("clozapine"), lab("neutrophils", 1.0, 1)),
                mentions=("three times a week",),
            ),
        ),
    ),
    Case(
        "clozapine-neutropenia/anc-1.49",
        monitoring.clozapine_neutropenia,
        chart(med("clozapine"), lab("neutrophils", 1.49, 1), age=38),
        (
            Expected(
                "rule.clozapine-neutropenia",
                "warning",
                ("kb.clozapine-neutropenia",),
                (med("clozapine"), lab("neutrophils", 1.49, 1)),
            ),
        ),
    ),
    Case(
        "clozapine-neutropenia/anc-1.5",
        monitoring.clozapine_neutropenia,
        chart(med("clozapine"), lab("neutrophils", 1.5, 1), age=38),
    ),
    Case(
        "fumarate-lymphopenia/six-months-low",
        monitoring.fumarate_lymphopenia,
        chart(
            med("dimethyl-fumarate"),
            lab("lymphocytes", 0.42, 10, "ly-new"),
            lab("lymphocytes", 0.45, 190, "ly-old"),
            age=44,
        ),
        (
            Expected(
                "rule.fumarate-lymphopenia",
                "warning",
                ("kb.fumarate-lymphopenia",),
                (
                    med("dimethyl-fumarate"),
                    lab("lymphocytes", 0.42, 10, "ly-new"),
                    lab("lymphocytes", 0.45, 190, "ly-old"),
                ),
                mentions=("over six months",),
            ),
        ),
    ),
    Case(
        # 179 days of low counts: not yet the label's six months.
        "fumarate-lymphopenia/under-six-months",
        monitoring.fumarate_lymphopenia,
        chart(
            med("dimethyl-fumarate"),
            lab("lymphocytes", 0.42, 10, "ly-new"),
            lab("lymphocytes", 0.45, 189, "ly-old"),
            age=44,
        ),
        (
            Expected(
                "rule.fumarate-lymphopenia",
                "info",
                ("kb.fumarate-lymphopenia",),
                (
                    med("dimethyl-fumarate"),
                    lab("lymphocytes", 0.42, 10, "ly-new"),
                    lab("lymphocytes", 0.45, 189, "ly-old"),
                ),
                mentions=("rechecking",),
            ),
        ),
    ),
    Case(
        # A count back above 0.5 in between ends the run: only the newest low value counts.
        "fumarate-lymphopenia/recovered-in-between",
        monitoring.fumarate_lymphopenia,
        chart(
            med("dimethyl-fumarate"),
            lab("lymphocytes", 0.49, 10, "ly-new"),
            lab("lymphocytes", 0.5, 100, "ly-mid"),
            lab("lymphocytes", 0.3, 250, "ly-old"),
            age=44,
        ),
        (
            Expected(
                "rule.fumarate-lymphopenia",
                "info",
                ("kb.fumarate-lymphopenia",),
                (med("dimethyl-fumarate"), lab("lymphocytes", 0.49, 10, "ly-new")),
            ),
        ),
    ),
    Case(
        "fumarate-lymphopenia/at-0.5",
        monitoring.fumarate_lymphopenia,
        chart(med("dimethyl-fumarate"), lab("lymphocytes", 0.5, 10), age=44),
    ),
    Case(
        "imid-thromboprophylaxis/none",
        monitoring.imid_thromboprophylaxis,
        chart(med("lenalidomide"), med("dexamethasone"), age=68),
        (
            Expected(
                "rule.imid-thromboprophylaxis-absent",
                "warning",
                ("kb.imid-thromboprophylaxis",),
                (med("lenalidomide"),),
                mentions=("VTE prophylaxis",),
            ),
        ),
    ),
    Case(
        "imid-thromboprophylaxis/aspirin",
        monitoring.imid_thromboprophylaxis,
        chart(med("lenalidomide"), med("dexamethasone"), med("aspirin"), age=68),
    ),
    Case(
        "pjp-immunosuppressed/prednisone-20-mycophenolate",
        monitoring.pjp_prophylaxis_immunosuppressed,
        chart(_glucocorticoid("predniSONE 20 MG Oral Tablet"), MYCOPHENOLATE, age=55),
        (
            Expected(
                "rule.pjp-prophylaxis-immunosuppressed",
                "warning",
                ("kb.pjp-prophylaxis-glucocorticoids",),
                (_glucocorticoid("predniSONE 20 MG Oral Tablet"), MYCOPHENOLATE),
                mentions=("20 mg a day", "co-trimoxazole"),
            ),
        ),
    ),
    Case(
        "pjp-immunosuppressed/prednisone-19",
        monitoring.pjp_prophylaxis_immunosuppressed,
        chart(_glucocorticoid("predniSONE 19 MG Oral Tablet"), MYCOPHENOLATE, age=55),
    ),
    Case(
        "pjp-immunosuppressed/prednisone-21",
        monitoring.pjp_prophylaxis_immunosuppressed,
        chart(_glucocorticoid("predniSONE 21 MG Oral Tablet"), MYCOPHENOLATE, age=55),
        (
            Expected(
                "rule.pjp-prophylaxis-immunosuppressed",
                "warning",
                ("kb.pjp-prophylaxis-glucocorticoids",),
                (_glucocorticoid("predniSONE 21 MG Oral Tablet"), MYCOPHENOLATE),
            ),
        ),
    ),
    Case(
        # Dexamethasone 3 mg is 20 mg of prednisone; GPA is the second risk (rituximab courses end).
        "pjp-immunosuppressed/dexamethasone-gpa",
        monitoring.pjp_prophylaxis_immunosuppressed,
        chart(_glucocorticoid("dexamethasone 3 MG Oral Tablet"), _gpa(), age=61),
        (
            Expected(
                "rule.pjp-prophylaxis-immunosuppressed",
                "warning",
                ("kb.pjp-prophylaxis-glucocorticoids",),
                (_glucocorticoid("dexamethasone 3 MG Oral Tablet"), _gpa()),
                mentions=("ANCA vasculitis",),
            ),
        ),
    ),
    Case(
        # A solid cancer is the second risk (NCCN; the ASCO immune-related adverse event guideline).
        "pjp-immunosuppressed/prednisone-40-melanoma",
        monitoring.pjp_prophylaxis_immunosuppressed,
        chart(_glucocorticoid("predniSONE 40 MG Oral Tablet"), _melanoma(), age=64),
        (
            Expected(
                "rule.pjp-prophylaxis-immunosuppressed",
                "warning",
                ("kb.pjp-prophylaxis-glucocorticoids",),
                (_glucocorticoid("predniSONE 40 MG Oral Tablet"), _melanoma()),
                mentions=("cancer",),
            ),
        ),
    ),
    Case(
        "pjp-immunosuppressed/prednisone-19-melanoma",
        monitoring.pjp_prophylaxis_immunosuppressed,
        chart(_glucocorticoid("predniSONE 19 MG Oral Tablet"), _melanoma(), age=64),
    ),
    Case(
        "pjp-immunosuppressed/prednisone-alone",
        monitoring.pjp_prophylaxis_immunosuppressed,
        chart(_glucocorticoid("predniSONE 40 MG Oral Tablet"), age=61),
    ),
    Case(
        "pjp-immunosuppressed/on-co-trimoxazole",
        monitoring.pjp_prophylaxis_immunosuppressed,
        chart(_glucocorticoid("predniSONE 40 MG Oral Tablet"), MYCOPHENOLATE, BACTRIM, age=61),
    ),
    Case(
        "pjp-immunosuppressed/hydrocortisone-cream",
        monitoring.pjp_prophylaxis_immunosuppressed,
        chart(_glucocorticoid("hydrocortisone 25 MG/G Topical Cream"), MYCOPHENOLATE, age=61),
    ),
    Case(
        "preeclampsia-aspirin/16-weeks-hypertension",
        monitoring.preeclampsia_aspirin,
        chart(HYPERTENSION_PROBLEM, PREGNANT_16_WEEKS, age=36),
        (
            Expected(
                "rule.preeclampsia-aspirin-absent",
                "warning",
                ("kb.uspstf-aspirin-preeclampsia",),
                (HYPERTENSION_PROBLEM, PREGNANT_16_WEEKS),
                mentions=("16 weeks", "aspirin 81 mg"),
            ),
        ),
    ),
    Case(
        "preeclampsia-aspirin/taking-aspirin",
        monitoring.preeclampsia_aspirin,
        chart(HYPERTENSION_PROBLEM, PREGNANT_16_WEEKS, med("aspirin"), age=36),
    ),
    Case("antiplatelet/no-event", monitoring.antiplatelet_secondary_prevention, chart(DIABETES, age=60)),
    # Folic acid in pregnancy.
    Case(
        "prenatal-folic-acid/absent",
        monitoring.prenatal_folic_acid,
        chart(PREGNANCY, age=30),
        (
            Expected(
                "rule.prenatal-folic-acid-absent", "info", ("kb.uspstf-folic-acid-neural-tube",), (PREGNANCY,)
            ),
        ),
    ),
    Case("prenatal-folic-acid/taken", monitoring.prenatal_folic_acid, chart(PREGNANCY, FOLIC_ACID, age=30)),
    Case("prenatal-folic-acid/not-pregnant", monitoring.prenatal_folic_acid, chart(age=30)),
    # Folic acid beside an antiseizure drug (AAN/AES/SMFM 2024).
    Case(
        "antiseizure-folic-acid/carbamazepine",
        monitoring.antiseizure_folic_acid,
        chart(med("carbamazepine"), age=24),
        (
            Expected(
                "rule.antiseizure-folic-acid-absent",
                "info",
                ("kb.antiseizure-folic-acid",),
                (med("carbamazepine"),),
                mentions=("0.4 mg",),
            ),
        ),
    ),
    Case(
        "antiseizure-folic-acid/taken",
        monitoring.antiseizure_folic_acid,
        chart(med("carbamazepine"), FOLIC_ACID, age=24),
    ),
    # Thiamine before intravenous dextrose in alcohol use disorder.
    Case(
        "thiamine-before-dextrose/d5w",
        monitoring.thiamine_before_dextrose,
        chart(ALCOHOL_USE_DISORDER, D5W, age=52),
        (
            Expected(
                "rule.thiamine-before-dextrose",
                "warning",
                ("kb.thiamine-before-dextrose-alcohol",),
                (ALCOHOL_USE_DISORDER, D5W),
                mentions=("thiamine",),
            ),
        ),
    ),
    Case(
        "thiamine-before-dextrose/thiamine-given",
        monitoring.thiamine_before_dextrose,
        chart(ALCOHOL_USE_DISORDER, D5W, THIAMINE, age=52),
    ),
    Case("thiamine-before-dextrose/no-alcohol", monitoring.thiamine_before_dextrose, chart(D5W, age=52)),
    # An HIV test every 3 months on PrEP.
    Case(
        "prep-hiv-test/none",
        monitoring.prep_hiv_test,
        chart(TRUVADA, age=26, gender="male"),
        (
            Expected(
                "rule.prep-hiv-test-due",
                "warning",
                ("kb.cdc-prep-hiv-testing",),
                (TRUVADA,),
                order_lab="56888-1",
                mentions=("no HIV test",),
            ),
        ),
    ),
    Case(
        "prep-hiv-test/recent",
        monitoring.prep_hiv_test,
        chart(
            TRUVADA,
            named_result("hiv", "HIV 1/2 Ag/Ab 4th generation", text="Nonreactive", days_ago=60),
            age=26,
        ),
    ),
    Case("prep-hiv-test/hiv-treatment", monitoring.prep_hiv_test, chart(TRUVADA, problem("hiv"), age=26)),
    # Oral PrEP and kidney function.
    Case(
        "prep-kidney/tdf-crcl-56",
        monitoring.prep_kidney,
        chart(TRUVADA, PREP_CREATININE, PREP_WEIGHT, age=58, gender="male"),
        (
            Expected(
                "rule.prep-kidney",
                "warning",
                ("kb.prep-kidney-function",),
                (TRUVADA, PREP_CREATININE, PREP_WEIGHT),
                mentions=("alafenamide",),
            ),
        ),
    ),
    Case(
        "prep-kidney/taf-crcl-56",
        monitoring.prep_kidney,
        chart(DESCOVY, PREP_CREATININE, PREP_WEIGHT, age=58, gender="male"),
    ),
    # Gout: urate-lowering therapy titrated to a urate below 6 (ACR 2020).
    Case(
        "urate-above-target/allopurinol-100-urate-8-9",
        monitoring.urate_above_target,
        chart(med("allopurinol", days_ago=900), lab("urate", 8.9, 20), age=66, gender="male"),
        (
            Expected(
                "rule.urate-above-target",
                "warning",
                ("kb.gout-treat-to-target",),
                (med("allopurinol", days_ago=900), lab("urate", 8.9, 20)),
                mentions=("below 6",),
            ),
        ),
    ),
    Case(
        "urate-above-target/at-target",
        monitoring.urate_above_target,
        chart(med("allopurinol", days_ago=900), lab("urate", 5.4, 20), age=66, gender="male"),
    ),
    # Helicobacter pylori found and not treated.
    Case(
        "h-pylori-eradication/ppi-only",
        monitoring.h_pylori_eradication,
        chart(H_PYLORI, med("omeprazole"), age=69),
        (
            Expected(
                "rule.h-pylori-eradication-absent",
                "warning",
                ("kb.h-pylori-eradication",),
                (H_PYLORI, med("omeprazole")),
                mentions=("bismuth quadruple",),
            ),
        ),
    ),
    Case(
        "h-pylori-eradication/pylera",
        monitoring.h_pylori_eradication,
        chart(H_PYLORI, med("omeprazole"), _by_text("pylera", "Pylera capsules", 3), age=69),
    ),
    Case(
        "thiamine-before-dextrose/oral-glucose",
        monitoring.thiamine_before_dextrose,
        chart(ALCOHOL_USE_DISORDER, GLUCOSE_TABLETS, age=52),
    ),
)


# --- running a case ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_case(case: Case) -> None:
    built = case.chart.build()
    assert built.context.skipped == ()
    found = list(case.rule(RuleFacts.of(built.context)))
    assert [f.rule_id for f in found] == [e.rule_id for e in case.expected], [f.summary for f in found]
    for finding, wanted in zip(found, case.expected, strict=True):
        check_finding(finding, wanted, built)


def test_every_rule_has_a_positive_and_a_negative_case() -> None:
    assert {c.rule for c in CASES if c.expected} == set(RULES)
    assert {c.rule for c in CASES if not c.expected} == set(RULES)


def test_every_lab_the_rules_read_has_a_window() -> None:
    read = {"hemoglobin", "platelets", "alt", "egfr", "creatinine", "digoxin", "tsh", "glucose", "hba1c"}
    read |= {"systolic_bp", "diastolic_bp", "ldl"}
    assert read <= set(lab_windows())
    assert lab_windows()["digoxin"].max_age_days == 365
    assert lab_windows()["tsh"].max_age_days == 365
    assert lab_windows()["hemoglobin"].max_age_days == 90


@pytest.mark.parametrize(
    ("frequency", "within"),
    [
        ("1 per 1 d", True),
        ("2 per 1 d", True),
        ("1 per 2 d", True),
        ("1 per 12 h", True),
        ("1 per 1 wk", False),
        ("3 per 1 wk", False),
        ("1 per 7 d", False),
        ("1 per 2 wk", False),
        ("weekly", False),
        (None, False),
    ],
)
def test_methotrexate_frequency_is_read_from_the_timing(frequency: str | None, within: bool) -> None:
    assert repeats_within_a_week(frequency) is within


def test_a_proposed_methotrexate_without_a_dosage_is_not_judged_for_frequency() -> None:
    from plugin.context.model import Code

    context = chart().build().context
    facts = RuleFacts.of(
        context, proposed=(("X1", Code("rxnorm", "105585", "Methotrexate 2.5 MG Oral Tablet")),)
    )
    assert list(monitoring.methotrexate_weekly_dosing(facts)) == []
    assert [f.rule_id for f in monitoring.methotrexate_monitoring(facts)] == ["rule.methotrexate-monitoring"]


def test_cited_knowledge_and_rule_ids_are_namespaced_and_exist() -> None:
    knowledge = load_knowledge_base()
    findings = [f for case in CASES for f in case.rule(RuleFacts.of(case.chart.build().context))]
    assert {kb for f in findings for kb in f.evidence} <= set(knowledge.entries)
    assert all(f.rule_id.startswith("rule.") and f.rule_id == f.rule_id.lower() for f in findings)
    catalog_ids = {i.rule_id for i in catalog.INTERACTIONS} | {"rule.egfr-recheck", "rule.potassium-recheck"}
    assert not catalog_ids & {f.rule_id for f in findings}


# --- the seasonal influenza care gap (catalog.influenza_due) ---------------------------------------------


@pytest.mark.parametrize(
    ("now", "month", "since"),
    [
        (datetime(2026, 8, 1, 12, tzinfo=UTC), 8, 0),
        (datetime(2026, 11, 25, 12, tzinfo=UTC), 11, 116),
        (datetime(2027, 3, 31, 12, tzinfo=UTC), 3, 242),
        (datetime(2027, 4, 1, 12, tzinfo=UTC), 4, 243),
        (datetime(2028, 3, 31, 12, tzinfo=UTC), 3, 243),  # a leap February in between
        (datetime(2027, 7, 31, 12, tzinfo=UTC), 7, 364),
    ],
)
def test_the_context_knows_where_the_day_falls_in_the_season(now: datetime, month: int, since: int) -> None:
    context = build_context(chart().prefetch(), now).context
    assert (context.month, context.days_since_august_1) == (month, since)


def _influenza(month: int | None, since: int | None, *resources: JsonDict) -> list[Finding]:
    context = chart(*resources).build().context
    dated = dataclasses.replace(context, month=month, days_since_august_1=since)
    return list(catalog.influenza_due(RuleFacts.of(dated)))


@pytest.mark.parametrize(
    ("month", "since", "vaccinated_days_ago", "due"),
    [
        # In season (August to March): a dose since the most recent 1 August.
        (11, 116, 100, False),
        (11, 116, 116, False),  # given on 1 August
        (11, 116, 117, True),  # given on 31 July: last season's
        (11, 116, None, True),
        (8, 0, 0, False),
        (8, 0, 30, False),  # August is too early for an adult (kb.acip-influenza-timing): from September
        (9, 31, 40, True),  # a July dose does not cover the new season
        (3, 242, 200, False),
        (3, 242, 300, True),
        # Out of season (April to July): no card, since no vaccine is on offer; never vaccinated included.
        (5, 289, 200, False),
        (7, 364, 364, False),
        (7, 364, 366, False),
        (4, 243, None, False),
        (3, 242, None, True),  # the last month of the season still asks
        (8, 0, None, False),  # August: adults wait
        (9, 31, None, True),  # and September asks
        # No build date: the past year stands in for the season.
        (None, None, 300, False),
        (None, None, 400, True),
    ],
)
def test_influenza_is_due_by_season(
    month: int | None, since: int | None, vaccinated_days_ago: int | None, due: bool
) -> None:
    shots = () if vaccinated_days_ago is None else (vaccine("influenza", days_ago=vaccinated_days_ago),)
    found = _influenza(month, since, *shots)
    assert [f.rule_id for f in found] == (["rule.influenza-vaccine-due"] if due else [])
    for finding in found:
        assert finding.severity == "info" and finding.evidence == ("kb.acip-influenza-annual",)
        assert len(finding.summary) < 140 and "consider" in finding.summary


@pytest.mark.parametrize(("age", "due"), [(1, True), (8, True), (9, False), (40, False), (70, False)])
def test_in_august_only_children_who_may_need_two_doses_are_due(age: int, due: bool) -> None:
    context = chart(age=age).build().context
    found = list(
        catalog.influenza_due(RuleFacts.of(dataclasses.replace(context, month=8, days_since_august_1=10)))
    )
    assert [f.rule_id for f in found] == (["rule.influenza-vaccine-due"] if due else [])
    for finding in found:
        assert finding.evidence == ("kb.acip-influenza-annual", "kb.acip-influenza-timing")


@pytest.mark.parametrize(("doses", "due"), [(0, True), (1, True), (2, False)])
def test_in_august_a_child_with_two_earlier_doses_needs_one_and_waits(doses: int, due: bool) -> None:
    shots = tuple(vaccine("influenza", days_ago=365 * (n + 1), resource_id=f"flu-{n}") for n in range(doses))
    context = chart(*shots, age=5).build().context
    found = list(
        catalog.influenza_due(RuleFacts.of(dataclasses.replace(context, month=8, days_since_august_1=10)))
    )
    assert bool(found) is due


@pytest.mark.parametrize(
    ("age", "egfr", "extra", "asks"),
    [
        (60, 80.0, (), False),  # stable, normal kidneys, nothing raising the level: no routine level
        (60, 60.0, (), False),
        (60, 59.9, (), True),  # reduced kidney function
        (60, None, (), True),  # unknown kidney function
        (74, 80.0, (), False),
        (75, 80.0, (), True),  # older age
        (60, 80.0, ("spironolactone",), True),  # a drug that raises digoxin levels, with no card of its own
        (80, 40.0, ("verapamil",), False),  # the interaction card already asks for a level
        (80, 40.0, ("amiodarone",), False),
    ],
)
def test_a_digoxin_level_is_asked_for_only_when_it_would_guide_dosing(
    age: int, egfr: float | None, extra: tuple[str, ...], asks: bool
) -> None:
    resources = (DIGOXIN, *(med(name) for name in extra), *((lab("egfr", egfr),) if egfr is not None else ()))
    facts = RuleFacts.of(chart(*resources, age=age).build().context)
    assert bool(list(monitoring.DIGOXIN_LEVEL_RECHECK(facts))) is asks


@pytest.mark.parametrize(("onset_days", "asks"), [(84, True), (91, False), (200, False), (None, True)])
def test_prenatal_folic_acid_is_a_first_trimester_card(onset_days: int | None, asks: bool) -> None:
    # 12 weeks asks, 13 weeks no longer (neural-tube closure is early); an undated pregnancy still asks.
    pregnancy = problem(
        "pregnancy", "pregnancy-dated", onset_days_ago=onset_days if onset_days is not None else 400
    )
    if onset_days is None:
        del pregnancy["onsetDateTime"]
    facts = RuleFacts.of(chart(pregnancy, age=30).build().context)
    assert bool(list(monitoring.prenatal_folic_acid(facts))) is asks


# --- LDL 70 mg/dL or more on a high-intensity statin with atherosclerotic disease --------------------------


def _atorvastatin_40(days_ago: int) -> JsonDict:
    return once_daily(med("atorvastatin-40", days_ago=days_ago))


def text_only_med(resource_id: str, display: str) -> JsonDict:
    request = medication_request(resource_id, PATIENT_ID, "", display, authored=on(120))
    del request["medicationCodeableConcept"]["coding"]
    return request


EZETIMIBE = text_only_med("ezetimibe", "ezetimibe 10 MG Oral Tablet")
EVOLOCUMAB = text_only_med("evolocumab", "evolocumab 140 MG/ML Prefilled Syringe")


@pytest.mark.parametrize(
    ("ldl", "statin_days", "ldl_days", "others", "option"),
    [
        (70.0, 90, 7, (), "ezetimibe"),  # at the line
        (69.9, 90, 7, (), None),
        (70.1, 90, 7, (), "ezetimibe"),
        (88.0, 90, 7, (EZETIMIBE,), "PCSK9"),  # ezetimibe taken: the next step
        (88.0, 90, 7, (EZETIMIBE, EVOLOCUMAB), None),  # on every step already
        (88.0, 35, 7, (), "ezetimibe"),  # drawn 28 days into the dose
        (88.0, 34, 7, (), None),  # drawn 27 days in: too early to judge the dose
    ],
)
def test_ldl_above_goal_on_a_high_intensity_statin(
    ldl: float, statin_days: int, ldl_days: int, others: tuple[JsonDict, ...], option: str | None
) -> None:
    built = chart(
        MI, _atorvastatin_40(statin_days), lab("ldl", ldl, days_ago=ldl_days), *others, age=64
    ).build()
    found = list(monitoring.ldl_above_goal_on_high_intensity_statin(RuleFacts.of(built.context)))
    assert [option in f.summary for f in found] == ([True] if option else [])
    if found:
        assert found[0].evidence == ("kb.ascvd-ldl-nonstatin-add-on",) and found[0].severity == "info"


def test_ldl_above_goal_needs_disease_and_a_high_intensity_dose() -> None:
    no_disease = chart(_atorvastatin_40(90), lab("ldl", 120.0), age=64).build()
    moderate = chart(MI, SIMVASTATIN_10_DAILY, lab("ldl", 120.0), age=64).build()
    for built in (no_disease, moderate):
        assert not list(monitoring.ldl_above_goal_on_high_intensity_statin(RuleFacts.of(built.context)))


def _problem_text(text: str) -> JsonDict:
    found = copy_json(problem("hypertension", resource_id="hf-text"))
    found["code"] = {"text": text}
    return found


def _coded_heart_failure(text: str) -> JsonDict:
    """Heart failure under its general SNOMED code, displayed in words that may say more."""
    found = copy_json(problem("hypertension", resource_id="hf-coded"))
    found["code"] = {"coding": [{"system": SNOMED, "code": "84114007", "display": text}], "text": text}
    return found


@pytest.mark.parametrize(
    ("resources", "asked"),
    [
        ((HEART_FAILURE,), True),  # the EF is not on the chart: ask
        ((HEART_FAILURE, lab("lvef", 41.0)), False),  # above 40%: not reduced
        ((HEART_FAILURE, lab("lvef", 40.0)), False),  # 40% or less is HFrEF: rule.hfref-therapy-gap speaks
        ((_problem_text("Heart failure with preserved ejection fraction (LVEF 60%)"),), False),
        ((_problem_text("HFpEF"),), False),
        ((_coded_heart_failure("Heart failure with preserved ejection fraction"),), False),
        ((_coded_heart_failure("Chronic heart failure"),), True),  # the general code says nothing of the EF
    ],
)
def test_the_ejection_fraction_question_is_asked_only_when_the_chart_cannot_answer_it(
    resources: tuple[JsonDict, ...], asked: bool
) -> None:
    built = chart(*resources, age=70).build()
    assert bool(list(monitoring.heart_failure_therapy(RuleFacts.of(built.context)))) is asked


@pytest.mark.parametrize(
    ("age", "days_ago", "earlier", "due"),
    [
        (4, 28, 0, True),  # first season, one dose 4 weeks ago: the second is due
        (4, 27, 0, False),  # not yet 4 weeks
        (8, 40, 0, True),
        (9, 40, 0, False),  # from 9 one dose is enough
        (4, 40, 1, False),  # another dose on record: which season it fell in is not read
    ],
)
def test_a_first_season_child_with_one_dose_is_due_the_second(
    age: int, days_ago: int, earlier: int, due: bool
) -> None:
    shots = tuple(
        vaccine("influenza", days_ago=days_ago + 365 * n, resource_id=f"flu-{n}") for n in range(1 + earlier)
    )
    context = chart(*shots, age=age).build().context
    found = list(
        catalog.influenza_due(RuleFacts.of(dataclasses.replace(context, month=11, days_since_august_1=116)))
    )
    assert bool(found) is due
    for finding in found:
        assert "second dose" in finding.summary and finding.evidence == ("kb.acip-influenza-annual",)
