"""Third-depth rule changes: monitoring intervals for stable therapy, new-start interactions, dose-aware renal
cards, the long-acting-plus-breakthrough opioid regimen and supplements; every threshold at, below and above."""

from __future__ import annotations

from dataclasses import replace

import pytest

from plugin import terminology
from plugin.context.build import build_context
from plugin.rules import catalog, label_checks
from plugin.rules.engine import evaluate
from plugin.rules.freshness import LabWindowError, lab_windows, monitoring_interval, parse_intervals
from plugin.rules.model import RuleFacts
from plugin.rules.renal_dosing import renal_dosing
from tests.support.charts import NOW, JsonDict, copy_json, medication_request
from tests.support.rule_cases import PATIENT_ID, Chart, draft, lab, med, on, problem

pytestmark = pytest.mark.unit


def ids(*resources: JsonDict, drafts: tuple[JsonDict, ...] = (), age: int = 70) -> list[str]:
    return [f.rule_id for f in evaluate(Chart(age=age, resources=resources, drafts=drafts).build().context)]


def rx(
    resource_id: str, display: str, days_ago: int = 120, *, dose: float = 1, per_day: float = 1
) -> JsonDict:
    request = medication_request(resource_id, PATIENT_ID, "", display, authored=on(days_ago))
    del request["medicationCodeableConcept"]["coding"]
    request["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": dose, "unit": "tablet"}}],
        }
    ]
    return request


def as_needed(resource: JsonDict) -> JsonDict:
    changed: JsonDict = copy_json(resource)
    changed["dosageInstruction"][0]["asNeededBoolean"] = True
    return changed


# --- potassium: a yearly recheck for one established RAAS blocker ---------------------------------------------


def test_the_intervals_are_longer_than_their_windows_and_cite_entries() -> None:
    windows = lab_windows()
    for name in ("potassium-single-raas-blocker", "potassium-single-raas-blocker-ckd", "inr-stable"):
        interval = monitoring_interval(name)
        assert interval.max_age_days > windows[interval.analyte].max_age_days
        assert interval.basis.startswith("kb.") and interval.rationale


@pytest.mark.parametrize(
    "raw",
    [
        {"monitoring_intervals": "not a list"},
        {
            "monitoring_intervals": [
                {"name": "x", "analyte": "potassium", "max_age_days": 90, "basis": "kb.a"}
            ]
        },
        {
            "monitoring_intervals": [
                {"name": "x", "analyte": "potassium", "max_age_days": 60, "basis": "kb.a", "rationale": "r"}
            ]
        },
        {
            "monitoring_intervals": [
                {"name": "x", "analyte": "spo2", "max_age_days": 400, "basis": "kb.a", "rationale": "r"}
            ]
        },
    ],
)
def test_malformed_intervals_are_refused(raw: JsonDict) -> None:
    with pytest.raises(LabWindowError):
        parse_intervals(raw, lab_windows())


@pytest.mark.parametrize(("days_ago", "asks"), [(364, False), (365, False), (366, True)])
def test_one_established_ace_inhibitor_rechecks_potassium_yearly(days_ago: int, asks: bool) -> None:
    found = ids(med("lisinopril"), lab("potassium", 4.4, days_ago=days_ago))
    assert ("rule.potassium-recheck" in found) is asks


@pytest.mark.parametrize(("days_ago", "asks"), [(179, False), (180, False), (181, True)])
def test_with_ckd_the_interval_is_half_a_year(days_ago: int, asks: bool) -> None:
    found = ids(med("lisinopril"), problem("ckd-3"), lab("potassium", 4.4, days_ago=days_ago))
    assert ("rule.potassium-recheck" in found) is asks


@pytest.mark.parametrize(("egfr", "asks"), [(59.9, True), (60.0, False)])
def test_a_current_egfr_below_60_counts_as_ckd(egfr: float, asks: bool) -> None:
    found = ids(med("lisinopril"), lab("egfr", egfr), lab("potassium", 4.4, days_ago=200))
    assert ("rule.potassium-recheck" in found) is asks


@pytest.mark.parametrize(
    ("extra", "started"),
    [
        ((med("spironolactone"),), 120),  # an MRA is watched quarterly
        ((med("potassium-chloride"),), 120),
        ((med("losartan"),), 120),  # two RAAS drugs
        ((med("digoxin"),), 120),  # low potassium makes digoxin toxic
        ((), 28),  # a start: the 90-day window
    ],
)
def test_closer_watch_keeps_the_90_day_window(extra: tuple[JsonDict, ...], started: int) -> None:
    found = ids(med("lisinopril", days_ago=started), *extra, lab("potassium", 4.4, days_ago=91))
    assert "rule.potassium-recheck" in found


def test_a_lisinopril_started_29_days_ago_is_established() -> None:
    assert "rule.potassium-recheck" not in ids(
        med("lisinopril", days_ago=29), lab("potassium", 4.4, days_ago=91)
    )


@pytest.mark.parametrize(("value", "asks"), [(5.4, False), (5.5, True)])
def test_an_alarming_old_potassium_is_asked_about_whatever_its_age(value: float, asks: bool) -> None:
    found = ids(med("lisinopril"), lab("potassium", value, days_ago=200))
    assert ("rule.potassium-recheck" in found) is asks


# --- RAAS blocker with a potassium-raising drug: a start-up warning -------------------------------------------


@pytest.mark.parametrize(("days_ago", "fires"), [(27, True), (28, True), (29, False), (400, False)])
def test_the_raas_pair_warns_while_one_of_it_is_new(days_ago: int, fires: bool) -> None:
    found = ids(
        med("lisinopril", days_ago=400),
        med("potassium-chloride", days_ago=400),
        med("spironolactone", days_ago=days_ago),
        lab("potassium", 4.2),
    )
    assert ("rule.raas-potassium" in found) is fires


def test_a_drafted_partner_warns_beside_a_second_potassium_raising_drug() -> None:
    found = ids(
        med("lisinopril", days_ago=400),
        med("potassium-chloride", days_ago=400),
        lab("potassium", 4.2),
        drafts=(draft("spironolactone"),),
    )
    assert "rule.raas-potassium" in found


def test_an_mra_added_alone_is_routine_combined_therapy() -> None:
    # Heart failure and resistant hypertension add an MRA to the ACE inhibitor with its own potassium checks.
    found = ids(med("lisinopril", days_ago=400), lab("potassium", 4.2), drafts=(draft("spironolactone"),))
    assert "rule.raas-potassium" not in found
    trimethoprim = ids(med("lisinopril", days_ago=400), lab("potassium", 4.2), drafts=(draft("tmp-smx"),))
    assert "rule.raas-potassium" in trimethoprim


def test_an_established_pair_with_high_potassium_still_gets_the_threshold_card() -> None:
    found = ids(med("lisinopril", days_ago=400), med("spironolactone", days_ago=400), lab("potassium", 5.6))
    assert "rule.raas-potassium" not in found and "rule.hyperkalaemia-on-raising-drug" in found


# --- INR: up to 12 weeks when consistently stable -------------------------------------------------------------


def inrs(*values_days: tuple[float, int]) -> tuple[JsonDict, ...]:
    return tuple(lab("inr", v, days_ago=d, resource_id=f"inr-{d}") for v, d in values_days)


@pytest.mark.parametrize(("newest", "asks"), [(28, False), (83, False), (84, False), (85, True)])
def test_three_in_range_inrs_allow_twelve_weeks(newest: int, asks: bool) -> None:
    found = ids(med("warfarin", days_ago=400), *inrs((2.5, newest), (2.4, newest + 42), (2.6, newest + 84)))
    assert ("rule.inr-monitoring" in found) is asks


@pytest.mark.parametrize(
    "history",
    [
        ((2.5, 56), (3.1, 98), (2.6, 140)),  # one above range
        ((1.9, 56), (2.4, 98), (2.6, 140)),  # one below
        ((2.5, 56), (2.4, 98)),  # only two
    ],
)
def test_an_unsteady_or_short_history_keeps_four_weeks(history: tuple[tuple[float, int], ...]) -> None:
    assert "rule.inr-monitoring" in ids(med("warfarin", days_ago=400), *inrs(*history))


@pytest.mark.parametrize(("low", "asks"), [(2.0, False), (1.99, True)])
def test_the_range_edge_is_inside(low: float, asks: bool) -> None:
    found = ids(med("warfarin", days_ago=400), *inrs((3.0, 56), (low, 98), (2.5, 140)))
    assert ("rule.inr-monitoring" in found) is asks


def test_a_new_warfarin_is_not_yet_stable() -> None:
    assert "rule.inr-monitoring" in ids(med("warfarin", days_ago=20), *inrs((2.5, 56), (2.4, 98), (2.6, 140)))


# --- metformin at eGFR 30-44: already at half dose needs no card ----------------------------------------------


@pytest.mark.parametrize(
    ("dose", "per_day", "fires"), [(2, 1, False), (1, 2, False), (1, 3, True), (3, 1, True)]
)
def test_metformin_at_or_under_1000_mg_a_day_is_what_kdigo_asks(
    dose: float, per_day: float, fires: bool
) -> None:
    metformin = rx("metformin", "metformin hydrochloride 500 MG Oral Tablet", dose=dose, per_day=per_day)
    found = list(
        catalog.renal_metformin(RuleFacts.of(Chart(resources=(metformin, lab("egfr", 40))).build().context))
    )
    assert bool(found) is fires
    for finding in found:
        assert finding.evidence == ("kb.metformin-egfr-thresholds", "kb.metformin-dose-by-egfr")
        assert "1000 mg" in finding.summary


@pytest.mark.parametrize(("egfr", "fires"), [(29.9, True), (44.9, False), (45.0, False)])
def test_the_half_dose_does_not_excuse_an_egfr_below_30(egfr: float, fires: bool) -> None:
    metformin = rx("metformin", "metformin hydrochloride 500 MG Oral Tablet", dose=1, per_day=2)
    found = list(
        catalog.renal_metformin(RuleFacts.of(Chart(resources=(metformin, lab("egfr", egfr))).build().context))
    )
    assert bool(found) is fires


def test_an_unreadable_metformin_dose_still_gets_the_card() -> None:
    metformin = rx("metformin", "metformin (dose on the bottle)")
    assert list(
        catalog.renal_metformin(RuleFacts.of(Chart(resources=(metformin, lab("egfr", 40))).build().context))
    )


def test_a_metformin_start_at_30_44_still_gets_the_card() -> None:
    found = ids(lab("egfr", 40), drafts=(draft("metformin"),))
    assert "rule.metformin-egfr" in found


# --- renal table: label start-up advice speaks to new orders only ---------------------------------------------


def test_lithium_start_low_is_for_a_new_order_only() -> None:
    lithium = renal_dosing().match(("lithium",))
    assert lithium is not None
    assert lithium.crossed(59, proposed=False) is None
    advice = lithium.crossed(59, proposed=True)
    assert advice is not None and advice.action == "start low"
    avoid = lithium.crossed(29, proposed=False)
    assert avoid is not None and avoid.action == "avoid"


@pytest.mark.parametrize(("tablets", "fires"), [(1, False), (2, True)])  # 25 mg or 50 mg a day
def test_spironolactone_at_25_mg_a_day_passes_at_egfr_30_50(tablets: float, fires: bool) -> None:
    spironolactone = rx("spironolactone", "spironolactone 25 MG Oral Tablet", dose=tablets)
    assert ("rule.renal-dose-crcl" in ids(spironolactone, lab("egfr", 45))) is fires


# --- opioids: scheduled long-acting plus as-needed breakthrough is one regimen --------------------------------

OXYCONTIN = "12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet"
PERCOCET = "Acetaminophen 325 MG / oxyCODONE Hydrochloride 5 MG Oral Tablet"


def test_long_acting_with_as_needed_breakthrough_is_not_a_duplicate() -> None:
    found = ids(rx("er", OXYCONTIN, per_day=2), as_needed(rx("ir", PERCOCET, per_day=4)))
    assert "rule.duplicate-therapy" not in found


@pytest.mark.parametrize(
    "pair",
    [
        (("er", OXYCONTIN, False), ("ir", PERCOCET, False)),  # both scheduled
        (
            ("ir1", PERCOCET, True),
            ("ir2", "oxyCODONE Hydrochloride 5 MG Oral Tablet", True),
        ),  # two short-acting
        (("er1", OXYCONTIN, False), ("er2", "Morphine Sulfate 30 MG Extended Release Oral Tablet", True)),
    ],
)
def test_other_opioid_pairs_are_still_duplicates(pair: tuple[tuple[str, str, bool], ...]) -> None:
    resources = [as_needed(rx(i, d)) if prn else rx(i, d) for i, d, prn in pair]
    assert "rule.duplicate-therapy" in ids(*resources)


def test_a_drafted_breakthrough_opioid_beside_a_scheduled_long_acting_one_is_no_duplicate() -> None:
    draft_ir = as_needed(rx("ir", PERCOCET))
    draft_ir["status"] = "draft"
    assert "rule.duplicate-therapy" not in ids(rx("er", OXYCONTIN, per_day=2), drafts=(draft_ir,))
    # A second scheduled immediate-release opioid is still a duplicate, drafted or not.
    draft_scheduled = rx("ir2", PERCOCET)
    draft_scheduled["status"] = "draft"
    assert "rule.duplicate-therapy" in ids(rx("er", OXYCONTIN, per_day=2), drafts=(draft_scheduled,))


# --- supplements resolve to what the rules read --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ingredients"),
    [
        ("Caltrate 600+D3 tablet", ("calcium carbonate", "cholecalciferol")),
        ("Prenatal multivitamin tablet", ("folic acid", "iron")),
        ("Senna-S 8.6-50 mg tablet", ("senna", "docusate")),
        ("Melatonin 3 mg tablet", ("melatonin",)),
        ("Fish oil 1000 mg capsule", ("omega-3 fatty acids",)),
    ],
)
def test_common_supplements_resolve(text: str, ingredients: tuple[str, ...]) -> None:
    resolved = terminology.resolve_product(None, text)
    assert resolved.ingredients == ingredients and resolved.unknown == ()
    assert all(terminology.is_known_ingredient(name) for name in ingredients)


def test_a_resolved_supplement_raises_what_it_contains() -> None:
    found = ids(
        rx("levothyroxine", "Levothyroxine Sodium 0.075 MG Oral Tablet"),
        rx("caltrate", "Caltrate 600+D3 tablet"),
    )
    assert "rule.levothyroxine-binding" in found and "rule.medication-unresolved" not in found


# --- allergies to a named drug -------------------------------------------------------------------------------


def allergy(
    display: str,
    *,
    rxnorm: str = "",
    criticality: str = "low",
    kind: str | None = None,
    reaction: str = "Rash",
) -> JsonDict:
    coding = [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": rxnorm, "display": display}]
    resource: JsonDict = {
        "resourceType": "AllergyIntolerance",
        "id": f"allergy-{abs(hash(display)) % 10_000}",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": coding, "text": display} if rxnorm else {"text": display},
        "category": ["medication"],
        "criticality": criticality,
        "reaction": [{"manifestation": [{"text": reaction}]}],
        "patient": {"reference": f"Patient/{PATIENT_ID}"},
    }
    if kind is not None:
        resource["type"] = kind
    return resource


def same_drug(*resources: JsonDict, drafts: tuple[JsonDict, ...] = ()) -> list[tuple[str, str]]:
    context = Chart(resources=resources, drafts=drafts).build().context
    return [(f.rule_id, f.severity) for f in catalog.allergy_same_drug(RuleFacts.of(context))]


@pytest.mark.parametrize(
    ("kwargs", "severity"),
    [
        ({"criticality": "high"}, "critical"),
        ({"reaction": "Angioedema"}, "critical"),
        ({}, "warning"),
        ({"kind": "intolerance", "reaction": "Dry cough"}, "info"),
    ],
)
def test_an_allergy_to_the_same_drug_is_graded_by_its_record(kwargs: dict[str, str], severity: str) -> None:
    found = same_drug(allergy("Lisinopril - dry cough", **kwargs), med("lisinopril"))
    assert found == [("rule.allergy-same-drug", severity)]


def test_the_class_and_the_aromatic_anticonvulsants_cross_react() -> None:
    levofloxacin = rx("levofloxacin", "levoFLOXacin 500 MG Oral Tablet")
    assert same_drug(allergy("Ciprofloxacin - tendon pain", rxnorm="2551"), levofloxacin)
    oxcarbazepine = rx("oxcarbazepine", "oxcarbazepine 300 MG Oral Tablet")
    found = same_drug(allergy("carbamazepine", reaction="Stevens-Johnson syndrome"), drafts=(oxcarbazepine,))
    assert found == [("rule.allergy-same-drug", "critical")]


def test_an_unrelated_drug_or_a_covered_class_raises_nothing_here() -> None:
    assert (
        same_drug(
            allergy("Codeine - vomiting", kind="intolerance"), rx("hc", "HYDROcodone 10 MG Oral Tablet")
        )
        == []
    )
    assert same_drug(allergy("Metformin - diarrhoea"), med("lisinopril")) == []
    # Penicillin is one of the cross-reactivity groups: rule.allergy-same-class speaks for it.
    assert same_drug(allergy("Amoxicillin - rash"), med("amoxicillin")) == []


@pytest.mark.parametrize(
    ("display", "unresolved"),
    [
        ("Lisinopril - dry cough", False),
        ("Clindamycin - C. difficile colitis", False),
        ("IV contrast - hives", True),
    ],
)
def test_an_allergy_to_a_known_drug_is_resolved_and_an_unknown_one_still_shown(
    display: str, unresolved: bool
) -> None:
    context = Chart(resources=(allergy(display),)).build().context
    found = [f.rule_id for f in catalog.allergy_unresolved(RuleFacts.of(context))]
    assert (found == ["rule.allergy-unresolved"]) is unresolved


# --- low-dose aspirin is an antiplatelet, not an NSAID, for the kidney and heart-failure rules --------------


@pytest.mark.parametrize(
    ("dose", "per_day", "counted"), [(1, 1, False), (4, 1, True)]
)  # 81 mg vs 324 mg a day
def test_low_dose_aspirin_is_no_nsaid_in_ckd_heart_failure_or_the_triple_whammy(
    dose: float, per_day: float, counted: bool
) -> None:
    aspirin = rx("aspirin", "aspirin 81 MG Oral Tablet", dose=dose, per_day=per_day)
    ckd = ids(aspirin, problem("ckd-3"), lab("egfr", 40))
    assert ("rule.nsaid-ckd" in ckd) is counted
    failure = ids(aspirin, problem("heart-failure"))
    assert ("rule.heart-failure-harmful-drug" in failure) is counted
    whammy = ids(aspirin, med("lisinopril"), med("hydrochlorothiazide"), lab("creatinine", 0.9))
    assert ("rule.triple-whammy" in whammy) is counted


# --- AKI against the reference value, and sick-day medicines ------------------------------------------------


def creatinine(value: float, days_ago: int) -> JsonDict:
    return lab("creatinine", value, days_ago=days_ago, resource_id=f"creatinine-{days_ago}")


@pytest.mark.parametrize(("latest", "fires"), [(1.46, False), (1.5, True), (1.92, True)])
def test_aki_on_a_nephrotoxin_reads_a_months_old_baseline(latest: float, fires: bool) -> None:
    empagliflozin = rx("empagliflozin", "empagliflozin 10 MG Oral Tablet")
    found = ids(
        empagliflozin, med("losartan"), creatinine(1.0, 110), creatinine(1.0, 200), creatinine(latest, 1)
    )
    assert ("rule.aki-nephrotoxin" in found) is fires


def test_a_seven_day_baseline_still_decides_first() -> None:
    # 1.0 four days ago to 1.4 now: below 1.5x and under +0.3 in 48 h is not met either (4 days apart).
    found = ids(med("losartan"), creatinine(0.7, 200), creatinine(1.0, 4), creatinine(1.4, 0))
    assert "rule.aki-nephrotoxin" not in found


# --- new table rows ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ingredients", "value", "proposed", "max_daily"),
    [
        (("famotidine",), 59, False, 20.0),
        (("famotidine",), 29, False, 10.0),
        (("nirmatrelvir",), 59, True, 300.0),
    ],
)
def test_renal_rows_for_famotidine_and_nirmatrelvir(
    ingredients: tuple[str, ...], value: float, proposed: bool, max_daily: float
) -> None:
    drug = renal_dosing().match(ingredients)
    assert drug is not None
    band = drug.crossed(value, proposed)
    assert band is not None and band.max_daily_mg == max_daily
    assert drug.crossed(60, proposed) is None


def test_paxlovid_resolves_to_a_strong_cyp3a4_inhibitor_beside_simvastatin() -> None:
    paxlovid = rx("paxlovid", "Paxlovid 300 mg-100 mg dose pack")
    paxlovid["status"] = "draft"
    found = ids(med("simvastatin-20"), drafts=(paxlovid,))
    assert "rule.statin-strong-cyp3a4" in found


def test_nicotine_dependence_counts_as_smoking() -> None:
    assert terminology.in_value_set("tobacco-smoking", "snomed", "56294008")
    assert terminology.in_value_set("parkinsons-disease", "snomed", "49049000")


def test_a_recorded_statin_intolerance_is_no_forgotten_statin() -> None:
    diabetic = (problem("diabetes"),)
    assert "rule.statin-indicated-absent" in ids(*diabetic, age=60)
    intolerant = allergy("atorvastatin - myalgia", rxnorm="83367", kind="intolerance", reaction="Myalgia")
    # Muscle aches on one statin: ACC/AHA 2018 re-challenges with another statin or dose, so the card stays and
    # says so; after a second statin (or a severe reaction) the gap is known and handled.
    found = [f for f in evaluate(Chart(age=60, resources=(*diabetic, intolerant)).build().context)]
    (gap,) = [f for f in found if f.rule_id == "rule.statin-indicated-absent"]
    assert "another statin" in gap.summary
    second = allergy("rosuvastatin", kind="intolerance", reaction="Muscle aches")
    assert "rule.statin-indicated-absent" not in ids(*diabetic, intolerant, second, age=60)


# --- from held-out v4 ------------------------------------------------------------------------------------------


def test_a_ppi_already_taken_quiets_ssri_with_nsaid_but_not_with_an_anticoagulant() -> None:
    sertraline = rx("sertraline", "sertraline 50 MG Oral Tablet")
    ibuprofen = rx("ibuprofen", "ibuprofen 400 MG Oral Tablet")
    omeprazole = rx("omeprazole", "omeprazole 20 MG Delayed Release Oral Capsule")
    assert "rule.ssri-snri-bleeding" in ids(sertraline, ibuprofen)
    assert "rule.ssri-snri-bleeding" not in ids(sertraline, ibuprofen, omeprazole)
    assert "rule.ssri-snri-bleeding" in ids(sertraline, med("warfarin"), omeprazole)


def test_an_arni_after_ace_inhibitor_angioedema_is_contraindicated() -> None:
    entresto = rx("entresto", "sacubitril 49 MG / valsartan 51 MG Oral Tablet")
    entresto["status"] = "draft"
    angioedema = allergy("ACE inhibitors - angioedema (lisinopril 2019)", reaction="Angioedema of lips")
    assert same_drug(angioedema, drafts=(entresto,)) == [("rule.allergy-same-drug", "critical")]
    rash = allergy("ACE inhibitors - cough", reaction="Dry cough")
    assert same_drug(rash, drafts=(entresto,)) == []
    context = Chart(resources=(angioedema,)).build().context
    assert not list(catalog.allergy_unresolved(RuleFacts.of(context)))  # the class is known


def test_sulfasalazine_after_a_sulfonamide_antibiotic_allergy() -> None:
    sulfasalazine = rx("sulfasalazine", "sulfasalazine 500 MG Oral Tablet")
    bactrim = allergy("Bactrim DS - Stevens-Johnson syndrome")
    assert same_drug(bactrim, sulfasalazine) == [("rule.allergy-same-drug", "critical")]
    assert same_drug(allergy("Codeine - vomiting"), sulfasalazine) == []


def bp(systolic: float, diastolic: float) -> tuple[JsonDict, JsonDict]:
    return (
        lab("systolic_bp", systolic, resource_id="sbp"),
        lab("diastolic_bp", diastolic, resource_id="dbp"),
    )


@pytest.mark.parametrize(
    ("systolic", "diastolic", "fires"), [(139, 89, False), (140, 80, True), (130, 90, True)]
)
def test_a_decongestant_with_blood_pressure_at_or_above_140_90(
    systolic: float, diastolic: float, fires: bool
) -> None:
    sudafed = rx("sudafed", "pseudoephedrine hydrochloride 30 MG Oral Tablet")
    assert ("rule.decongestant-high-blood-pressure" in ids(sudafed, *bp(systolic, diastolic))) is fires
    spray = rx("spray", "phenylephrine 0.5% nasal spray")
    assert "rule.decongestant-high-blood-pressure" not in ids(spray, *bp(160, 100))


def test_the_prescribers_text_names_the_strength_an_ingredient_code_lacks() -> None:
    request = medication_request("azi", PATIENT_ID, "18631", "azithromycin", status="draft")
    request["medicationCodeableConcept"]["text"] = "azithromycin 200 mg/5 mL oral suspension"
    request["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 12.5, "unit": "mL"}}],
        }
    ]
    child = Chart(age=4, resources=(lab("weight", 16),), drafts=(request,)).build().context
    (draft_order,) = child.draft_orders
    assert draft_order.code.display == "azithromycin 200 mg/5 mL oral suspension"
    found = [f for f in evaluate(child) if f.rule_id == "rule.dose-above-maximum"]
    assert found and "12 mg/kg" in found[0].summary


@pytest.mark.parametrize(
    ("text", "ingredient"),
    [("EpiPen Jr 0.15 mg auto-injector", "epinephrine"), ("Comtan 200 mg", "entacapone")],
)
def test_more_brands_resolve(text: str, ingredient: str) -> None:
    assert terminology.resolve_product(None, text).ingredients == (ingredient,)


def test_celecoxib_after_a_sulfa_allergy_is_contraindicated() -> None:
    celecoxib = rx("celecoxib", "celecoxib 200 MG Oral Capsule")
    assert same_drug(allergy("Sulfa - hives"), celecoxib) == [("rule.allergy-same-drug", "critical")]


def test_zonisamide_after_a_sulfonamide_antibiotic_reaction_is_contraindicated() -> None:
    zonisamide = rx("zonisamide", "zonisamide 100 MG Oral Capsule")
    sjs = allergy("Bactrim (sulfamethoxazole-trimethoprim) - Stevens-Johnson syndrome")
    assert same_drug(sjs, zonisamide) == [("rule.allergy-same-drug", "critical")]
    assert same_drug(allergy("Penicillin - hives"), zonisamide) == []


@pytest.mark.parametrize(
    ("product", "binds"), [("zinc oxide 40% paste", False), ("zinc sulfate 220 MG Oral Capsule", True)]
)
def test_a_mineral_on_the_skin_does_not_bind_an_oral_antibiotic(product: str, binds: bool) -> None:
    doxycycline = rx("doxycycline", "doxycycline hyclate 100 MG Oral Capsule")
    assert ("rule.chelation-antibiotic" in ids(doxycycline, rx("zinc", product))) is binds


# --- from held-out v7 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("product", "interacts"),
    [
        ("ciprofloxacin 0.3 % / dexamethasone 0.1 % Otic Suspension", False),
        ("ciprofloxacin 0.3 % Ophthalmic Solution", False),
        ("ciprofloxacin 500 MG Oral Tablet", True),
    ],
)
def test_an_ear_or_eye_antibiotic_does_not_raise_the_inr(product: str, interacts: bool) -> None:
    warfarin = rx("warfarin", "warfarin sodium 5 MG Oral Tablet")
    assert ("rule.vka-fluoroquinolone" in ids(warfarin, rx("cipro", product))) is interacts


# --- from held-out v8 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("product", "cross"),
    [
        ("acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet", True),  # codeine becomes morphine
        ("oxyCODONE Hydrochloride 5 MG Oral Tablet", True),  # another phenanthrene
        ("fentanyl 25 MCG/HR Transdermal Patch", False),  # a phenylpiperidine: the preferred switch
        ("methadone hydrochloride 5 MG Oral Tablet", False),
    ],
)
def test_after_a_morphine_reaction_another_phenanthrene_cross_reacts(product: str, cross: bool) -> None:
    morphine = allergy("morphine", rxnorm="7052", criticality="high", reaction="Anaphylaxis")
    drafted = rx("opioid", product)
    drafted["status"] = "draft"
    found = same_drug(morphine, drafts=(drafted,))
    assert found == ([("rule.allergy-same-drug", "critical")] if cross else [])


def _chc_chart(*extra: JsonDict) -> list[str]:
    yaz = rx("yaz", "drospirenone 3 MG / ethinyl estradiol 0.02 MG Oral Tablet")
    return [
        f.rule_id
        for f in label_checks.chc_hypertension(
            RuleFacts.of(Chart(age=30, gender="female", resources=(yaz, *extra)).build().context)
        )
    ]


@pytest.mark.parametrize(
    ("systolic", "diastolic", "fires"), [(139, 89, False), (140, 85, True), (120, 90, True)]
)
def test_combined_contraception_with_blood_pressure_at_140_90(
    systolic: float, diastolic: float, fires: bool
) -> None:
    pressure = (
        lab("systolic_bp", systolic, resource_id="sbp"),
        lab("diastolic_bp", diastolic, resource_id="dbp"),
    )
    assert bool(_chc_chart(*pressure)) is fires


def test_combined_contraception_with_hypertension_on_record() -> None:
    assert _chc_chart(problem("hypertension")) == ["rule.chc-hypertension"]
    assert _chc_chart() == []


# --- from held-out v9 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("product", "interacts"),
    [
        ("ketoconazole 2 % Topical Cream", False),
        ("ketoconazole 2 % Shampoo", False),
        ("ketoconazole 200 MG Oral Tablet", True),
    ],
)
def test_a_skin_antifungal_does_not_raise_simvastatin(product: str, interacts: bool) -> None:
    simvastatin = rx("simva", "simvastatin 20 MG Oral Tablet")
    assert ("rule.statin-strong-cyp3a4" in ids(simvastatin, rx("keto", product))) is interacts


def test_a_vaginal_azole_cream_still_raises_the_inr() -> None:
    warfarin = rx("warfarin", "warfarin sodium 5 MG Oral Tablet")
    assert "rule.vka-azole" in ids(warfarin, rx("mic", "miconazole nitrate 2 % Vaginal Cream"))


def test_a_brand_with_its_generic_list_in_brackets_keeps_every_ingredient() -> None:
    nyquil = "Vicks NyQuil Cold & Flu Liquid (acetaminophen 650 mg / dextromethorphan 30 mg / doxylamine 12.5 mg per 30 mL)"
    assert terminology.resolve_product(None, nyquil).ingredients == (
        "acetaminophen",
        "dextromethorphan",
        "doxylamine",
    )


@pytest.mark.parametrize(
    ("text", "ingredients"),
    [
        ("Lodoco 0.5 mg (colchicine) tablet", ("colchicine",)),
        ("Zzbrand 10 mg (atorvastatin) tablet", ("atorvastatin",)),
        # A note that is not wholly ingredients leaves the unknown brand unknown: fail closed.
        # The grammar read only the first ingredient of a free-text pack; the brand's own list is fuller.
        (
            "Paxlovid (nirmatrelvir 150 mg tablets; ritonavir 100 mg tablets) dose pack",
            ("nirmatrelvir", "ritonavir"),
        ),
        # A thousands separator is not a list.
        ("Vitamin A 25,000 IU softgel (retinyl palmitate, OTC)", ("vitamin a",)),
        ("Zzbrand 10 mg (as directed) tablet", None),
        ("Zzbrand (colchicine / zzunknown) tablet", None),
    ],
)
def test_an_unknown_brand_with_its_generic_in_parentheses_resolves_to_the_generic(
    text: str, ingredients: tuple[str, ...] | None
) -> None:
    resolution = terminology.resolve_product(None, text)
    if ingredients is None:
        assert resolution.unknown, resolution
    else:
        assert resolution.ingredients == ingredients
        assert resolution.unknown == ()


def test_a_tcn_allergy_covers_doxycycline() -> None:
    doxycycline = rx("doxy", "doxycycline hyclate 100 MG Oral Capsule")
    assert same_drug(allergy("TCN", reaction="Hives"), drafts=(doxycycline,)) == [
        ("rule.allergy-same-drug", "warning")
    ]


def test_two_long_acting_antimuscarinic_inhalers_are_a_duplicate() -> None:
    trelegy = rx(
        "trelegy", "fluticasone furoate 100 MCG / umeclidinium 62.5 MCG / vilanterol 25 MCG Inhalation Powder"
    )
    spiriva = rx("spiriva", "tiotropium 18 MCG Inhalation Capsule")
    assert "rule.duplicate-therapy" in ids(trelegy, spiriva)
    assert "rule.duplicate-therapy" not in ids(trelegy)


def test_a_recorded_intolerance_names_the_class_without_barring_it() -> None:
    context = (
        Chart(
            resources=(
                allergy(
                    "Augmentin (amoxicillin-clavulanate) - diarrhea", kind="intolerance", reaction="Diarrhea"
                ),
            ),
            drafts=(rx("amox", "amoxicillin 500 MG Oral Capsule"),),
        )
        .build()
        .context
    )
    found = [(f.rule_id, f.severity) for f in catalog.allergy_conflict(RuleFacts.of(context))]
    assert found == [("rule.allergy-same-class", "info")]
    allergic = Chart(
        resources=(allergy("Penicillin - hives"),), drafts=(rx("amox", "amoxicillin 500 MG Oral Capsule"),)
    )
    assert [
        (f.rule_id, f.severity) for f in catalog.allergy_conflict(RuleFacts.of(allergic.build().context))
    ] == [("rule.allergy-same-class", "critical")]


@pytest.mark.parametrize(
    ("statin", "raised"),
    [
        ("simvastatin 40 MG Oral Tablet", True),
        ("lovastatin 20 MG Oral Tablet", True),
        ("pravastatin 20 MG Oral Tablet", False),
    ],
)
def test_cyclosporine_is_named_with_the_cyp3a4_dependent_statins(statin: str, raised: bool) -> None:
    cyclosporine = rx("csa", "Neoral (cycloSPORINE, modified) 100 MG Oral Capsule")
    assert ("rule.statin-strong-cyp3a4" in ids(cyclosporine, drafts=(rx("statin", statin),))) is raised


@pytest.mark.parametrize(
    ("tacrolimus", "nsaid", "raised"),
    [
        ("tacrolimus 1 MG Oral Capsule (Prograf)", "Aleve (naproxen sodium 220 mg) tablet - OTC", True),
        ("Protopic (tacrolimus) 0.1 % ointment", "Aleve (naproxen sodium 220 mg) tablet - OTC", False),
        ("tacrolimus 1 MG Oral Capsule (Prograf)", "diclofenac sodium 10 MG/G Topical Gel", False),
    ],
)
def test_a_calcineurin_inhibitor_with_an_nsaid_counts_only_what_reaches_the_blood(
    tacrolimus: str, nsaid: str, raised: bool
) -> None:
    found = ids(rx("tac", tacrolimus), rx("nsaid", nsaid))
    assert ("rule.calcineurin-inhibitor-nsaid" in found) is raised


@pytest.mark.parametrize(
    ("second", "duplicate"),
    [("risperiDONE 2 MG Oral Tablet", True), ("aripiprazole 10 MG Oral Tablet", False)],
)
def test_paliperidone_and_risperidone_are_one_moiety(second: str, duplicate: bool) -> None:
    invega = rx(
        "pali", "Invega Sustenna (paliperidone palmitate) 156 MG/ML extended-release injectable suspension"
    )
    assert ("rule.duplicate-therapy" in ids(invega, rx("second", second))) is duplicate


@pytest.mark.parametrize(
    ("second", "label"),
    [
        ("omeprazole 20 MG Delayed Release Oral Capsule", "Two proton pump inhibitors"),
        # A PPI already suppresses acid fully: an H2 blocker beside it is raised too (kb.duplicate-acid-suppression).
        ("famotidine 20 MG Oral Tablet", "Two acid suppressants (a PPI and an H2 blocker)"),
        ("calcium carbonate 500 MG Chewable Tablet", None),  # an antacid is not acid suppression
    ],
)
def test_two_proton_pump_inhibitors_or_one_with_an_h2_blocker_are_a_duplicate(
    second: str, label: str | None
) -> None:
    pantoprazole = rx("ppi", "pantoprazole 40 MG Delayed Release Oral Tablet", per_day=2)
    built = Chart(age=60, resources=(pantoprazole, rx("second", second))).build()
    cards = list(catalog.duplicate_therapy(RuleFacts.of(built.context)))
    assert [c.summary.startswith(label) for c in cards] == ([True] if label else [])


def test_lewy_body_dementia_counts_as_parkinsonism_for_dopamine_blockers() -> None:
    haloperidol = rx("hal", "haloperidol 1 MG Oral Tablet")
    lewy = problem("lewy-body-dementia")
    assert "rule.parkinson-dopamine-blocker" in ids(haloperidol, lewy)
    assert "rule.parkinson-dopamine-blocker" not in ids(rx("q", "quetiapine 25 MG Oral Tablet"), lewy)


def test_facts_rebuilt_with_replace_do_not_reuse_the_old_answers() -> None:
    facts = RuleFacts.of(
        build_context(Chart(resources=(rx("w", "warfarin 5 MG Oral Tablet"),)).prefetch(), NOW).context
    )
    assert facts.with_class("anticoagulant") and "anticoagulant" in facts.drug_classes
    emptied = replace(facts, exposures=())
    assert emptied.with_class("anticoagulant") == () and emptied.drug_classes == frozenset()


AZTREONAM = rx("aztreonam", "aztreonam 2000 MG Injection (Azactam)")
CEFTAZIDIME = rx("ceftazidime", "ceftazidime 2000 MG Injection (Fortaz)")


def test_aztreonam_and_ceftazidime_share_a_side_chain_both_ways() -> None:
    anaphylaxis = allergy("Ceftazidime", reaction="Anaphylaxis")
    assert same_drug(anaphylaxis, drafts=(AZTREONAM,)) == [("rule.allergy-same-drug", "critical")]
    assert same_drug(allergy("Aztreonam"), drafts=(CEFTAZIDIME,)) == [("rule.allergy-same-drug", "warning")]
    context = Chart(resources=(anaphylaxis,), drafts=(AZTREONAM,)).build().context
    (card,) = catalog.allergy_same_drug(RuleFacts.of(context))
    assert card.evidence == ("kb.drug-allergy-reexposure", "kb.aztreonam-ceftazidime-side-chain")


def test_aztreonam_after_a_penicillin_or_other_cephalosporin_allergy_is_quiet_here() -> None:
    assert same_drug(allergy("Penicillin", reaction="Anaphylaxis"), drafts=(AZTREONAM,)) == []
    assert same_drug(allergy("Cefazolin", reaction="Hives"), drafts=(AZTREONAM,)) == []


ENOXAPARIN = rx("enoxaparin", "enoxaparin sodium 40 MG/0.4ML Prefilled Syringe (Lovenox)")
FONDAPARINUX = rx("fondaparinux", "fondaparinux sodium 2.5 MG/0.5ML Prefilled Syringe (Arixtra)")


def test_a_heparin_allergy_bars_low_molecular_weight_heparins_not_fondaparinux() -> None:
    hit = allergy("Heparin", rxnorm="5224", criticality="high", reaction="Heparin-induced thrombocytopenia")
    assert same_drug(hit, drafts=(ENOXAPARIN,)) == [("rule.allergy-same-drug", "critical")]
    assert same_drug(hit, drafts=(FONDAPARINUX,)) == []
