"""Fourth-depth rule changes from the v30 and v31 reviews: folic acid beside antiseizure drugs, low potassium or
magnesium on QT-prolonging drugs, carbapenem and ACE-inhibitor allergy words, any CBC count as a blood count,
combinations coded by one ingredient, and polyethylene glycol by name; each threshold at, below and above."""

from __future__ import annotations

import pytest

from plugin import terminology
from plugin.rules import catalog, depth, drug_monitoring, gaps, monitoring
from plugin.rules.high_harm import NALOXONE_MISSING, OPIOID_PAIRS
from plugin.rules.interactions import interaction_table
from plugin.rules.label_checks import FLUOROQUINOLONE_CORTICOSTEROID
from plugin.rules.model import Finding, RuleFacts
from plugin.rules.renal_dosing import renal_dosing
from plugin.rules.renal_rules import RenalDose
from tests.support.charts import JsonDict, copy_json
from tests.support.rule_cases import Chart, draft, lab, med, named_result, problem
from tests.unit.test_rules_depth_v3 import allergy, rx

pytestmark = pytest.mark.unit


def facts(
    *resources: JsonDict, age: int = 30, gender: str = "female", drafts: tuple[JsonDict, ...] = ()
) -> RuleFacts:
    return RuleFacts.of(Chart(age=age, gender=gender, resources=resources, drafts=drafts).build().context)


def rule_ids(findings: list[Finding]) -> list[str]:
    return [f.rule_id for f in findings]


# --- folic acid beside antiseizure medication (AAN/AES/SMFM 2024) ----------------------------------------------


@pytest.mark.parametrize(("age", "fires"), [(11, False), (12, True), (50, True), (51, False)])
def test_folic_acid_is_asked_for_at_12_to_50_on_an_antiseizure_drug(age: int, fires: bool) -> None:
    found = list(monitoring.antiseizure_folic_acid(facts(med("carbamazepine"), age=age)))
    assert bool(found) is fires
    if fires:
        assert "0.4 mg" in found[0].summary and found[0].inputs


def test_antiseizure_folic_acid_is_quiet_for_men_in_pregnancy_with_folate_and_for_gabapentin() -> None:
    assert not list(monitoring.antiseizure_folic_acid(facts(med("carbamazepine"), gender="male")))
    pregnant = facts(med("carbamazepine"), problem("pregnancy"))
    assert not list(monitoring.antiseizure_folic_acid(pregnant))
    assert not list(monitoring.antiseizure_folic_acid(facts(med("carbamazepine"), med("folic-acid"))))
    assert not list(monitoring.antiseizure_folic_acid(facts(med("gabapentin"))))
    # A drafted antiseizure drug is the prescriber's start: the card is for therapy already taken.
    assert not list(monitoring.antiseizure_folic_acid(facts(drafts=(draft("lamotrigine"),))))
    assert list(monitoring.antiseizure_folic_acid(facts(med("lamotrigine"))))


# --- low potassium or magnesium on a QT-prolonging drug ----------------------------------------------------------


@pytest.mark.parametrize(("potassium", "fires"), [(3.4, True), (3.5, False), (3.6, False)])
def test_low_potassium_on_a_qt_drug_alone_is_replaced(potassium: float, fires: bool) -> None:
    found = list(depth.low_potassium_magnesium(facts(med("ondansetron"), lab("potassium", potassium, 1))))
    assert bool(found) is fires
    if fires:
        assert "ondansetron" in found[0].summary.lower()


@pytest.mark.parametrize(("magnesium", "fires"), [(1.7, True), (1.8, False), (1.9, False)])
def test_low_magnesium_on_a_qt_drug_is_replaced(magnesium: float, fires: bool) -> None:
    chart = facts(med("ondansetron"), lab("potassium", 4.0, 1), lab("magnesium", magnesium, 1))
    assert bool(list(depth.low_potassium_magnesium(chart))) is fires


def test_a_stale_low_potassium_is_asked_again_only_on_a_diuretic_or_digoxin() -> None:
    stale = lab("potassium", 3.1, 400)
    assert not list(depth.low_potassium_magnesium(facts(med("ondansetron"), stale)))
    assert list(depth.low_potassium_magnesium(facts(med("hydrochlorothiazide"), stale)))


# --- class allergy words ------------------------------------------------------------------------------------------


def _class_allergy(*resources: JsonDict, drafts: tuple[JsonDict, ...] = ()) -> list[Finding]:
    return list(catalog.allergy_same_drug(facts(*resources, drafts=drafts, age=60)))


def test_a_carbapenem_allergy_bars_another_carbapenem_and_not_a_penicillin() -> None:
    ertapenem = allergy("Invanz", reaction="Hives")
    meropenem = rx("meropenem", "meropenem 1000 MG Injection")
    assert rule_ids(_class_allergy(ertapenem, drafts=(meropenem,))) == ["rule.allergy-same-drug"]
    amoxicillin = rx("amox", "amoxicillin 500 MG Oral Capsule")
    assert _class_allergy(ertapenem, drafts=(amoxicillin,)) == []


@pytest.mark.parametrize("words", ["ACEI - angioedema", "ACE-I (angioedema 2022)", "ACEIs"])
def test_ace_inhibitor_abbreviations_name_the_class(words: str) -> None:
    enalaprilat = rx("enalaprilat", "enalaprilat 1.25 MG/ML Injectable Solution")
    found = _class_allergy(allergy(words, reaction="Angioedema"), drafts=(enalaprilat,))
    assert [(f.rule_id, f.severity) for f in found] == [("rule.allergy-same-drug", "critical")]
    losartan = rx("losartan", "losartan potassium 50 MG Oral Tablet")
    assert _class_allergy(allergy(words, reaction="Angioedema"), drafts=(losartan,)) == []


# --- any count of a CBC is a blood count -----------------------------------------------------------------------


@pytest.mark.parametrize("count", ["platelets", "hemoglobin", "leukocytes"])
def test_any_count_of_a_recent_cbc_shows_the_blood_count_was_drawn(count: str) -> None:
    chart = facts(med("carbamazepine", days_ago=400), lab("sodium", 139, 30), lab(count, 10, 30))
    summaries = [f.summary for f in drug_monitoring.drug_monitoring_labs(chart)]
    assert not any("platelet" in s.lower() for s in summaries), summaries


@pytest.mark.parametrize(("days_ago", "asked"), [(364, False), (365, False), (366, True)])
def test_a_blood_count_older_than_the_interval_is_asked_for(days_ago: int, asked: bool) -> None:
    chart = facts(med("carbamazepine", days_ago=800), lab("sodium", 139, 30), lab("hemoglobin", 13, days_ago))
    summaries = [f.summary for f in drug_monitoring.drug_monitoring_labs(chart)]
    assert any("platelet" in s.lower() for s in summaries) is asked, summaries


# --- reading the chart ----------------------------------------------------------------------------------------------


def test_a_combination_coded_by_one_ingredient_keeps_every_ingredient_its_text_names() -> None:
    percocet = "oxyCODONE 5 MG / acetaminophen 325 MG Oral Tablet (Percocet)"
    assert terminology.ingredients_of("7804", percocet) == ("oxycodone", "acetaminophen")
    assert terminology.ingredients_of("7804", "oxyCODONE 5 MG Oral Tablet") == ("oxycodone",)
    # Text naming an unknown product beside the coded ingredient: the code alone stands (fail closed elsewhere).
    assert terminology.ingredients_of("7804", "oxyCODONE 5 MG / zorblatide 1 MG Oral Tablet") == (
        "oxycodone",
    )


def test_acetaminophen_in_an_ingredient_coded_combination_counts_toward_the_daily_total() -> None:
    scheduled = rx("apap", "acetaminophen 500 MG Oral Tablet", dose=2, per_day=4)
    percocet = copy_json(
        rx("percocet", "oxyCODONE 5 MG / acetaminophen 325 MG Oral Tablet", dose=2, per_day=6)
    )
    percocet["medicationCodeableConcept"]["coding"] = [
        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7804", "display": "oxycodone"},
        {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "161", "display": "acetaminophen"},
    ]
    percocet["status"] = "draft"
    found = list(depth.acetaminophen_daily_total(facts(scheduled, drafts=(percocet,), age=54)))
    assert rule_ids(found) == ["rule.acetaminophen-daily-total"] and "7.9 g/day" in found[0].summary


@pytest.mark.parametrize(
    "text",
    ["Polyethylene glycol 3350 powder", "polyethylene glycol 3350 17 GM Oral Powder", "PEG 3350 powder"],
)
def test_polyethylene_glycol_3350_resolves_with_its_number_and_form(text: str) -> None:
    resolved = terminology.resolve_product(None, text)
    assert resolved.ingredients == ("polyethylene glycol 3350",) and not resolved.unknown


# --- NSAIDs in CKD: one card per action ---------------------------------------------------------------------------


def test_the_nsaid_ckd_card_leaves_acute_kidney_injury_and_calcineurin_inhibitors_to_their_cards() -> None:
    base = (med("naproxen"), lab("egfr", 45, 1))
    assert rule_ids(list(catalog.renal_nsaid(facts(*base, age=60)))) == ["rule.nsaid-ckd"]
    steady = (lab("creatinine", 1.3, 1, "cr-now"), lab("creatinine", 1.2, 4, "cr-before"))
    assert rule_ids(list(catalog.renal_nsaid(facts(*base, *steady, age=60)))) == ["rule.nsaid-ckd"]
    risen = (lab("creatinine", 1.9, 1, "cr-now"), lab("creatinine", 1.2, 4, "cr-before"))
    assert list(catalog.renal_nsaid(facts(*base, *risen, age=60))) == []
    tacrolimus = rx("tacrolimus", "tacrolimus 1 MG Oral Capsule", per_day=2)
    assert list(catalog.renal_nsaid(facts(*base, tacrolimus, age=60))) == []


# --- an opioid with a gabapentinoid or Z-drug among three CNS-active drugs from 65 -------------------------------


@pytest.mark.parametrize(
    ("age", "with_ssri", "fires"), [(64, True, True), (65, True, False), (66, True, False), (70, False, True)]
)
def test_the_beers_burden_card_names_an_opioid_and_gabapentinoid_from_65(
    age: int, with_ssri: bool, fires: bool
) -> None:
    (pair,) = [p for p in OPIOID_PAIRS if p.rule_id == "rule.opioid-gabapentinoid"]
    drugs = (med("oxycodone"), med("gabapentin"), *((med("sertraline"),) if with_ssri else ()))
    assert bool(list(pair(facts(*drugs, age=age)))) is fires


# --- a fluoroquinolone another card already bars --------------------------------------------------------------------


def test_the_tendon_card_is_left_to_the_card_that_already_asks_for_another_antibiotic() -> None:
    pair = FLUOROQUINOLONE_CORTICOSTEROID
    levofloxacin = rx("levo", "levofloxacin 750 MG Oral Tablet")
    prednisone = rx("pred", "predniSONE 20 MG Oral Tablet")
    assert rule_ids(list(pair(facts(prednisone, levofloxacin, age=60)))) == [
        "rule.fluoroquinolone-corticosteroid"
    ]
    myasthenia = problem("hypertension", "mg")
    myasthenia["code"] = {"text": "Myasthenia gravis"}
    assert list(pair(facts(prednisone, levofloxacin, myasthenia, age=60))) == []
    cipro = allergy("Cipro - Achilles tendon rupture 2021", reaction="Tendon rupture")
    assert list(pair(facts(prednisone, levofloxacin, cipro, age=60))) == []


# --- bosentan, kratom, intravenous fluids ---------------------------------------------------------------------------


def test_bosentan_makes_hormonal_contraception_unreliable_and_cites_its_label() -> None:
    bosentan = rx("bosentan", "bosentan 125 MG Oral Tablet", per_day=2)
    pill = rx("pill", "norethindrone acetate 1 MG / ethinyl estradiol 0.02 MG Oral Tablet")
    (finding,) = gaps.enzyme_inducer_interaction(facts(bosentan, pill))
    assert "kb.bosentan-hormonal-contraception" in finding.evidence
    apixaban = rx("apixaban", "apixaban 5 MG Oral Tablet", per_day=2)
    assert list(gaps.enzyme_inducer_interaction(facts(bosentan, apixaban))) == []  # DOACs: not labelled


def test_kratom_is_an_opioid_so_a_benzodiazepine_beside_it_is_carded() -> None:
    kratom = rx("kratom", "Kratom powder (online) about 8 g daily")
    assert "opioid" in terminology.classes_of_product(None, "Kratom powder (online) about 8 g daily")
    alprazolam = rx("alprazolam", "alprazolam 1 MG Oral Tablet", per_day=3)
    (pair,) = [p for p in interaction_table() if p.rule_id == "rule.opioid-sedative"]
    assert [f.rule_id for f in pair(facts(kratom, alprazolam, age=40))] == ["rule.opioid-sedative"]


@pytest.mark.parametrize(
    ("text", "ingredients"),
    [
        ("D5 1/2 NS with 20 KCl", ("dextrose", "sodium chloride", "potassium chloride")),
        ("D5 0.45% NaCl with 20 mEq KCl", ("dextrose", "sodium chloride", "potassium chloride")),
        ("NS 1000 mL bolus", ("sodium chloride",)),
    ],
)
def test_abbreviated_intravenous_fluids_resolve_to_every_component(
    text: str, ingredients: tuple[str, ...]
) -> None:
    resolved = terminology.resolve_product(None, text)
    assert resolved.ingredients == ingredients and not resolved.unknown


@pytest.mark.parametrize(
    ("text", "ingredients"),
    [
        # "NS" leads, but "+ KCl 20 mEq/L" says more is in the bag: the potassium is not hidden behind saline.
        ("D5 1/2 NS + KCl 20 mEq/L at 100 mL/h", ("sodium chloride", "potassium chloride")),
        ("Nephro-Vite (B-complex with C and folic acid 0.8 mg) tablet", ("vitamin b complex", "folic acid")),
        ("Fleet Enema for adults (sodium phosphate/sodium biphosphate)", ("sodium phosphate",)),
    ],
)
def test_joined_text_read_by_its_leading_name_keeps_the_other_named_ingredients(
    text: str, ingredients: tuple[str, ...]
) -> None:
    assert terminology.resolve_product(None, text).ingredients == ingredients


# --- methotrexate dose falls with clearance ------------------------------------------------------------------------


@pytest.mark.parametrize(("kg", "carded"), [(62, False), (61, True), (30, True)])
def test_weekly_methotrexate_is_reduced_below_crcl_60(kg: float, carded: bool) -> None:
    # Male 70, creatinine 1.0: CrCl = (140 - 70) x kg / 72, so 61 kg gives 59.3 and 62 kg 60.3.
    mtx = rx("mtx", "methotrexate 2.5 MG Oral Tablet", dose=6, per_day=1)
    chart = facts(mtx, lab("creatinine", 1.0, 3), lab("weight", kg, 3), age=70, gender="male")
    found = list(RenalDose("rule.renal-dose-crcl", renal_dosing())(chart))
    assert bool(found) is carded


# --- naloxone is for opioids taken at home -----------------------------------------------------------------------


def test_an_injected_opioid_given_by_staff_asks_for_no_naloxone_but_buprenorphine_injection_does() -> None:
    morphine_iv = rx("morphine-iv", "morphine sulfate 4 MG/ML Injectable Solution", per_day=6)
    morphine_iv["dosageInstruction"][0]["route"] = {"text": "Intravenous route"}
    assert list(NALOXONE_MISSING(facts(morphine_iv, age=60))) == []
    oral = rx("oxy", "oxycodone hydrochloride 10 MG Oral Tablet", per_day=6)  # 90 MME/day
    assert [f.rule_id for f in NALOXONE_MISSING(facts(oral, age=60))] == ["rule.opioid-naloxone"]
    sublocade = rx("sublocade", "buprenorphine 300 MG/1.5ML Extended Release Injection (Sublocade)")
    sublocade["dosageInstruction"][0]["route"] = {"text": "Subcutaneous route"}
    assert [f.rule_id for f in NALOXONE_MISSING(facts(sublocade, age=60))] == ["rule.opioid-naloxone"]


# --- PrEP: an HIV test every 3 months ---------------------------------------------------------------------------


@pytest.mark.parametrize(("days_ago", "asked"), [(89, False), (90, False), (91, True)])
def test_prep_asks_for_an_hiv_test_older_than_90_days(days_ago: int, asked: bool) -> None:
    descovy = rx("descovy", "emtricitabine 200 MG / tenofovir alafenamide 25 MG Oral Tablet")
    test = named_result("hiv", "HIV-1/2 antigen/antibody screen", text="Nonreactive", days_ago=days_ago)
    found = list(monitoring.prep_hiv_test(facts(descovy, test, gender="male")))
    assert bool(found) is asked
    if asked:
        assert f"{days_ago} days ago" in found[0].summary and found[0].order_lab is not None


def test_treatment_regimens_and_hepatitis_b_tenofovir_are_not_prep() -> None:
    biktarvy = rx(
        "biktarvy", "bictegravir 50 MG / emtricitabine 200 MG / tenofovir alafenamide 25 MG Oral Tablet"
    )
    assert list(monitoring.prep_hiv_test(facts(biktarvy))) == []
    viread = rx("viread", "tenofovir disoproxil fumarate 300 MG Oral Tablet")
    assert list(monitoring.prep_hiv_test(facts(viread))) == []
    apretude = rx("apretude", "cabotegravir 600 MG/3ML Extended Release Injectable Suspension (Apretude)")
    assert [f.rule_id for f in monitoring.prep_hiv_test(facts(apretude))] == ["rule.prep-hiv-test-due"]


@pytest.mark.parametrize(
    ("product", "kg", "carded"),
    [
        # Male 58, creatinine 1.6: CrCl = (140 - 58) x kg / 115.2; 84 kg gives 59.8, 85 kg 60.5.
        ("emtricitabine 200 MG / tenofovir disoproxil fumarate 300 MG Oral Tablet", 85, False),
        ("emtricitabine 200 MG / tenofovir disoproxil fumarate 300 MG Oral Tablet", 84, True),
        # 42 kg gives 29.9, 43 kg 30.6: the alafenamide line.
        ("emtricitabine 200 MG / tenofovir alafenamide 25 MG Oral Tablet", 43, False),
        ("emtricitabine 200 MG / tenofovir alafenamide 25 MG Oral Tablet", 42, True),
    ],
)
def test_oral_prep_meets_its_kidney_line(product: str, kg: float, carded: bool) -> None:
    chart = facts(rx("prep", product), lab("creatinine", 1.6, 5), lab("weight", kg, 5), age=58, gender="male")
    assert bool(list(monitoring.prep_kidney(chart))) is carded


# --- gout: treat to a urate below 6 --------------------------------------------------------------------------------


@pytest.mark.parametrize(("urate", "carded"), [(5.9, False), (6.0, True), (6.1, True)])
def test_urate_of_6_or_more_on_titrated_therapy_asks_for_a_higher_dose(urate: float, carded: bool) -> None:
    chart = facts(med("allopurinol", days_ago=400), lab("urate", urate, 30), age=66, gender="male")
    assert bool(list(monitoring.urate_above_target(chart))) is carded


@pytest.mark.parametrize(("started", "carded"), [(179, False), (180, True), (181, True)])
def test_urate_lowering_therapy_under_6_months_is_still_being_titrated(started: int, carded: bool) -> None:
    chart = facts(med("allopurinol", days_ago=started), lab("urate", 8.0, 10), age=66, gender="male")
    assert bool(list(monitoring.urate_above_target(chart))) is carded


def test_a_stale_urate_or_micromoles_are_read_as_they_should_be() -> None:
    assert (
        list(monitoring.urate_above_target(facts(med("allopurinol", days_ago=400), lab("urate", 8.0, 200))))
        == []
    )
    micromolar = lab("urate", 476, 10)  # 476 umol/L is 8.0 mg/dL
    micromolar["valueQuantity"] = {
        "value": 476,
        "unit": "umol/L",
        "system": "http://unitsofmeasure.org",
        "code": "umol/L",
    }
    found = list(monitoring.urate_above_target(facts(med("allopurinol", days_ago=400), micromolar)))
    assert found and "Urate 8 mg/dL" in found[0].summary


def test_two_5_alpha_reductase_inhibitors_are_a_duplicate_and_an_alpha_blocker_beside_one_is_not() -> None:
    finasteride = rx("fin", "finasteride 5 MG Oral Tablet")
    dutasteride = rx("dut", "dutasteride 0.5 MG Oral Capsule")
    (finding,) = catalog.duplicate_therapy(facts(finasteride, dutasteride, age=76, gender="male"))
    assert "5-alpha-reductase" in finding.summary and finding.evidence == (
        "kb.duplicate-5-alpha-reductase-inhibitors",
    )
    assert list(catalog.duplicate_therapy(facts(finasteride, med("tamsulosin"), age=76, gender="male"))) == []
