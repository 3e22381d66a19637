"""Second-depth rules (plugin.rules.depth and rule.aki-triple-whammy): cases through real FHIR parsing, with
every threshold tested at, just below and just above, and each card held to its entry's severity and link."""

from __future__ import annotations

import pytest

from plugin.knowledge import load_knowledge_base
from plugin.rules import catalog, depth
from plugin.rules.cards import finding_card
from plugin.rules.engine import evaluate
from plugin.rules.freshness import lab_windows
from plugin.rules.kidney import aki_against_reference
from plugin.rules.model import RuleFacts
from tests.support.charts import LOINC, UCUM, JsonDict, copy_json, medication_request
from tests.support.rule_cases import (
    CVX,
    OBSERVATION_CATEGORY,
    PATIENT_ID,
    Case,
    Chart,
    Expected,
    check_finding,
    draft,
    lab,
    med,
    on,
    penicillin_allergy,
    problem,
    vaccine,
)
from tests.unit.test_kidney import series

pytestmark = pytest.mark.unit

# --- chart pieces -----------------------------------------------------------------------------------------


def rx(resource_id: str, rxnorm: str, display: str, status: str = "active") -> JsonDict:
    return medication_request(resource_id, PATIENT_ID, rxnorm, display, status=status, authored=on(60))


def text_only(request: JsonDict) -> JsonDict:
    """A prescription the EHR records by its text alone."""
    del request["medicationCodeableConcept"]["coding"]
    return request


DONEPEZIL = rx("donepezil", "997224", "donepezil hydrochloride 10 MG Oral Tablet")
OXYBUTYNIN = rx("oxybutynin", "863669", "oxybutynin chloride 5 MG Oral Tablet")
HYDROCODONE_APAP = rx(
    "hydrocodone-apap", "857005", "Acetaminophen 325 MG / HYDROcodone Bitartrate 7.5 MG Oral Tablet"
)
CEFUROXIME = rx("cefuroxime", "309097", "Cefuroxime axetil 250 MG Oral Tablet")
CEPHALEXIN = rx("cephalexin", "309114", "Cephalexin 500 MG Oral Capsule")
AMOXICILLIN_CAPSULE = rx("amoxicillin", "308191", "Amoxicillin 500 MG Oral Capsule")
PEMETREXED = text_only(rx("pemetrexed", "", "pemetrexed 500 MG Injection"))
BORTEZOMIB = text_only(rx("bortezomib", "", "bortezomib 3.5 MG Injection"))
FOLIC_ACID = text_only(rx("folic-acid", "", "folic acid 1 MG Oral Tablet"))
B12_INJECTION = text_only(rx("b12", "", "cyanocobalamin 1 MG/ML Injection"))
ABIRATERONE = text_only(rx("abiraterone", "", "abiraterone acetate 250 MG Oral Tablet"))
PREDNISONE_5 = text_only(rx("prednisone", "", "predniSONE 5 MG Oral Tablet"))
BUDESONIDE_INHALER = text_only(rx("budesonide", "", "budesonide 180 MCG/ACTUAT Dry Powder Inhaler"))


def dosed(resource: JsonDict, count: float, per_day: float) -> JsonDict:
    """The request with a structured dose: `count` tablets `per_day` times a day."""
    changed: JsonDict = copy_json(resource)
    changed["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": count, "unit": "tablet"}}],
        }
    ]
    return changed


def undosed(resource: JsonDict) -> JsonDict:
    """The request with no dosage at all: its dose cannot be read."""
    changed: JsonDict = copy_json(resource)
    changed.pop("dosageInstruction", None)
    return changed


def magnesium(value: float, days_ago: int = 3) -> JsonDict:
    display = "Magnesium [Mass/volume] in Serum or Plasma"
    return {
        "resourceType": "Observation",
        "id": "magnesium",
        "status": "final",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": "19123-9", "display": display}], "text": display},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": f"{on(days_ago)}T09:30:00Z",
        "valueQuantity": {"value": value, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"},
    }


def tdap(days_ago: int) -> JsonDict:
    return {
        "resourceType": "Immunization",
        "id": "tdap",
        "status": "completed",
        "vaccineCode": {"coding": [{"system": CVX, "code": "115", "display": "Tdap"}], "text": "Tdap"},
        "patient": {"reference": f"Patient/{PATIENT_ID}"},
        "occurrenceDateTime": f"{on(days_ago)}T10:00:00Z",
        "primarySource": True,
    }


def creatinine(value: float, days_ago: int, resource_id: str) -> JsonDict:
    return lab("creatinine", value, days_ago=days_ago, resource_id=resource_id)


def chart(*resources: JsonDict, drafts: tuple[JsonDict, ...] = (), age: int = 70) -> Chart:
    return Chart(age=age, resources=resources, drafts=drafts)


def pregnant(weeks: int) -> JsonDict:
    return problem("pregnancy", onset_days_ago=weeks * 7)


PREGNANCY_UNDATED = {k: v for k, v in problem("pregnancy").items() if k != "onsetDateTime"}

NAPROXEN, LISINOPRIL, HCTZ = med("naproxen"), med("lisinopril"), med("hydrochlorothiazide")
FUROSEMIDE, DIGOXIN, SPIRO = med("furosemide"), med("digoxin"), med("spironolactone")
APAP, AMIODARONE, DIPHENHYDRAMINE = undosed(med("acetaminophen")), med("amiodarone"), med("diphenhydramine")
TRIPLE = (NAPROXEN, LISINOPRIL, HCTZ)
CR_NOW, CR_OLD = "cr-now", "cr-old"

AKI_EVIDENCE = (
    "kb.aki-triple-whammy-stop",
    "kb.aki-nephrotoxic-drugs",
    "kb.nsaid-acei-arb-diuretic-triple-whammy",
)


def aki(latest: float, baseline: float, gap: int) -> tuple[JsonDict, ...]:
    return (creatinine(latest, 2, CR_NOW), creatinine(baseline, 2 + gap, CR_OLD))


def expect_aki(*extra: JsonDict) -> Expected:
    a, b = aki(1.5, 1.0, 30)
    return Expected("rule.aki-triple-whammy", "critical", AKI_EVIDENCE, (*TRIPLE, a, b, *extra), (), "2160-0")


K_LOW_EVIDENCE = ("kb.diuretic-hypokalaemia-replacement",)
K_START = ("kb.potassium-raising-drug-start-threshold", "kb.potassium-monitoring-raas")
APAP_KB = ("kb.acetaminophen-daily-maximum",)
AMIO_KB = ("kb.amiodarone-thyroid-liver-monitoring",)
ACH_KB = ("kb.cholinesterase-inhibitor-anticholinergic",)
TDAP_KB = ("kb.acip-tdap-each-pregnancy",)
APAP_TID = dosed(APAP, 2, 3)  # 1,950 mg a day


def _ordered(resource_id: str, display: str, mg: float | None, per_day: float, route: str) -> JsonDict:
    """A draft order by name with a dose in mg (or none) and a route."""
    order = medication_request(resource_id, PATIENT_ID, "", display, status="draft")
    del order["medicationCodeableConcept"]["coding"]
    instruction: JsonDict = {
        "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
        "route": {"text": route},
    }
    if mg is not None:
        instruction["doseAndRate"] = [{"doseQuantity": {"value": mg, "unit": "mg"}}]
    order["dosageInstruction"] = [instruction]
    return order


INSULIN_DRIP = _ordered(
    "insulin-drip",
    "insulin regular, human 100 UNT/ML Injection for IV infusion",
    None,
    1,
    "Intravenous route",
)
INSULIN_SUBCUT = _ordered(
    "insulin-sc", "insulin glargine 100 UNT/ML Pen Injector", None, 1, "Subcutaneous route"
)
ENOXAPARIN_TREATMENT = _ordered(
    "enox-80", "enoxaparin sodium 80 MG/0.8ML Prefilled Syringe", 80, 2, "Subcutaneous route"
)
ENOXAPARIN_PROPHYLAXIS = _ordered(
    "enox-40", "enoxaparin sodium 40 MG/0.4ML Prefilled Syringe", 40, 1, "Subcutaneous route"
)
ALLOPURINOL_NEW = med("allopurinol", days_ago=21)
ALLOPURINOL_OLD = med("allopurinol", days_ago=400)
K_KB = ("kb.dka-potassium-before-insulin",)
PLT_KB = ("kb.anticoagulation-thrombocytopenia",)
GOUT_KB = ("kb.acr-gout-flare-prophylaxis",)
APAP_CIRRHOSIS_KB = ("kb.acetaminophen-cirrhosis",)
HYDRO_Q6 = dosed(HYDROCODONE_APAP, 2, 4)  # 2,600 mg a day

CASES: tuple[Case, ...] = (
    # AKI on the triple whammy: 1.5x the median of 8-365 days before (the outpatient reference).
    Case(
        "aki-triple/1.5x-30-days",
        depth.aki_on_triple_whammy,
        chart(*TRIPLE, *aki(1.5, 1.0, 30)),
        (expect_aki(),),
    ),
    Case("aki-triple/1.49x", depth.aki_on_triple_whammy, chart(*TRIPLE, *aki(1.49, 1.0, 30))),
    Case(
        "aki-triple/1.51x",
        depth.aki_on_triple_whammy,
        chart(*TRIPLE, creatinine(1.51, 2, CR_NOW), creatinine(1.0, 32, CR_OLD)),
        (
            Expected(
                "rule.aki-triple-whammy",
                "critical",
                AKI_EVIDENCE,
                (*TRIPLE, creatinine(1.51, 2, CR_NOW), creatinine(1.0, 32, CR_OLD)),
                (),
                "2160-0",
            ),
        ),
    ),
    Case(
        "aki-triple/no-diuretic", depth.aki_on_triple_whammy, chart(NAPROXEN, LISINOPRIL, *aki(2.0, 1.0, 30))
    ),
    Case("aki-triple/reference-over-a-year", depth.aki_on_triple_whammy, chart(*TRIPLE, *aki(2.0, 1.0, 366))),
    # Potassium before starting a potassium-raising drug (window: potassium, 90 days).
    Case(
        "k-start/stale-91-days",
        depth.potassium_unknown_before_starting,
        chart(LISINOPRIL, lab("potassium", 4.6, days_ago=91), drafts=(draft("spironolactone"),)),
        (
            Expected(
                "rule.potassium-unknown-before-starting",
                "warning",
                K_START,
                (LISINOPRIL, draft("spironolactone"), lab("potassium", 4.6, days_ago=91)),
                (draft("spironolactone"),),
                "2823-3",
                ("91 days old",),
            ),
        ),
    ),
    Case(
        "k-start/none-on-record",
        depth.potassium_unknown_before_starting,
        chart(drafts=(draft("potassium-chloride"),)),
        (
            Expected(
                "rule.potassium-unknown-before-starting",
                "warning",
                K_START,
                (draft("potassium-chloride"),),
                (draft("potassium-chloride"),),
                "2823-3",
                ("no potassium on record",),
            ),
        ),
    ),
    Case(
        "k-start/current-90-days",
        depth.potassium_unknown_before_starting,
        chart(lab("potassium", 4.6, days_ago=90), drafts=(draft("spironolactone"),)),
    ),
    Case("k-start/continuing-not-starting", depth.potassium_unknown_before_starting, chart(SPIRO)),
    # Low potassium (3.5 mmol/L) or magnesium (1.8 mg/dL) on a diuretic or digoxin.
    Case(
        "low-k/3.4-on-hctz",
        depth.low_potassium_magnesium,
        chart(HCTZ, lab("potassium", 3.4)),
        (
            Expected(
                "rule.low-potassium-magnesium",
                "warning",
                K_LOW_EVIDENCE,
                (HCTZ, lab("potassium", 3.4)),
                (),
                "2823-3",
                ("K 3.4",),
            ),
        ),
    ),
    Case("low-k/3.5-on-hctz", depth.low_potassium_magnesium, chart(HCTZ, lab("potassium", 3.5))),
    Case("low-k/3.6-on-hctz", depth.low_potassium_magnesium, chart(HCTZ, lab("potassium", 3.6))),
    Case(
        "low-k/3.2-without-a-diuretic",
        depth.low_potassium_magnesium,
        chart(LISINOPRIL, lab("potassium", 3.2)),
    ),
    Case(
        "low-mg/1.7-on-furosemide-and-digoxin",
        depth.low_potassium_magnesium,
        chart(FUROSEMIDE, DIGOXIN, lab("potassium", 4.0), magnesium(1.7)),
        (
            Expected(
                "rule.low-potassium-magnesium",
                "warning",
                (*K_LOW_EVIDENCE, "kb.digoxin-monitoring"),
                (FUROSEMIDE, DIGOXIN, magnesium(1.7)),
                (),
                None,
                ("Mg 1.7",),
            ),
        ),
    ),
    Case(
        "low-mg/1.8", depth.low_potassium_magnesium, chart(FUROSEMIDE, lab("potassium", 4.0), magnesium(1.8))
    ),
    Case(
        "low-mg/1.9", depth.low_potassium_magnesium, chart(FUROSEMIDE, lab("potassium", 4.0), magnesium(1.9))
    ),
    Case(
        "low-k/stale-and-low",
        depth.low_potassium_magnesium,
        chart(HCTZ, lab("potassium", 3.2, days_ago=91)),
        (
            Expected(
                "rule.low-potassium-magnesium",
                "warning",
                K_LOW_EVIDENCE,
                (HCTZ, lab("potassium", 3.2, days_ago=91)),
                (),
                "2823-3",
                ("91 days old",),
            ),
        ),
    ),
    Case(
        "low-k/stale-and-normal",
        depth.low_potassium_magnesium,
        chart(HCTZ, lab("potassium", 4.1, days_ago=91)),
    ),
    # Acetaminophen across products against 4 g a day.
    Case(
        "apap/5.2-g-combination-plus-plain",
        depth.acetaminophen_daily_total,
        chart(HYDRO_Q6, dosed(APAP, 2, 4)),
        (
            Expected(
                "rule.acetaminophen-daily-total",
                "warning",
                APAP_KB,
                (HYDRO_Q6, dosed(APAP, 2, 4)),
                (),
                None,
                ("5.2 g",),
            ),
        ),
    ),
    Case(
        "apap/exactly-4-g",
        depth.acetaminophen_daily_total,
        chart(dosed(HYDROCODONE_APAP, 2, 4), dosed(APAP, 2, 2)),
    ),
    Case(
        "apap/4.225-g",
        depth.acetaminophen_daily_total,
        chart(dosed(HYDROCODONE_APAP, 2, 4), dosed(APAP, 1, 5)),
        (
            Expected(
                "rule.acetaminophen-daily-total",
                "warning",
                APAP_KB,
                (dosed(HYDROCODONE_APAP, 2, 4), dosed(APAP, 1, 5)),
                (),
                None,
                ("4.22 g",),
            ),
        ),
    ),
    Case(
        "apap/3.9-g", depth.acetaminophen_daily_total, chart(dosed(HYDROCODONE_APAP, 2, 4), dosed(APAP, 1, 4))
    ),
    # IV insulin with potassium below 3.5.
    Case(
        "insulin-iv/k-3.4",
        depth.insulin_infusion_low_potassium,
        chart(lab("potassium", 3.4, days_ago=0), drafts=(INSULIN_DRIP,)),
        (
            Expected(
                "rule.insulin-infusion-low-potassium",
                "critical",
                K_KB,
                (lab("potassium", 3.4, days_ago=0), INSULIN_DRIP),
                (INSULIN_DRIP,),
                None,
                ("3.4",),
            ),
        ),
    ),
    Case(
        "insulin-iv/k-3.5",
        depth.insulin_infusion_low_potassium,
        chart(lab("potassium", 3.5, days_ago=0), drafts=(INSULIN_DRIP,)),
    ),
    Case(
        "insulin-sc/k-3.1",
        depth.insulin_infusion_low_potassium,
        chart(lab("potassium", 3.1, days_ago=0), drafts=(INSULIN_SUBCUT,)),
    ),
    # Anticoagulants with low platelets: treatment doses under 50, any dose under 25.
    Case(
        "anticoag/treatment-49",
        depth.anticoagulant_low_platelets,
        chart(lab("platelets", 49, days_ago=1), drafts=(ENOXAPARIN_TREATMENT,)),
        (
            Expected(
                "rule.anticoagulant-low-platelets",
                "critical",
                PLT_KB,
                (lab("platelets", 49, days_ago=1), ENOXAPARIN_TREATMENT),
                (ENOXAPARIN_TREATMENT,),
                None,
                ("Full-dose",),
            ),
        ),
    ),
    Case(
        "anticoag/treatment-50",
        depth.anticoagulant_low_platelets,
        chart(lab("platelets", 50, days_ago=1), drafts=(ENOXAPARIN_TREATMENT,)),
    ),
    Case(
        "anticoag/prophylaxis-25",
        depth.anticoagulant_low_platelets,
        chart(lab("platelets", 25, days_ago=1), drafts=(ENOXAPARIN_PROPHYLAXIS,)),
    ),
    Case(
        "anticoag/prophylaxis-24",
        depth.anticoagulant_low_platelets,
        chart(lab("platelets", 24, days_ago=1), drafts=(ENOXAPARIN_PROPHYLAXIS,)),
        (
            Expected(
                "rule.anticoagulant-low-platelets",
                "critical",
                PLT_KB,
                (lab("platelets", 24, days_ago=1), ENOXAPARIN_PROPHYLAXIS),
                (ENOXAPARIN_PROPHYLAXIS,),
                None,
                ("Any dose",),
            ),
        ),
    ),
    # Urate-lowering therapy started without flare prophylaxis.
    Case(
        "gout/allopurinol-21-days",
        depth.urate_lowering_without_flare_prophylaxis,
        chart(ALLOPURINOL_NEW, problem("gout")),
        (
            Expected(
                "rule.urate-lowering-without-flare-prophylaxis",
                "warning",
                GOUT_KB,
                (problem("gout"), ALLOPURINOL_NEW),
            ),
        ),
    ),
    Case(
        "gout/with-colchicine",
        depth.urate_lowering_without_flare_prophylaxis,
        chart(ALLOPURINOL_NEW, med("colchicine"), problem("gout")),
    ),
    Case(
        "gout/allopurinol-400-days",
        depth.urate_lowering_without_flare_prophylaxis,
        chart(ALLOPURINOL_OLD, problem("gout")),
    ),
    # A drug whose label makes a companion part of the regimen.
    Case(
        "companion/pemetrexed-alone",
        depth.companion_therapy_absent,
        chart(PEMETREXED),
        (
            Expected(
                "rule.companion-therapy-absent",
                "critical",
                ("kb.pemetrexed-vitamin-supplementation",),
                (PEMETREXED,),
                mentions=("folic acid or vitamin B12",),
            ),
        ),
    ),
    Case(
        "companion/pemetrexed-folic-acid-only",
        depth.companion_therapy_absent,
        chart(PEMETREXED, FOLIC_ACID),
        (
            Expected(
                "rule.companion-therapy-absent",
                "critical",
                ("kb.pemetrexed-vitamin-supplementation",),
                (PEMETREXED,),
                mentions=("without vitamin B12",),
            ),
        ),
    ),
    Case(
        "companion/pemetrexed-both",
        depth.companion_therapy_absent,
        chart(PEMETREXED, FOLIC_ACID, B12_INJECTION),
    ),
    # alone, or with an inhaled steroid, which does not offset abiraterone's mineralocorticoid excess
    *(
        Case(
            f"companion/abiraterone-{name}",
            depth.companion_therapy_absent,
            chart(ABIRATERONE, *beside),
            (
                Expected(
                    "rule.companion-therapy-absent",
                    "warning",
                    ("kb.abiraterone-with-corticosteroid",),
                    (ABIRATERONE,),
                    mentions=("corticosteroid",),
                ),
            ),
        )
        for name, beside in (("alone", ()), ("inhaled-budesonide", (BUDESONIDE_INHALER,)))
    ),
    Case(
        "companion/abiraterone-prednisone", depth.companion_therapy_absent, chart(ABIRATERONE, PREDNISONE_5)
    ),
    Case(
        "companion/bortezomib-alone",
        depth.companion_therapy_absent,
        chart(BORTEZOMIB),
        (
            Expected(
                "rule.companion-therapy-absent",
                "warning",
                ("kb.bortezomib-antiviral-prophylaxis",),
                (BORTEZOMIB,),
                mentions=("antiviral prophylaxis",),
            ),
        ),
    ),
    Case(
        "companion/bortezomib-valacyclovir",
        depth.companion_therapy_absent,
        chart(BORTEZOMIB, text_only(rx("vala", "", "valacyclovir 500 MG Oral Tablet"))),
    ),
    # Acetaminophen in cirrhosis against 2 g a day.
    Case(
        "apap-cirrhosis/2.6-g",
        depth.acetaminophen_in_cirrhosis,
        chart(HYDRO_Q6, problem("cirrhosis")),
        (
            Expected(
                "rule.acetaminophen-cirrhosis",
                "warning",
                APAP_CIRRHOSIS_KB,
                (problem("cirrhosis"), HYDRO_Q6),
                (),
                None,
                ("2.6 g",),
            ),
        ),
    ),
    Case("apap-cirrhosis/1.95-g", depth.acetaminophen_in_cirrhosis, chart(APAP_TID, problem("cirrhosis"))),
    Case(
        "apap/unknown-dose-says-unknown",
        depth.acetaminophen_daily_total,
        chart(HYDRO_Q6, APAP),
        (
            Expected(
                "rule.acetaminophen-daily-total",
                "warning",
                APAP_KB,
                (HYDRO_Q6, APAP),
                (),
                None,
                ("total daily dose unknown",),
            ),
        ),
    ),
    Case("apap/one-product-unknown", depth.acetaminophen_daily_total, chart(APAP)),
    Case(
        "apap/one-draft-is-dose-ranges",
        depth.acetaminophen_daily_total,
        chart(drafts=(dosed(draft("acetaminophen"), 4, 4),)),
    ),
    # Amiodarone: TSH (365-day window) and ALT (90-day window).
    Case(
        "amiodarone/tsh-366-alt-none",
        depth.amiodarone_monitoring,
        chart(AMIODARONE, lab("tsh", 2.2, days_ago=366)),
        (
            Expected(
                "rule.amiodarone-monitoring",
                "info",
                AMIO_KB,
                (AMIODARONE, lab("tsh", 2.2, days_ago=366)),
                (),
                "3016-3",
                ("TSH 366 days old", "no ALT on record"),
            ),
        ),
    ),
    Case(
        "amiodarone/alt-91",
        depth.amiodarone_monitoring,
        chart(AMIODARONE, lab("tsh", 2.2, days_ago=365), lab("alt", 20, days_ago=91)),
        (
            Expected(
                "rule.amiodarone-monitoring",
                "info",
                AMIO_KB,
                (AMIODARONE, lab("alt", 20, days_ago=91)),
                (),
                "1742-6",
                ("ALT 91 days old",),
            ),
        ),
    ),
    Case(
        "amiodarone/current-at-the-window-edge",
        depth.amiodarone_monitoring,
        chart(AMIODARONE, lab("tsh", 2.2, days_ago=365), lab("alt", 20, days_ago=90)),
    ),
    # Amiodarone with a TSH out of range (4.5 and 0.1 mIU/L; 10 for treatment) and no thyroid drug.
    Case(
        "amiodarone-thyroid/tsh-4.6",
        depth.amiodarone_thyroid_dysfunction,
        chart(AMIODARONE, lab("tsh", 4.6, days_ago=30)),
        (
            Expected(
                "rule.amiodarone-thyroid-dysfunction",
                "info",
                AMIO_KB,
                (AMIODARONE, lab("tsh", 4.6, days_ago=30)),
                (),
                None,
                ("TSH 4.6 mIU/L", "consider a free T4"),
            ),
        ),
    ),
    Case(
        "amiodarone-thyroid/tsh-9.9",
        depth.amiodarone_thyroid_dysfunction,
        chart(AMIODARONE, lab("tsh", 9.9, days_ago=30)),
        (
            Expected(
                "rule.amiodarone-thyroid-dysfunction",
                "info",
                AMIO_KB,
                (AMIODARONE, lab("tsh", 9.9, days_ago=30)),
                (),
                None,
                ("TSH 9.9 mIU/L", "consider a free T4"),
            ),
        ),
    ),
    Case(
        "amiodarone-thyroid/tsh-10",
        depth.amiodarone_thyroid_dysfunction,
        chart(AMIODARONE, lab("tsh", 10, days_ago=30)),
        (
            Expected(
                "rule.amiodarone-thyroid-dysfunction",
                "warning",
                ("kb.amiodarone-thyroid-dysfunction",),
                (AMIODARONE, lab("tsh", 10, days_ago=30)),
                (),
                None,
                ("TSH 10 mIU/L", "levothyroxine"),
            ),
        ),
    ),
    Case(
        "amiodarone-thyroid/tsh-0.09",
        depth.amiodarone_thyroid_dysfunction,
        chart(AMIODARONE, lab("tsh", 0.09, days_ago=30)),
        (
            Expected(
                "rule.amiodarone-thyroid-dysfunction",
                "warning",
                ("kb.amiodarone-thyroid-dysfunction",),
                (AMIODARONE, lab("tsh", 0.09, days_ago=30)),
                (),
                None,
                ("TSH 0.09 mIU/L", "thyrotoxicosis"),
            ),
        ),
    ),
    Case(
        "amiodarone-thyroid/tsh-4.5-in-range",
        depth.amiodarone_thyroid_dysfunction,
        chart(AMIODARONE, lab("tsh", 4.5, days_ago=30)),
    ),
    Case(
        "amiodarone-thyroid/tsh-0.1-in-range",
        depth.amiodarone_thyroid_dysfunction,
        chart(AMIODARONE, lab("tsh", 0.1, days_ago=30)),
    ),
    Case(
        "amiodarone-thyroid/tsh-12-already-on-levothyroxine",
        depth.amiodarone_thyroid_dysfunction,
        chart(AMIODARONE, med("levothyroxine"), lab("tsh", 12, days_ago=30)),
    ),
    # Anticholinergic with a cholinesterase inhibitor.
    Case(
        "anticholinergic/oxybutynin-donepezil",
        depth.anticholinergic_cholinesterase_inhibitor,
        chart(DONEPEZIL, OXYBUTYNIN, DIPHENHYDRAMINE),
        (
            Expected(
                "rule.anticholinergic-cholinesterase-inhibitor",
                "warning",
                ACH_KB,
                (DONEPEZIL, OXYBUTYNIN, DIPHENHYDRAMINE),
                (),
                None,
                ("oxybutynin", "donepezil"),
            ),
        ),
    ),
    Case(
        "anticholinergic/donepezil-alone",
        depth.anticholinergic_cholinesterase_inhibitor,
        chart(DONEPEZIL, APAP),
    ),
    Case(
        "anticholinergic/oxybutynin-alone", depth.anticholinergic_cholinesterase_inhibitor, chart(OXYBUTYNIN)
    ),
    # Tdap at 27 to 36 completed weeks.
    Case("tdap/26-weeks", depth.tdap_pregnancy_due, Chart(age=28, resources=(pregnant(26),))),
    *(
        Case(
            f"tdap/{weeks}-weeks",
            depth.tdap_pregnancy_due,
            Chart(age=28, resources=(pregnant(weeks),)),
            (
                Expected(
                    "rule.tdap-pregnancy-due",
                    "info",
                    TDAP_KB,
                    (pregnant(weeks),),
                    (),
                    None,
                    (f"{weeks} weeks",),
                ),
            ),
        )
        for weeks in (27, 28, 36)
    ),
    Case("tdap/37-weeks", depth.tdap_pregnancy_due, Chart(age=28, resources=(pregnant(37),))),
    # RSV vaccine at 32 to 36 completed weeks, September to January (the clock is 25 November).
    Case("rsv-pregnancy/31-weeks", depth.rsv_pregnancy_due, Chart(age=28, resources=(pregnant(31),))),
    Case(
        "rsv-pregnancy/33-weeks",
        depth.rsv_pregnancy_due,
        Chart(age=28, resources=(pregnant(33),)),
        (
            Expected(
                "rule.rsv-pregnancy-due",
                "info",
                ("kb.acip-rsv-maternal-or-infant",),
                (pregnant(33),),
                (),
                None,
                ("33 weeks", "nirsevimab"),
            ),
        ),
    ),
    Case(
        "tdap/given-this-pregnancy",
        depth.tdap_pregnancy_due,
        Chart(age=28, resources=(pregnant(30), tdap(20))),
    ),
    Case(
        "tdap/last-pregnancy-only",
        depth.tdap_pregnancy_due,
        Chart(age=28, resources=(pregnant(30), tdap(30 * 7 + 7), vaccine("influenza", 10))),
        (Expected("rule.tdap-pregnancy-due", "info", TDAP_KB, (pregnant(30),), (), None, ("30 weeks",)),),
    ),
    Case(
        "tdap/undated-pregnancy-says-unknown",
        depth.tdap_pregnancy_due,
        Chart(age=28, resources=(PREGNANCY_UNDATED,)),
        (Expected("rule.tdap-pregnancy-due", "info", TDAP_KB, (PREGNANCY_UNDATED,), (), None, ("unknown",)),),
    ),
    Case("tdap/record-left-open", depth.tdap_pregnancy_due, Chart(age=28, resources=(pregnant(60),))),
)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case: Case) -> None:
    built = case.chart.build()
    found = list(case.rule(RuleFacts.of(built.context)))
    assert len(found) == len(case.expected), [f.summary for f in found]
    for finding, expected in zip(found, case.expected, strict=True):
        check_finding(finding, expected, built)


def test_every_depth_rule_has_a_positive_and_a_negative_case() -> None:
    rules = {*depth.DEPTH_MEDICATION_RULES, *depth.DEPTH_CARE_GAP_RULES}
    assert {c.rule for c in CASES if c.expected} == rules
    assert {c.rule for c in CASES if not c.expected} == rules


def test_cards_match_their_first_entrys_severity_and_link_it() -> None:
    knowledge = load_knowledge_base()
    for case in CASES:
        built = case.chart.build()
        for finding in case.rule(RuleFacts.of(built.context)):
            entry = knowledge.get(finding.evidence[0])
            assert entry is not None and entry.severity_hint == finding.severity, case.id
            card = finding_card(finding, built.context, built.handles, knowledge, "rule-case")
            assert card.links and card.links[0].url == entry.source.url, case.id
            assert "search.cfm" not in entry.source.url and "query=" not in entry.source.url


def test_the_constants_are_the_entries_numbers() -> None:
    knowledge = load_knowledge_base()

    def says(entry_id: str, *phrases: str) -> None:
        entry = knowledge.get(entry_id)
        assert entry is not None and all(p in entry.statement for p in phrases), entry_id

    assert depth.POTASSIUM_LOW == 3.5 and depth.MAGNESIUM_LOW_MG_DL == 1.8
    says("kb.diuretic-hypokalaemia-replacement", "3.5 mmol/L", "1.8 mg/dL")
    assert depth.ACETAMINOPHEN_MAX_DAILY_MG == 4000
    says("kb.acetaminophen-daily-maximum", "4 g in 24 hours")
    assert depth.ACETAMINOPHEN_CIRRHOSIS_MAX_DAILY_MG == 2000
    says("kb.acetaminophen-cirrhosis", "no more than 2 g")
    assert depth.TDAP_WEEKS == (27, 36)
    says("kb.acip-tdap-each-pregnancy", "27–36 week")
    says("kb.aki-triple-whammy-stop", "1.5 times", "8 to 365 days")
    assert catalog.POTASSIUM_START_LIMIT == 5.0


def test_every_lab_the_depth_rules_read_has_a_window() -> None:
    assert set(depth.LABS_READ) <= set(lab_windows())


@pytest.mark.parametrize(
    ("points", "stage"),
    [
        (((1.5, 0), (1.0, 8)), 1),  # no value in 7 days: 1.5x the median of 8-365 days
        (((1.49, 0), (1.0, 8)), None),
        (((1.5, 0), (1.0, 365)), 1),
        (((1.5, 0), (1.0, 366)), None),  # past the reference window
        (((1.5, 0), (1.0, 20), (1.0, 40), (2.0, 60)), 1),  # median 1.0
        (((1.5, 0), (0.8, 20), (1.2, 40)), 1),  # even count: median 1.0
        (((1.5, 0), (1.4, 3), (1.0, 20)), None),  # a 7-day value exists: KDIGO decides, and says no
        (((2.0, 0), (1.0, 30)), 2),
        (((1.5, 8), (1.0, 30)), None),  # the newest value is too old to act on
    ],
)
def test_aki_against_the_reference_value(points: tuple[tuple[float, int], ...], stage: int | None) -> None:
    found = aki_against_reference(series(*points))
    assert (found.stage if found else None) == stage


def test_the_triple_whammy_aki_replaces_the_weaker_cards() -> None:
    found = {f.rule_id for f in evaluate(chart(*TRIPLE, *aki(1.5, 1.0, 30)).build().context)}
    assert "rule.aki-triple-whammy" in found
    assert not {"rule.triple-whammy", "rule.aki-nephrotoxin"} & found
    quiet = {f.rule_id for f in evaluate(chart(*TRIPLE, *aki(1.1, 1.0, 30)).build().context)}
    assert "rule.triple-whammy" in quiet and "rule.aki-triple-whammy" not in quiet


def test_starting_spironolactone_on_a_stale_potassium_asks_once_and_louder() -> None:
    built = chart(LISINOPRIL, lab("potassium", 4.6, days_ago=91), drafts=(draft("spironolactone"),)).build()
    ids = [f.rule_id for f in evaluate(built.context)]
    assert "rule.potassium-unknown-before-starting" in ids and "rule.potassium-recheck" not in ids
    # Lisinopril alone, established: the yearly interval (plugin/knowledge/lab_validity.json) is past.
    kept = [
        f.rule_id for f in evaluate(chart(LISINOPRIL, lab("potassium", 4.6, days_ago=366)).build().context)
    ]
    assert "rule.potassium-recheck" in kept


def test_acetaminophen_products_are_summed_not_called_duplicates() -> None:
    ids = [
        f.rule_id for f in evaluate(chart(dosed(HYDROCODONE_APAP, 1, 4), dosed(APAP, 2, 2)).build().context)
    ]
    assert "rule.duplicate-therapy" not in ids and "rule.acetaminophen-daily-total" not in ids


def _low_risk_penicillin_allergy(criticality: str | None, reaction: str) -> JsonDict:
    allergy = penicillin_allergy()
    allergy["code"] = {"text": "Penicillin"}  # any penicillin: the aminopenicillins' side chain counts
    allergy["reaction"] = [{"manifestation": [{"text": reaction}]}]
    if criticality is None:
        allergy.pop("criticality", None)
    else:
        allergy["criticality"] = criticality
    return allergy


@pytest.mark.parametrize(
    ("criticality", "reaction", "drug", "fires"),
    [
        # a non-anaphylactic reaction: the practice parameter allows any cephalosporin
        ("low", "Eruption of skin", CEFUROXIME, False),
        ("low", "Eruption of skin", CEPHALEXIN, False),
        # anaphylaxis: only a cephalosporin with a dissimilar side chain
        ("low", "Anaphylaxis", CEFUROXIME, False),
        ("low", "Anaphylaxis", CEPHALEXIN, True),  # shares the aminopenicillin side chain
        ("high", "Eruption of skin", CEFUROXIME, False),
        ("high", "Eruption of skin", CEPHALEXIN, True),
        (None, "Eruption of skin", CEFUROXIME, False),
        (None, "Eruption of skin", CEPHALEXIN, True),  # unrecorded criticality: fail closed
    ],
)
def test_penicillin_allergy_and_cephalosporins(
    criticality: str | None, reaction: str, drug: JsonDict, fires: bool
) -> None:
    built = chart(_low_risk_penicillin_allergy(criticality, reaction), drug).build()
    ids = [f.rule_id for f in catalog.allergy_conflict(RuleFacts.of(built.context))]
    assert ("rule.allergy-cross-reactivity" in ids) is fires


def _beta_lactam_allergy(substance: str, criticality: str, reaction: str) -> JsonDict:
    allergy = _low_risk_penicillin_allergy(criticality, reaction)
    allergy["code"] = {"text": substance}
    return allergy


@pytest.mark.parametrize(
    ("substance", "criticality", "reaction", "drug", "fires"),
    [
        # the penicillin named decides which cephalosporins share its side chain
        ("amoxicillin", "high", "Anaphylaxis", CEPHALEXIN, True),
        ("penicillin G", "high", "Anaphylaxis", CEPHALEXIN, False),
        ("PCN", "high", "Anaphylaxis", CEPHALEXIN, True),  # any penicillin: fail closed
        (
            "amoxicillin",
            "high",
            "Anaphylaxis",
            text_only(rx("ceftriaxone", "", "ceftriaxone 1 GM Injection")),
            False,
        ),
        ("penicillin", "high", "Anaphylaxis", rx("meropenem", "29561", "meropenem 1000 MG Injection"), False),
        # a cephalosporin allergy: a penicillin with a similar side chain, or after a reaction not recorded as low
        ("cephalexin (Keflex)", "low", "Urticaria", AMOXICILLIN_CAPSULE, True),
        ("cefdinir", "low", "Diarrhoea", AMOXICILLIN_CAPSULE, False),
        ("cefdinir", "high", "Anaphylaxis", AMOXICILLIN_CAPSULE, True),
        ("cephalosporins", "low", "Rash", AMOXICILLIN_CAPSULE, True),  # which one is unknown
    ],
)
def test_beta_lactam_side_chains(
    substance: str, criticality: str, reaction: str, drug: JsonDict, fires: bool
) -> None:
    built = chart(_beta_lactam_allergy(substance, criticality, reaction), drug).build()
    ids = [f.rule_id for f in catalog.allergy_conflict(RuleFacts.of(built.context))]
    assert ("rule.allergy-cross-reactivity" in ids) is fires


# --- acetaminophen in cirrhosis: at most 2 g a day ------------------------------------------------------------

APAP_500 = rx("apap-500", "198440", "Acetaminophen 500 MG Oral Tablet")


def _apap_mg_a_day(mg: float, cap_text: str = "") -> JsonDict:
    changed: JsonDict = copy_json(APAP_500)
    changed["dosageInstruction"] = [
        {
            "text": f"{mg:g} mg a day{cap_text}",
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg"}}],
        }
    ]
    return changed


def _cirrhosis_cards(*resources: JsonDict) -> list[str]:
    facts = RuleFacts.of(chart(*resources).build().context)
    return [
        f.rule_id
        for rule in (depth.acetaminophen_in_cirrhosis, depth.acetaminophen_daily_total)
        for f in rule(facts)
    ]


@pytest.mark.parametrize(
    ("mg", "expected"),
    [
        (1999, []),
        (2000, []),
        (2001, ["rule.acetaminophen-cirrhosis"]),
        (4000, ["rule.acetaminophen-cirrhosis"]),
        (4001, ["rule.acetaminophen-daily-total"]),  # above 4 g the card for every patient speaks alone
    ],
)
def test_acetaminophen_in_cirrhosis_at_and_around_2_g(mg: float, expected: list[str]) -> None:
    assert _cirrhosis_cards(_apap_mg_a_day(mg), problem("cirrhosis")) == expected


def test_acetaminophen_3_g_without_cirrhosis_or_capped_at_2_g_is_quiet() -> None:
    assert _cirrhosis_cards(_apap_mg_a_day(3000), problem("hypertension")) == []
    capped = _apap_mg_a_day(3000, "; do not exceed 2,000 mg in 24 hours")
    assert _cirrhosis_cards(capped, problem("cirrhosis")) == []


# --- a draft that re-orders a current medication unchanged is one therapy, not a duplicate --------------------


@pytest.mark.parametrize(
    ("current", "order", "duplicate"),
    [
        (med("amlodipine"), draft("amlodipine"), False),  # the same product, dose and frequency: a renewal
        (
            med("amlodipine"),
            dosed(draft("amlodipine"), 2, 3),
            True,
        ),  # the dose changed: old and new side by side
        (med("amlodipine"), dosed(draft("amlodipine"), 1, 2), True),  # the frequency changed
        (med("amlodipine"), draft("amlodipine-10"), True),  # "1 tablet" of another strength
        (undosed(med("amlodipine")), draft("amlodipine"), True),  # the current dose is unknown: fail closed
    ],
    ids=["renewal", "dose-changed", "frequency-changed", "other-strength", "current-undosed"],
)
def test_a_draft_continuing_a_current_medication(current: JsonDict, order: JsonDict, duplicate: bool) -> None:
    built = chart(current, drafts=(order,)).build()
    ids = [f.rule_id for f in catalog.duplicate_therapy(RuleFacts.of(built.context))]
    assert ("rule.duplicate-therapy" in ids) is duplicate


@pytest.mark.parametrize(
    ("first", "second", "duplicate"),
    [
        (
            "sitagliptin 50 MG / metformin hydrochloride 1000 MG Oral Tablet",
            "linagliptin 5 MG Oral Tablet",
            True,
        ),
        ("sitagliptin 100 MG Oral Tablet", "semaglutide 1 MG/DOSE Pen Injector", True),
        ("liraglutide 18 MG/3ML Pen Injector", "semaglutide 1 MG/DOSE Pen Injector", True),
        ("semaglutide 1 MG/DOSE Pen Injector", "empagliflozin 10 MG Oral Tablet", False),  # another pathway
        ("linagliptin 5 MG Oral Tablet", "metformin hydrochloride 1000 MG Oral Tablet", False),
    ],
)
def test_two_incretin_drugs_are_a_duplicate(first: str, second: str, duplicate: bool) -> None:
    built = chart(text_only(rx("first", "", first)), text_only(rx("second", "", second))).build()
    found = list(catalog.duplicate_therapy(RuleFacts.of(built.context)))
    assert bool(found) is duplicate
    if duplicate:
        assert found[0].evidence == ("kb.duplicate-incretin-therapy",)


@pytest.mark.parametrize(
    ("first", "second", "evidence"),
    [
        (
            "dapagliflozin 10 MG / metformin hydrochloride 1000 MG Extended Release Oral Tablet",
            "empagliflozin 25 MG Oral Tablet",
            "kb.duplicate-sglt2-inhibitors",
        ),
        ("empagliflozin 25 MG Oral Tablet", "sitagliptin 100 MG Oral Tablet", None),  # two pathways
        (
            "lisdexamfetamine dimesylate 50 MG Oral Capsule",
            "phentermine hydrochloride 37.5 MG Oral Tablet",
            "kb.duplicate-stimulants",
        ),
        # The afternoon booster: one stimulant, extended and immediate release.
        (
            "methylphenidate hydrochloride 54 MG Extended Release Oral Tablet",
            "methylphenidate hydrochloride 10 MG Oral Tablet",
            None,
        ),
        # Two long-acting products of one stimulant are the same drug twice.
        (
            "methylphenidate hydrochloride 54 MG Extended Release Oral Tablet",
            "methylphenidate hydrochloride 36 MG Extended Release Oral Tablet",
            "kb.duplicate-same-ingredient",
        ),
        (
            "methylprednisolone sodium succinate 40 MG Injection",
            "prednisone 40 MG Oral Tablet",
            "kb.duplicate-systemic-corticosteroids",
        ),
        ("fluticasone propionate 0.11 MG/ACTUAT Metered Dose Inhaler", "prednisone 40 MG Oral Tablet", None),
        ("fludrocortisone acetate 0.1 MG Oral Tablet", "hydrocortisone 10 MG Oral Tablet", None),
        ("triamcinolone acetonide 40 MG/ML Injectable Suspension", "prednisone 10 MG Oral Tablet", None),
        ("ticagrelor 90 MG Oral Tablet", "clopidogrel 75 MG Oral Tablet", "kb.duplicate-p2y12-inhibitors"),
        ("aspirin 81 MG Delayed Release Oral Tablet", "clopidogrel 75 MG Oral Tablet", None),  # DAPT
    ],
    ids=[
        "sglt2-in-combination",
        "sglt2-with-dpp4",
        "two-stimulants",
        "stimulant-booster",
        "one-stimulant-twice-long-acting",
        "iv-and-oral-steroids",
        "inhaled-steroid",
        "fludrocortisone-replacement",
        "joint-injection",
        "two-p2y12-inhibitors",
        "aspirin-with-clopidogrel",
    ],
)
def test_duplicate_groups_of_one_mechanism(first: str, second: str, evidence: str | None) -> None:
    built = chart(text_only(rx("first", "", first)), text_only(rx("second", "", second))).build()
    found = list(catalog.duplicate_therapy(RuleFacts.of(built.context)))
    assert [f.evidence for f in found] == ([(evidence,)] if evidence else [])


LABETALOL_IV = text_only(rx("iv", "", "labetalol hydrochloride 5 MG/ML Injection"))


def _sig(
    request: JsonDict, text: str, route: str, *, as_needed: bool = False, per_week: float = 0
) -> JsonDict:
    instruction: JsonDict = {"text": text, "route": {"text": route}, "asNeededBoolean": as_needed}
    if per_week:
        instruction["timing"] = {"repeat": {"frequency": per_week, "period": 1, "periodUnit": "wk"}}
    changed: JsonDict = copy_json(request)
    changed["dosageInstruction"] = [instruction]
    return changed


@pytest.mark.parametrize(
    ("injection", "duplicate"),
    [
        (_sig(LABETALOL_IV, "20 mg IV if SBP 160 or more", "intravenous", as_needed=True), False),
        (_sig(LABETALOL_IV, "20 mg IV weekly", "intravenous", per_week=1), False),
        (
            _sig(LABETALOL_IV, "20 mg IV every 6 hours", "intravenous", per_week=28),
            True,
        ),  # scheduled IV beside scheduled tablets: a double dose
        (undosed(text_only(rx("iv", "", "labetalol hydrochloride 5 MG/ML Injection"))), True),  # fail closed
    ],
    ids=["as-needed-iv", "weekly-iv", "scheduled-iv", "undosed-iv"],
)
def test_an_occasional_injection_of_a_drug_taken_by_mouth_is_no_double_dose(
    injection: JsonDict, duplicate: bool
) -> None:
    tablets = dosed(text_only(rx("oral", "", "labetalol hydrochloride 200 MG Oral Tablet")), 1, 2)
    built = chart(tablets, injection).build()
    found = list(catalog.duplicate_therapy(RuleFacts.of(built.context)))
    assert bool(found) is duplicate


def _indomethacin_draft(resource_id: str, mg: int, every_hours: int | None) -> JsonDict:
    request = text_only(rx(resource_id, "", f"indomethacin {mg} MG Oral Capsule"))
    request["status"] = "draft"
    instruction: JsonDict = {"doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg"}}]}
    if every_hours is not None:
        instruction["timing"] = {"repeat": {"frequency": 1, "period": every_hours, "periodUnit": "h"}}
    request["dosageInstruction"] = [instruction]
    return request


@pytest.mark.parametrize(
    ("first_every", "second_every", "duplicate"),
    [
        (None, 6, False),  # 50 mg once, then 25 mg every 6 hours: a loading dose written out
        (6, 6, True),  # two scheduled orders of one drug
        (None, None, True),  # two single doses: which one is meant is unclear
    ],
    ids=["loading-then-maintenance", "two-scheduled", "two-single-doses"],
)
def test_a_loading_dose_drafted_beside_its_maintenance_order_is_no_duplicate(
    first_every: int | None, second_every: int | None, duplicate: bool
) -> None:
    drafts = (_indomethacin_draft("load", 50, first_every), _indomethacin_draft("keep", 25, second_every))
    built = chart(drafts=drafts, age=30).build()
    assert bool(list(catalog.duplicate_therapy(RuleFacts.of(built.context)))) is duplicate


def test_a_reliever_ordered_beside_one_already_taken_is_not_blamed_for_the_regimen() -> None:
    for current, blamed in (((med("albuterol"),), False), ((), True)):
        built = chart(*current, problem("asthma"), drafts=(draft("albuterol"),)).build()
        (finding,) = catalog.asthma_saba_only(RuleFacts.of(built.context))
        assert bool(finding.proposed) is blamed


@pytest.mark.parametrize(
    ("others", "carded"),
    [
        ((), True),  # the sedative alone: the Beers card is the only one that says it
        ((med("oxycodone"),), False),  # rule.opioid-sedative names the benzodiazepine
        ((med("sertraline"),), True),  # two CNS-active drugs: under the burden line
        ((med("sertraline"), med("gabapentin")), False),  # three: rule.beers-cns-active-burden names it
    ],
)
def test_the_beers_sedative_card_is_not_repeated_where_another_card_names_the_drug(
    others: tuple[JsonDict, ...], carded: bool
) -> None:
    built = Chart(age=80, gender="female", resources=(med("lorazepam"), *others)).build()
    ids = [f.rule_id for f in catalog.beers_older_adult(RuleFacts.of(built.context))]
    assert ("rule.beers-sedatives" in ids) is carded


def test_a_sedating_antihistamine_with_a_cholinesterase_inhibitor_is_said_once() -> None:
    alone = Chart(age=80, gender="female", resources=(med("diphenhydramine"),)).build()
    with_donepezil = Chart(age=80, gender="female", resources=(med("diphenhydramine"), DONEPEZIL)).build()
    assert [f.rule_id for f in catalog.beers_older_adult(RuleFacts.of(alone.context))] == [
        "rule.beers-sedatives"
    ]
    assert not list(catalog.beers_older_adult(RuleFacts.of(with_donepezil.context)))
    assert [
        f.rule_id
        for f in depth.anticholinergic_cholinesterase_inhibitor(RuleFacts.of(with_donepezil.context))
    ]


def _care(text: str) -> JsonDict:
    found = copy_json(problem("diabetes", resource_id="care"))
    found["code"] = {"text": text}
    return found


@pytest.mark.parametrize("care", ["Home hospice", "Comfort care only", "Palliative care"])
def test_end_of_life_care_quiets_care_gaps_and_guidance_that_excludes_it(care: str) -> None:
    # 80 with diabetes and heart disease on a first-generation antihistamine, oxycodone 60 MME with lorazepam:
    # Beers (diphenhydramine), CDC naloxone and the statin gap are out of scope; the FDA boxed warning is not.
    resources = (
        problem("myocardial-infarction"),
        problem("diabetes"),
        DIPHENHYDRAMINE,
        dosed(text_only(rx("oxy", "", "oxycodone hydrochloride 10 MG Oral Tablet")), 1, 4),
        med("lorazepam"),
    )
    everywhere = {f.rule_id for f in evaluate(chart(*resources, age=80).build().context)}
    at_end_of_life = {f.rule_id for f in evaluate(chart(*resources, _care(care), age=80).build().context)}
    assert {"rule.statin-indicated-absent", "rule.opioid-naloxone", "rule.opioid-sedative"} <= everywhere
    assert any(r.startswith("rule.beers-") for r in everywhere)
    assert "rule.opioid-sedative" in at_end_of_life
    assert not {"rule.statin-indicated-absent", "rule.opioid-naloxone"} & at_end_of_life
    assert not any(r.startswith("rule.beers-") for r in at_end_of_life)


def test_a_hospice_word_in_a_coded_problem_is_read() -> None:
    coded = copy_json(problem("heart-failure", resource_id="hf"))
    coded["code"]["text"] = coded["code"]["coding"][0]["display"] = "End-stage heart failure, home hospice"
    facts = RuleFacts.of(chart(coded).build().context)
    assert "end-of-life-care" in facts.value_sets and "heart-failure" in facts.value_sets


@pytest.mark.parametrize(
    ("left", "right", "rule_id"),
    [
        ("warfarin", "nafcillin", "rule.vka-enzyme-inducer"),  # an inducing penicillin: the INR falls
        ("dofetilide", "bictegravir", "rule.dofetilide-contraindicated"),  # blocks its renal cation transport
    ],
)
def test_partners_added_to_existing_interaction_pairs(left: str, right: str, rule_id: str) -> None:
    found = {f.rule_id for f in evaluate(chart(med(left), med(right)).build().context)}
    assert rule_id in found


@pytest.mark.parametrize(
    ("pregnancy", "carded"),
    [
        (pregnant(10), True),
        (pregnant(15), True),
        (pregnant(16), False),
        (pregnant(18), False),
        (PREGNANCY_UNDATED, True),
    ],
)
def test_methimazole_after_the_first_trimester_is_the_preferred_drug(
    pregnancy: JsonDict, carded: bool
) -> None:
    methimazole = text_only(rx("mmi", "", "methimazole 10 MG Oral Tablet"))
    found = list(
        catalog.pregnancy_teratogen(RuleFacts.of(chart(methimazole, pregnancy, age=30).build().context))
    )
    assert bool(found) is carded


def _warfarin(resource_id: str, mg: str, per_week: int) -> JsonDict:
    request = text_only(rx(resource_id, "", f"warfarin sodium {mg} MG Oral Tablet"))
    request["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": per_week, "period": 1, "periodUnit": "wk"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
        }
    ]
    return request


@pytest.mark.parametrize(
    ("daily_per_week", "extra_per_week", "duplicate"),
    [
        (7, 2, False),
        (7, 7, True),
        (2, 1, True),
    ],  # a daily dose plus two extra days; two daily; two part-weekly
    ids=["second-strength-on-two-days", "both-daily", "both-some-days"],
)
def test_a_second_strength_taken_on_some_days_makes_up_one_dose(
    daily_per_week: int, extra_per_week: int, duplicate: bool
) -> None:
    built = chart(_warfarin("w5", "5", daily_per_week), _warfarin("w2", "2.5", extra_per_week)).build()
    assert bool(list(catalog.duplicate_therapy(RuleFacts.of(built.context)))) is duplicate
