"""Label limits by age, weight, duration, interval and form, and the drug-condition pairs added with them: each
at, just below and just above its threshold, with the near miss a pharmacist would not raise."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from plugin.context.build import build_context
from plugin.rules import catalog, gaps, label_checks, label_limits, registry, resolution, vaccines
from plugin.rules.model import Finding, RuleFacts
from plugin.rules.override_reasons import override_reasons
from tests.support.charts import NOW, JsonDict, medication_request
from tests.support.rule_cases import PATIENT_ID, Chart, lab, named_result, on, problem

pytestmark = pytest.mark.unit


def drug(
    resource_id: str,
    display: str,
    mg: float | None = None,
    per: tuple[float, float, str] = (1, 1, "d"),
    days_ago: int = 120,
) -> JsonDict:
    """A prescription by display (resolved by name), `mg` per dose given `per` = (times, period, unit)."""
    request = medication_request(resource_id, PATIENT_ID, "", display, authored=on(days_ago))
    del request["medicationCodeableConcept"]["coding"]
    times, period, unit = per
    dose = {"value": mg, "unit": "mg"} if mg is not None else {"value": 1, "unit": "tablet"}
    request["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": times, "period": period, "periodUnit": unit}},
            "doseAndRate": [{"doseQuantity": dose}],
        }
    ]
    return request


def found(rule: Any, *resources: JsonDict, age: int = 60, gender: str = "female") -> list[Finding]:
    context = Chart(age=age, gender=gender, resources=resources).build().context
    return list(rule(RuleFacts.of(context)))


IBUPROFEN = drug("ibuprofen", "ibuprofen 400 MG Oral Tablet", 400, (3, 1, "d"))
DICLOFENAC_GEL = drug("diclofenac-gel", "diclofenac sodium 10 MG/G Topical Gel")
ASPIRIN_81 = drug("aspirin", "aspirin 81 MG Oral Tablet", 81)


# --- NSAIDs in cirrhosis ---------------------------------------------------------------------------------


def test_an_oral_nsaid_in_cirrhosis_is_raised_with_both_in_its_basis() -> None:
    (finding,) = found(label_limits.NSAID_CIRRHOSIS, IBUPROFEN, problem("cirrhosis"))
    assert finding.rule_id == "rule.nsaid-cirrhosis" and finding.severity == "warning"
    assert finding.evidence == ("kb.nsaid-cirrhosis",) and len(finding.inputs) == 2


@pytest.mark.parametrize(
    "resources",
    [
        (DICLOFENAC_GEL, problem("cirrhosis")),  # on the skin
        (ASPIRIN_81, problem("cirrhosis")),  # antiplatelet aspirin
        (IBUPROFEN, problem("hypertension")),  # no cirrhosis
    ],
)
def test_skin_nsaids_low_dose_aspirin_and_other_livers_are_quiet(resources: tuple[JsonDict, ...]) -> None:
    assert found(label_limits.NSAID_CIRRHOSIS, *resources) == []


# --- Beers: alpha-1 blockers for blood pressure ----------------------------------------------------------

DOXAZOSIN = drug("doxazosin", "doxazosin 4 MG Oral Tablet", 4)


@pytest.mark.parametrize(("age", "raised"), [(64, False), (65, True), (66, True)])
def test_an_alpha_blocker_for_blood_pressure_from_65(age: int, raised: bool) -> None:
    findings = found(
        label_limits.beers_alpha_blocker_hypertension, DOXAZOSIN, problem("hypertension"), age=age
    )
    assert bool(findings) is raised


@pytest.mark.parametrize(
    "resources",
    [(DOXAZOSIN, problem("hypertension"), problem("bph")), (DOXAZOSIN,)],
)
def test_an_alpha_blocker_for_the_prostate_or_for_no_recorded_reason_is_left_alone(
    resources: tuple[JsonDict, ...],
) -> None:
    assert found(label_limits.beers_alpha_blocker_hypertension, *resources, age=80, gender="male") == []


# --- ticagrelor with aspirin ------------------------------------------------------------------------------

TICAGRELOR = drug("ticagrelor", "ticagrelor 90 MG Oral Tablet", 90, (2, 1, "d"))


@pytest.mark.parametrize(("aspirin_mg", "raised"), [(81, False), (100, False), (162, True), (325, True)])
def test_ticagrelor_with_aspirin_above_100_mg(aspirin_mg: float, raised: bool) -> None:
    aspirin = drug("aspirin", f"aspirin {aspirin_mg:g} MG Oral Tablet", aspirin_mg)
    findings = found(label_limits.ticagrelor_aspirin_dose, TICAGRELOR, aspirin)
    assert bool(findings) is raised
    if raised:
        assert findings[0].summary.startswith(f"Ticagrelor with aspirin {aspirin_mg:g} mg a day")


def test_an_unreadable_aspirin_dose_beside_ticagrelor_is_asked_about() -> None:
    aspirin = {**drug("aspirin", "aspirin oral tablet"), "dosageInstruction": []}
    (finding,) = found(label_limits.ticagrelor_aspirin_dose, TICAGRELOR, aspirin)
    assert "unreadable dose" in finding.summary


# --- prasugrel by age and weight --------------------------------------------------------------------------

PRASUGREL_10 = drug("prasugrel", "prasugrel 10 MG Oral Tablet", 10)
PRASUGREL_5 = drug("prasugrel", "prasugrel 5 MG Oral Tablet", 5)


@pytest.mark.parametrize(("age", "raised"), [(74, False), (75, True), (76, True)])
def test_prasugrel_from_75_without_diabetes_or_a_prior_infarction(age: int, raised: bool) -> None:
    assert bool(found(label_limits.prasugrel_age_weight, PRASUGREL_10, lab("weight", 80), age=age)) is raised


def test_prasugrel_at_80_with_diabetes_is_the_labels_exception() -> None:
    resources = (PRASUGREL_10, problem("diabetes"), lab("weight", 80))
    assert found(label_limits.prasugrel_age_weight, *resources, age=80) == []


@pytest.mark.parametrize(("kg", "raised"), [(59.9, True), (60, False), (60.1, False)])
def test_prasugrel_10_mg_below_60_kg(kg: float, raised: bool) -> None:
    assert bool(found(label_limits.prasugrel_age_weight, PRASUGREL_10, lab("weight", kg))) is raised


def test_prasugrel_5_mg_below_60_kg_is_the_labelled_dose() -> None:
    assert found(label_limits.prasugrel_age_weight, PRASUGREL_5, lab("weight", 55)) == []


# --- hydroxychloroquine per kilogram ----------------------------------------------------------------------

HCQ_400 = drug("hcq", "hydroxychloroquine sulfate 200 MG Oral Tablet", 200, (2, 1, "d"))


@pytest.mark.parametrize(("kg", "raised"), [(79, True), (80, False), (81, False)])
def test_hydroxychloroquine_above_5_mg_per_kg(kg: float, raised: bool) -> None:
    findings = found(label_limits.hydroxychloroquine_dose_weight, HCQ_400, lab("weight", kg))
    assert bool(findings) is raised
    if raised:
        assert "400 mg a day" in findings[0].summary and "5.1 mg/kg" in findings[0].summary


def test_hydroxychloroquine_without_a_weight_says_nothing_here() -> None:
    assert found(label_limits.hydroxychloroquine_dose_weight, HCQ_400) == []


# --- loperamide under 2 -----------------------------------------------------------------------------------

LOPERAMIDE = drug("loperamide", "loperamide hydrochloride 1 MG/5 ML Oral Solution")


@pytest.mark.parametrize(("age", "raised"), [(1, True), (2, False), (3, False)])
def test_loperamide_is_contraindicated_under_2(age: int, raised: bool) -> None:
    findings = found(label_limits.LOPERAMIDE_UNDER_2, LOPERAMIDE, age=age)
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "critical"


# --- metoclopramide beyond 12 weeks -----------------------------------------------------------------------


@pytest.mark.parametrize(("days", "raised"), [(83, False), (84, False), (85, True)])
def test_metoclopramide_beyond_12_weeks(days: int, raised: bool) -> None:
    metoclopramide = drug(
        "metoclopramide", "metoclopramide 10 MG Oral Tablet", 10, (3, 1, "d"), days_ago=days
    )
    assert bool(found(label_limits.metoclopramide_long_term, metoclopramide)) is raised


def test_an_undated_metoclopramide_is_not_known_to_be_long_term() -> None:
    metoclopramide = drug("metoclopramide", "metoclopramide 10 MG Oral Tablet", 10)
    del metoclopramide["authoredOn"]
    assert found(label_limits.metoclopramide_long_term, metoclopramide) == []


# --- weekly and monthly bisphosphonates -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("display", "per", "raised"),
    [
        ("alendronate sodium 70 MG Oral Tablet", (1, 1, "wk"), False),
        ("alendronate sodium 70 MG Oral Tablet", (1, 1, "d"), True),
        ("alendronate sodium 10 MG Oral Tablet", (1, 1, "d"), False),  # the daily strength
        ("ibandronate sodium 150 MG Oral Tablet", (1, 1, "mo"), False),
        ("ibandronate sodium 150 MG Oral Tablet", (1, 1, "wk"), True),
        ("ibandronate sodium 150 MG Oral Tablet", (1, 1, "d"), True),
        ("risedronate sodium 35 MG Oral Tablet", (1, 1, "wk"), False),
        ("risedronate sodium 35 MG Oral Tablet", (2, 1, "wk"), True),
    ],
)
def test_a_weekly_or_monthly_strength_taken_more_often(
    display: str, per: tuple[float, float, str], raised: bool
) -> None:
    findings = found(label_limits.bisphosphonate_interval, drug("bp", display, None, per))
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "critical"


# --- drug and condition -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "resources", "raised"),
    [
        (
            label_checks.FLUOROQUINOLONE_AORTIC_ANEURYSM,
            (drug("levo", "levofloxacin 750 MG Oral Tablet", 750), problem("aortic-aneurysm")),
            True,
        ),
        (
            label_checks.FLUOROQUINOLONE_AORTIC_ANEURYSM,
            (drug("cipro", "ciprofloxacin 0.3 % Ophthalmic Solution"), problem("aortic-aneurysm")),
            False,
        ),
        (
            label_checks.FLUOROQUINOLONE_AORTIC_ANEURYSM,
            (drug("levo", "levofloxacin 750 MG Oral Tablet"),),
            False,
        ),
        (
            label_checks.CHC_VENOUS_THROMBOEMBOLISM,
            (
                drug("levora", "Levonorgestrel 0.15 MG / Ethinyl Estradiol 0.03 MG Oral Tablet"),
                problem("deep-vein-thrombosis"),
            ),
            True,
        ),
        (
            label_checks.CHC_VENOUS_THROMBOEMBOLISM,
            (drug("pop", "norethindrone 0.35 MG Oral Tablet"), problem("deep-vein-thrombosis")),
            False,
        ),
        (
            label_checks.MENOPAUSAL_ESTROGEN_VENOUS_THROMBOEMBOLISM,
            (drug("estrace", "estradiol 1 MG Oral Tablet"), problem("pulmonary-embolism")),
            True,
        ),
        (
            label_checks.MENOPAUSAL_ESTROGEN_VENOUS_THROMBOEMBOLISM,
            (drug("patch", "estradiol 0.05 MG/24HR Transdermal System"), problem("deep-vein-thrombosis")),
            True,
        ),
        (
            label_checks.MENOPAUSAL_ESTROGEN_VENOUS_THROMBOEMBOLISM,
            (drug("vagifem", "estradiol 0.01 MG Vaginal Insert"), problem("deep-vein-thrombosis")),
            False,
        ),
        (  # contraception is rule.chc-venous-thromboembolism's card
            label_checks.MENOPAUSAL_ESTROGEN_VENOUS_THROMBOEMBOLISM,
            (
                drug("levora", "Levonorgestrel 0.15 MG / Ethinyl Estradiol 0.03 MG Oral Tablet"),
                problem("deep-vein-thrombosis"),
            ),
            False,
        ),
        (
            label_checks.MENOPAUSAL_ESTROGEN_VENOUS_THROMBOEMBOLISM,
            (drug("estrace", "estradiol 1 MG Oral Tablet"), problem("hypertension")),
            False,
        ),
        (
            label_checks.DULOXETINE_LIVER_DISEASE,
            (drug("dulox", "duloxetine 60 MG Delayed Release Oral Capsule"), problem("cirrhosis")),
            True,
        ),
        (
            label_checks.DULOXETINE_LIVER_DISEASE,
            (drug("dulox", "duloxetine 60 MG Delayed Release Oral Capsule"), problem("hypertension")),
            False,
        ),
        (
            label_checks.CLASS_IC_STRUCTURAL_HEART_DISEASE,
            (drug("flec", "flecainide acetate 100 MG Oral Tablet"), problem("myocardial-infarction")),
            True,
        ),
        (
            label_checks.CLASS_IC_STRUCTURAL_HEART_DISEASE,
            (drug("flec", "flecainide acetate 100 MG Oral Tablet"), problem("atrial-fibrillation")),
            False,
        ),
        (
            label_checks.G6PD_DEFICIENCY,
            (drug("pq", "primaquine phosphate 26.3 MG Oral Tablet"), problem("g6pd-deficiency")),
            True,
        ),
        (
            label_checks.G6PD_DEFICIENCY,
            (drug("dap", "Aczone (dapsone) 7.5 % topical gel"), problem("g6pd-deficiency")),
            False,
        ),
        (
            label_checks.G6PD_DEFICIENCY,
            (drug("aq", "atovaquone 250 MG / proguanil 100 MG Oral Tablet"), problem("g6pd-deficiency")),
            False,
        ),
        (
            label_checks.RALOXIFENE_VENOUS_THROMBOEMBOLISM,
            (drug("ral", "raloxifene hydrochloride 60 MG Oral Tablet", 60), problem("pulmonary-embolism")),
            True,
        ),
        (
            label_checks.RALOXIFENE_VENOUS_THROMBOEMBOLISM,
            (drug("aln", "alendronate sodium 70 MG Oral Tablet"), problem("pulmonary-embolism")),
            False,
        ),
        (
            label_checks.ANTICHOLINERGIC_ANGLE_CLOSURE,
            (
                drug("scop", "Transderm Scop (scopolamine 1 MG/72HR Transdermal System)"),
                problem("angle-closure-glaucoma"),
            ),
            True,
        ),
        (
            label_checks.ANTICHOLINERGIC_ANGLE_CLOSURE,
            (drug("oxy", "oxybutynin chloride 5 MG Oral Tablet"), problem("angle-closure-glaucoma")),
            True,
        ),
        (
            label_checks.ANTICHOLINERGIC_ANGLE_CLOSURE,
            (
                drug("scop", "Transderm Scop (scopolamine 1 MG/72HR Transdermal System)"),
                problem("hypertension"),
            ),
            False,
        ),
        (
            label_checks.ANTICHOLINERGIC_ANGLE_CLOSURE,
            (drug("ond", "ondansetron 4 MG Oral Tablet"), problem("angle-closure-glaucoma")),
            False,
        ),
        (
            label_checks.DOAC_MODERATE_HEPATIC_IMPAIRMENT,
            (drug("riva", "rivaroxaban 20 MG Oral Tablet", 20), problem("cirrhosis")),
            True,
        ),
        (
            label_checks.DOAC_MODERATE_HEPATIC_IMPAIRMENT,
            (drug("api", "apixaban 5 MG Oral Tablet", 5), problem("cirrhosis")),
            False,
        ),
        (
            label_checks.BIPOLAR_ANTIDEPRESSANT_MONOTHERAPY,
            (drug("ser", "sertraline 100 MG Oral Tablet", 100), problem("bipolar-i")),
            True,
        ),
        (
            label_checks.BIPOLAR_ANTIDEPRESSANT_MONOTHERAPY,
            (
                drug("ser", "sertraline 100 MG Oral Tablet", 100),
                drug("li", "lithium carbonate 300 MG Oral Capsule", 300),
                problem("bipolar-i"),
            ),
            False,
        ),
        (
            label_checks.BIPOLAR_ANTIDEPRESSANT_MONOTHERAPY,
            (
                drug("bup", "bupropion hydrochloride 150 MG Extended Release Oral Tablet", 150),
                drug("que", "quetiapine 100 MG Oral Tablet", 100),
                problem("bipolar-i"),
            ),
            False,
        ),
        (
            label_checks.BIPOLAR_ANTIDEPRESSANT_MONOTHERAPY,
            (drug("ser", "sertraline 100 MG Oral Tablet", 100), problem("hypertension")),
            False,
        ),
    ],
)
def test_drug_condition_pairs(rule: Any, resources: tuple[JsonDict, ...], raised: bool) -> None:
    findings = found(rule, *resources)
    assert bool(findings) is raised
    if raised:
        assert findings[0].rule_id == rule.rule_id and findings[0].evidence == (rule.evidence,)


def test_every_label_limit_runs_on_every_hook_and_has_its_own_override_reasons() -> None:
    from tests.unit.test_rules import rule_ids

    ids = {i for rule in label_limits.LABEL_LIMIT_RULES for i in rule_ids(rule)}
    assert len(ids) == len(label_limits.LABEL_LIMIT_RULES)
    assert all(rule in registry.MEDICATION_RULES for rule in label_limits.LABEL_LIMIT_RULES)
    table = override_reasons()
    assert sorted(i for i in ids if table.specific(i) is None) == []


# --- once-weekly GLP-1 receptor agonists ordered daily ---------------------------------------------------------


@pytest.mark.parametrize(
    ("display", "per", "raised"),
    [
        ("Ozempic (semaglutide) 0.25 MG/0.5 ML pen injector", (1, 1, "d"), True),
        ("Ozempic (semaglutide) 0.25 MG/0.5 ML pen injector", (1, 7, "d"), False),
        ("Ozempic (semaglutide) 0.25 MG/0.5 ML pen injector", (1, 6, "d"), True),
        ("dulaglutide 1.5 MG/0.5 ML Auto-Injector", (1, 1, "d"), True),
        ("tirzepatide 5 MG/0.5 ML Injection (Mounjaro)", (2, 7, "d"), True),
        ("Rybelsus (semaglutide 7 MG Oral Tablet)", (1, 1, "d"), False),
        ("Byetta (exenatide 250 MCG/ML) pen injector", (2, 1, "d"), False),
        ("Bydureon BCise (exenatide extended-release 2 MG) auto-injector", (1, 1, "d"), True),
        ("liraglutide 18 MG/3 ML pen injector", (1, 1, "d"), False),
    ],
)
def test_a_weekly_glp1_injection_ordered_more_often(
    display: str, per: tuple[float, float, str], raised: bool
) -> None:
    findings = found(label_limits.weekly_incretin_interval, drug("glp", display, None, per))
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "critical" and "once-weekly" in findings[0].summary


# --- levothyroxine at long intervals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per", "raised"),
    [((1, 1, "d"), False), ((1, 7, "d"), False), ((1, 8, "d"), True), ((1, 60, "d"), True)],
)
def test_levothyroxine_ordered_less_often_than_weekly(per: tuple[float, float, str], raised: bool) -> None:
    levothyroxine = drug("levo", "levothyroxine sodium 0.075 MG Oral Tablet", None, per)
    findings = found(label_limits.levothyroxine_interval, levothyroxine)
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "warning" and "once every" in findings[0].summary


# --- blood pressure before combined hormonal contraception -------------------------------------------------

CHC = drug("chc", "Levonorgestrel 0.15 MG / Ethinyl Estradiol 0.03 MG Oral Tablet")


@pytest.mark.parametrize(("days", "raised"), [(364, False), (365, False), (366, True)])
def test_combined_contraception_needs_a_blood_pressure_within_a_year(days: int, raised: bool) -> None:
    assert (
        bool(
            found(
                label_limits.chc_blood_pressure_unknown,
                CHC,
                lab("systolic_bp", 118, days_ago=days, resource_id="sbp"),
            )
        )
        is raised
    )


def test_no_blood_pressure_at_all_is_said_and_a_progestin_pill_needs_none_here() -> None:
    (finding,) = found(label_limits.chc_blood_pressure_unknown, CHC)
    assert "no blood pressure on record" in finding.summary
    assert (
        found(label_limits.chc_blood_pressure_unknown, drug("pop", "norethindrone 0.35 MG Oral Tablet")) == []
    )


# --- SGLT2 inhibitor for type 2 diabetes with CKD -----------------------------------------------------------


@pytest.mark.parametrize(
    ("egfr", "raised"), [(19.9, False), (20, True), (20.1, True), (59.9, True), (60, False)]
)
def test_type_2_diabetes_with_a_low_egfr_and_no_sglt2_inhibitor(egfr: float, raised: bool) -> None:
    resources = (
        problem("diabetes"),
        drug("metformin", "metformin 500 MG Oral Tablet", 500),
        lab("egfr", egfr),
    )
    assert bool(found(label_limits.diabetes_ckd_sglt2_absent, *resources)) is raised


def test_ckd_on_record_with_a_normal_egfr_counts_and_an_sglt2_inhibitor_closes_it() -> None:
    base = (problem("diabetes"), problem("ckd-3"), lab("egfr", 75))
    assert found(label_limits.diabetes_ckd_sglt2_absent, *base)
    empagliflozin = drug("empa", "empagliflozin 10 MG Oral Tablet", 10)
    assert found(label_limits.diabetes_ckd_sglt2_absent, *base, empagliflozin) == []
    assert (
        found(label_limits.diabetes_ckd_sglt2_absent, problem("diabetes"), problem("ckd-3")) == []
    )  # no eGFR


@pytest.mark.parametrize(("age", "raised"), [(79, True), (80, False), (81, False)])
def test_the_sglt2_gap_is_left_to_the_prescriber_from_80(age: int, raised: bool) -> None:
    resources = (problem("diabetes"), problem("ckd-3"), lab("egfr", 45))
    assert bool(found(label_limits.diabetes_ckd_sglt2_absent, *resources, age=age)) is raised


def test_the_sglt2_gap_waits_while_creatinine_shows_acute_kidney_injury() -> None:
    base = (problem("diabetes"), problem("ckd-3"), lab("egfr", 45))
    steady = (lab("creatinine", 1.3, 1, "cr-now"), lab("creatinine", 1.2, 4, "cr-before"))
    assert found(label_limits.diabetes_ckd_sglt2_absent, *base, *steady)
    risen = (lab("creatinine", 1.9, 1, "cr-now"), lab("creatinine", 1.2, 4, "cr-before"))  # 1.58 times: AKI
    assert found(label_limits.diabetes_ckd_sglt2_absent, *base, *risen) == []


# --- glyburide with a low eGFR ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("egfr", "age", "raised"),
    [(59.9, 60, True), (60, 60, False), (60.1, 60, False), (45, 64, True), (45, 65, False)],
)
def test_glyburide_below_egfr_60_under_65(egfr: float, age: int, raised: bool) -> None:
    glyburide = drug("gly", "glyburide 5 MG Oral Tablet", 5, (2, 1, "d"))
    found_cards = found(label_limits.glyburide_kidney_disease, glyburide, lab("egfr", egfr), age=age)
    assert bool(found_cards) is raised  # from 65 the Beers long-acting sulfonylurea card says it
    assert (
        found(
            label_limits.glyburide_kidney_disease,
            drug("gli", "glipizide 5 MG Oral Tablet", 5),
            lab("egfr", 30),
        )
        == []
    )


# --- Beers: a sulfonylurea alone ----------------------------------------------------------------------------

GLIPIZIDE = drug("glipizide", "glipizide 5 MG Oral Tablet", 5)


@pytest.mark.parametrize(("age", "raised"), [(64, False), (65, True), (66, True)])
def test_glipizide_as_the_only_glucose_lowering_drug_from_65(age: int, raised: bool) -> None:
    assert bool(found(label_limits.beers_sulfonylurea_monotherapy, GLIPIZIDE, age=age)) is raised


def test_glipizide_beside_metformin_or_a_long_acting_sulfonylurea_is_not_this_card() -> None:
    metformin = drug("metformin", "metformin 500 MG Oral Tablet", 500)
    glyburide = drug("glyburide", "glyburide 5 MG Oral Tablet", 5)
    assert found(label_limits.beers_sulfonylurea_monotherapy, GLIPIZIDE, metformin, age=75) == []
    assert found(label_limits.beers_sulfonylurea_monotherapy, glyburide, age=75) == []


# --- kidney results that disagree, MenACWY, RSV with diabetes --------------------------------------------------


@pytest.mark.parametrize(("egfr", "raised"), [(26.7, True), (60, False), (95, False), (200, True)])
def test_an_egfr_far_from_its_creatinine_is_called_discordant(egfr: float, raised: bool) -> None:
    # creatinine 0.62 mg/dL in a woman of 67 gives a CKD-EPI 2021 eGFR of about 96
    resources = (lab("egfr", egfr, days_ago=3), lab("creatinine", 0.62, days_ago=3))
    findings = found(resolution.renal_values_discordant, *resources, age=67)
    assert bool(findings) is raised


def test_results_days_apart_are_not_compared() -> None:
    resources = (lab("egfr", 26.7, days_ago=3), lab("creatinine", 0.62, days_ago=10))
    assert found(resolution.renal_values_discordant, *resources, age=67) == []


def _menacwy(days_ago: int) -> JsonDict:
    return {
        "resourceType": "Immunization",
        "id": f"menacwy-{days_ago}",
        "status": "completed",
        "vaccineCode": {
            "coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "114"}],
            "text": "MenACWY",
        },
        "patient": {"reference": f"Patient/{PATIENT_ID}"},
        "occurrenceDateTime": on(days_ago),
    }


@pytest.mark.parametrize(
    ("age", "given", "raised"),
    [
        (10, (), False),
        (11, (), True),
        (14, (_menacwy(1100),), False),  # the dose at 11 covers until 16
        (16, (_menacwy(1900),), True),  # that dose came before 16: booster due
        (17, (_menacwy(200),), False),  # a first dose at 16 needs no booster
        (19, (), False),
    ],
)
def test_menacwy_at_11_and_a_booster_at_16(age: int, given: tuple[JsonDict, ...], raised: bool) -> None:
    assert bool(found(vaccines.menacwy_due, *given, age=age)) is raised


@pytest.mark.parametrize(
    ("extra", "raised"),
    [
        ((), False),  # diabetes alone is not an RSV risk condition
        ((drug("insulin", "insulin glargine 100 UNT/ML Injectable Solution"),), True),
        ((problem("diabetic-kidney-disease"),), True),
    ],
)
def test_rsv_at_65_with_diabetes_needs_damage_or_insulin(extra: tuple[JsonDict, ...], raised: bool) -> None:
    assert bool(found(vaccines.rsv_due, problem("diabetes"), *extra, age=65)) is raised


def _with_status(condition: JsonDict, clinical: str, verification: str = "confirmed") -> JsonDict:
    changed = copy.deepcopy(condition)
    changed["clinicalStatus"]["coding"][0]["code"] = clinical
    changed["verificationStatus"]["coding"][0]["code"] = verification
    return changed


@pytest.mark.parametrize(
    ("rule", "medicine", "clinical", "verification", "raised"),
    [
        (
            label_checks.RALOXIFENE_VENOUS_THROMBOEMBOLISM,
            "raloxifene 60 MG Oral Tablet",
            "resolved",
            "confirmed",
            True,
        ),
        (
            label_checks.RALOXIFENE_VENOUS_THROMBOEMBOLISM,
            "raloxifene 60 MG Oral Tablet",
            "inactive",
            "confirmed",
            True,
        ),
        (
            label_checks.RALOXIFENE_VENOUS_THROMBOEMBOLISM,
            "raloxifene 60 MG Oral Tablet",
            "resolved",
            "refuted",
            False,
        ),
        (
            label_checks.CHC_VENOUS_THROMBOEMBOLISM,
            "Levonorgestrel 0.15 MG / Ethinyl Estradiol 0.03 MG Oral Tablet",
            "resolved",
            "confirmed",
            True,
        ),
        (
            label_checks.MENOPAUSAL_ESTROGEN_VENOUS_THROMBOEMBOLISM,
            "estradiol 1 MG Oral Tablet",
            "resolved",
            "confirmed",
            True,
        ),
        # A resolved condition counts only where a history is the contraindication.
        (
            label_checks.DULOXETINE_LIVER_DISEASE,
            "duloxetine 60 MG Delayed Release Oral Capsule",
            "resolved",
            "confirmed",
            False,
        ),
    ],
)
def test_a_past_clot_counts_where_history_is_the_contraindication(
    rule: Any, medicine: str, clinical: str, verification: str, raised: bool
) -> None:
    condition = (
        problem("cirrhosis")
        if rule is label_checks.DULOXETINE_LIVER_DISEASE
        else problem("pulmonary-embolism")
    )
    findings = found(rule, drug("d", medicine), _with_status(condition, clinical, verification))
    assert bool(findings) is raised
    if raised:
        assert any(ref.startswith("H") for ref in findings[0].inputs)


# --- products never given under an age, and oral mineral oil in older adults -----------------------------------


@pytest.mark.parametrize(
    ("rule", "display", "age", "raised"),
    [
        (label_limits.BENZONATATE_UNDER_10, "benzonatate 100 MG Oral Capsule", 9, True),
        (label_limits.BENZONATATE_UNDER_10, "benzonatate 100 MG Oral Capsule", 10, False),
        (label_limits.BENZONATATE_UNDER_10, "benzonatate 100 MG Oral Capsule", 11, False),
        (label_limits.HONEY_UNDER_1, "Zarbee's Baby Cough Syrup with honey cough syrup", 0, True),
        (label_limits.HONEY_UNDER_1, "Zarbee's Baby Cough Syrup with honey cough syrup", 1, False),
        (label_limits.beers_mineral_oil, "mineral oil oral liquid 15 ML", 64, False),
        (label_limits.beers_mineral_oil, "mineral oil oral liquid 15 ML", 65, True),
        (label_limits.beers_mineral_oil, "mineral oil enema (Fleet)", 80, False),
    ],
)
def test_age_limits_of_benzonatate_honey_and_mineral_oil(
    rule: Any, display: str, age: int, raised: bool
) -> None:
    findings = found(rule, drug("x", display), age=age)
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == ("warning" if rule is label_limits.beers_mineral_oil else "critical")
        expected = {
            label_limits.BENZONATATE_UNDER_10: "rule.benzonatate-under-10",
            label_limits.HONEY_UNDER_1: "rule.honey-under-1",
            label_limits.beers_mineral_oil: "rule.beers-mineral-oil",
        }
        assert findings[0].rule_id == expected[rule]


@pytest.mark.parametrize(
    ("rule", "resources", "raised"),
    [
        (
            label_checks.DRONEDARONE_HEART_FAILURE,
            (drug("d", "dronedarone 400 MG Oral Tablet"), problem("heart-failure")),
            True,
        ),
        (
            label_checks.DRONEDARONE_HEART_FAILURE,
            (drug("d", "dronedarone 400 MG Oral Tablet"), problem("atrial-fibrillation")),
            False,
        ),
        (
            label_checks.DOAC_PREGNANCY,
            (drug("a", "apixaban 5 MG Oral Tablet", 5), problem("pregnancy")),
            True,
        ),
        (
            label_checks.DOAC_PREGNANCY,
            (drug("e", "enoxaparin 100 MG/ML Injectable Solution"), problem("pregnancy")),
            False,
        ),
    ],
)
def test_dronedarone_in_heart_failure_and_doacs_in_pregnancy(
    rule: Any, resources: tuple[JsonDict, ...], raised: bool
) -> None:
    assert bool(found(rule, *resources)) is raised


@pytest.mark.parametrize(
    ("resources", "age", "raised"),
    [
        ((drug("lis", "Humalog (insulin lispro) 100 UNT/ML KwikPen"),), 83, True),
        ((drug("lis", "Humalog (insulin lispro) 100 UNT/ML KwikPen"),), 64, False),
        (
            (
                drug("lis", "Humalog (insulin lispro) 100 UNT/ML KwikPen"),
                drug("gla", "insulin glargine 100 UNT/ML pen"),
            ),
            83,
            False,
        ),
        ((drug("lis", "insulin lispro 100 UNT/ML via Omnipod pump"),), 70, False),
        ((drug("lis", "Humalog (insulin lispro) 100 UNT/ML KwikPen"), problem("type-1-diabetes")), 70, False),
    ],
)
def test_beers_rapid_acting_insulin_without_basal(
    resources: tuple[JsonDict, ...], age: int, raised: bool
) -> None:
    assert bool(found(label_limits.beers_sliding_scale_insulin, *resources, age=age)) is raised


@pytest.mark.parametrize(("days", "raised"), [(10 * 365 - 1, False), (10 * 365, False), (10 * 365 + 1, True)])
def test_a_bisphosphonate_beyond_ten_years_is_reviewed(days: int, raised: bool) -> None:
    alendronate = drug("aln", "alendronate sodium 70 MG Oral Tablet", 70, (1, 7, "d"), days_ago=days)
    findings = found(label_limits.bisphosphonate_long_term, alendronate)
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "info" and "thigh or groin pain" in findings[0].summary


def test_honey_recorded_by_text_alone_counts() -> None:
    syrup = drug("h", "Children's honey cough syrup (OTC; dark honey base)")
    assert found(label_limits.HONEY_UNDER_1, syrup, age=0)


# --- drug and condition pairs from held-out v14 ---------------------------------------------------------------


SECUKINUMAB = drug("sec", "Cosentyx (secukinumab) 150 MG/ML pen")
GUSELKUMAB = drug("gus", "Tremfya (guselkumab) 100 MG/ML pen")
TIRZEPATIDE = drug("tir", "Mounjaro (tirzepatide) 5 MG/0.5ML pen")
EMPAGLIFLOZIN = drug("emp", "Jardiance (empagliflozin) 10 MG Oral Tablet")
NITROFURANTOIN = drug("nit", "nitrofurantoin monohydrate/macrocrystals 100 MG Oral Capsule (Macrobid)")


@pytest.mark.parametrize(
    ("rule", "resources", "raised"),
    [
        (label_checks.IL17_INFLAMMATORY_BOWEL_DISEASE, (SECUKINUMAB, problem("crohns-disease")), True),
        # Crohn's in remission (resolved on the list) still flares on an IL-17 inhibitor.
        (
            label_checks.IL17_INFLAMMATORY_BOWEL_DISEASE,
            (SECUKINUMAB, _with_status(problem("crohns-disease"), "resolved")),
            True,
        ),
        (label_checks.IL17_INFLAMMATORY_BOWEL_DISEASE, (SECUKINUMAB, problem("psoriasis")), False),
        (label_checks.IL17_INFLAMMATORY_BOWEL_DISEASE, (GUSELKUMAB, problem("crohns-disease")), False),
        (
            label_checks.INCRETIN_MEDULLARY_THYROID_CANCER,
            (TIRZEPATIDE, problem("medullary-thyroid-cancer")),
            True,
        ),
        (
            label_checks.INCRETIN_MEDULLARY_THYROID_CANCER,
            (TIRZEPATIDE, _with_status(problem("medullary-thyroid-cancer"), "resolved")),
            True,
        ),
        (label_checks.INCRETIN_MEDULLARY_THYROID_CANCER, (TIRZEPATIDE, problem("diabetes")), False),
        (label_checks.SGLT2_TYPE_1_DIABETES, (EMPAGLIFLOZIN, problem("type-1-diabetes")), True),
        (label_checks.SGLT2_TYPE_1_DIABETES, (EMPAGLIFLOZIN, problem("diabetes")), False),
        (label_checks.NITROFURANTOIN_PYELONEPHRITIS, (NITROFURANTOIN, problem("pyelonephritis")), True),
        (label_checks.NITROFURANTOIN_PYELONEPHRITIS, (NITROFURANTOIN, problem("cystitis")), False),
        # A past pyelonephritis does not make nitrofurantoin for today's cystitis wrong.
        (
            label_checks.NITROFURANTOIN_PYELONEPHRITIS,
            (NITROFURANTOIN, _with_status(problem("pyelonephritis"), "resolved")),
            False,
        ),
    ],
)
def test_il17_in_ibd_incretins_in_mtc_sglt2_in_type_1_and_nitrofurantoin_in_pyelonephritis(
    rule: Any, resources: tuple[JsonDict, ...], raised: bool
) -> None:
    findings = found(rule, *resources)
    assert bool(findings) is raised
    if raised:
        assert findings[0].rule_id == rule.rule_id and findings[0].severity == rule.severity


# --- held-out v15: label and guideline checks -------------------------------------------------------------------


def condition(text: str, resource_id: str) -> JsonDict:
    """A problem recorded by its words alone, as many problem lists hold it."""
    found = problem("asthma", resource_id)
    found["code"] = {"text": text}
    return found


def route(request: JsonDict, display: str) -> JsonDict:
    changed = copy.deepcopy(request)
    changed["dosageInstruction"][0]["route"] = {"text": display}
    return changed


@pytest.mark.parametrize(
    ("rule", "resources", "raised"),
    [
        (
            label_checks.FEBUXOSTAT_CARDIOVASCULAR_DISEASE,
            (drug("f", "febuxostat 40 MG Oral Tablet"), problem("myocardial-infarction")),
            True,
        ),
        (
            label_checks.FEBUXOSTAT_CARDIOVASCULAR_DISEASE,
            (drug("f", "febuxostat 40 MG Oral Tablet"), problem("hypertension")),
            False,
        ),
        (
            label_checks.MONTELUKAST_SUICIDALITY,
            (drug("m", "montelukast 10 MG Oral Tablet"), problem("suicide-attempt")),
            True,
        ),
        (
            label_checks.MONTELUKAST_SUICIDALITY,
            (drug("m", "montelukast 10 MG Oral Tablet"), problem("asthma")),
            False,
        ),
        (
            label_checks.TERBINAFINE_LIVER_DISEASE,
            (drug("t", "terbinafine 250 MG Oral Tablet"), problem("cirrhosis")),
            True,
        ),
        (
            label_checks.TERBINAFINE_LIVER_DISEASE,
            (drug("t", "terbinafine 1 % Topical Cream"), problem("cirrhosis")),
            False,
        ),
        (
            label_checks.NALTREXONE_CIRRHOSIS,
            (drug("n", "naltrexone 50 MG Oral Tablet"), problem("cirrhosis")),
            True,
        ),
        (
            label_checks.NALTREXONE_CIRRHOSIS,
            (drug("n", "naltrexone 50 MG Oral Tablet"), problem("hypertension")),
            False,
        ),
        (
            label_checks.NSAID_BARIATRIC_SURGERY,
            (IBUPROFEN, condition("Status post Roux-en-Y gastric bypass", "rygb")),
            True,
        ),
        (
            label_checks.NSAID_BARIATRIC_SURGERY,
            (ASPIRIN_81, condition("Status post Roux-en-Y gastric bypass", "rygb")),
            False,
        ),
        (
            label_checks.NSAID_BARIATRIC_SURGERY,
            (DICLOFENAC_GEL, condition("Status post Roux-en-Y gastric bypass", "rygb")),
            False,
        ),
        (
            label_checks.LACTATION_AVOID,
            (drug("d", "doxepin 25 MG Oral Capsule"), problem("lactation")),
            True,
        ),
        (
            label_checks.LACTATION_AVOID,
            (drug("d", "doxepin 5 % Topical Cream"), problem("lactation")),
            False,
        ),
        (
            label_checks.LACTATION_AVOID,
            (drug("s", "sertraline 50 MG Oral Tablet"), problem("lactation")),
            False,
        ),
        # Codeine has its own breastfeeding card (rule.codeine-tramadol-breastfeeding); this one does not repeat it.
        (
            label_checks.LACTATION_AVOID,
            (drug("c", "codeine sulfate 30 MG Oral Tablet"), problem("lactation")),
            False,
        ),
    ],
)
def test_v15_drug_and_condition_pairs(rule: Any, resources: tuple[JsonDict, ...], raised: bool) -> None:
    findings = found(rule, *resources)
    assert bool(findings) is raised
    if raised:
        assert findings[0].rule_id == rule.rule_id and findings[0].severity == rule.severity


SPRINTEC = drug("chc", "Sprintec (norgestimate 0.25 MG / ethinyl estradiol 0.035 MG) Oral Tablet")


def test_estrogen_contraception_with_antiphospholipid_antibodies() -> None:
    lupus_anticoagulant = {
        "resourceType": "Observation",
        "id": "la",
        "status": "final",
        "code": {
            "coding": [
                {
                    "system": "urn:local:lab",
                    "code": "LA",
                    "display": "Lupus anticoagulant (dRVVT screen/confirm)",
                }
            ]
        },
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": f"{on(300)}T09:00:00Z",
        "valueString": "Positive (ratio 1.52)",
    }
    (card,) = found(label_checks.chc_antiphospholipid, SPRINTEC, lupus_anticoagulant)
    assert card.severity == "critical"
    assert found(label_checks.chc_antiphospholipid, SPRINTEC, condition("Antiphospholipid syndrome", "aps"))
    negative = dict(lupus_anticoagulant, valueString="Negative")
    assert not found(label_checks.chc_antiphospholipid, SPRINTEC, negative)
    assert not found(
        label_checks.chc_antiphospholipid,
        drug("pop", "norethindrone 0.35 MG Oral Tablet"),
        lupus_anticoagulant,
    )


@pytest.mark.parametrize(("days", "raised"), [(4, False), (5, False), (6, True)])
def test_ketorolac_past_five_days(days: int, raised: bool) -> None:
    ketorolac = drug("k", "ketorolac tromethamine 10 MG Oral Tablet", 10, (4, 1, "d"), days_ago=days)
    assert bool(found(label_checks.ketorolac_beyond_five_days, ketorolac)) is raised
    eye_drops = drug("k", "ketorolac tromethamine 0.5 % Ophthalmic Solution", days_ago=40)
    assert not found(label_checks.ketorolac_beyond_five_days, eye_drops)


@pytest.mark.parametrize(("mg", "raised"), [(500, False), (750, True), (1000, True)])
def test_ranolazine_is_capped_at_500_mg_twice_daily_with_a_moderate_inhibitor(mg: int, raised: bool) -> None:
    ranolazine = drug("r", f"ranolazine {mg} MG Extended Release Oral Tablet", mg, (2, 1, "d"))
    diltiazem = drug("d", "diltiazem 240 MG Extended Release Oral Capsule", 240)
    assert bool(found(label_checks.ranolazine_moderate_inhibitor_dose, ranolazine, diltiazem)) is raised
    assert not found(label_checks.ranolazine_moderate_inhibitor_dose, ranolazine)


def test_extended_release_products_given_by_tube() -> None:
    oxycontin = drug(
        "o", "OxyContin (oxycodone hydrochloride) 10 MG Extended Release Oral Tablet", 10, (2, 1, "d")
    )
    via_peg = route(oxycontin, "Gastrostomy route")
    (card,) = found(label_checks.extended_release_via_tube, via_peg)
    assert card.severity == "critical"
    assert found(
        label_checks.extended_release_via_tube, oxycontin, condition("PEG tube placed 2026-05-22", "peg")
    )
    assert not found(label_checks.extended_release_via_tube, oxycontin)  # swallowed whole
    patch = drug("f", "fentanyl 25 MCG/HR Transdermal System")
    assert not found(label_checks.extended_release_via_tube, patch, condition("PEG tube placed", "peg"))


@pytest.mark.parametrize(("days_old", "raised"), [(120, True), (181, True), (182, False), (183, False)])
def test_ibuprofen_under_six_months(days_old: int, raised: bool) -> None:
    facts = _infant_facts(days_old, drug("ibu", "Infants' Motrin (ibuprofen) 50 MG/1.25ML oral suspension"))
    assert bool(list(label_limits.ibuprofen_under_6_months(facts))) is raised


# --- held-out v16: clots, alpha-agonists, gout, cirrhosis, children's cough medicines -------------------------


def _apixaban(mg: float, per_day: int, days_ago: int) -> JsonDict:
    return drug("apx", "apixaban 5 MG Oral Tablet (Eliquis)", mg, (per_day, 1, "d"), days_ago=days_ago)


@pytest.mark.parametrize(("clot_days", "raised"), [(6, False), (7, False), (8, True), (24, True)])
def test_apixaban_10_mg_twice_daily_past_day_7_of_clot_treatment(clot_days: int, raised: bool) -> None:
    # A refill six days ago carried the lead-in directions on: the clot's date counts.
    findings = found(
        label_limits.doac_lead_in_beyond_its_days,
        _apixaban(10, 2, days_ago=min(clot_days, 6)),
        problem("deep-vein-thrombosis", onset_days_ago=clot_days),
    )
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "critical" and f"day {clot_days}" in findings[0].summary
        assert "5 mg twice daily" in findings[0].summary


@pytest.mark.parametrize(("order_days", "raised"), [(21, False), (22, True)])
def test_rivaroxaban_15_mg_twice_daily_past_day_21(order_days: int, raised: bool) -> None:
    rivaroxaban = drug("riv", "rivaroxaban 15 MG Oral Tablet", 15, (2, 1, "d"), days_ago=order_days)
    assert bool(found(label_limits.doac_lead_in_beyond_its_days, rivaroxaban)) is raised


@pytest.mark.parametrize(
    "resources",
    [
        (_apixaban(5, 2, days_ago=60), problem("deep-vein-thrombosis", onset_days_ago=60)),  # maintenance
        (_apixaban(10, 2, days_ago=3), problem("deep-vein-thrombosis", onset_days_ago=3)),  # within day 7
    ],
)
def test_the_maintenance_dose_and_a_lead_in_within_its_days_are_quiet(
    resources: tuple[JsonDict, ...],
) -> None:
    assert found(label_limits.doac_lead_in_beyond_its_days, *resources) == []


def test_an_undated_lead_in_with_no_dated_clot_is_not_known_to_be_late() -> None:
    undated = _apixaban(10, 2, days_ago=3)
    del undated["authoredOn"]
    assert found(label_limits.doac_lead_in_beyond_its_days, undated) == []


CLONIDINE = drug("clon", "clonidine hydrochloride 0.1 MG Oral Tablet", 0.1, (3, 1, "d"))


@pytest.mark.parametrize(("age", "raised"), [(64, False), (65, True), (90, True)])
def test_beers_clonidine_for_blood_pressure_from_65(age: int, raised: bool) -> None:
    findings = found(
        label_limits.beers_central_alpha_agonist_hypertension, CLONIDINE, problem("hypertension"), age=age
    )
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "warning" and "tapering it slowly" in findings[0].summary


def test_clonidine_without_hypertension_on_record_is_left_alone() -> None:
    assert (
        found(label_limits.beers_central_alpha_agonist_hypertension, CLONIDINE, problem("asthma"), age=80)
        == []
    )


def _infant_facts(days_old: int, *resources: JsonDict) -> RuleFacts:
    prefetch = Chart(age=0, resources=resources).prefetch()
    prefetch["patient"]["birthDate"] = (NOW.date() - timedelta(days=days_old)).isoformat()
    return RuleFacts.of(build_context(prefetch, NOW).context)


BENADRYL = drug("dph", "Children's Benadryl Allergy (diphenhydramine HCl 12.5 mg/5 mL) oral liquid")


@pytest.mark.parametrize(
    ("age", "severity"),
    [(0, "critical"), (1, "critical"), (2, "warning"), (3, "warning"), (4, None), (5, None)],
)
def test_cough_cold_and_sedating_antihistamines_under_4(age: int, severity: str | None) -> None:
    findings = found(label_limits.cough_cold_under_4, BENADRYL, age=age)
    assert [f.severity for f in findings] == ([severity] if severity else [])
    if severity:
        assert "never to make a child sleep" in findings[0].summary


@pytest.mark.parametrize(
    "product",
    [
        "diphenhydramine 2 % Topical Cream",  # on the skin
        "Little Remedies Decongestant Nose Drops (phenylephrine 0.125 %) nasal",  # in the nose
        "promethazine 6.25 MG/5ML Oral Solution",  # its own critical card
        "cetirizine 1 MG/ML Oral Solution",  # not sedating, labelled from 6 months
    ],
)
def test_skin_nose_promethazine_and_non_sedating_products_are_not_this_card(product: str) -> None:
    assert found(label_limits.cough_cold_under_4, drug("p", product), age=1) == []


PROMETHAZINE_CODEINE = drug("pc", "promethazine HCl 6.25 MG / codeine phosphate 10 MG per 5 ML Oral Solution")
HYDROCODONE_COUGH = drug("hc", "Hycodan (hydrocodone bitartrate 5 MG / homatropine 1.5 MG) Oral Tablet")


@pytest.mark.parametrize(("age", "raised"), [(12, True), (15, True), (17, True), (18, False)])
def test_opioid_cough_medicines_are_for_adults(age: int, raised: bool) -> None:
    findings = found(label_limits.opioid_cough_medicine_under_18, PROMETHAZINE_CODEINE, age=age)
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "critical"


def test_under_12_codeine_is_left_to_its_contraindication_and_hydrocodone_is_raised() -> None:
    assert found(label_limits.opioid_cough_medicine_under_18, PROMETHAZINE_CODEINE, age=11) == []
    assert found(label_limits.opioid_cough_medicine_under_18, HYDROCODONE_COUGH, age=11)


def test_codeine_for_pain_at_15_is_not_a_cough_medicine() -> None:
    tylenol_3 = drug("t3", "acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet")
    assert found(label_limits.opioid_cough_medicine_under_18, tylenol_3, age=15) == []


HCTZ = drug("hctz", "hydrochlorothiazide 25 MG Oral Tablet", 25)
ZOLPIDEM = drug("zol", "zolpidem tartrate 10 MG Oral Tablet", 10)


@pytest.mark.parametrize(
    ("rule", "resources", "raised"),
    [
        (label_checks.THIAZIDE_GOUT, (HCTZ, condition("Gout", "gout")), True),
        (label_checks.THIAZIDE_GOUT, (HCTZ, problem("hypertension")), False),
        (label_checks.SEDATIVE_CIRRHOSIS, (ZOLPIDEM, problem("cirrhosis")), True),
        (
            label_checks.SEDATIVE_CIRRHOSIS,
            (drug("alp", "alprazolam 0.5 MG Oral Tablet"), problem("cirrhosis")),
            True,
        ),
        (label_checks.SEDATIVE_CIRRHOSIS, (ZOLPIDEM, problem("hypertension")), False),
    ],
)
def test_v16_drug_and_condition_pairs(rule: Any, resources: tuple[JsonDict, ...], raised: bool) -> None:
    findings = found(rule, *resources)
    assert bool(findings) is raised
    if raised:
        assert findings[0].rule_id == rule.rule_id and findings[0].severity == rule.severity


@pytest.mark.parametrize(
    ("contraceptive", "raised"),
    [
        ("Sprintec (norgestimate 0.25 MG / ethinyl estradiol 0.035 MG) Oral Tablet", True),
        ("norethindrone 0.35 MG Oral Tablet", True),
        ("Xulane (norelgestromin / ethinyl estradiol) Transdermal Patch", False),
        ("Mirena (levonorgestrel 52 MG) Intrauterine System", False),
    ],
)
def test_tirzepatide_with_an_oral_contraceptive_only(contraceptive: str, raised: bool) -> None:
    findings = found(label_checks.tirzepatide_oral_contraceptive, TIRZEPATIDE, drug("oc", contraceptive))
    assert bool(findings) is raised
    if raised:
        assert "4 weeks after each dose step" in findings[0].summary


def test_semaglutide_with_an_oral_contraceptive_is_not_this_card() -> None:
    semaglutide = drug("sema", "Ozempic (semaglutide) 0.5 MG/DOSE pen")
    assert found(label_checks.tirzepatide_oral_contraceptive, semaglutide, SPRINTEC) == []


# --- NSAIDs after an ulcer or bleed ---------------------------------------------------------------------------

NAPROXEN = drug("nap", "naproxen 500 MG Oral Tablet", 500, (2, 1, "d"))
SERTRALINE = drug("ser", "sertraline 100 MG Oral Tablet", 100)
PANTOPRAZOLE = drug("ppi", "pantoprazole 40 MG Delayed Release Oral Tablet", 40)


def _past(resource: JsonDict) -> JsonDict:
    return _with_status(resource, "resolved")


@pytest.mark.parametrize(
    ("resources", "severity"),
    [
        ((NAPROXEN, _past(condition("Duodenal ulcer", "du"))), "warning"),  # a past ulcer counts (Beers)
        ((NAPROXEN, SERTRALINE, _past(condition("Upper GI bleed", "bleed"))), "critical"),
        ((NAPROXEN, ASPIRIN_81, _past(condition("Upper GI bleed", "bleed"))), "critical"),  # antiplatelet
        ((NAPROXEN, SERTRALINE, PANTOPRAZOLE, _past(condition("Upper GI bleed", "bleed"))), "warning"),
        ((NAPROXEN, SERTRALINE, _past(condition("Duodenal ulcer", "du"))), "warning"),  # ulcer, no bleed
    ],
)
def test_an_nsaid_after_an_ulcer_or_bleed(resources: tuple[JsonDict, ...], severity: str) -> None:
    (finding,) = found(label_checks.nsaid_peptic_ulcer, *resources)
    assert finding.severity == severity


def test_an_nsaid_with_no_ulcer_or_bleed_ever_is_quiet() -> None:
    assert found(label_checks.nsaid_peptic_ulcer, NAPROXEN, SERTRALINE, problem("hypertension")) == []


# --- duplicates and asthma controllers from held-out v16 ------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "raised"),
    [
        ("gabapentin 600 MG Oral Tablet", "pregabalin 75 MG Oral Capsule", True),
        ("doxazosin 4 MG Oral Tablet", "tamsulosin hydrochloride 0.4 MG Oral Capsule", True),
        ("tamsulosin hydrochloride 0.4 MG Oral Capsule", "finasteride 5 MG Oral Tablet", False),
        ("gabapentin 600 MG Oral Tablet", "duloxetine 60 MG Delayed Release Oral Capsule", False),
        ("alprazolam 0.5 MG Oral Tablet (Xanax)", "clonazepam 0.5 MG Oral Tablet (Klonopin)", True),
        ("clonazepam 0.5 MG Oral Tablet", "diazepam 10 MG Rectal Gel (Diastat AcuDial)", False),  # rescue
        ("clonazepam 0.5 MG Oral Tablet", "midazolam 5 MG/SPRAY Nasal Spray (Nayzilam)", False),
        ("clonazepam 0.5 MG Oral Tablet", "lorazepam 2 MG/ML Injection", False),  # given once
        ("clonazepam 0.5 MG Oral Tablet", "sertraline 50 MG Oral Tablet", False),
        (
            "lisinopril 20 MG / hydrochlorothiazide 25 MG Oral Tablet",
            "chlorthalidone 25 MG Oral Tablet",
            True,
        ),
        ("hydrochlorothiazide 25 MG Oral Tablet", "indapamide 2.5 MG Oral Tablet", True),
        ("hydrochlorothiazide 25 MG Oral Tablet", "metolazone 2.5 MG Oral Tablet", False),  # sequential block
        ("hydrochlorothiazide 25 MG Oral Tablet", "furosemide 40 MG Oral Tablet", False),
        ("finerenone 20 MG Oral Tablet (Kerendia)", "spironolactone 25 MG Oral Tablet", True),
        ("eplerenone 50 MG Oral Tablet", "spironolactone 25 MG Oral Tablet", True),
        ("finerenone 20 MG Oral Tablet (Kerendia)", "amiloride hydrochloride 5 MG Oral Tablet", False),
    ],
)
def test_two_gabapentinoids_or_two_alpha_1_blockers_are_a_duplicate(
    first: str, second: str, raised: bool
) -> None:
    findings = found(catalog.duplicate_therapy, drug("a", first), drug("b", second))
    assert bool(findings) is raised
    if raised:
        assert findings[0].rule_id == "rule.duplicate-therapy" and len(findings[0].inputs) == 2


ALBUTEROL = drug("saba", "albuterol 90 MCG/ACTUATION Metered Dose Inhaler (ProAir HFA)")


def test_a_nasal_steroid_is_no_asthma_controller() -> None:
    nasal = drug("ns", "fluticasone propionate 50 MCG/ACTUATION Nasal Spray")
    (finding,) = found(catalog.asthma_saba_only, ALBUTEROL, nasal, problem("asthma"))
    assert finding.rule_id == "rule.asthma-saba-only"
    inhaled = drug("ics", "fluticasone propionate 110 MCG/ACTUATION Metered Dose Inhaler (Flovent HFA)")
    assert found(catalog.asthma_saba_only, ALBUTEROL, inhaled, problem("asthma")) == []


# --- held-out v17: infants, long-acting opioids, C. difficile, statins, salicylates in pregnancy ------------

SEPTRA_SUSPENSION = drug("tmp", "sulfamethoxazole 200 MG / trimethoprim 40 MG per 5 ML Oral Suspension")


@pytest.mark.parametrize(("days_old", "raised"), [(35, True), (59, True), (60, False), (61, False)])
def test_sulfamethoxazole_trimethoprim_under_two_months(days_old: int, raised: bool) -> None:
    findings = list(label_limits.SULFONAMIDE_UNDER_2_MONTHS(_infant_facts(days_old, SEPTRA_SUSPENSION)))
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "critical" and "kernicterus" in findings[0].summary


@pytest.mark.parametrize(
    ("display", "per", "raised"),
    [
        ("12 HR oxycodone hydrochloride 20 MG Extended Release Oral Tablet (OxyContin)", (4, 1, "d"), True),
        ("12 HR oxycodone hydrochloride 20 MG Extended Release Oral Tablet (OxyContin)", (3, 1, "d"), True),
        ("12 HR oxycodone hydrochloride 20 MG Extended Release Oral Tablet (OxyContin)", (2, 1, "d"), False),
        ("morphine sulfate 30 MG Extended Release Oral Tablet (MS Contin)", (3, 1, "d"), False),
        ("morphine sulfate 30 MG Extended Release Oral Tablet (MS Contin)", (4, 1, "d"), True),
        ("oxycodone hydrochloride 5 MG Oral Tablet", (6, 1, "d"), False),  # immediate release
    ],
)
def test_extended_release_opioids_at_their_labelled_interval(
    display: str, per: tuple[float, float, str], raised: bool
) -> None:
    findings = found(label_limits.extended_release_opioid_interval, drug("er", display, None, per))
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "critical"


CLINDAMYCIN = drug("clinda", "clindamycin hydrochloride 300 MG Oral Capsule")


def _c_difficile(onset_days_ago: int, clinical: str = "resolved") -> JsonDict:
    episode = condition("Clostridioides difficile infection", "cdi")
    episode["onsetDateTime"] = on(onset_days_ago)
    return _with_status(episode, clinical)


@pytest.mark.parametrize(("onset", "raised"), [(49, True), (90, True), (91, False), (400, False)])
def test_clindamycin_within_90_days_of_c_difficile(onset: int, raised: bool) -> None:
    findings = found(label_limits.clindamycin_after_c_difficile, CLINDAMYCIN, _c_difficile(onset))
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "warning" and len(findings[0].inputs) == 2


def test_active_c_difficile_counts_however_old_and_clindamycin_gel_does_not() -> None:
    assert found(label_limits.clindamycin_after_c_difficile, CLINDAMYCIN, _c_difficile(400, "active"))
    gel = drug("gel", "clindamycin phosphate 1 % Topical Gel")
    assert found(label_limits.clindamycin_after_c_difficile, gel, _c_difficile(30)) == []


def test_two_statins_are_a_duplicate() -> None:
    (finding,) = found(
        catalog.duplicate_therapy,
        drug("a", "atorvastatin 80 MG Oral Tablet"),
        drug("s", "simvastatin 40 MG Oral Tablet"),
    )
    assert "Two statins" in finding.summary


@pytest.mark.parametrize(
    ("product", "raised"),
    [
        ("Pepto-Bismol (bismuth subsalicylate 262 MG) Chewable Tablet", True),
        ("aspirin 81 MG Oral Tablet", False),  # obstetric low-dose aspirin
        ("methyl salicylate 15 % Topical Cream", False),  # on the skin
    ],
)
def test_salicylates_from_20_weeks_of_pregnancy(product: str, raised: bool) -> None:
    from plugin.rules import monitoring

    pregnant = problem("pregnancy")
    pregnant["onsetDateTime"] = on(29 * 7 - 14)
    assert bool(found(monitoring.nsaid_pregnancy, drug("p", product), pregnant)) is raised


@pytest.mark.parametrize(("days_old", "raised"), [(20, True), (41, True), (42, False), (43, False)])
def test_oral_erythromycin_under_six_weeks(days_old: int, raised: bool) -> None:
    syrup = drug("ery", "erythromycin ethylsuccinate 200 MG/5ML Oral Suspension")
    findings = list(label_limits.ERYTHROMYCIN_UNDER_6_WEEKS(_infant_facts(days_old, syrup)))
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "warning" and "azithromycin" in findings[0].summary
        assert findings[0].summary.startswith("Erythromycin at ")


def test_the_newborn_erythromycin_eye_ointment_is_not_swallowed() -> None:
    ointment = drug("eye", "erythromycin 5 MG/G Ophthalmic Ointment")
    assert list(label_limits.ERYTHROMYCIN_UNDER_6_WEEKS(_infant_facts(2, ointment))) == []


# --- held-out v18 and v19: pregnancy, breastfeeding, heart failure, epilepsy, bone, duplicates ----------------


def _onset(resource: JsonDict, days_ago: int) -> JsonDict:
    dated = copy.deepcopy(resource)
    dated["onsetDateTime"] = on(days_ago)
    return dated


@pytest.mark.parametrize(
    ("rule", "resources", "raised"),
    [
        (
            label_checks.ATENOLOL_PREGNANCY,
            (drug("ate", "atenolol 50 MG Oral Tablet"), problem("pregnancy")),
            True,
        ),
        (
            label_checks.ATENOLOL_PREGNANCY,
            (drug("lab", "labetalol 200 MG Oral Tablet"), problem("pregnancy")),
            False,
        ),
        (
            label_checks.PSEUDOEPHEDRINE_LACTATION,
            (
                drug("pse", "Sudafed 12 Hour (pseudoephedrine 120 MG) Extended Release Tablet"),
                problem("lactation"),
            ),
            True,
        ),
        (label_checks.PSEUDOEPHEDRINE_LACTATION, (drug("pse", "pseudoephedrine 30 MG Oral Tablet"),), False),
        (
            label_checks.ITRACONAZOLE_HEART_FAILURE,
            (drug("itr", "itraconazole 100 MG Oral Capsule"), problem("heart-failure")),
            True,
        ),
        (
            label_checks.ITRACONAZOLE_HEART_FAILURE,
            (drug("ter", "terbinafine 250 MG Oral Tablet"), problem("heart-failure")),
            False,
        ),
        (
            label_checks.TRAMADOL_EPILEPSY,
            (drug("tra", "tramadol 50 MG Oral Tablet"), condition("Epilepsy", "epi")),
            True,
        ),
        (
            label_checks.TRAMADOL_EPILEPSY,
            (drug("tra", "tramadol 50 MG Oral Tablet"), problem("hypertension")),
            False,
        ),
        (
            label_checks.LACTATION_AVOID,
            (drug("tin", "tinidazole 500 MG Oral Tablet (Tindamax)"), problem("lactation")),
            True,
        ),
        (
            label_checks.LACTATION_AVOID,
            (drug("ate", "atenolol 50 MG Oral Tablet (Tenormin)"), problem("lactation")),
            True,
        ),
        (
            label_checks.LACTATION_AVOID,
            (drug("met", "metoprolol tartrate 25 MG Oral Tablet"), problem("lactation")),
            False,
        ),
        (
            label_checks.PRASUGREL_PRIOR_STROKE_TIA,
            (
                drug("pra", "prasugrel 10 MG Oral Tablet (Effient)"),
                _past(condition("Transient ischemic attack", "t")),
            ),
            True,
        ),
        (
            label_checks.PRASUGREL_PRIOR_STROKE_TIA,
            (
                drug("pra", "prasugrel 10 MG Oral Tablet (Effient)"),
                condition("Cerebrovascular accident", "cva"),
            ),
            True,
        ),
        (
            label_checks.PRASUGREL_PRIOR_STROKE_TIA,
            (
                drug("clo", "clopidogrel 75 MG Oral Tablet"),
                _past(condition("Transient ischemic attack", "t")),
            ),
            False,
        ),
        (
            label_checks.PRASUGREL_PRIOR_STROKE_TIA,
            (drug("pra", "prasugrel 10 MG Oral Tablet (Effient)"), problem("myocardial-infarction")),
            False,
        ),
        (
            label_checks.JAK_INHIBITOR_THROMBOSIS,
            (
                drug("tof", "tofacitinib 11 MG Extended Release Oral Tablet"),
                _past(condition("Pulmonary embolism", "pe")),
            ),
            True,
        ),
        (
            label_checks.JAK_INHIBITOR_THROMBOSIS,
            (
                drug("ada", "adalimumab 40 MG/0.4ML Prefilled Syringe"),
                _past(condition("Pulmonary embolism", "pe")),
            ),
            False,
        ),
        (
            label_checks.PIOGLITAZONE_BLADDER_CANCER,
            (drug("pio", "pioglitazone 30 MG Oral Tablet"), _past(condition("Bladder cancer", "bc"))),
            True,
        ),
        (
            label_checks.PIOGLITAZONE_BLADDER_CANCER,
            (drug("pio", "pioglitazone 30 MG Oral Tablet"), problem("diabetes")),
            False,
        ),
        (
            label_checks.INCRETIN_GASTROPARESIS,
            (
                drug("sema", "semaglutide 1 MG/DOSE Pen Injector (Ozempic)"),
                condition("Diabetic gastroparesis", "gp"),
            ),
            True,
        ),
        (
            label_checks.INCRETIN_GASTROPARESIS,
            (drug("sita", "sitagliptin 100 MG Oral Tablet"), condition("Diabetic gastroparesis", "gp")),
            False,
        ),
        (
            label_checks.THIAZOLIDINEDIONE_OSTEOPOROSIS,
            (drug("pio", "pioglitazone 45 MG Oral Tablet (Actos)"), condition("Osteoporosis", "op")),
            True,
        ),
        (
            label_checks.THIAZOLIDINEDIONE_OSTEOPOROSIS,
            (drug("pio", "pioglitazone 45 MG Oral Tablet (Actos)"), condition("Osteopenia", "op")),
            False,
        ),
        (
            label_checks.THIAZOLIDINEDIONE_OSTEOPOROSIS,
            (drug("met", "metformin hydrochloride 1000 MG Oral Tablet"), condition("Osteoporosis", "op")),
            False,
        ),
        (
            label_checks.ROFLUMILAST_DEPRESSION,
            (
                drug("rof", "roflumilast 500 MCG Oral Tablet (Daliresp)"),
                condition("Depressive disorder", "dep"),
            ),
            True,
        ),
        (
            label_checks.ROFLUMILAST_DEPRESSION,
            (
                drug("rof", "roflumilast 500 MCG Oral Tablet (Daliresp)"),
                _past(condition("Depressive disorder", "dep")),
            ),
            True,  # a history of depression counts, as the label says
        ),
        (
            label_checks.ROFLUMILAST_DEPRESSION,
            (drug("rof", "roflumilast 500 MCG Oral Tablet (Daliresp)"), problem("hypertension")),
            False,
        ),
        (
            label_checks.JAK_INHIBITOR_CARDIOVASCULAR,
            (
                drug("upa", "upadacitinib 15 MG Extended Release Oral Tablet"),
                _past(condition("NSTEMI", "mi")),
            ),
            True,
        ),
        (
            label_checks.JAK_INHIBITOR_CARDIOVASCULAR,
            (
                drug("ada", "adalimumab 40 MG/0.4ML Prefilled Syringe"),
                condition("Coronary artery disease", "cad"),
            ),
            False,
        ),
        (
            label_checks.TNF_INHIBITOR_HEART_FAILURE,
            (
                drug("ada", "adalimumab 40 MG/0.4ML Prefilled Syringe"),
                condition("Heart failure with reduced ejection fraction", "hf"),
            ),
            True,
        ),
        (
            label_checks.TNF_INHIBITOR_HEART_FAILURE,
            (
                drug("aba", "abatacept 125 MG/ML Prefilled Syringe"),
                condition("Heart failure with reduced ejection fraction", "hf"),
            ),
            False,
        ),
        (
            label_checks.THIAZIDE_HYPERCALCAEMIA,
            (
                drug("hctz", "hydrochlorothiazide 25 MG Oral Tablet"),
                condition("Primary hyperparathyroidism", "php"),
            ),
            True,
        ),
        (
            label_checks.THIAZIDE_HYPERCALCAEMIA,
            (
                drug("hctz", "hydrochlorothiazide 25 MG Oral Tablet"),
                condition("Secondary hyperparathyroidism of renal origin", "shp"),
            ),
            False,  # the kidney's parathyroid disease runs with low calcium
        ),
        (
            label_checks.ORAL_BISPHOSPHONATE_OESOPHAGUS,
            (
                drug("aln", "alendronate sodium 70 MG Oral Tablet"),
                _past(condition("Peptic oesophageal stricture, dilated", "st")),
            ),
            True,  # a dilated stricture still narrows
        ),
        (
            label_checks.ORAL_BISPHOSPHONATE_OESOPHAGUS,
            (drug("zol", "zoledronic acid 5 MG/100ML Injection"), condition("Achalasia", "ach")),
            False,  # given into a vein
        ),
        (
            label_checks.ORAL_BISPHOSPHONATE_OESOPHAGUS,
            (
                drug("aln", "alendronate sodium 70 MG Oral Tablet"),
                condition("Gastro-oesophageal reflux disease", "gerd"),
            ),
            False,
        ),
        (
            label_checks.ANTIPERISTALTIC_C_DIFFICILE,
            (
                drug("lop", "loperamide hydrochloride 2 MG Oral Capsule"),
                condition("Clostridioides difficile colitis", "cd"),
            ),
            True,
        ),
        (
            label_checks.ANTIPERISTALTIC_C_DIFFICILE,
            (
                drug("lop", "loperamide hydrochloride 2 MG Oral Capsule"),
                condition("Irritable bowel syndrome", "ibs"),
            ),
            False,
        ),
        (
            label_checks.ERGONOVINE_HYPERTENSION,
            (
                drug("mer", "methylergonovine maleate 0.2 MG/ML Injection (Methergine)"),
                condition("Preeclampsia with severe features", "pe"),
            ),
            True,
        ),
        (
            label_checks.ERGONOVINE_HYPERTENSION,
            (
                drug("mer", "methylergonovine maleate 0.2 MG/ML Injection (Methergine)"),
                problem("hypertension"),
            ),
            True,
        ),
        (
            label_checks.ERGONOVINE_HYPERTENSION,
            (
                drug("oxy", "oxytocin 10 UNT/ML Injection"),
                condition("Preeclampsia with severe features", "pe"),
            ),
            False,
        ),
    ],
)
def test_v18_v19_drug_and_condition_pairs(rule: Any, resources: tuple[JsonDict, ...], raised: bool) -> None:
    findings = found(rule, *resources)
    assert bool(findings) is raised
    if raised:
        assert findings[0].rule_id == rule.rule_id and findings[0].severity == rule.severity


EVENITY = drug("rom", "Evenity (romosozumab-aqqg) 105 MG/1.17ML prefilled syringe")


@pytest.mark.parametrize(("days", "raised"), [(150, True), (365, True), (366, False)])
def test_romosozumab_within_a_year_of_a_heart_attack(days: int, raised: bool) -> None:
    findings = found(
        label_checks.romosozumab_after_mi_or_stroke, EVENITY, _onset(problem("myocardial-infarction"), days)
    )
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "critical"


@pytest.mark.parametrize(
    ("first", "second", "label"),
    [
        (
            "insulin glargine 100 UNT/ML pen (Lantus)",
            "insulin degludec 100 UNT/ML pen (Tresiba)",
            "Two basal insulins",
        ),
        (
            "insulin glargine 100 UNT/ML pen (Lantus)",
            "insulin lispro 100 UNT/ML pen (Humalog)",
            None,
        ),  # basal-bolus
        (
            "guanfacine 2 MG Extended Release Oral Tablet",
            "clonidine 0.1 MG Extended Release Oral Tablet",
            "Two central",
        ),
    ],
)
def test_two_basal_insulins_or_two_central_alpha_2_agonists(
    first: str, second: str, label: str | None
) -> None:
    cards = found(catalog.duplicate_therapy, drug("a", first), drug("b", second))
    assert [c.summary.startswith(label) for c in cards] == ([True] if label else [])


def test_a_metronidazole_allergy_bars_tinidazole() -> None:
    allergy = {
        "resourceType": "AllergyIntolerance",
        "id": "flagyl",
        "patient": {"reference": f"Patient/{PATIENT_ID}"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "code": {"text": "Flagyl (metronidazole)"},
        "reaction": [{"manifestation": [{"text": "Hives"}]}],
    }
    ids = {
        f.rule_id
        for f in found(catalog.allergy_same_drug, allergy, drug("tin", "tinidazole 500 MG Oral Tablet"))
    }
    assert ids == {"rule.allergy-same-drug"}


def test_ergot_drugs_are_contraindicated_in_pregnancy() -> None:
    dhe = drug("dhe", "dihydroergotamine mesylate 1 MG/ML Injectable Solution")
    (finding,) = found(catalog.pregnancy_teratogen, dhe, problem("pregnancy"))
    assert finding.severity == "critical"


@pytest.mark.parametrize(
    ("resources", "raised"),
    [
        (
            (
                drug("oxy", "oxybutynin chloride 10 MG Extended Release Oral Tablet"),
                condition("Urinary retention", "ur"),
            ),
            True,
        ),
        (
            (drug("oxy", "oxybutynin chloride 10 MG Extended Release Oral Tablet"), problem("bph")),
            False,
        ),  # Beers' exception
        (
            (
                drug("tam", "tamsulosin hydrochloride 0.4 MG Oral Capsule"),
                condition("Urinary retention", "ur"),
            ),
            False,
        ),
    ],
)
def test_anticholinergics_in_urinary_retention(resources: tuple[JsonDict, ...], raised: bool) -> None:
    findings = found(label_checks.ANTICHOLINERGIC_URINARY_RETENTION, *resources, gender="male")
    assert bool(findings) is raised


def _levothyroxine_draft(mcg: int) -> JsonDict:
    order = drug("levo", f"levothyroxine sodium {mcg} MCG Oral Tablet", mcg / 1000)
    order["status"] = "draft"
    return order


@pytest.mark.parametrize(
    ("mcg", "age", "raised"), [(50, 79, False), (75, 79, True), (100, 64, False), (100, 65, True)]
)
def test_levothyroxine_started_at_full_dose_from_65(mcg: int, age: int, raised: bool) -> None:
    context = Chart(age=age, drafts=(_levothyroxine_draft(mcg),)).build().context
    findings = list(label_limits.levothyroxine_full_dose_start(RuleFacts.of(context)))
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "warning" and findings[0].proposed


def test_levothyroxine_already_taken_is_a_dose_change_not_a_start() -> None:
    current = drug("levo-now", "levothyroxine sodium 75 MCG Oral Tablet", 0.075)
    context = Chart(age=80, resources=(current,), drafts=(_levothyroxine_draft(100),)).build().context
    assert list(label_limits.levothyroxine_full_dose_start(RuleFacts.of(context))) == []


# --- a heparin bridging new warfarin is no duplicate -----------------------------------------------------------


@pytest.mark.parametrize(
    ("warfarin_days", "heparin_days", "raised"),
    [
        (2, 2, False),  # both new: the bridge
        (30, 30, False),
        (31, 2, True),  # established warfarin with a new heparin: a duplicate to ask about
        (2, 31, True),
        (400, 400, True),
    ],
)
def test_a_heparin_bridge_to_new_warfarin(warfarin_days: int, heparin_days: int, raised: bool) -> None:
    warfarin = drug("w", "warfarin sodium 5 MG Oral Tablet (Coumadin)", 5, days_ago=warfarin_days)
    enoxaparin = drug("e", "enoxaparin sodium 80 MG/0.8ML Prefilled Syringe", 80, (2, 1, "d"), heparin_days)
    assert bool(found(catalog.duplicate_therapy, warfarin, enoxaparin)) is raised


def test_a_heparin_beside_a_new_doac_is_still_a_duplicate() -> None:
    apixaban = drug("a", "apixaban 5 MG Oral Tablet (Eliquis)", 5, (2, 1, "d"), 2)
    enoxaparin = drug("e", "enoxaparin sodium 80 MG/0.8ML Prefilled Syringe", 80, (2, 1, "d"), 2)
    assert found(catalog.duplicate_therapy, apixaban, enoxaparin)


# --- held-out v21: pre-excited AF, diabetes drugs in pregnancy -----------------------------------------------

DILTIAZEM_IV = drug("dil", "diltiazem hydrochloride 5 MG/ML Injectable Solution", 20)


@pytest.mark.parametrize(
    ("resources", "raised"),
    [
        (
            (DILTIAZEM_IV, condition("Wolff-Parkinson-White pattern", "wpw"), problem("atrial-fibrillation")),
            True,
        ),
        (
            (
                drug("dig", "digoxin 0.125 MG Oral Tablet"),
                condition("WPW", "wpw"),
                problem("atrial-fibrillation"),
            ),
            True,
        ),
        ((DILTIAZEM_IV, problem("atrial-fibrillation")), False),  # no accessory pathway on record
        ((DILTIAZEM_IV, condition("Wolff-Parkinson-White pattern", "wpw")), False),  # no fibrillation
        (
            (
                drug("met", "metoprolol tartrate 25 MG Oral Tablet"),
                condition("WPW", "wpw"),
                problem("atrial-fibrillation"),
            ),
            False,
        ),
    ],
)
def test_av_nodal_blockers_in_pre_excited_atrial_fibrillation(
    resources: tuple[JsonDict, ...], raised: bool
) -> None:
    findings = found(label_checks.av_nodal_blocker_pre_excited_af, *resources)
    assert bool(findings) is raised
    if raised:
        assert findings[0].severity == "critical"


@pytest.mark.parametrize(
    ("display", "raised"),
    [
        ("empagliflozin 25 MG Oral Tablet (Jardiance)", True),
        ("semaglutide 1 MG/DOSE Pen Injector (Ozempic)", True),
        ("sitagliptin 100 MG Oral Tablet", True),
        ("metformin hydrochloride 1000 MG Oral Tablet", False),
        ("insulin glargine 100 UNT/ML Pen Injector", False),
    ],
)
def test_glucose_lowering_drugs_to_switch_in_pregnancy(display: str, raised: bool) -> None:
    findings = found(
        label_checks.diabetes_drugs_in_pregnancy, drug("dm", display), problem("pregnancy"), age=34
    )
    assert bool(findings) is raised
    assert not found(label_checks.diabetes_drugs_in_pregnancy, drug("dm", display), age=34)


# --- held-out v21: C. difficile, super-potent steroids, ketorolac, DAPT after stroke ---------------------------


def _onset(resource: JsonDict, days_ago: int) -> JsonDict:
    dated = copy.deepcopy(resource)
    dated["onsetDateTime"] = on(days_ago)
    return dated


METRONIDAZOLE = drug("mtz", "metronidazole 500 MG Oral Tablet (Flagyl)", 500, (3, 1, "d"), days_ago=1)
CDI = condition("Clostridioides difficile infection", "cdi")


@pytest.mark.parametrize(
    ("resources", "raised"),
    [
        ((METRONIDAZOLE, CDI), True),
        ((METRONIDAZOLE, CDI, drug("vanc", "vancomycin 125 MG Oral Capsule", 125, (4, 1, "d"), 1)), False),
        (
            (
                METRONIDAZOLE,
                CDI,
                drug("fdx", "fidaxomicin 200 MG Oral Tablet (Dificid)", 200, (2, 1, "d"), 1),
            ),
            False,
        ),
        (
            (METRONIDAZOLE, CDI, drug("vanc", "vancomycin 1 GM Injection", 1000, (2, 1, "d"), 1)),
            True,
        ),  # IV only
        ((METRONIDAZOLE, _past(CDI)), False),  # resolved: another indication
        ((METRONIDAZOLE, problem("hypertension")), False),
    ],
)
def test_metronidazole_for_c_difficile(resources: tuple[JsonDict, ...], raised: bool) -> None:
    assert bool(found(label_limits.metronidazole_for_c_difficile, *resources)) is raised


CLOBETASOL = drug("clob", "clobetasol propionate 0.05 % Topical Ointment (Temovate)")


@pytest.mark.parametrize(("age", "raised"), [(0, True), (11, True), (12, False), (30, False)])
def test_super_potent_topical_steroids_under_12(age: int, raised: bool) -> None:
    assert bool(found(label_limits.super_potent_steroid_child, CLOBETASOL, age=age)) is raised
    hydrocortisone = drug("hc", "hydrocortisone 2.5 % Topical Cream")
    assert not found(label_limits.super_potent_steroid_child, hydrocortisone, age=age)


def _ketorolac_iv(mg: float) -> JsonDict:
    order = drug("ket", "ketorolac tromethamine 30 MG/ML Injection", mg, (1, 1, "d"), 0)
    order["dosageInstruction"][0]["route"] = {"text": "Intravenous route"}
    return order


@pytest.mark.parametrize(
    ("age", "kg", "mg", "raised"),
    [
        (78, 70, 15, False),
        (78, 70, 16.5, False),  # within 10%
        (78, 70, 30, True),  # 65 or over: 15 mg
        (64, 70, 30, False),
        (64, 49, 30, True),  # under 50 kg
        (64, 50, 30, False),
        (9, 28, 14, False),  # 0.5 mg/kg
        (9, 28, 30, True),
        (15, 70, 30, False),  # 0.5 mg/kg is 35, capped at 30
    ],
)
def test_ketorolac_iv_by_age_and_weight(age: int, kg: float, mg: float, raised: bool) -> None:
    findings = found(
        label_limits.ketorolac_dose_age_weight, _ketorolac_iv(mg), lab("weight", kg, days_ago=1), age=age
    )
    assert bool(findings) is raised


def test_oral_ketorolac_is_not_judged_by_the_parenteral_dose() -> None:
    oral = drug("ket", "ketorolac tromethamine 10 MG Oral Tablet", 10, (4, 1, "d"))
    assert not found(label_limits.ketorolac_dose_age_weight, oral, age=80)


ASPIRIN_LOW = drug("asa", "aspirin 81 MG Delayed Release Oral Tablet", 81)
CLOPIDOGREL = drug("clop", "clopidogrel 75 MG Oral Tablet", 75)
STROKE = condition("Cerebral infarction", "cva")


@pytest.mark.parametrize(
    ("onset_days", "extra", "raised"),
    [
        (89, (), False),  # within the 21-90 day course
        (90, (), False),
        (91, (), True),
        (400, (), True),
        (400, (problem("myocardial-infarction"),), False),  # a coronary indication for two antiplatelets
    ],
)
def test_dual_antiplatelet_therapy_after_a_minor_stroke(
    onset_days: int, extra: tuple[JsonDict, ...], raised: bool
) -> None:
    resources = (ASPIRIN_LOW, CLOPIDOGREL, _onset(STROKE, onset_days), *extra)
    assert bool(found(label_limits.dual_antiplatelet_after_stroke, *resources)) is raised


def test_an_undated_stroke_or_one_antiplatelet_says_nothing() -> None:
    undated = copy.deepcopy(STROKE)
    undated.pop("onsetDateTime", None)
    assert not found(label_limits.dual_antiplatelet_after_stroke, ASPIRIN_LOW, CLOPIDOGREL, undated)
    assert not found(label_limits.dual_antiplatelet_after_stroke, CLOPIDOGREL, _onset(STROKE, 400))


@pytest.mark.parametrize(
    ("age", "display", "raised"),
    [
        (81, "estradiol 1 MG Oral Tablet (Estrace)", True),
        (65, "estradiol 0.05 MG/DAY Transdermal Patch", True),
        (64, "estradiol 1 MG Oral Tablet (Estrace)", False),
        (81, "estradiol 0.1 MG/GM Vaginal Cream", False),  # low-dose vaginal estrogen is acceptable
    ],
)
def test_beers_systemic_estrogen_from_65(age: int, display: str, raised: bool) -> None:
    assert bool(found(gaps.beers_systemic_estrogen, drug("e2", display), age=age)) is raised


def _cyp2c19(text: str) -> JsonDict:
    return named_result("cyp2c19", "CYP2C19 genotype", text=text)


@pytest.mark.parametrize(
    ("genotype", "raised"),
    [
        ("*2/*2 - poor metabolizer", True),
        ("*1/*2 (intermediate metabolizer)", True),
        ("*1/*1 normal metabolizer", False),
        ("*1/*17 rapid metabolizer", False),
        ("pending", False),
    ],
)
def test_clopidogrel_with_reduced_cyp2c19_function(genotype: str, raised: bool) -> None:
    resources = (CLOPIDOGREL, problem("myocardial-infarction"), _cyp2c19(genotype))
    findings = found(label_checks.clopidogrel_cyp2c19_reduced_function, *resources)
    assert bool(findings) is raised


def test_clopidogrel_genotype_without_a_vascular_indication_is_quiet() -> None:
    resources = (CLOPIDOGREL, problem("hypertension"), _cyp2c19("*2/*2 - poor metabolizer"))
    assert not found(label_checks.clopidogrel_cyp2c19_reduced_function, *resources)


def _hpv(days_ago: int, resource_id: str | None = None) -> JsonDict:
    record = _menacwy(days_ago)
    record["id"] = resource_id or f"hpv-{days_ago}"
    record["vaccineCode"] = {
        "coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "165"}],
        "text": "HPV9 (Gardasil 9)",
    }
    return record


HISTORY = _menacwy(100)  # the chart records immunisations: an absent HPV dose is a gap, not silence


@pytest.mark.parametrize(
    ("age", "given", "raised"),
    [
        (10, (HISTORY,), False),
        (11, (HISTORY,), True),
        (26, (HISTORY,), True),
        (27, (HISTORY,), False),  # 27-45 is a shared decision
        (13, (), False),  # no immunisation history at all: the record is silent
        # begun before 15: the second dose is due 6 months after the first
        (13, (HISTORY, _hpv(182)), False),
        (13, (HISTORY, _hpv(183)), True),
        # begun at 15 or later: three doses, the second 1-2 months after the first
        (17, (HISTORY, _hpv(60)), False),
        (17, (HISTORY, _hpv(61)), True),
        (13, (HISTORY, _hpv(400, "hpv-1"), _hpv(100, "hpv-2")), False),  # two doses: the interval is unread
    ],
)
def test_hpv_series_from_11_through_26(age: int, given: tuple[JsonDict, ...], raised: bool) -> None:
    findings = found(vaccines.hpv_vaccine_due, *given, age=age)
    assert bool(findings) is raised
    if raised:
        assert findings[0].evidence == ("kb.acip-hpv-through-26",) and findings[0].severity == "info"


def test_hpv_vaccine_waits_until_after_pregnancy() -> None:
    assert found(vaccines.hpv_vaccine_due, HISTORY, age=22)
    assert not found(vaccines.hpv_vaccine_due, HISTORY, problem("pregnancy"), age=22)
