"""AF without anticoagulation and amiodarone for AF at 65+ (plugin.rules.gaps): each score point, both sex
lines at, below and above, and the cards held to their entries."""

from __future__ import annotations

import pytest

from plugin.knowledge import load_knowledge_base
from plugin.rules import gaps
from plugin.rules.catalog import pregnancy_teratogen
from plugin.rules.model import RuleFacts
from tests.support.charts import SNOMED, JsonDict, copy_json, medication_request
from tests.support.rule_cases import PATIENT_ID, Chart, draft, lab, med, on, problem

pytestmark = pytest.mark.unit


def _af() -> JsonDict:
    condition = copy_json(problem("hypertension", resource_id="af"))
    display = "Atrial fibrillation (disorder)"
    condition["code"] = {
        "coding": [{"system": SNOMED, "code": "49436004", "display": display}],
        "text": display,
    }
    return condition


AF = _af()


def facts(
    *resources: JsonDict, age: int = 50, gender: str = "male", drafts: tuple[JsonDict, ...] = ()
) -> RuleFacts:
    return RuleFacts.of(Chart(age=age, gender=gender, resources=resources, drafts=drafts).build().context)


@pytest.mark.parametrize(
    ("age", "gender", "problems", "score"),
    [
        (50, "male", (), 0),
        (64, "male", ("hypertension",), 1),
        (65, "male", (), 1),
        (74, "male", ("diabetes",), 2),
        (75, "male", (), 2),
        (50, "female", (), 1),
        (50, "male", ("heart-failure", "hypertension", "diabetes", "myocardial-infarction"), 4),
        (50, "male", ("ischaemic-stroke",), 2),
        (50, "male", ("peripheral-arterial-disease", "myocardial-infarction"), 1),  # one V point for both
        (
            80,
            "female",
            ("heart-failure", "hypertension", "diabetes", "ischaemic-stroke", "myocardial-infarction"),
            9,
        ),
    ],
)
def test_the_score_adds_each_letter_once(
    age: int, gender: str, problems: tuple[str, ...], score: int
) -> None:
    resources = (AF, *(problem(p, resource_id=p) for p in problems))
    assert gaps.cha2ds2_vasc(facts(*resources, age=age, gender=gender))[0] == score


@pytest.mark.parametrize(
    ("gender", "age", "problems", "severity"),
    [
        ("male", 64, (), None),  # 0
        ("male", 64, ("hypertension",), "info"),  # 1: anticoagulation is reasonable (1-2% a year)
        ("male", 65, ("hypertension",), "warning"),  # 2: the men's line
        ("female", 64, (), None),  # 1: female sex alone
        ("female", 65, (), "info"),  # 2
        ("female", 65, ("hypertension",), "warning"),  # 3: the women's line
        ("female", 75, (), "warning"),  # 3
    ],
)
def test_anticoagulation_is_asked_for_at_each_sex_line(
    gender: str, age: int, problems: tuple[str, ...], severity: str | None
) -> None:
    resources = (AF, *(problem(p, resource_id=p) for p in problems))
    found = list(gaps.af_anticoagulation_absent(facts(*resources, age=age, gender=gender)))
    assert [f.severity for f in found] == ([severity] if severity else [])
    for finding in found:
        assert "CHA2DS2-VASc" in finding.summary
        assert finding.evidence[0] == "kb.af-anticoagulation-cha2ds2-vasc"
        assert len(finding.summary) < 140


def test_a_rhythm_drug_ordered_without_anticoagulation_is_what_the_card_is_about() -> None:
    (finding,) = gaps.af_anticoagulation_absent(facts(AF, age=80, drafts=(draft("amiodarone"),)))
    assert finding.proposed and finding.severity == "warning"
    (current,) = gaps.af_anticoagulation_absent(facts(AF, med("amiodarone"), age=80))
    assert not current.proposed


@pytest.mark.parametrize("drug", ["warfarin", "apixaban", "enoxaparin"])
def test_any_anticoagulant_on_the_list_silences_it(drug: str) -> None:
    assert not list(gaps.af_anticoagulation_absent(facts(AF, med(drug), age=80)))


def test_aspirin_is_no_substitute_and_no_af_means_no_card() -> None:
    assert list(gaps.af_anticoagulation_absent(facts(AF, med("aspirin"), age=80)))
    assert not list(gaps.af_anticoagulation_absent(facts(problem("hypertension"), age=80)))


def test_unknown_sex_is_held_to_the_lower_line() -> None:
    assert list(gaps.af_anticoagulation_absent(facts(AF, problem("hypertension"), age=65, gender="unknown")))


@pytest.mark.parametrize(("age", "fires"), [(64, False), (65, True), (80, True)])
def test_amiodarone_for_af_from_65_without_heart_failure(age: int, fires: bool) -> None:
    found = list(gaps.beers_amiodarone_first_line(facts(AF, med("amiodarone"), age=age)))
    assert bool(found) is fires
    for finding in found:
        entry = load_knowledge_base().get(finding.evidence[0])
        assert entry is not None and entry.severity_hint == finding.severity == "info"


def test_heart_failure_or_no_af_silences_the_amiodarone_card() -> None:
    assert not list(
        gaps.beers_amiodarone_first_line(facts(AF, problem("heart-failure"), med("amiodarone"), age=80))
    )
    assert not list(gaps.beers_amiodarone_first_line(facts(med("amiodarone"), age=80)))


def test_a_drafted_amiodarone_is_named_as_proposed() -> None:
    (finding,) = gaps.beers_amiodarone_first_line(facts(AF, age=80, drafts=(draft("amiodarone"),)))
    assert finding.proposed


def _problem_coded(resource_id: str, snomed: str, display: str) -> JsonDict:
    condition = copy_json(problem("hypertension", resource_id=resource_id))
    condition["code"] = {"coding": [{"system": SNOMED, "code": snomed, "display": display}], "text": display}
    return condition


PARKINSON = _problem_coded("parkinson", "49049000", "Parkinson's disease (disorder)")


def _rx(resource_id: str, display: str) -> JsonDict:
    request = copy_json(med("amiodarone", resource_id=resource_id))
    request["medicationCodeableConcept"] = {"text": display}
    return request


@pytest.mark.parametrize(
    ("display", "fires"),
    [
        ("Metoclopramide 10 MG Oral Tablet", True),
        ("Haloperidol 2 MG Oral Tablet", True),
        ("Prochlorperazine 10 MG Oral Tablet", True),
        ("Quetiapine 25 MG Oral Tablet", False),  # spared by the criteria
        ("Ondansetron 4 MG Oral Tablet", False),  # not a dopamine blocker
    ],
)
def test_dopamine_blockers_in_parkinson_disease(display: str, fires: bool) -> None:
    found = list(gaps.parkinson_dopamine_blocker(facts(PARKINSON, _rx("drug", display), age=72)))
    assert bool(found) is fires
    assert not list(gaps.parkinson_dopamine_blocker(facts(_rx("drug", display), age=72)))


def test_cilostazol_in_heart_failure_is_critical_and_needs_both() -> None:
    failure = problem("heart-failure")
    cilostazol = _rx("cilostazol", "Cilostazol 100 MG Oral Tablet")
    (finding,) = gaps.cilostazol_heart_failure(facts(failure, cilostazol))
    assert finding.severity == "critical" and finding.evidence == ("kb.cilostazol-heart-failure",)
    assert not list(gaps.cilostazol_heart_failure(facts(cilostazol)))
    assert not list(gaps.cilostazol_heart_failure(facts(failure)))


# --- from held-out v5 ---------------------------------------------------------------------------------------------


def _draft(resource_id: str, display: str) -> JsonDict:
    request = _rx(resource_id, display)
    request["status"] = "draft"
    return request


FENTANYL = "Fentanyl 25 MCG/HR Transdermal Patch"


def _oxycodone_10_mg(tablets_a_day: int) -> list[JsonDict]:
    """Oxycodone 10 mg tablets taken `tablets_a_day` times a day (15 MME each), or nothing when 0."""
    if not tablets_a_day:
        return []
    oxycodone = _rx("oxy", "oxyCODONE Hydrochloride 10 MG Oral Tablet")
    oxycodone["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": tablets_a_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
        }
    ]
    return [oxycodone]


@pytest.mark.parametrize(
    ("oxycodone_tablets", "fires"), [(0, True), (3, True), (4, False)]
)  # 10 mg: 45 / 60 MME
def test_a_fentanyl_patch_needs_60_mme_of_other_opioids(oxycodone_tablets: int, fires: bool) -> None:
    resources = _oxycodone_10_mg(oxycodone_tablets)
    found = list(gaps.fentanyl_patch_opioid_naive(facts(*resources, drafts=(_draft("fentanyl", FENTANYL),))))
    assert bool(found) is fires
    for finding in found:
        assert finding.severity == "critical" and finding.proposed


def test_an_established_patch_is_not_a_new_start() -> None:
    established = _rx("fentanyl", FENTANYL)  # ordered 120 days ago
    assert not list(gaps.fentanyl_patch_opioid_naive(facts(established)))


@pytest.mark.parametrize(
    ("display", "concentrate"),
    [
        ("morphine sulfate 100 MG per 5 ML Oral Solution (20 mg/mL concentrate)", True),
        ("Morphine Sulfate 20 MG/ML Oral Solution", True),
        ("oxyCODONE HCl 100 MG/5ML Oral Concentrate", True),
        ("Morphine Sulfate 10 MG/5ML Oral Solution", False),
        ("morphine sulfate 15 MG Oral Tablet", False),
    ],
)
@pytest.mark.parametrize(
    ("oxycodone_tablets", "tolerant"), [(0, False), (3, False), (4, True)]
)  # 45 / 60 MME
def test_a_20_mg_per_ml_opioid_concentrate_needs_60_mme_of_other_opioids(
    display: str, concentrate: bool, oxycodone_tablets: int, tolerant: bool
) -> None:
    resources = _oxycodone_10_mg(oxycodone_tablets)
    found = list(gaps.opioid_concentrate_opioid_naive(facts(*resources, drafts=(_draft("conc", display),))))
    assert bool(found) is (concentrate and not tolerant)
    for finding in found:
        assert finding.severity == "critical" and finding.proposed and "opioid-tolerant" in finding.summary


EATING = _problem_coded("bulimia", "78004001", "Bulimia nervosa (disorder)")
EPILEPSY = _problem_coded("epilepsy", "84757009", "Epilepsy (disorder)")


@pytest.mark.parametrize(("problems", "fires"), [((EATING,), True), ((EPILEPSY,), True), ((), False)])
def test_bupropion_in_seizure_or_eating_disorders(problems: tuple[JsonDict, ...], fires: bool) -> None:
    found = list(
        gaps.bupropion_seizure_risk(
            facts(*problems, drafts=(_draft("bup", "buPROPion 150 MG Extended Release Oral Tablet"),))
        )
    )
    assert bool(found) is fires


def _sodium(value: float, days_ago: int = 3) -> JsonDict:
    return lab("sodium", value, days_ago=days_ago)


@pytest.mark.parametrize(
    ("value", "severity"), [(130, None), (129.9, "warning"), (125, "warning"), (124.9, "critical")]
)
def test_low_sodium_on_a_drug_that_lowers_it(value: float, severity: str | None) -> None:
    found = list(gaps.hyponatraemia_on_lowering_drug(facts(med("sertraline"), _sodium(value))))
    assert [f.severity for f in found] == ([severity] if severity else [])


def test_an_old_sodium_or_no_culprit_raises_nothing() -> None:
    assert not list(gaps.hyponatraemia_on_lowering_drug(facts(med("sertraline"), _sodium(120, days_ago=31))))
    assert not list(gaps.hyponatraemia_on_lowering_drug(facts(med("metformin"), _sodium(120))))


@pytest.mark.parametrize(("magnesium", "fires"), [(1.8, False), (1.79, True)])
def test_low_magnesium_on_a_ppi(magnesium: float, fires: bool) -> None:
    omeprazole = _rx("omeprazole", "omeprazole 40 MG Delayed Release Oral Capsule")
    assert bool(list(gaps.ppi_low_magnesium(facts(omeprazole, lab("magnesium", magnesium))))) is fires


@pytest.mark.parametrize(("age", "fires"), [(64, False), (65, True)])
def test_megestrol_from_65(age: int, fires: bool) -> None:
    megestrol = _rx("megestrol", "megestrol acetate 40 MG/ML Oral Suspension")
    assert bool(list(gaps.beers_megestrol(facts(megestrol, age=age)))) is fires


# --- from held-out v6 ---------------------------------------------------------------------------------------------

SUMATRIPTAN = "Sumatriptan 50 MG Oral Tablet"


def _condition(name: str) -> JsonDict:
    if name != "coronary-heart-disease":
        return problem(name)
    condition = copy_json(problem("hypertension", resource_id="cad"))
    display = "Coronary arteriosclerosis (disorder)"
    condition["code"] = {
        "coding": [{"system": SNOMED, "code": "53741008", "display": display}],
        "text": display,
    }
    return condition


@pytest.mark.parametrize(
    "condition",
    ["coronary-heart-disease", "myocardial-infarction", "ischaemic-stroke", "peripheral-arterial-disease"],
)
def test_a_triptan_with_ischaemic_vascular_disease_is_critical(condition: str) -> None:
    (finding,) = gaps.triptan_vascular_disease(facts(_condition(condition), _rx("s", SUMATRIPTAN)))
    assert finding.severity == "critical" and finding.evidence == ("kb.triptan-ischaemic-vascular-disease",)


def test_a_triptan_without_vascular_disease_or_vascular_disease_without_a_triptan_is_quiet() -> None:
    assert not list(gaps.triptan_vascular_disease(facts(problem("migraine"), _rx("s", SUMATRIPTAN))))
    assert not list(gaps.triptan_vascular_disease(facts(problem("myocardial-infarction"))))


def test_a_drafted_triptan_is_the_cards_proposal() -> None:
    drafted = copy_json(_rx("draft-s", SUMATRIPTAN))
    drafted["status"] = "draft"
    (finding,) = gaps.triptan_vascular_disease(facts(_condition("coronary-heart-disease"), drafts=(drafted,)))
    assert finding.proposed == (finding.inputs[0],)


def _digoxin(display: str, tablets: float | None = 1) -> JsonDict:
    request = _rx("digoxin", display)
    if tablets is not None:
        request["dosageInstruction"] = [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": tablets, "unit": "tablet"}}],
            }
        ]
    return request


@pytest.mark.parametrize(
    ("display", "tablets", "age", "fires"),
    [
        ("Digoxin 0.125 MG Oral Tablet", 1, 70, False),  # at the line
        ("Digoxin 0.0625 MG Oral Tablet", 1, 70, False),  # below
        ("Digoxin 0.25 MG Oral Tablet", 1, 70, True),  # above
        ("Digoxin 0.25 MG Oral Tablet", 0.5, 70, False),  # half a tablet is 0.125 mg
        ("Digoxin 0.25 MG Oral Tablet", None, 70, True),  # no dose: the tablet strength, taken once a day
        ("Digoxin 0.25 MG Oral Tablet", 1, 64, False),  # under 65
        ("Digoxin 0.25 MG Oral Tablet", 1, 65, True),  # at 65
    ],
)
def test_digoxin_above_0_125_mg_a_day_at_65_or_over(
    display: str, tablets: float | None, age: int, fires: bool
) -> None:
    found = list(gaps.beers_digoxin_dose(facts(_digoxin(display, tablets), age=age)))
    assert bool(found) is fires
    if fires:
        assert found[0].severity == "warning" and found[0].evidence == ("kb.beers-digoxin",)
        assert gaps.BEERS_DIGOXIN_MAX_MG == 0.125


def _pregnant(weeks: int | None) -> JsonDict:
    pregnancy = problem("pregnancy", onset_days_ago=weeks * 7 if weeks is not None else 400)
    if weeks is None:
        del pregnancy["onsetDateTime"]
    return pregnancy


BACTRIM = "sulfamethoxazole 800 MG / trimethoprim 160 MG Oral Tablet"
MACROBID = "nitrofurantoin 100 MG Oral Capsule"


@pytest.mark.parametrize(
    ("display", "weeks", "severity"),
    [
        (BACTRIM, 27, None),
        (BACTRIM, 28, "warning"),
        (BACTRIM, 35, "warning"),
        (BACTRIM, None, "info"),  # gestation unknown: said, not silenced
        (MACROBID, 37, None),
        (MACROBID, 38, "warning"),
        (MACROBID, 39, "warning"),
    ],
)
def test_antibiotics_by_stage_of_pregnancy(display: str, weeks: int | None, severity: str | None) -> None:
    found = list(
        gaps.pregnancy_stage_antibiotic(facts(_pregnant(weeks), _rx("abx", display), age=30, gender="female"))
    )
    assert [f.severity for f in found] == ([severity] if severity else [])
    assert not list(gaps.pregnancy_stage_antibiotic(facts(_rx("abx", display), age=30, gender="female")))


def test_the_new_rules_agree_with_their_entries() -> None:
    knowledge = load_knowledge_base()
    for kb, severity in (
        ("kb.triptan-ischaemic-vascular-disease", "critical"),
        ("kb.beers-digoxin", "warning"),
        ("kb.co-trimoxazole-pregnancy", "warning"),
        ("kb.nitrofurantoin-pregnancy-term", "warning"),
    ):
        entry = knowledge.get(kb)
        assert entry is not None and entry.severity_hint == severity
    assert "0.125 mg" in (knowledge.get("kb.beers-digoxin") or pytest.fail("entry")).statement
    assert (
        "38-42 weeks" in (knowledge.get("kb.nitrofurantoin-pregnancy-term") or pytest.fail("entry")).statement
    )
    assert "28 weeks" in (knowledge.get("kb.co-trimoxazole-pregnancy") or pytest.fail("entry")).statement


def _doac(display: str, tablets: float = 1, per_day: int = 1, resource_id: str = "doac") -> JsonDict:
    request = _rx(resource_id, display)
    request["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": tablets, "unit": "tablet"}}],
        }
    ]
    return request


def _vte(days_ago: int) -> JsonDict:
    condition = copy_json(problem("hypertension", resource_id="pe", onset_days_ago=days_ago))
    display = "Pulmonary embolism (disorder)"
    condition["code"] = {
        "coding": [{"system": SNOMED, "code": "59282003", "display": display}],
        "text": display,
    }
    return condition


def _labs(kg: float, creatinine: float) -> tuple[JsonDict, JsonDict]:
    return lab("weight", kg, days_ago=10), lab("creatinine", creatinine, days_ago=10)


@pytest.mark.parametrize(
    ("display", "tablets", "per_day", "fires"),
    [
        ("Rivaroxaban 10 MG Oral Tablet", 1, 1, True),  # the VTE-prophylaxis strength
        ("Rivaroxaban 20 MG Oral Tablet", 1, 1, False),
        ("Rivaroxaban 15 MG Oral Tablet", 1, 1, True),  # CrCl 64: the reduced dose is for 50 or less
        ("Rivaroxaban 2.5 MG Oral Tablet", 1, 2, True),  # the vascular-disease dose
        ("Dabigatran Etexilate 150 MG Oral Capsule", 1, 2, False),
        ("Dabigatran Etexilate 110 MG Oral Capsule", 1, 2, True),  # not a US AF dose
        ("Edoxaban 30 MG Oral Tablet", 1, 1, True),  # likewise
        ("Edoxaban 60 MG Oral Tablet", 1, 1, False),
        ("Apixaban 5 MG Oral Tablet", 1, 2, False),
    ],
)
def test_doac_doses_for_atrial_fibrillation(display: str, tablets: float, per_day: int, fires: bool) -> None:
    chart = facts(AF, _doac(display, tablets, per_day), *_labs(70, 1.0), age=74)
    found = list(gaps.doac_dose_indication(chart))
    assert bool(found) is fires
    if fires:
        assert found[0].severity == "warning" and found[0].evidence[0] == "kb.doac-dose-by-indication"


@pytest.mark.parametrize(
    ("display", "per_day", "kg", "fires"),
    [
        # Male 68, creatinine 1.0 mg/dL: CrCl = (140 - 68) x kg / 72 = kg.
        ("Rivaroxaban 15 MG Oral Tablet", 1, 50, False),  # at the line: the reduced dose is labelled
        ("Rivaroxaban 15 MG Oral Tablet", 1, 49, False),
        ("Rivaroxaban 15 MG Oral Tablet", 1, 51, True),
        ("Edoxaban 30 MG Oral Tablet", 1, 50, False),
        ("Edoxaban 30 MG Oral Tablet", 1, 51, True),
        ("Dabigatran Etexilate 75 MG Oral Capsule", 2, 30, False),
        ("Dabigatran Etexilate 75 MG Oral Capsule", 2, 29, False),
        ("Dabigatran Etexilate 75 MG Oral Capsule", 2, 31, True),
    ],
)
def test_reduced_af_doses_by_creatinine_clearance(display: str, per_day: int, kg: float, fires: bool) -> None:
    chart = facts(AF, _doac(display, per_day=per_day), *_labs(kg, 1.0), age=68)
    found = list(gaps.doac_dose_indication(chart))
    assert bool(found) is fires
    if fires:
        assert f"CrCl is {kg:g}" in found[0].summary
        assert len(found[0].inputs) == 4  # the order, the AF problem, the creatinine and the weight


def test_a_reduced_af_dose_with_unknown_or_age_capped_clearance_says_nothing() -> None:
    rivaroxaban = _doac("Rivaroxaban 15 MG Oral Tablet")
    assert not list(
        gaps.doac_dose_indication(facts(AF, rivaroxaban, lab("creatinine", 1.0, days_ago=10), age=68))
    )
    # At 92 the CrCl is computed at 90, an upper bound: 100 kg gives 69, which cannot show the full dose was due.
    assert not list(gaps.doac_dose_indication(facts(AF, rivaroxaban, *_labs(100, 1.0), age=92)))


@pytest.mark.parametrize(
    ("age", "kg", "creatinine", "fires"),
    [
        (79, 61, 1.4, True),  # no criterion met: an under-dose
        (80, 61, 1.4, True),  # one criterion
        (80, 60, 1.4, False),  # two criteria: the labelled reduced dose
        (79, 60, 1.5, False),
    ],
)
def test_apixaban_2_5_mg_for_af_needs_two_reduction_criteria(
    age: int, kg: float, creatinine: float, fires: bool
) -> None:
    chart = facts(AF, _doac("Apixaban 2.5 MG Oral Tablet", per_day=2), *_labs(kg, creatinine), age=age)
    assert bool(list(gaps.doac_dose_indication(chart))) is fires


def test_apixaban_2_5_mg_with_a_criterion_unknown_says_nothing() -> None:
    chart = facts(
        AF, _doac("Apixaban 2.5 MG Oral Tablet", per_day=2), lab("creatinine", 1.0, days_ago=10), age=70
    )
    assert not list(gaps.doac_dose_indication(chart))


@pytest.mark.parametrize(("days", "fires"), [(179, True), (180, True), (181, False)])
def test_extended_prevention_doses_within_six_months_of_a_vte(days: int, fires: bool) -> None:
    for display, per_day in (("Apixaban 2.5 MG Oral Tablet", 2), ("Rivaroxaban 10 MG Oral Tablet", 1)):
        found = list(gaps.doac_dose_indication(facts(_vte(days), _doac(display, per_day=per_day), age=60)))
        assert bool(found) is fires
    assert not list(gaps.doac_dose_indication(facts(_vte(30), _doac("Apixaban 5 MG Oral Tablet", per_day=2))))


@pytest.mark.parametrize(
    ("display", "per_day", "days", "fires"),
    [
        ("Apixaban 5 MG Oral Tablet", 2, 6, True),  # day 7 of treatment: still the 10 mg lead-in
        ("Apixaban 5 MG Oral Tablet", 2, 7, False),
        ("Apixaban 5 MG Oral Tablet", 2, 8, False),
        ("Rivaroxaban 20 MG Oral Tablet", 1, 20, True),
        ("Rivaroxaban 20 MG Oral Tablet", 1, 21, False),
        ("Rivaroxaban 15 MG Oral Tablet", 2, 3, False),  # the lead-in itself
    ],
)
def test_a_new_vte_order_at_the_maintenance_dose_skips_the_lead_in(
    display: str, per_day: int, days: int, fires: bool
) -> None:
    order = _doac(display, per_day=per_day, resource_id="doac-draft")
    found = list(gaps.doac_dose_indication(facts(_vte(days), drafts=(order,), age=45)))
    assert bool(found) is fires
    if fires:
        assert "lead-in" in found[0].summary and found[0].proposed


def test_a_maintenance_order_beside_the_lead_in_or_already_taken_is_not_flagged() -> None:
    current = _doac("Apixaban 5 MG Oral Tablet", per_day=2)  # taken already: the lead-in is history
    assert not list(gaps.doac_dose_indication(facts(_vte(3), current, age=45)))
    lead_in = _doac("Apixaban 5 MG Oral Tablet", tablets=2, per_day=2, resource_id="lead-in")
    maintenance = _doac("Apixaban 5 MG Oral Tablet", per_day=2, resource_id="maintenance")
    assert not list(gaps.doac_dose_indication(facts(_vte(3), drafts=(lead_in, maintenance), age=45)))


@pytest.mark.parametrize(("days", "fires"), [(19, True), (20, True), (21, False)])
def test_a_maintenance_order_drafted_while_the_lead_in_is_taken_cuts_it_short(days: int, fires: bool) -> None:
    lead_in = _doac("Rivaroxaban 15 MG Oral Tablet", per_day=2, resource_id="lead-in")
    maintenance = _doac("Rivaroxaban 20 MG Oral Tablet", per_day=1, resource_id="maintenance")
    found = list(gaps.doac_dose_indication(facts(_vte(days), lead_in, drafts=(maintenance,), age=60)))
    assert bool(found) is fires
    if fires:
        assert f"day {days + 1}" in found[0].summary and "cuts short" in found[0].summary


def test_a_chart_with_both_indications_or_an_unreadable_dose_says_nothing() -> None:
    both = facts(AF, _vte(30), _doac("Rivaroxaban 10 MG Oral Tablet"), age=70)
    assert not list(gaps.doac_dose_indication(both))
    unread = _rx("doac", "Rivaroxaban 10 MG Oral Tablet")
    unread["dosageInstruction"] = [{"text": "as directed"}]
    assert not list(gaps.doac_dose_indication(facts(AF, unread, age=70)))


def test_a_new_patch_beside_an_established_patch_is_not_opioid_naive() -> None:
    established = _rx("duragesic", "Duragesic 50 MCG/HR Transdermal Patch")  # ordered 120 days ago
    assert not list(
        gaps.fentanyl_patch_opioid_naive(facts(established, drafts=(_draft("fentanyl", FENTANYL),)))
    )


@pytest.mark.parametrize(("inhibitor", "severity"), [("gemfibrozil", "critical"), ("clopidogrel", "warning")])
def test_repaglinide_with_a_cyp2c8_inhibitor(inhibitor: str, severity: str) -> None:
    repaglinide = _rx("repaglinide", "repaglinide 1 MG Oral Tablet")
    other = _rx(
        "other",
        f"{inhibitor} 600 MG Oral Tablet" if inhibitor == "gemfibrozil" else f"{inhibitor} 75 MG Oral Tablet",
    )
    (finding,) = gaps.repaglinide_cyp2c8_inhibitor(facts(repaglinide, other))
    assert finding.severity == severity and finding.evidence == ("kb.repaglinide-cyp2c8-inhibitors",)
    assert not list(gaps.repaglinide_cyp2c8_inhibitor(facts(repaglinide)))
    assert not list(
        gaps.repaglinide_cyp2c8_inhibitor(facts(other, _rx("glipizide", "glipizide 5 MG Oral Tablet")))
    )


def test_fluconazole_in_pregnancy_is_a_warning() -> None:
    fluconazole = _rx("fluconazole", "fluconazole 150 MG Oral Tablet")
    (finding,) = pregnancy_teratogen(facts(_pregnant(14), fluconazole, age=30, gender="female"))
    assert finding.severity == "warning" and finding.evidence == ("kb.fluconazole-pregnancy",)
    assert not list(pregnancy_teratogen(facts(fluconazole, age=30, gender="female")))


@pytest.mark.parametrize(("value", "fires"), [(53.9, False), (54.0, False), (54.1, True), (55.2, True)])
def test_testosterone_with_a_hematocrit_above_54(value: float, fires: bool) -> None:
    testosterone = _rx("testosterone", "testosterone cypionate 200 MG/ML Injectable Solution")
    found = list(gaps.testosterone_high_hematocrit(facts(testosterone, lab("hematocrit", value))))
    assert bool(found) is fires
    if fires:
        assert found[0].severity == "warning" and gaps.TESTOSTERONE_HOLD_HEMATOCRIT == 54.0
    assert not list(gaps.testosterone_high_hematocrit(facts(lab("hematocrit", value))))


@pytest.mark.parametrize(("value", "fires"), [(49.9, False), (50.0, False), (50.1, True), (53.0, True)])
def test_testosterone_is_not_started_above_a_hematocrit_of_50(value: float, fires: bool) -> None:
    started = _rx("testosterone", "testosterone cypionate 200 MG/ML Injectable Solution")
    started["status"] = "draft"
    found = list(gaps.testosterone_high_hematocrit(facts(lab("hematocrit", value), drafts=(started,))))
    assert bool(found) is fires
    if fires:
        assert "before starting" in found[0].summary


def test_a_hematocrit_older_than_six_months_is_not_read() -> None:
    testosterone = _rx("testosterone", "testosterone cypionate 200 MG/ML Injectable Solution")
    assert not list(
        gaps.testosterone_high_hematocrit(facts(testosterone, lab("hematocrit", 56.0, days_ago=181)))
    )


def test_a_hematocrit_as_a_fraction_is_read_as_a_percentage() -> None:
    fraction = lab("hematocrit", 0.56)
    fraction["valueQuantity"].update({"unit": "L/L", "code": "L/L"})
    testosterone = _rx("testosterone", "testosterone cypionate 200 MG/ML Injectable Solution")
    (finding,) = gaps.testosterone_high_hematocrit(facts(testosterone, fraction))
    assert "56%" in finding.summary


# --- from held-out v8 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("age", "fires"), [(64, False), (65, True)])
def test_butalbital_at_65_or_over(age: int, fires: bool) -> None:
    fioricet = _rx("fioricet", "butalbital 50 MG / acetaminophen 325 MG / caffeine 40 MG Oral Tablet")
    found = list(gaps.beers_barbiturate(facts(fioricet, age=age)))
    assert bool(found) is fires
    if fires:
        assert found[0].evidence == ("kb.beers-barbiturates",)


@pytest.mark.parametrize(
    ("display", "age", "fires"),
    [
        ("metaxalone 800 MG Oral Tablet (Skelaxin)", 64, False),
        ("metaxalone 800 MG Oral Tablet (Skelaxin)", 65, True),
        ("cyclobenzaprine hydrochloride 10 MG Oral Tablet", 66, True),
        ("baclofen 10 MG Oral Tablet", 80, False),  # a spasticity drug, not on the Beers list
    ],
)
def test_beers_skeletal_muscle_relaxants_from_65(display: str, age: int, fires: bool) -> None:
    found = list(gaps.beers_skeletal_muscle_relaxant(facts(_rx("smr", display), age=age)))
    assert bool(found) is fires
    if fires:
        assert found[0].evidence == ("kb.beers-skeletal-muscle-relaxants",)


@pytest.mark.parametrize(("age", "fires"), [(64, False), (65, True), (66, True)])
def test_beers_meperidine_from_65(age: int, fires: bool) -> None:
    meperidine = _rx("mep", "meperidine hydrochloride 50 MG/ML Injectable Solution")
    found = list(gaps.beers_meperidine(facts(meperidine, age=age)))
    assert bool(found) is fires
    if fires:
        assert found[0].evidence == ("kb.beers-meperidine",)


def _diabetes_insipidus() -> JsonDict:
    return _problem_coded("di", "15771004", "Diabetes insipidus (disorder)")


@pytest.mark.parametrize(("age", "fires"), [(64, False), (65, True), (84, True)])
def test_desmopressin_at_65_unless_diabetes_insipidus(age: int, fires: bool) -> None:
    nocdurna = _rx("nocdurna", "desmopressin acetate 27.7 MCG Sublingual Tablet")
    assert bool(list(gaps.beers_desmopressin(facts(nocdurna, age=age)))) is fires
    assert not list(gaps.beers_desmopressin(facts(nocdurna, _diabetes_insipidus(), age=age)))


def _zolpidem(display: str, tablets: float = 1) -> JsonDict:
    request = _rx("zolpidem", display)
    request["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": tablets, "unit": "tablet"}}],
        }
    ]
    return request


@pytest.mark.parametrize(
    ("display", "tablets", "gender", "fires"),
    [
        ("zolpidem tartrate 5 MG Oral Tablet", 1, "female", False),  # at the line
        ("zolpidem tartrate 10 MG Oral Tablet", 0.5, "female", False),  # half a 10 mg tablet
        ("zolpidem tartrate 10 MG Oral Tablet", 1, "female", True),
        ("zolpidem tartrate 10 MG Oral Tablet", 1, "male", False),
        ("zolpidem tartrate 6.25 MG Extended Release Oral Tablet", 1, "female", False),
        ("zolpidem tartrate 12.5 MG Extended Release Oral Tablet", 1, "female", True),
    ],
)
def test_zolpidem_dose_for_women(display: str, tablets: float, gender: str, fires: bool) -> None:
    found = list(gaps.zolpidem_dose_women(facts(_zolpidem(display, tablets), gender=gender)))
    assert bool(found) is fires


@pytest.mark.parametrize(("age", "fires"), [(64, True), (65, False), (66, False)])
def test_from_65_the_beers_card_speaks_for_zolpidem_instead_of_a_lower_dose(age: int, fires: bool) -> None:
    zolpidem = _zolpidem("zolpidem tartrate 10 MG Oral Tablet", 1)
    assert bool(list(gaps.zolpidem_dose_women(facts(zolpidem, gender="female", age=age)))) is fires


def test_beside_sodium_oxybate_zolpidem_is_barred_not_lowered() -> None:
    zolpidem = _zolpidem("zolpidem tartrate 10 MG Oral Tablet", 1)
    oxybate = medication_request("xyrem", PATIENT_ID, "", "sodium oxybate 500 MG/ML Oral Solution")
    del oxybate["medicationCodeableConcept"]["coding"]
    assert list(gaps.zolpidem_dose_women(facts(zolpidem, oxybate, gender="female", age=38))) == []


def _bph() -> JsonDict:
    return _problem_coded("bph", "266569009", "Benign prostatic hyperplasia (disorder)")


@pytest.mark.parametrize(
    ("display", "age", "fires"),
    [
        ("pseudoephedrine hydrochloride 120 MG Extended Release Oral Tablet", 40, True),  # any age
        ("diphenhydramine hydrochloride 25 MG Oral Capsule", 64, False),  # anticholinergic: from 65
        ("diphenhydramine hydrochloride 25 MG Oral Capsule", 65, True),
        ("oxybutynin chloride 5 MG Oral Tablet", 70, False),  # a bladder antimuscarinic is the exception
        ("phenylephrine hydrochloride 0.25 % Nasal Spray", 70, False),  # local
    ],
)
def test_urinary_retention_drugs_with_an_enlarged_prostate(display: str, age: int, fires: bool) -> None:
    drug = _rx("drug", display)
    assert bool(list(gaps.bph_urinary_retention_drug(facts(_bph(), drug, age=age)))) is fires
    assert not list(gaps.bph_urinary_retention_drug(facts(drug, age=age)))


@pytest.mark.parametrize(
    ("systolic", "diastolic", "fires"), [(139, 89, False), (140, 80, True), (130, 90, True)]
)
def test_phentermine_with_blood_pressure_at_140_90(systolic: float, diastolic: float, fires: bool) -> None:
    phentermine = _rx("phentermine", "phentermine hydrochloride 37.5 MG Oral Tablet")
    pressure = (
        lab("systolic_bp", systolic, resource_id="sbp"),
        lab("diastolic_bp", diastolic, resource_id="dbp"),
    )
    chart = facts(phentermine, *pressure)
    assert bool(list(gaps.phentermine_cardiovascular(chart))) is fires


def test_phentermine_with_cardiovascular_disease() -> None:
    phentermine = _rx("phentermine", "phentermine hydrochloride 37.5 MG Oral Tablet")
    (finding,) = gaps.phentermine_cardiovascular(facts(phentermine, problem("myocardial-infarction")))
    assert "cardiovascular disease" in finding.summary
    assert not list(gaps.phentermine_cardiovascular(facts(phentermine)))


@pytest.mark.parametrize(("weeks", "severity"), [(7, "warning"), (13, "warning"), (14, None), (None, "info")])
def test_trimethoprim_in_the_first_trimester(weeks: int | None, severity: str | None) -> None:
    trimethoprim = _rx("tmp", "trimethoprim 100 MG Oral Tablet")
    found = list(
        gaps.pregnancy_stage_antibiotic(facts(_pregnant(weeks), trimethoprim, age=28, gender="female"))
    )
    assert [f.severity for f in found] == ([severity] if severity else [])


def test_co_trimoxazole_gets_one_card_whatever_the_stage() -> None:
    bactrim = _rx("abx", BACTRIM)
    for weeks in (8, 30, None):
        found = list(
            gaps.pregnancy_stage_antibiotic(facts(_pregnant(weeks), bactrim, age=28, gender="female"))
        )
        assert len(found) == 1, weeks


def test_paroxetine_in_pregnancy_is_a_warning() -> None:
    paroxetine = _rx("paroxetine", "paroxetine 20 MG Oral Tablet")
    (finding,) = pregnancy_teratogen(facts(_pregnant(8), paroxetine, age=31, gender="female"))
    assert finding.severity == "warning" and finding.evidence == ("kb.paroxetine-pregnancy",)


# --- from held-out v9 ---------------------------------------------------------------------------------------------


def test_warfarin_with_capecitabine_is_critical() -> None:
    warfarin = _rx("warfarin", "warfarin sodium 5 MG Oral Tablet")
    capecitabine = _rx("cape", "capecitabine 500 MG Oral Tablet")
    (finding,) = gaps.warfarin_capecitabine(facts(warfarin, capecitabine))
    assert finding.severity == "critical" and finding.evidence == ("kb.warfarin-capecitabine",)
    assert not list(gaps.warfarin_capecitabine(facts(capecitabine)))


@pytest.mark.parametrize(
    ("other", "fires"),
    [
        ("fluvoxamine maleate 50 MG Oral Tablet", True),
        ("ciprofloxacin 500 MG Oral Tablet", True),
        ("ciprofloxacin 0.3 % Ophthalmic Solution", False),
        ("sertraline 50 MG Oral Tablet", False),
    ],
)
def test_clozapine_with_a_strong_cyp1a2_inhibitor(other: str, fires: bool) -> None:
    clozapine = _rx("clozapine", "clozapine 100 MG Oral Tablet")
    assert bool(list(gaps.clozapine_cyp1a2_inhibitor(facts(clozapine, _rx("other", other))))) is fires


@pytest.mark.parametrize(
    ("affected", "fires"),
    [
        ("apixaban 5 MG Oral Tablet", True),
        ("norethindrone 1 MG / ethinyl estradiol 0.035 MG Oral Tablet", True),
        ("medroxyprogesterone acetate 150 MG/ML Injectable Suspension", False),  # the injection is unaffected
        ("levonorgestrel 52 MG Intrauterine System", False),
        ("amlodipine 5 MG Oral Tablet", False),
    ],
)
def test_an_enzyme_inducer_with_a_doac_or_hormonal_contraception(affected: str, fires: bool) -> None:
    rifampin = _rx("rifampin", "rifampin 300 MG Oral Capsule")
    found = list(gaps.enzyme_inducer_interaction(facts(rifampin, _rx("affected", affected), gender="female")))
    assert bool(found) is fires
    assert not list(gaps.enzyme_inducer_interaction(facts(_rx("affected", affected), gender="female")))


def _topiramate(mg: int, per_day: int) -> JsonDict:
    request = _rx("tpm", f"topiramate {mg} MG Oral Tablet")
    request["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
        }
    ]
    return request


@pytest.mark.parametrize(
    ("mg", "per_day", "fires"),
    [(100, 2, False), (200, 1, False), (100, 3, True), (200, 2, True)],  # 200 mg a day is the line
)
def test_topiramate_above_200_mg_a_day_weakens_the_pill_but_not_a_doac(
    mg: int, per_day: int, fires: bool
) -> None:
    pill = _rx("coc", "norgestimate 0.25 MG / ethinyl estradiol 0.035 MG Oral Tablet")
    found = list(gaps.enzyme_inducer_interaction(facts(_topiramate(mg, per_day), pill, gender="female")))
    assert bool(found) is fires
    apixaban = _rx("apx", "apixaban 5 MG Oral Tablet")
    assert not list(gaps.enzyme_inducer_interaction(facts(_topiramate(200, 2), apixaban, gender="female")))


def _lamotrigine(mg: str, per_day: float, period_days: float = 1, status: str = "draft") -> JsonDict:
    request = _rx("ltg", f"lamotrigine {mg} MG Oral Tablet")
    request["status"] = status
    request["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": per_day, "period": period_days, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
        }
    ]
    return request


@pytest.mark.parametrize(
    ("mg", "per_day", "period", "fires"),
    [("25", 1, 2, False), ("25", 1, 1, True), ("12.5", 1, 1, False), ("100", 2, 1, True)],
)
def test_lamotrigine_started_on_valproate(mg: str, per_day: float, period: float, fires: bool) -> None:
    valproate = _rx("vpa", "divalproex sodium 500 MG Delayed Release Oral Tablet")
    found = list(
        gaps.lamotrigine_valproate_start(facts(valproate, drafts=(_lamotrigine(mg, per_day, period),)))
    )
    assert bool(found) is fires
    assert not list(gaps.lamotrigine_valproate_start(facts(drafts=(_lamotrigine(mg, per_day, period),))))


@pytest.mark.parametrize(
    ("lamotrigine_days", "valproate_days", "fires"),
    [
        (200, None, True),  # valproate drafted now on established lamotrigine
        (200, 28, True),  # valproate ordered 28 days ago: still a start
        (200, 29, False),  # both established: the dose was settled then
        (29, None, True),
        (28, None, False),  # lamotrigine itself new: the start check reads its titration instead
    ],
)
def test_valproate_added_to_established_lamotrigine(
    lamotrigine_days: int, valproate_days: int | None, fires: bool
) -> None:
    lamotrigine = _lamotrigine("100", 2, status="active")
    lamotrigine["authoredOn"] = on(lamotrigine_days)
    valproate = _rx("vpa", "divalproex sodium 500 MG Delayed Release Oral Tablet")
    if valproate_days is None:
        valproate["status"] = "draft"
        chart = facts(lamotrigine, drafts=(valproate,))
    else:
        valproate["authoredOn"] = on(valproate_days)
        chart = facts(lamotrigine, valproate)
    found = [f for f in gaps.lamotrigine_valproate_start(chart) if "Valproate added" in f.summary]
    assert bool(found) is fires
    if fires:
        assert "200 mg a day" in found[0].summary and found[0].severity == "critical"


@pytest.mark.parametrize(("tsh", "fires"), [(0.09, True), (0.1, False), (0.5, False)])
def test_levothyroxine_with_a_suppressed_tsh(tsh: float, fires: bool) -> None:
    levothyroxine = _rx("lt4", "levothyroxine sodium 125 MCG Oral Tablet")
    assert bool(list(gaps.levothyroxine_over_replacement(facts(levothyroxine, lab("tsh", tsh))))) is fires


@pytest.mark.parametrize(("age", "fires"), [(1, True), (2, False)])
def test_benzocaine_under_2(age: int, fires: bool) -> None:
    orajel = _rx("orajel", "benzocaine 10 % Oral Gel")
    assert bool(list(gaps.benzocaine_under_2(facts(orajel, age=age)))) is fires


@pytest.mark.parametrize(
    ("display", "age", "fires"),
    [
        ("nifedipine 10 MG Oral Capsule", 65, True),
        ("nifedipine 10 MG Oral Capsule", 64, False),
        ("nifedipine 30 MG 24HR Extended Release Oral Tablet", 80, False),
    ],
)
def test_immediate_release_nifedipine_at_65(display: str, age: int, fires: bool) -> None:
    assert bool(list(gaps.beers_nifedipine_immediate_release(facts(_rx("nif", display), age=age)))) is fires


def test_semaglutide_in_pregnancy_is_a_warning() -> None:
    wegovy = _rx("wegovy", "semaglutide 2.4 MG/0.75ML Auto-Injector")
    (finding,) = pregnancy_teratogen(facts(_pregnant(6), wegovy, age=31, gender="female"))
    assert finding.severity == "warning" and "kb.glp1-agonist-pregnancy" in finding.evidence


# --- from the blind second review of the Synthea charts ------------------------------------------------------------

METFORMIN = "metformin hydrochloride 500 MG Oral Tablet"


def _neuropathy() -> JsonDict:
    return _problem_coded("neuropathy", "302226006", "Peripheral neuropathy (disorder)")


@pytest.mark.parametrize(("days", "fires"), [(364, False), (365, False), (366, True)])
def test_b12_on_metformin_with_neuropathy_yearly(days: int, fires: bool) -> None:
    b12 = lab("vitamin_b12", 350, days_ago=days, resource_id="b12")
    found = list(gaps.metformin_vitamin_b12(facts(_rx("met", METFORMIN), _neuropathy(), b12)))
    assert bool(found) is fires
    if fires:
        assert found[0].order_lab is not None and found[0].order_lab.loinc == "2132-9"


def test_b12_needs_neuropathy_or_anaemia_and_established_metformin() -> None:
    assert not list(gaps.metformin_vitamin_b12(facts(_rx("met", METFORMIN))))
    anaemia = _problem_coded("anaemia", "271737000", "Anemia (disorder)")
    assert list(gaps.metformin_vitamin_b12(facts(_rx("met", METFORMIN), anaemia)))
    assert not list(gaps.metformin_vitamin_b12(facts(_neuropathy(), drafts=(_draft("met", METFORMIN),))))


def _lactation() -> JsonDict:
    return _problem_coded("lactation", "413712001", "Breastfeeding (mother) (finding)")


@pytest.mark.parametrize(
    ("display", "fires"),
    [
        ("acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet", True),
        ("tramadol hydrochloride 50 MG Oral Tablet", True),
        ("ibuprofen 400 MG Oral Tablet", False),
    ],
)
def test_codeine_or_tramadol_while_breastfeeding(display: str, fires: bool) -> None:
    drug = _rx("drug", display)
    assert (
        bool(list(gaps.codeine_tramadol_breastfeeding(facts(_lactation(), drug, gender="female")))) is fires
    )
    assert not list(gaps.codeine_tramadol_breastfeeding(facts(drug, gender="female")))


@pytest.mark.parametrize(
    ("display", "fires"), [("rizatriptan 5 MG Oral Tablet", False), ("rizatriptan 10 MG Oral Tablet", True)]
)
def test_rizatriptan_with_propranolol_is_5_mg(display: str, fires: bool) -> None:
    propranolol = _rx("prop", "propranolol hydrochloride 40 MG Oral Tablet")
    assert bool(list(gaps.rizatriptan_propranolol(facts(propranolol, _rx("riza", display))))) is fires
    assert not list(gaps.rizatriptan_propranolol(facts(_rx("riza", display))))
