"""AF without anticoagulation and amiodarone for AF at 65+ (plugin.rules.gaps): each score point, both sex
lines at, below and above, and the cards held to their entries."""

from __future__ import annotations

import pytest

from plugin.knowledge import load_knowledge_base
from plugin.rules import gaps
from plugin.rules.model import RuleFacts
from tests.support.charts import SNOMED, JsonDict, copy_json
from tests.support.rule_cases import Chart, draft, med, problem

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
    ("gender", "age", "problems", "fires"),
    [
        ("male", 64, ("hypertension",), False),  # 1
        ("male", 65, ("hypertension",), True),  # 2: the men's line
        ("female", 65, (), False),  # 2
        ("female", 65, ("hypertension",), True),  # 3: the women's line
        ("female", 75, (), True),  # 3
    ],
)
def test_anticoagulation_is_asked_for_at_each_sex_line(
    gender: str, age: int, problems: tuple[str, ...], fires: bool
) -> None:
    resources = (AF, *(problem(p, resource_id=p) for p in problems))
    found = list(gaps.af_anticoagulation_absent(facts(*resources, age=age, gender=gender)))
    assert bool(found) is fires
    for finding in found:
        assert finding.severity == "warning" and "CHA2DS2-VASc" in finding.summary
        assert finding.evidence[0] == "kb.af-anticoagulation-cha2ds2-vasc"
        assert len(finding.summary) < 140


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
