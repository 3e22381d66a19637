"""The labs a drug needs on established therapy (plugin.rules.drug_monitoring): each interval at, below and
above its limit, missing and undated values, the table's validation and its entries."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from plugin.knowledge import load_knowledge_base
from plugin.rules.drug_monitoring import (
    DrugMonitoringError,
    bleeding_combination_blood_count,
    drug_monitoring,
    drug_monitoring_labs,
    parse_drug_monitoring,
)
from plugin.rules.model import Finding, RuleFacts
from tests.support.charts import JsonDict, medication_request
from tests.support.rule_cases import PATIENT_ID, Chart, lab, on

pytestmark = pytest.mark.unit


def _drug(display: str, status: str = "active", days_ago: int | None = None) -> JsonDict:
    request = medication_request("drug", PATIENT_ID, "", display, status=status)
    del request["medicationCodeableConcept"]["coding"]
    if days_ago is not None:
        request["authoredOn"] = on(days_ago)
    return request


def _lithium_level(value: float, days_ago: int) -> JsonDict:
    level = lab("creatinine", value, days_ago=days_ago, resource_id="lithium-level")
    level["code"] = {"coding": [{"system": "http://loinc.org", "code": "14334-7"}], "text": "Lithium"}
    level["valueQuantity"] = {
        "value": value,
        "unit": "mmol/L",
        "system": "http://unitsofmeasure.org",
        "code": "mmol/L",
    }
    return level


def run(*resources: JsonDict, drafts: tuple[JsonDict, ...] = ()) -> list[Finding]:
    built = Chart(age=60, resources=resources, drafts=drafts).build()
    return list(drug_monitoring_labs(RuleFacts.of(built.context)))


LITHIUM = "lithium carbonate 300 MG Oral Capsule"


@pytest.mark.parametrize(("days", "fires"), [(179, False), (180, False), (181, True)])
def test_lithium_labs_every_six_months(days: int, fires: bool) -> None:
    found = run(
        _drug(LITHIUM),
        _lithium_level(0.8, days),
        lab("creatinine", 1.0, days_ago=30),
        lab("tsh", 2.0, days_ago=30),
    )
    assert bool(found) is fires
    if fires:
        (finding,) = found
        assert finding.severity == "warning" and finding.evidence == ("kb.lithium-monitoring",)
        assert f"lithium level {days} days old" in finding.summary
        assert finding.order_lab is not None and finding.order_lab.loinc == "14334-7"


def test_every_missing_lab_is_named_and_the_first_is_offered() -> None:
    (finding,) = run(_drug("carbamazepine 200 MG Extended Release Oral Tablet"), lab("alt", 20, days_ago=400))
    assert "no sodium on record" in finding.summary and "alt 400 days old" in finding.summary.lower()
    assert (
        finding.severity == "info" and finding.order_lab is not None and finding.order_lab.loinc == "2951-2"
    )


def test_an_undated_value_counts_as_missing() -> None:
    undated = lab("alt", 20)
    del undated["effectiveDateTime"]
    found = run(_drug("leflunomide 20 MG Oral Tablet"), undated, lab("platelets", 250, days_ago=30))
    assert found and "undated" in found[0].summary


def test_a_drug_being_started_and_a_drug_without_a_row_say_nothing() -> None:
    assert run(drafts=(_drug(LITHIUM, status="draft"),)) == []
    assert run(_drug("amlodipine 5 MG Oral Tablet")) == []


def test_current_labs_for_every_listed_drug_silence_it() -> None:
    labs = (
        lab("sodium", 138, days_ago=30),
        lab("platelets", 250, days_ago=30),
        lab("alt", 20, days_ago=30),
    )
    for display in (
        "carbamazepine 200 MG Oral Tablet",
        "divalproex sodium 500 MG Delayed Release Oral Tablet",
        "azathioprine 50 MG Oral Tablet",
    ):
        assert run(_drug(display), *labs) == [], display


def test_the_table_cites_entries_that_exist_with_its_severity() -> None:
    knowledge = load_knowledge_base()
    for row in drug_monitoring():
        entry = knowledge.get(row.evidence[0])
        assert entry is not None and entry.severity_hint == row.severity, row.ingredients


def _table() -> dict[str, Any]:
    return json.loads(resources.files("plugin").joinpath("knowledge/drug_monitoring.json").read_text())


@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t["drugs"][0]["labs"][0].update(analyte="unobtainium"),
        lambda t: t["drugs"][0]["labs"][0].update(max_age_days=0),
        lambda t: t["drugs"][0]["labs"][0].update(loinc="14334"),
        lambda t: t["drugs"][0].update(severity="critical"),
        lambda t: t["drugs"][0].update(evidence=["lithium-monitoring"]),
        lambda t: t["drugs"][1].update(ingredients=["lithium"]),
        lambda t: t["drugs"][0]["labs"].append(dict(t["drugs"][0]["labs"][0])),
        lambda t: t.pop("version"),
        lambda t: t["drugs"][0].update(established_after_days=-1),
        lambda t: t["drugs"][0].update(established_after_days=True),
        lambda t: t["drugs"][0].update(parenteral_only="yes"),
        lambda t: t["drugs"][0].update(missing_asked_within_days=True),
        lambda t: t["drugs"][0].update(established_after_days=30, missing_asked_within_days=30),
        lambda t: t["drugs"][0].update(missing_asked_within_days=3651),
        lambda t: t["drugs"][0].update(colour="red"),
    ],
)
def test_the_loader_refuses_a_malformed_table(edit: Any) -> None:
    table = _table()
    edit(table)
    with pytest.raises(DrugMonitoringError):
        parse_drug_monitoring(table)


STATIN = "atorvastatin 40 MG Oral Tablet"


@pytest.mark.parametrize(("started", "fires"), [(83, False), (84, True), (85, True)])
def test_a_statins_first_lipid_panel_is_due_12_weeks_after_the_start(started: int, fires: bool) -> None:
    assert bool(run(_drug(STATIN, days_ago=started))) is fires


@pytest.mark.parametrize(("days", "fires"), [(364, False), (365, False), (366, True)])
def test_a_statin_needs_a_lipid_panel_within_a_year(days: int, fires: bool) -> None:
    found = run(_drug(STATIN, days_ago=800), lab("ldl", 95, days_ago=days))
    assert bool(found) is fires
    if fires:
        assert found[0].severity == "info" and found[0].order_lab is not None
        assert found[0].order_lab.loinc == "13457-7"


@pytest.mark.parametrize(("started", "fires"), [(364, True), (365, True), (366, False)])
def test_no_lipid_panel_at_all_is_asked_for_only_in_the_statins_first_year(started: int, fires: bool) -> None:
    found = run(_drug(STATIN, days_ago=started))
    assert bool(found) is fires
    if fires:
        assert "no ldl cholesterol on record" in found[0].summary.lower()


def test_a_lapsed_lipid_panel_is_asked_for_however_long_the_statin_has_run() -> None:
    (finding,) = run(_drug(STATIN, days_ago=3000), lab("ldl", 95, days_ago=400))
    assert "400 days old" in finding.summary


def test_an_undated_statin_is_not_known_to_be_new_so_only_a_lapsed_panel_is_asked_for() -> None:
    undated = _drug(STATIN)
    del undated["authoredOn"]
    assert run(undated) == []
    (finding,) = run(undated, lab("ldl", 95, days_ago=400))
    assert "400 days old" in finding.summary


# --- a blood count on an anticoagulant with an antiplatelet or NSAID ----------------------------------------

WARFARIN = "warfarin sodium 5 MG Oral Tablet"
CLOPIDOGREL = "clopidogrel 75 MG Oral Tablet"


def _two(first: str, second: str) -> tuple[JsonDict, JsonDict]:
    a, b = _drug(first), _drug(second)
    b["id"] = "second-drug"
    return a, b


def _count(*resources: JsonDict) -> list[Finding]:
    built = Chart(age=70, resources=resources).build()
    return list(bleeding_combination_blood_count(RuleFacts.of(built.context)))


@pytest.mark.parametrize(("days", "fires"), [(364, False), (365, False), (366, True)])
def test_warfarin_with_clopidogrel_needs_a_blood_count_within_a_year(days: int, fires: bool) -> None:
    found = _count(*_two(WARFARIN, CLOPIDOGREL), lab("hemoglobin", 13.5, days_ago=days))
    assert bool(found) is fires
    if fires:
        assert found[0].severity == "info" and found[0].order_lab is not None
        assert "the last blood count 1 year ago" in found[0].summary


def test_anaemia_on_record_makes_it_a_warning_and_no_count_at_all_is_said() -> None:
    anaemia = {
        **_drug(WARFARIN),
        "resourceType": "Condition",
        "id": "anaemia",
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "271737000", "display": "Anemia"}]},
    }
    for key in ("status", "intent", "medicationCodeableConcept", "authoredOn", "dosageInstruction"):
        anaemia.pop(key, None)
    anaemia["subject"] = {"reference": f"Patient/{PATIENT_ID}"}
    (finding,) = _count(*_two(WARFARIN, "naproxen 500 MG Oral Tablet"), anaemia)
    assert finding.severity == "warning"
    assert "and anaemia, no blood count on record" in finding.summary


@pytest.mark.parametrize(
    "partner",
    [
        "acetaminophen 500 MG Oral Tablet",  # not an antiplatelet or NSAID
        "diclofenac sodium 10 MG/G Topical Gel",  # on the skin
    ],
)
def test_no_bleeding_partner_or_a_skin_nsaid_needs_no_count(partner: str) -> None:
    assert _count(*_two(WARFARIN, partner)) == []


def test_an_antiplatelet_alone_needs_no_count_here() -> None:
    assert _count(_drug(CLOPIDOGREL)) == []


@pytest.mark.parametrize(
    ("started", "count_days", "fires"), [(13, 20, False), (14, 20, True), (19, 7, False), (19, 8, True)]
)
def test_linezolid_needs_a_weekly_blood_count_after_two_weeks(
    started: int, count_days: int, fires: bool
) -> None:
    found = run(
        _drug("linezolid 600 MG Oral Tablet", days_ago=started), lab("platelets", 250, days_ago=count_days)
    )
    assert bool(found) is fires
    if fires:
        assert found[0].severity == "warning" and found[0].order_lab is not None


@pytest.mark.parametrize(
    ("display", "analyte", "fires_at_days"),
    [
        ("Esbriet (pirfenidone) 801 MG Oral Tablet", "alt", 93),
        ("Lialda (mesalamine) 1.2 G Delayed Release Oral Tablet", "creatinine", 366),
    ],
)
def test_pirfenidone_liver_tests_and_mesalamine_kidney_function(
    display: str, analyte: str, fires_at_days: int
) -> None:
    drug = _drug(display, days_ago=800)
    assert not run(drug, lab(analyte, 1.0 if analyte == "creatinine" else 30, days_ago=fires_at_days - 1))
    assert run(drug, lab(analyte, 1.0 if analyte == "creatinine" else 30, days_ago=fires_at_days))


@pytest.mark.parametrize(("started", "fires"), [(83, False), (84, True)])
def test_second_generation_antipsychotics_need_yearly_glucose_and_lipids_after_12_weeks(
    started: int, fires: bool
) -> None:
    found = run(_drug("aripiprazole 10 MG Oral Tablet", days_ago=started))
    assert bool(found) is fires
    if fires:
        assert "hba1c" in found[0].summary.lower() or "a1c" in found[0].summary.lower()
    assert not run(
        _drug("aripiprazole 10 MG Oral Tablet", days_ago=400), lab("hba1c", 5.4, 200), lab("ldl", 90, 200)
    )


@pytest.mark.parametrize(("days", "fires"), [(119, False), (120, False), (121, True), (460, True)])
def test_sulfasalazine_needs_a_blood_count_and_liver_tests_every_four_months(days: int, fires: bool) -> None:
    found = run(
        _drug("sulfasalazine 500 MG Delayed Release Oral Tablet", days_ago=900),
        lab("alt", 22, days_ago=days),
        lab("platelets", 250, days_ago=days),
    )
    assert bool(found) is fires
    if fires:
        assert found[0].severity == "info" and found[0].order_lab is not None


@pytest.mark.parametrize(("days", "fires"), [(179, False), (180, False), (181, True), (365, True)])
def test_methimazole_needs_a_tsh_at_least_every_six_months(days: int, fires: bool) -> None:
    found = run(
        _drug("methimazole 10 MG Oral Tablet (Tapazole)", days_ago=420), lab("tsh", 1.2, days_ago=days)
    )
    assert bool(found) is fires
    if fires:
        assert found[0].severity == "info" and found[0].order_lab is not None
        assert found[0].order_lab.loinc == "3016-3"


@pytest.mark.parametrize(("days", "fires"), [(89, False), (90, False), (91, True), (160, True)])
def test_tolvaptan_needs_liver_tests_at_least_every_three_months(days: int, fires: bool) -> None:
    found = run(_drug("tolvaptan 90 MG Oral Tablet (Jynarque)", days_ago=900), lab("alt", 25, days_ago=days))
    assert bool(found) is fires
    if fires:
        assert found[0].severity == "warning" and found[0].evidence == ("kb.tolvaptan-liver-monitoring",)


@pytest.mark.parametrize(
    ("display", "days", "fires"),
    [
        ("vancomycin 1250 MG in 250 ML Injection for intravenous infusion", 7, False),
        ("vancomycin 1250 MG in 250 ML Injection for intravenous infusion", 8, True),
        ("vancomycin 125 MG Oral Capsule", 30, False),  # oral vancomycin stays in the gut
    ],
)
def test_intravenous_vancomycin_needs_weekly_creatinine_and_blood_count(
    display: str, days: int, fires: bool
) -> None:
    found = run(
        _drug(display, days_ago=30),
        lab("creatinine", 1.0, days_ago=days),
        lab("platelets", 250, days_ago=days),
    )
    assert bool(found) is fires
    if fires:
        assert found[0].severity == "warning" and found[0].evidence == ("kb.opat-vancomycin-weekly-labs",)


@pytest.mark.parametrize(("days", "fires"), [(34, False), (35, False), (36, True)])
def test_bosentan_needs_liver_tests_every_month(days: int, fires: bool) -> None:
    found = run(_drug("bosentan 62.5 MG Oral Tablet (Tracleer)", days_ago=400), lab("alt", 22, days_ago=days))
    assert bool(found) is fires


@pytest.mark.parametrize(("days", "fires"), [(55, False), (56, False), (57, True)])
def test_a_checkpoint_inhibitor_needs_a_tsh_every_eight_weeks(days: int, fires: bool) -> None:
    found = run(
        _drug("pembrolizumab 25 MG/ML Injectable Solution", days_ago=200), lab("tsh", 2.0, days_ago=days)
    )
    assert bool(found) is fires
