"""Children's doses by age or weight band: each band's edges, the tolerance, routes, conditions and the table's checks."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from plugin.context.build import build_context
from plugin.knowledge import load_knowledge_base
from plugin.rules.dose_bands import DoseBandError, dose_bands, paediatric_dose_band, parse_dose_bands
from plugin.rules.model import Finding, RuleFacts
from plugin.rules.override_reasons import override_reasons
from tests.support.charts import NOW, JsonDict, medication_request
from tests.support.rule_cases import PATIENT_ID, Chart, lab, on, problem

pytestmark = pytest.mark.unit


def _order(display: str, mg: float, route: str = "Oral route") -> JsonDict:
    request = medication_request("banded", PATIENT_ID, "", display, authored=on(1))
    del request["medicationCodeableConcept"]["coding"]
    request["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
            "route": {"text": route},
            "doseAndRate": [{"doseQuantity": {"value": mg, "unit": "mg"}}],
        }
    ]
    return request


def _found(*resources: JsonDict, age: int, days_old: int | None = None) -> list[Finding]:
    prefetch = Chart(age=age, gender="male", resources=resources).prefetch()
    if days_old is not None:
        prefetch["patient"]["birthDate"] = (NOW.date() - timedelta(days=days_old)).isoformat()
    return list(paediatric_dose_band(RuleFacts.of(build_context(prefetch, NOW).context)))


def _oseltamivir(mg: float) -> JsonDict:
    return _order("oseltamivir 6 MG/ML Oral Suspension (Tamiflu)", mg)


@pytest.mark.parametrize(
    ("kg", "mg", "raised"),
    [
        (15, 30, False),  # 15 kg or less: 30 mg
        (15.1, 30, True),  # over 15 kg: 45 mg, and 30 is under it
        (23, 45, False),
        (23.1, 45, True),  # the dose from the band below
        (23.1, 60, False),
        (40, 60, False),
        (40.1, 60, True),  # over 40 kg: 75 mg
        (30, 54, False),  # 10% under 60 is within tolerance
        (30, 53.9, True),
        (30, 66, False),  # 10% over is within tolerance
        (30, 66.1, True),
    ],
)
def test_oseltamivir_weight_band_edges(kg: float, mg: float, raised: bool) -> None:
    found = _found(_oseltamivir(mg), lab("weight", kg, days_ago=1), age=8)
    assert bool(found) is raised
    if raised:
        assert found[0].rule_id == "rule.paediatric-dose-band" and found[0].severity == "warning"
        assert found[0].evidence == ("kb.oseltamivir-paediatric-weight-bands",)


@pytest.mark.parametrize(
    ("age", "kg", "mg", "raised"),
    [
        (12, 39.9, 5, False),  # under 40 kg: 5 mg
        (12, 39.9, 10, True),
        (12, 38.5, 10, True),
        (12, 40, 10, False),  # from 40 kg: 10 mg
        (12, 40, 5, False),  # under the band is not raised (a smaller first dose is a choice)
        (6, 20, 10, True),
        (5, 20, 10, False),  # not labelled under 6: no band to hold it to
        (18, 39, 10, False),  # an adult
    ],
)
def test_rizatriptan_weight_bands_from_6_to_17(age: int, kg: float, mg: float, raised: bool) -> None:
    found = _found(
        _order("rizatriptan 10 MG Disintegrating Oral Tablet", mg), lab("weight", kg, days_ago=1), age=age
    )
    assert bool(found) is raised
    if raised:
        assert found[0].evidence == ("kb.rizatriptan-paediatric-dose",)


@pytest.mark.parametrize(
    ("kg", "mg", "raised"),
    [
        (9.9, 5, False),  # 5 to under 10 kg: 5 mg
        (9.9, 10, True),
        (10, 10, False),  # 10 to under 20 kg: 10 mg
        (19.9, 20, True),
        (20, 20, False),  # from 20 kg: 20 mg
        (20, 40, True),
    ],
)
def test_omeprazole_weight_bands_from_1_to_16(kg: float, mg: float, raised: bool) -> None:
    order = _order("omeprazole 2 MG/ML Oral Suspension", mg)
    order["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = 1
    found = _found(order, lab("weight", kg, days_ago=1), age=6)
    assert bool(found) is raised
    if raised:
        assert found[0].evidence == ("kb.omeprazole-paediatric-dose",)


def test_oseltamivir_under_one_year_is_3_mg_per_kg_and_adults_are_not_banded() -> None:
    assert not _found(_oseltamivir(21), lab("weight", 7, days_ago=1), age=0, days_old=200)
    assert _found(_oseltamivir(30), lab("weight", 7, days_ago=1), age=0, days_old=200)
    assert not _found(_oseltamivir(45), lab("weight", 70, days_ago=1), age=18)


def test_a_weight_band_says_nothing_without_a_current_weight() -> None:
    assert not _found(_oseltamivir(30), age=8)
    assert not _found(_oseltamivir(30), lab("weight", 30, days_ago=400), age=8)


PENICILLIN_VK = "penicillin V potassium 125 MG/5ML Oral Solution"


@pytest.mark.parametrize(
    ("age", "mg", "raised"),
    [(2, 125, False), (2, 250, True), (3, 125, True), (3, 250, False), (5, 125, True), (6, 125, False)],
)
def test_sickle_cell_penicillin_prophylaxis_by_age(age: int, mg: float, raised: bool) -> None:
    sickle = problem("sickle-cell-disease")
    found = _found(_order(PENICILLIN_VK, mg), sickle, age=age)
    assert bool(found) is raised
    if raised:
        assert len(found[0].inputs) == 2  # the order and the sickle cell disease it is for


def test_penicillin_without_sickle_cell_disease_is_not_banded() -> None:
    assert not _found(_order(PENICILLIN_VK, 125), problem("asthma"), age=4)


DIASTAT = "diazepam 20 MG Rectal Gel delivery system (Diastat AcuDial)"


@pytest.mark.parametrize(
    ("age", "kg", "mg", "raised"),
    [
        (4, 16, 10, False),  # 0.5 mg/kg is 8 mg, rounded up to 10
        (4, 16, 11, False),  # within 10% of 10
        (4, 16, 12.5, True),
        (4, 16, 20, True),
        (8, 25, 7.5, False),  # 0.3 mg/kg is 7.5 mg
        (8, 25, 10, True),
        (14, 50, 10, False),  # 0.2 mg/kg is 10 mg
        (1, 10, 5, False),  # under 2: no band (the label does not recommend it)
    ],
)
def test_rectal_diazepam_by_age_and_weight(age: int, kg: float, mg: float, raised: bool) -> None:
    found = _found(_order(DIASTAT, mg, "Rectal route"), lab("weight", kg, days_ago=1), age=age)
    assert bool(found) is raised
    if raised:
        assert found[0].severity == "critical" and "at most" in found[0].summary


def test_oral_diazepam_is_not_banded_as_rectal() -> None:
    oral = _order("diazepam 5 MG Oral Tablet", 20)
    assert not _found(oral, lab("weight", 16, days_ago=1), age=4)


def test_each_drug_cites_an_entry_of_its_own_severity_and_the_rule_has_reasons() -> None:
    knowledge = load_knowledge_base()
    for drug in dose_bands().drugs:
        entry = knowledge.get(drug.evidence)
        assert entry is not None and entry.severity_hint == drug.severity, drug.ingredient
        assert drug.ingredient in entry.applies_to.ingredients
    assert override_reasons().specific("rule.paediatric-dose-band")


GOOD: dict[str, Any] = {
    "version": "t",
    "tolerance": 0.1,
    "drugs": [
        {
            "ingredient": "oseltamivir",
            "route": None,
            "condition": None,
            "bands": [{"age_from": 1, "age_below": 13, "mg": 30}],
            "under_too": True,
            "round_up_mg": None,
            "label": "band",
            "why": "Why.",
            "evidence": "kb.x",
            "severity": "warning",
        }
    ],
}


def _broken(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    table = copy.deepcopy(GOOD)
    target: Any = table
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return table


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("tolerance",), 0.6, "tolerance"),
        (("drugs", 0, "bands"), [], "at least one band"),
        (("drugs", 0, "bands", 0, "mg_per_kg"), 3, "exactly one of mg and mg_per_kg"),
        (("drugs", 0, "bands", 0, "age_below"), 20, "age_below at most 18"),
        (("drugs", 0, "bands", 0, "weight_above"), 30, "weight"),
        (("drugs", 0, "severity"), "high", "severity"),
        (("drugs", 0, "route"), "by mouth", "one word"),
        (("drugs", 0, "why"), "No full stop", "one sentence"),
    ],
)
def test_a_malformed_table_names_its_problem(path: tuple[Any, ...], value: Any, message: str) -> None:
    broken = _broken(path, value)
    if path[-1] == "weight_above":
        broken["drugs"][0]["bands"][0]["weight_up_to"] = 20
    with pytest.raises(DoseBandError, match=message):
        parse_dose_bands(broken)
    assert parse_dose_bands(GOOD).drugs[0].ingredient == "oseltamivir"
