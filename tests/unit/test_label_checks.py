"""plugin/rules/label_checks.py: each rule positive and negative, its age and dose boundaries, MedicationRequest,
MedicationStatement and draft orders; and the entries the other rule modules now cite (ondansetron, linezolid,
saxagliptin, acetaminophen, sitagliptin, alendronate)."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from plugin.context.build import build_context
from plugin.knowledge import load_knowledge_base
from plugin.rules import catalog, high_harm, label_checks, registry
from plugin.rules.catalog import Rule
from plugin.rules.dose_range import DoseRangeError, dose_range, dose_table, parse_dose_table
from plugin.rules.label_checks import LABEL_CHECK_RULES
from plugin.rules.model import Finding, RuleFacts
from plugin.rules.override_reasons import override_reasons
from plugin.rules.renal_rules import KIDNEY_RULES
from tests.support.charts import NOW, JsonDict, add_entry, draft_orders
from tests.support.rule_cases import PATIENT_ID, Chart, lab, on, problem
from tests.unit.test_high_harm import ICD10, SNOMED, condition, draft, ref, refs, rx, statement

pytestmark = pytest.mark.unit


def build(*items: JsonDict, drafts: tuple[JsonDict, ...] = (), age: int = 50, gender: str = "female") -> Any:
    """A chart with any of our resources: statements and procedures go in by prefetch key."""
    by_key = {"MedicationStatement": "medications", "Procedure": "procedures"}
    extra = [r for r in items if r["resourceType"] in by_key]
    chart = Chart(age=age, gender=gender, resources=tuple(r for r in items if r not in extra), drafts=drafts)
    prefetch = chart.prefetch()
    for item in extra:
        key = by_key[item["resourceType"]]
        prefetch.setdefault(key, {"resourceType": "Bundle", "type": "searchset", "entry": []})
        add_entry(prefetch, key, item)
    built = build_context(prefetch, NOW, draft_orders=draft_orders(*drafts) if drafts else None)
    assert built.context.skipped == ()
    return built


def run(rule: Rule, *items: JsonDict, **chart: Any) -> list[Finding]:
    return list(rule(RuleFacts.of(build(*items, **chart).context)))


KNOWLEDGE = load_knowledge_base()


def one(rule: Rule, *items: JsonDict, **chart: Any) -> tuple[Finding, Any]:
    built = build(*items, **chart)
    found = list(rule(RuleFacts.of(built.context)))
    assert len(found) == 1, found
    finding = found[0]
    check_card(finding)
    return finding, built


def check_card(finding: Finding) -> None:
    """The conventions: known evidence, severity of the first entry, short option summary, one sentence."""
    assert all(kb in KNOWLEDGE for kb in finding.evidence), finding.evidence
    first = KNOWLEDGE.get(finding.evidence[0])
    assert first is not None and finding.severity == first.severity_hint, (finding.rule_id, finding.evidence)
    assert len(finding.summary) < 140 and "consider" in finding.summary, finding.summary
    assert finding.explanation.endswith(".") and finding.explanation.count(". ") == 0, finding.explanation
    assert set(finding.proposed) <= set(finding.inputs)


def pair(rule_id: str) -> Rule:
    (found,) = [r for r in LABEL_CHECK_RULES if getattr(r, "rule_id", None) == rule_id]
    return found


def procedure(rid: str, code: str, display: str, days_ago: int | None) -> JsonDict:
    resource: JsonDict = {
        "resourceType": "Procedure",
        "id": rid,
        "status": "completed",
        "code": {"coding": [{"system": SNOMED, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    if days_ago is not None:
        resource["performedDateTime"] = f"{on(days_ago)}T08:00:00Z"
    return resource


SERTRALINE = rx("sertraline", "sertraline 50 MG Oral Tablet")
SERTRALINE_STATEMENT = statement("sertraline-s", "sertraline 50 MG Oral Tablet")
IBUPROFEN = rx("ibuprofen", "Ibuprofen 400 MG Oral Tablet", per="3 per 1 d")
IBUPROFEN_DRAFT = draft("draft-ibuprofen", "Ibuprofen 400 MG Oral Tablet")
WARFARIN = rx("warfarin", "Warfarin Sodium 5 MG Oral Tablet")
ASPIRIN_81 = rx("aspirin", "aspirin 81 MG Oral Tablet")
CLOPIDOGREL = rx("clopidogrel", "Clopidogrel 75 MG Oral Tablet")
CIPROFLOXACIN = rx("cipro", "Ciprofloxacin 500 MG Oral Tablet", per="2 per 1 d")
CIPRO_DRAFT = draft("draft-cipro", "Ciprofloxacin 500 MG Oral Tablet")
DOXYCYCLINE = rx("doxy", "doxycycline hyclate 100 MG Oral Tablet", per="2 per 1 d")
CALCIUM = statement("calcium", "calcium carbonate 500 MG Oral Tablet")
RIVAROXABAN = rx("rivaroxaban", "rivaroxaban 20 MG Oral Tablet")
APIXABAN = rx("apixaban", "apixaban 5 MG Oral Tablet", per="2 per 1 d")
DABIGATRAN = rx("dabigatran", "dabigatran etexilate 150 MG Oral Capsule", per="2 per 1 d")
PREDNISONE = rx("prednisone", "predniSONE 20 MG Oral Tablet")
HEART_FAILURE = condition("hf", SNOMED, "88805009", "Chronic congestive heart failure (disorder)")
ATRIAL_FIBRILLATION = condition("af", SNOMED, "49436004", "Atrial fibrillation (disorder)")
VALVE = condition("valve", ICD10, "Z95.2", "Presence of prosthetic heart valve")
MYASTHENIA = condition("mg", SNOMED, "91637004", "Myasthenia gravis (disorder)")
ULCER = condition("ulcer", SNOMED, "13200003", "Peptic ulcer (disorder)")
GI_BLEED = condition("bleed", ICD10, "K92.2", "Gastrointestinal hemorrhage, unspecified")
DEMENTIA = condition("dementia", SNOMED, "52448006", "Dementia (disorder)")
SMOKER = condition("smoker", SNOMED, "449868002", "Smokes tobacco daily (finding)")
CIGARETTES = condition("cigarettes", ICD10, "F17.210", "Nicotine dependence, cigarettes, uncomplicated")
MI = condition("mi", SNOMED, "22298006", "Myocardial infarction (disorder)")
BIPOLAR = condition("bipolar", SNOMED, "13746004", "Bipolar disorder (disorder)")
COC = rx("coc", "levonorgestrel 0.15 MG / ethinyl estradiol 0.03 MG Oral Tablet")
TONSILLECTOMY = procedure("tonsils", "173422009", "Tonsillectomy", 5)
CODEINE = rx("codeine", "Acetaminophen 300 MG / Codeine Phosphate 30 MG Oral Tablet", per="4 per 1 d")


# --- pairs ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partner", "age"), [(IBUPROFEN, 65), (WARFARIN, 50)], ids=["nsaid-at-65", "anticoagulant"]
)
def test_ssri_with_an_nsaid_or_anticoagulant_is_a_bleeding_warning(partner: JsonDict, age: int) -> None:
    finding, built = one(pair("rule.ssri-snri-bleeding"), SERTRALINE, partner, age=age)
    assert (finding.severity, finding.evidence) == ("warning", ("kb.ssri-bleeding-with-nsaid-anticoagulant",))
    assert refs(built, finding.inputs) == {ref(SERTRALINE), ref(partner)}
    assert finding.proposed == ()


@pytest.mark.parametrize(
    ("extra", "age", "fires"),
    [
        ((), 64, False),  # a healthy adult's occasional NSAID: no GI risk factor
        ((), 65, True),
        ((ULCER,), 40, True),  # an ulcer on record
        ((rx("pred", "predniSONE 10 MG Oral Tablet"),), 40, True),  # a systemic steroid
        (
            (rx("flut", "fluticasone propionate 50 MCG/ACTUATION Nasal Spray"),),
            40,
            False,
        ),  # a nasal one is not
    ],
)
def test_an_nsaid_beside_an_ssri_needs_a_gi_bleeding_risk_factor(
    extra: tuple[JsonDict, ...], age: int, fires: bool
) -> None:
    assert bool(run(pair("rule.ssri-snri-bleeding"), SERTRALINE, IBUPROFEN, *extra, age=age)) is fires


def test_ssri_statement_with_a_draft_nsaid_names_the_draft() -> None:
    finding, built = one(
        pair("rule.ssri-snri-bleeding"), SERTRALINE_STATEMENT, drafts=(IBUPROFEN_DRAFT,), age=70
    )
    assert refs(built, finding.proposed) == {ref(IBUPROFEN_DRAFT)}


def test_ssri_with_low_dose_aspirin_alone_is_left_to_other_rules() -> None:
    assert run(pair("rule.ssri-snri-bleeding"), SERTRALINE, ASPIRIN_81) == []


@pytest.mark.parametrize(
    ("ppi", "fires"), [("omeprazole", True), ("esomeprazole", True), ("pantoprazole", False)]
)
def test_clopidogrel_with_omeprazole_or_esomeprazole(ppi: str, fires: bool) -> None:
    proton = statement("ppi", f"{ppi} 20 MG Delayed Release Oral Capsule")
    found = run(pair("rule.clopidogrel-omeprazole"), CLOPIDOGREL, proton)
    assert [f.severity for f in found] == (["warning"] if fires else [])
    if fires:
        check_card(found[0])
        assert "pantoprazole" in found[0].summary


@pytest.mark.parametrize(
    ("partner", "fires"),
    [
        ("clarithromycin 500 MG Oral Tablet", True),
        ("voriconazole 200 MG Oral Tablet", True),
        ("Fluconazole 150 MG Oral Tablet", True),
        ("ritonavir 100 MG Oral Tablet", True),
        ("diltiazem 180 MG 24HR Extended Release Oral Capsule", True),
        ("verapamil 120 MG Oral Tablet", True),
        ("Azithromycin 250 MG Oral Tablet", False),
        ("Amoxicillin 500 MG Oral Capsule", False),
        ("amlodipine 10 MG Oral Tablet", False),
    ],
)
def test_calcineurin_inhibitor_with_cyp3a4_inhibitors(partner: str, fires: bool) -> None:
    tacrolimus = rx("tacrolimus", "tacrolimus 1 MG Oral Capsule", per="2 per 1 d")
    found = run(pair("rule.calcineurin-cyp3a4-inhibitor"), tacrolimus, drafts=(draft("draft-x", partner),))
    assert [f.severity for f in found] == (["critical"] if fires else [])
    if fires:
        check_card(found[0])


@pytest.mark.parametrize(
    ("doac", "inhibitor", "evidence"),
    [
        (RIVAROXABAN, "Ketoconazole 200 MG Oral Tablet", "kb.rivaroxaban-strong-cyp3a4-pgp-inhibitors"),
        (APIXABAN, "itraconazole 100 MG Oral Capsule", "kb.apixaban-strong-cyp3a4-pgp-inhibitors"),
        (APIXABAN, "ritonavir 100 MG Oral Tablet", "kb.apixaban-strong-cyp3a4-pgp-inhibitors"),
        (
            RIVAROXABAN,
            "Prezcobix (darunavir 800 mg / cobicistat 150 mg) tablet",
            "kb.rivaroxaban-strong-cyp3a4-pgp-inhibitors",
        ),
        (
            APIXABAN,
            "posaconazole 100 MG Delayed Release Oral Tablet",
            "kb.apixaban-strong-cyp3a4-pgp-inhibitors",
        ),
    ],
)
def test_doac_with_combined_pgp_cyp3a4_inhibitors(doac: JsonDict, inhibitor: str, evidence: str) -> None:
    finding, _ = one(pair("rule.doac-pgp-cyp3a4-inhibitor"), doac, statement("inh", inhibitor))
    assert (finding.severity, finding.evidence) == ("warning", (evidence,))


@pytest.mark.parametrize(
    ("doac", "inhibitor"),
    [
        (DABIGATRAN, "Ketoconazole 200 MG Oral Tablet"),  # dabigatran: a P-gp substrate only, another label
        (RIVAROXABAN, "Fluconazole 150 MG Oral Tablet"),  # moderate CYP3A4, no P-gp
        (APIXABAN, "clarithromycin 500 MG Oral Tablet"),
    ],
)
def test_doac_with_other_inhibitors_is_silent(doac: JsonDict, inhibitor: str) -> None:
    assert run(pair("rule.doac-pgp-cyp3a4-inhibitor"), doac, statement("inh", inhibitor)) == []


@pytest.mark.parametrize(
    ("partner", "fires"),
    [
        ("lisinopril 10 MG Oral Tablet", True),
        ("losartan potassium 50 MG Oral Tablet", True),
        ("Hydrochlorothiazide 25 MG Oral Tablet", True),
        ("Naproxen 500 MG Oral Tablet", True),
        ("aspirin 81 MG Oral Tablet", False),
        ("Furosemide 20 MG Oral Tablet", False),
    ],
)
def test_lithium_with_drugs_that_cut_its_clearance(partner: str, fires: bool) -> None:
    lithium = rx("lithium", "lithium carbonate 300 MG Oral Capsule", per="2 per 1 d")
    found = run(pair("rule.lithium-clearance"), lithium, drafts=(draft("draft-x", partner),))
    assert [f.severity for f in found] == (["warning"] if fires else [])
    if fires:
        check_card(found[0])
        assert found[0].order_lab is not None and found[0].order_lab.loinc == "14334-7"


def test_triptan_with_ssri_is_information() -> None:
    sumatriptan = statement("suma", "sumatriptan 50 MG Oral Tablet")
    finding, _ = one(pair("rule.triptan-ssri-snri"), sumatriptan, SERTRALINE)
    assert finding.severity == "info"
    assert run(pair("rule.triptan-ssri-snri"), sumatriptan, IBUPROFEN) == []


@pytest.mark.parametrize(
    ("antibiotic", "cation", "fires"),
    [
        (CIPROFLOXACIN, CALCIUM, True),
        (DOXYCYCLINE, statement("iron", "ferrous sulfate 325 MG Oral Tablet"), True),
        (CIPROFLOXACIN, statement("mag", "magnesium oxide 400 MG Oral Tablet"), True),
        (CIPROFLOXACIN, statement("iv-iron", "iron sucrose 20 MG/ML Injectable Solution"), False),
        (CIPROFLOXACIN, statement("d", "cholecalciferol 1000 UNT Oral Tablet"), False),
    ],
)
def test_chelation_of_fluoroquinolones_and_tetracyclines(
    antibiotic: JsonDict, cation: JsonDict, fires: bool
) -> None:
    found = run(pair("rule.chelation-antibiotic"), antibiotic, cation)
    assert [f.severity for f in found] == (["warning"] if fires else [])
    if fires:
        check_card(found[0])


def test_chelation_with_a_draft_antibiotic() -> None:
    finding, built = one(pair("rule.chelation-antibiotic"), CALCIUM, drafts=(CIPRO_DRAFT,))
    assert refs(built, finding.proposed) == {ref(CIPRO_DRAFT)}


@pytest.mark.parametrize(
    ("binder", "fires"),
    [(CALCIUM, True), (statement("iron", "ferrous sulfate 325 MG Oral Tablet"), True), (SERTRALINE, False)],
)
def test_levothyroxine_with_binders_is_information(binder: JsonDict, fires: bool) -> None:
    levothyroxine = rx("levo", "Levothyroxine Sodium 0.075 MG Oral Tablet")
    found = run(pair("rule.levothyroxine-binding"), levothyroxine, binder)
    assert [f.severity for f in found] == (["info"] if fires else [])


@pytest.mark.parametrize(
    ("steroid", "fires"),
    [
        (PREDNISONE, True),
        (rx("dex", "dexamethasone 4 MG Oral Tablet"), True),
        (rx("hc", "hydrocortisone 10 MG/ML Topical Cream"), False),
        (rx("flut", "fluticasone propionate 0.05 MG/ACTUAT Metered Dose Nasal Spray"), False),
    ],
)
def test_fluoroquinolone_with_a_systemic_corticosteroid(steroid: JsonDict, fires: bool) -> None:
    found = run(pair("rule.fluoroquinolone-corticosteroid"), steroid, drafts=(CIPRO_DRAFT,))
    assert [f.severity for f in found] == (["warning"] if fires else [])
    if fires:
        check_card(found[0])


def test_ibuprofen_with_low_dose_aspirin() -> None:
    finding, built = one(label_checks.ibuprofen_low_dose_aspirin, ASPIRIN_81, drafts=(IBUPROFEN_DRAFT,))
    assert finding.severity == "warning" and refs(built, finding.proposed) == {ref(IBUPROFEN_DRAFT)}
    analgesic_aspirin = rx("asa", "aspirin 325 MG Oral Tablet", per="4 per 1 d")
    assert run(label_checks.ibuprofen_low_dose_aspirin, IBUPROFEN, analgesic_aspirin) == []
    assert (
        run(label_checks.ibuprofen_low_dose_aspirin, rx("nap", "Naproxen 500 MG Oral Tablet"), ASPIRIN_81)
        == []
    )


# --- citalopram dose --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "mg", "per", "fires"),
    [
        (59, 40, "1 per 1 d", False),  # the adult limit
        (59, 60, "1 per 1 d", True),
        (59, 20, "3 per 1 d", True),  # 60 mg a day from the structured dosage
        (60, 20, "1 per 1 d", False),  # from 60, 20 mg is the limit
        (60, 40, "1 per 1 d", True),
        (61, 20, "2 per 1 d", True),
    ],
)
def test_citalopram_dose_limits(age: int, mg: int, per: str, fires: bool) -> None:
    drug = rx("cit", f"citalopram {mg} MG Oral Tablet", per=per)
    found = run(label_checks.citalopram_qt_dose, drug, age=age)
    assert [f.severity for f in found] == (["warning"] if fires else [])
    if fires:
        check_card(found[0])


def test_citalopram_statement_and_draft() -> None:
    found = run(label_checks.citalopram_qt_dose, statement("cit", "citalopram 40 MG Oral Tablet"), age=70)
    assert len(found) == 1
    finding, _ = one(
        label_checks.citalopram_qt_dose, drafts=(draft("draft-cit", "citalopram 40 MG Oral Tablet"),), age=65
    )
    assert finding.proposed == finding.inputs and "20 mg" in finding.summary


@pytest.mark.parametrize(
    ("mg", "partner", "fires"),
    [
        (40, "omeprazole 40 MG Delayed Release Oral Capsule", True),
        (20, "omeprazole 40 MG Delayed Release Oral Capsule", False),  # at the cap
        (30, "esomeprazole magnesium 40 MG Delayed Release Oral Capsule", True),
        (40, "pantoprazole sodium 40 MG Delayed Release Oral Tablet", False),  # negligible CYP2C19 inhibition
        (40, "cimetidine 400 MG Oral Tablet", True),
    ],
)
def test_citalopram_capped_at_20_mg_with_a_cyp2c19_inhibitor(mg: int, partner: str, fires: bool) -> None:
    found = run(
        label_checks.citalopram_qt_dose,
        rx("cit", f"citalopram {mg} MG Oral Tablet"),
        rx("inh", partner),
        age=54,
    )
    assert bool(found) is fires
    if fires:
        assert "CYP2C19" in found[0].summary and len(found[0].inputs) == 2


def test_citalopram_dose_unreadable_is_not_flagged() -> None:
    assert run(label_checks.citalopram_qt_dose, rx("cit", "citalopram", dose=None, per=None), age=70) == []


# --- drug and condition ------------------------------------------------------------------------------------


@pytest.mark.parametrize("doac", [DABIGATRAN, APIXABAN, RIVAROXABAN])
def test_doac_with_a_prosthetic_valve_is_critical(doac: JsonDict) -> None:
    finding, built = one(label_checks.DOAC_MECHANICAL_VALVE, VALVE, doac)
    assert finding.severity == "critical" and refs(built, finding.inputs) == {ref(VALVE), ref(doac)}
    assert "mechanical" in finding.summary


def test_warfarin_with_a_valve_or_doac_without_one_is_silent() -> None:
    assert run(label_checks.DOAC_MECHANICAL_VALVE, VALVE, WARFARIN) == []
    assert run(label_checks.DOAC_MECHANICAL_VALVE, ATRIAL_FIBRILLATION, APIXABAN) == []


def test_fluoroquinolone_in_myasthenia_gravis() -> None:
    finding, built = one(label_checks.FLUOROQUINOLONE_MYASTHENIA, MYASTHENIA, drafts=(CIPRO_DRAFT,))
    assert finding.severity == "critical" and refs(built, finding.proposed) == {ref(CIPRO_DRAFT)}
    assert run(label_checks.FLUOROQUINOLONE_MYASTHENIA, MYASTHENIA, DOXYCYCLINE) == []
    assert run(label_checks.FLUOROQUINOLONE_MYASTHENIA, CIPROFLOXACIN) == []


@pytest.mark.parametrize("history", [ULCER, GI_BLEED])
def test_nsaid_after_ulcer_or_bleed(history: JsonDict) -> None:
    finding, _ = one(label_checks.nsaid_peptic_ulcer, history, IBUPROFEN)
    assert finding.severity == "warning" and "PPI" in finding.summary
    protected, _ = one(
        label_checks.nsaid_peptic_ulcer, history, IBUPROFEN, statement("ppi", "omeprazole 20 MG Oral Capsule")
    )
    assert "PPI" not in protected.summary


def test_nsaid_without_ulcer_or_low_dose_aspirin_with_ulcer_is_silent() -> None:
    assert run(label_checks.nsaid_peptic_ulcer, IBUPROFEN) == []
    assert run(label_checks.nsaid_peptic_ulcer, ULCER, ASPIRIN_81) == []


@pytest.mark.parametrize(
    ("age", "days_ago", "fires"),
    [
        (11, 5, False),
        (12, 5, True),
        (17, 5, True),
        (18, 5, False),
        (15, 30, True),
        (15, 31, False),
        (15, None, True),
    ],
)
def test_codeine_after_tonsillectomy(age: int, days_ago: int | None, fires: bool) -> None:
    operation = procedure("tonsils", "173422009", "Tonsillectomy", days_ago)
    found = run(label_checks.codeine_after_tonsillectomy, operation, CODEINE, age=age)
    assert [f.severity for f in found] == (["critical"] if fires else [])
    if fires:
        check_card(found[0])


def test_tramadol_draft_after_tonsillectomy_and_codeine_without_one() -> None:
    tramadol = draft("draft-tramadol", "tramadol hydrochloride 50 MG Oral Tablet")
    finding, built = one(label_checks.codeine_after_tonsillectomy, TONSILLECTOMY, drafts=(tramadol,), age=14)
    assert refs(built, finding.inputs) == {ref(TONSILLECTOMY), ref(tramadol)}
    assert run(label_checks.codeine_after_tonsillectomy, CODEINE, age=14) == []


def _problem_text(text: str, days_ago: int | None) -> JsonDict:
    problem = condition("tonsils-problem", "", "", text)
    problem["code"] = {"text": text}
    if days_ago is None:
        del problem["onsetDateTime"]
    else:
        problem["onsetDateTime"] = on(days_ago)
    return problem


@pytest.mark.parametrize(
    ("days_ago", "fires"), [(3, True), (30, True), (31, False), (900, False), (None, True)]
)
def test_a_tonsillectomy_on_the_problem_list_counts_while_recent(days_ago: int | None, fires: bool) -> None:
    operation = _problem_text("Status post tonsillectomy and adenoidectomy", days_ago)
    found = run(label_checks.codeine_after_tonsillectomy, operation, CODEINE, age=15)
    assert bool(found) is fires


def test_sleep_apnoea_is_shown_beside_the_tonsillectomy() -> None:
    apnoea = condition("osa", SNOMED, "78275009", "Obstructive sleep apnea syndrome")
    finding, built = one(label_checks.codeine_after_tonsillectomy, TONSILLECTOMY, apnoea, CODEINE, age=15)
    assert ref(apnoea) in refs(built, finding.inputs)
    assert (
        run(label_checks.codeine_after_tonsillectomy, apnoea, CODEINE, age=15) == []
    )  # apnoea alone: no card


@pytest.mark.parametrize(
    ("age", "smoking", "fires"),
    [(34, SMOKER, False), (35, SMOKER, True), (42, CIGARETTES, True), (42, None, False)],
)
def test_combined_contraceptive_in_a_smoker_over_35(age: int, smoking: JsonDict | None, fires: bool) -> None:
    items = (COC, smoking) if smoking else (COC,)
    found = run(label_checks.chc_smoking_over_35, *items, age=age)
    assert [f.severity for f in found] == (["critical"] if fires else [])
    if fires:
        check_card(found[0])


def test_progestogen_only_pill_in_a_smoker_is_silent() -> None:
    pop = statement("pop", "norethindrone 0.35 MG Oral Tablet")
    assert run(label_checks.chc_smoking_over_35, pop, SMOKER, age=40) == []


# --- age -----------------------------------------------------------------------------------------------------

PROMETHAZINE = rx("promethazine", "promethazine hydrochloride 6.25 MG/5ML Oral Solution", dose="5 mL")


@pytest.mark.parametrize(("age", "fires"), [(1, True), (2, False)])
def test_promethazine_under_2(age: int, fires: bool) -> None:
    found = [f for f in run(label_checks.paediatric_label_limits, PROMETHAZINE, age=age)]
    assert [f.rule_id for f in found] == (["rule.paediatric-promethazine"] if fires else [])
    if fires:
        check_card(found[0])
        assert found[0].severity == "critical"


@pytest.mark.parametrize(("age", "fires"), [(7, True), (8, False)])
def test_tetracycline_under_8(age: int, fires: bool) -> None:
    found = run(
        label_checks.paediatric_label_limits,
        drafts=(draft("draft-doxy", "doxycycline 100 MG Oral Tablet"),),
        age=age,
    )
    assert [f.rule_id for f in found] == (["rule.paediatric-tetracycline"] if fires else [])
    if fires:
        check_card(found[0])


@pytest.mark.parametrize(("age", "fires"), [(17, True), (18, False)])
def test_fluoroquinolone_under_18(age: int, fires: bool) -> None:
    found = run(
        label_checks.paediatric_label_limits, statement("cipro", "Ciprofloxacin 250 MG Oral Tablet"), age=age
    )
    assert [f.rule_id for f in found] == (["rule.paediatric-fluoroquinolone"] if fires else [])
    if fires:
        check_card(found[0])


VALPROATE = rx("valproate", "divalproex sodium 500 MG Delayed Release Oral Tablet", per="2 per 1 d")


@pytest.mark.parametrize(
    ("age", "gender", "fires"),
    [
        (11, "female", False),
        (12, "female", True),
        (50, "female", True),
        (51, "female", False),
        (30, "male", False),
    ],
)
def test_valproate_in_childbearing_potential(age: int, gender: str, fires: bool) -> None:
    found = run(label_checks.valproate_childbearing_potential, VALPROATE, age=age, gender=gender)
    assert [f.severity for f in found] == (["warning"] if fires else [])
    if fires:
        check_card(found[0])
        assert found[0].evidence[1] == "kb.valproate-pregnancy-prevention-programme"


def test_valproate_in_pregnancy_is_left_to_the_teratogen_rule() -> None:
    pregnant = condition("preg", SNOMED, "72892002", "Normal pregnancy")
    assert run(label_checks.valproate_childbearing_potential, VALPROATE, pregnant, age=30) == []
    draft_valproate = draft("draft-valproate", "divalproex sodium 250 MG Delayed Release Oral Tablet")
    finding, built = one(label_checks.valproate_childbearing_potential, drafts=(draft_valproate,), age=30)
    assert refs(built, finding.proposed) == {ref(draft_valproate)}


# --- older adults ----------------------------------------------------------------------------------------------


def beers(*items: JsonDict, age: int = 70, drafts: tuple[JsonDict, ...] = ()) -> dict[str, Finding]:
    found = run(label_checks.beers_label_checks, *items, age=age, drafts=drafts)
    for finding in found:
        check_card(finding)
    return {f.rule_id: f for f in found}


@pytest.mark.parametrize(
    ("drug", "rule_id"),
    [
        (rx("ami", "amitriptyline hydrochloride 25 MG Oral Tablet"), "rule.beers-anticholinergic-tca"),
        (statement("dox", "doxepin 25 MG Oral Capsule"), "rule.beers-anticholinergic-tca"),
        (rx("gly", "glyBURIDE 5 MG Oral Tablet"), "rule.beers-long-acting-sulfonylurea"),
        (rx("glim", "glimepiride 2 MG Oral Tablet"), "rule.beers-long-acting-sulfonylurea"),
        (
            rx("nap", "Naproxen 500 MG Oral Tablet", per="2 per 1 d"),
            "rule.beers-nsaid-without-gastroprotection",
        ),
        (ASPIRIN_81, "rule.beers-aspirin-primary-prevention"),
        (rx("ris", "risperidone 1 MG Oral Tablet"), "rule.beers-antipsychotic-dementia"),
    ],
)
def test_beers_at_65_not_64(drug: JsonDict, rule_id: str) -> None:
    assert set(beers(drug, DEMENTIA, age=65)) == {rule_id}
    assert beers(drug, DEMENTIA, age=64) == {}


def test_beers_exemptions() -> None:
    assert beers(statement("dox", "doxepin 6 MG Oral Tablet")) == {}  # low-dose doxepin
    assert beers(rx("glip", "glipiZIDE 5 MG Oral Tablet")) == {}  # short-acting sulfonylurea
    assert beers(rx("cel", "celecoxib 200 MG Oral Capsule")) == {}  # COX-2 selective
    assert beers(IBUPROFEN, statement("ppi", "pantoprazole 40 MG Delayed Release Oral Tablet")) == {}
    assert set(beers(IBUPROFEN, ULCER)) == set()  # rule.nsaid-peptic-ulcer speaks instead
    past_ulcer = copy.deepcopy(ULCER)
    past_ulcer["clinicalStatus"]["coding"][0]["code"] = "resolved"
    assert set(beers(IBUPROFEN, past_ulcer)) == set()  # a past ulcer too
    ketorolac_iv = draft("draft-ketorolac", "ketorolac tromethamine 15 MG/ML Injection")
    assert beers(drafts=(ketorolac_iv,)) == {}  # an injected dose is not chronic use
    assert beers(ASPIRIN_81, MI) == {}  # secondary prevention
    assert beers(ASPIRIN_81, CLOPIDOGREL) == {}  # dual antiplatelet therapy
    assert set(beers(rx("ris", "risperidone 1 MG Oral Tablet"))) == {
        "rule.beers-antipsychotic-without-indication"
    }
    assert beers(rx("ris", "risperidone 1 MG Oral Tablet"), BIPOLAR) == {}  # its indication
    assert beers(rx("pcz", "prochlorperazine 10 MG Oral Tablet")) == {}  # an antiemetic
    parkinsons = condition("pd", SNOMED, "49049000", "Parkinson's disease (disorder)")
    assert beers(rx("qtp", "quetiapine 25 MG Oral Tablet"), parkinsons) == {}  # Parkinson's psychosis
    olanzapine = rx("olz", "olanzapine 5 MG Oral Tablet")
    assert beers(olanzapine, rx("ond", "ondansetron 8 MG Oral Tablet")) == {}  # with chemotherapy antiemetics


def test_beers_anticoagulant_choice() -> None:
    on_rivaroxaban = beers(ATRIAL_FIBRILLATION, RIVAROXABAN)
    assert "apixaban" in on_rivaroxaban["rule.beers-anticoagulant-choice"].summary
    new_warfarin = draft("draft-warfarin", "Warfarin Sodium 5 MG Oral Tablet")
    starting = beers(ATRIAL_FIBRILLATION, drafts=(new_warfarin,))["rule.beers-anticoagulant-choice"]
    assert starting.proposed and "DOAC" in starting.summary
    assert beers(ATRIAL_FIBRILLATION, WARFARIN, drafts=(new_warfarin,)) == {}  # a renewal, not a start
    assert beers(ATRIAL_FIBRILLATION, VALVE, drafts=(new_warfarin,)) == {}  # valve: warfarin is right
    assert beers(ATRIAL_FIBRILLATION, APIXABAN) == {}
    assert beers(RIVAROXABAN) == {}  # no atrial fibrillation on record
    assert beers(ATRIAL_FIBRILLATION, RIVAROXABAN, age=64) == {}


# --- entries cited by the other rule modules -------------------------------------------------------------------


def test_ondansetron_in_a_qt_pair_cites_its_label() -> None:
    ondansetron = rx("ond", "ondansetron 4 MG Oral Tablet")
    citalopram = rx("cit", "citalopram 20 MG Oral Tablet")
    (finding,) = run(high_harm.QT_COMBINATION, ondansetron, citalopram)
    assert "kb.ondansetron-qt" in finding.evidence
    (without,) = run(high_harm.QT_COMBINATION, citalopram, rx("hal", "haloperidol 5 MG Oral Tablet"))
    assert "kb.ondansetron-qt" not in without.evidence


def test_linezolid_with_an_ssri_cites_the_linezolid_entry_first() -> None:
    linezolid = draft("draft-linezolid", "linezolid 600 MG Oral Tablet")
    (maoi,) = [i for i in catalog.INTERACTIONS if i.rule_id == "rule.maoi-serotonergic"]
    (finding,) = run(maoi, SERTRALINE, drafts=(linezolid,))
    assert finding.evidence[0] == "kb.linezolid-serotonergic" and finding.severity == "critical"
    (other,) = run(maoi, SERTRALINE, rx("phen", "phenelzine 15 MG Oral Tablet"))
    assert other.evidence == ("kb.ssri-snri-maoi-contraindicated",)


@pytest.mark.parametrize(
    ("drug", "fires"),
    [
        ("saxagliptin 5 MG Oral Tablet", True),
        ("alogliptin 25 MG Oral Tablet", True),
        ("sitagliptin 100 MG Oral Tablet", False),
    ],
)
def test_saxagliptin_and_alogliptin_in_heart_failure(drug: str, fires: bool) -> None:
    found = run(catalog.heart_failure_harm, HEART_FAILURE, drafts=(draft("draft-dpp4", drug),))
    assert [f.evidence for f in found] == ([("kb.saxagliptin-alogliptin-heart-failure",)] if fires else [])
    if fires:
        check_card(found[0])


def test_acetaminophen_over_the_daily_maximum_cites_its_entry() -> None:
    order = draft("draft-apap", "Acetaminophen 500 MG Oral Tablet", dose="2 tablet", per="5 per 1 d")
    (finding,) = run(dose_range, drafts=(order,))
    assert finding.evidence == ("kb.dose-range-limits", "kb.acetaminophen-daily-maximum")
    assert dose_table().limits["acetaminophen"].kb == "kb.acetaminophen-daily-maximum"
    assert dose_table().limits["ibuprofen"].kb is None


@pytest.mark.parametrize("bad", ["acetaminophen-daily-maximum", "kb.Bad_Id", 7])
def test_the_dose_table_refuses_a_malformed_kb(bad: object) -> None:
    raw = json.loads(
        resources.files("plugin").joinpath("knowledge/dose_ranges.json").read_text(encoding="utf-8")
    )
    broken = copy.deepcopy(raw)
    broken["limits"][0]["kb"] = bad
    with pytest.raises(DoseRangeError, match="kb must be"):
        parse_dose_table(broken)


def _renal(*items: JsonDict, age: int = 70) -> list[Finding]:
    facts = RuleFacts.of(build(*items, age=age).context)
    return [f for rule in KIDNEY_RULES for f in rule(facts) if f.rule_id == "rule.renal-dose-crcl"]


def test_sitagliptin_renal_dose_is_information() -> None:
    sitagliptin = rx("sita", "sitagliptin 100 MG Oral Tablet")
    (finding,) = _renal(sitagliptin, lab("egfr", 40))
    assert finding.evidence == ("kb.sitagliptin-renal-dose",) and "50 mg" in finding.summary
    assert finding.severity == "info"
    (low,) = _renal(sitagliptin, lab("egfr", 25))
    assert "25 mg" in low.summary
    assert _renal(sitagliptin, lab("egfr", 45)) == []


@pytest.mark.parametrize(("creatinine", "fires"), [(1.5, True), (1.2, False)])
def test_alendronate_below_crcl_35(creatinine: float, fires: bool) -> None:
    # Cockcroft-Gault, female, 70 years, 60 kg: creatinine 1.5 gives 33 mL/min, 1.2 gives 41.
    alendronate = rx("alen", "alendronic acid 70 MG Oral Tablet", per="1 per 1 wk")
    found = _renal(alendronate, lab("creatinine", creatinine), lab("weight", 60))
    assert [(f.severity, f.evidence) for f in found] == (
        [("warning", ("kb.bisphosphonate-oral-administration",))] if fires else []
    )


# --- wiring ----------------------------------------------------------------------------------------------------


def test_every_label_rule_is_registered_and_has_its_own_override_reasons() -> None:
    from tests.unit.test_rules import rule_ids

    ids = {i for rule in LABEL_CHECK_RULES for i in rule_ids(rule)}
    assert len(ids) >= 20, ids
    assert all(rule in registry.MEDICATION_RULES for rule in LABEL_CHECK_RULES)
    table = override_reasons()
    assert sorted(i for i in ids if table.specific(i) is None) == []


@pytest.mark.parametrize(
    ("items", "fires"),
    [
        ((ASPIRIN_81, CLOPIDOGREL, ULCER), True),  # dual antiplatelet therapy after an ulcer
        ((WARFARIN, CLOPIDOGREL, ULCER), True),  # an anticoagulant with an antiplatelet
        (
            (ASPIRIN_81, CLOPIDOGREL, ULCER, rx("ppi", "pantoprazole 40 MG Delayed Release Oral Tablet")),
            False,
        ),
        ((ASPIRIN_81, CLOPIDOGREL), False),  # no ulcer or bleed on record
        ((CLOPIDOGREL, ULCER), False),  # one antithrombotic
    ],
)
def test_two_antithrombotics_after_an_ulcer_need_a_ppi(items: tuple[JsonDict, ...], fires: bool) -> None:
    assert bool(run(label_checks.antithrombotics_without_gastroprotection, *items)) is fires


LEVOTHYROXINE = {**rx("levo", "Levothyroxine Sodium 0.1 MG Oral Tablet"), "authoredOn": on(400)}
CALCIUM = {**rx("ca", "calcium carbonate 600 MG Oral Tablet"), "authoredOn": on(400)}


def _tsh(value: float) -> JsonDict:
    return lab("tsh", value, days_ago=30)


@pytest.mark.parametrize(
    ("extra", "fires"),
    [
        ((), True),  # no current TSH: spacing advice stands
        ((_tsh(2.1),), False),  # established pair, TSH in range: evidently spaced well enough
        ((_tsh(4.5),), False),
        ((_tsh(4.6),), True),
        ((_tsh(0.3),), False),  # over-replacement: a binder does not cause it
        ((_tsh(2.1), rx("fe", "ferrous sulfate 325 MG Oral Tablet")), True),  # a binder started 30 days ago
    ],
)
def test_levothyroxine_with_a_binder_is_raised_when_the_tsh_says_it_may_matter(
    extra: tuple[JsonDict, ...], fires: bool
) -> None:
    assert bool(run(pair("rule.levothyroxine-binding"), LEVOTHYROXINE, CALCIUM, *extra)) is fires


def test_an_unrelated_new_drug_leaves_a_settled_binder_pair_quiet() -> None:
    apixaban = rx(
        "apixaban", "apixaban 5 MG Oral Tablet"
    )  # started 30 days ago, nothing to do with absorption
    assert run(pair("rule.levothyroxine-binding"), LEVOTHYROXINE, CALCIUM, _tsh(2.1), apixaban) == []


@pytest.mark.parametrize(("weeks", "fires"), [(19, True), (20, False), (21, False)])
def test_a_binder_is_carded_in_pregnancy_until_20_weeks(weeks: int, fires: bool) -> None:
    pregnant = problem("pregnancy", onset_days_ago=weeks * 7)
    found = run(pair("rule.levothyroxine-binding"), LEVOTHYROXINE, CALCIUM, _tsh(2.1), pregnant)
    assert bool(found) is fires


@pytest.mark.parametrize(
    ("beside", "carded"),
    [
        ((), True),
        ((rx("api", "apixaban 5 MG Oral Tablet", per="2 per 1 d"),), False),  # the interaction card: no NSAID
        ((condition("hf", SNOMED, "88805009", "Chronic congestive heart failure (disorder)"),), False),
        # the kidney card only limits the course, so protecting the gut is still the option
        ((condition("ckd", SNOMED, "433144002", "Chronic kidney disease stage 3 (disorder)"),), True),
    ],
)
def test_the_beers_nsaid_card_gives_way_where_another_card_advises_another_analgesic(
    beside: tuple[JsonDict, ...], carded: bool
) -> None:
    found = beers(rx("nap", "Naproxen 500 MG Oral Tablet", per="2 per 1 d"), *beside)
    assert ("rule.beers-nsaid-without-gastroprotection" in found) is carded
