"""Recommendations with a start date: a chart reviewed as of an earlier day is not held to later advice."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any

import pytest

from plugin.context.build import build_context
from plugin.context.dated import (
    RecommendationDatesError,
    not_in_force,
    parse_recommendation_dates,
    recommendation_dates,
)
from plugin.knowledge import load_knowledge_base
from plugin.rules import catalog, vaccines
from plugin.rules.model import Finding, RuleFacts
from tests.support.charts import NOW
from tests.support.rule_cases import Chart, med, problem, vaccine

pytestmark = pytest.mark.unit

RSV_FROM = date(2023, 6, 21)
PNEUMOCOCCAL_50_FROM = date(2024, 10, 23)
ZOSTER_FROM = date(2017, 10, 25)
ZOSTER_IMMUNOCOMPROMISED_FROM = date(2021, 10, 20)
NIRSEVIMAB_FROM = date(2023, 8, 2)


def raw_table() -> dict[str, Any]:
    text = (
        resources.files("plugin").joinpath("knowledge/recommendation_dates.json").read_text(encoding="utf-8")
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


HEPATITIS_B_FROM = date(2021, 11, 3)


def test_the_table_names_the_days_acip_voted_and_cites_entries_that_exist() -> None:
    table = {r.name: r for r in recommendation_dates()}
    assert {name: r.in_force_from for name, r in table.items()} == {
        "zoster-recombinant-50-plus": ZOSTER_FROM,
        "zoster-recombinant-immunocompromised": ZOSTER_IMMUNOCOMPROMISED_FROM,
        "rsv-older-adults": RSV_FROM,
        "pneumococcal-50-plus": PNEUMOCOCCAL_50_FROM,
        "sglt2i-diabetes-ckd": date(2020, 10, 1),
        "nirsevimab-infants": NIRSEVIMAB_FROM,
        "hepatitis-b-adults-19-59": HEPATITIS_B_FROM,
    }
    knowledge = load_knowledge_base()
    assert all(r.basis in knowledge for r in table.values())


@pytest.mark.parametrize(
    ("day", "rsv_in_force"),
    [(RSV_FROM - timedelta(days=1), False), (RSV_FROM, True), (RSV_FROM + timedelta(days=1), True)],
)
def test_a_recommendation_is_in_force_from_its_day(day: date, rsv_in_force: bool) -> None:
    assert ("rsv-older-adults" not in not_in_force(day)) is rsv_in_force


def test_nothing_is_held_back_today_and_the_builder_sets_the_hooks_day() -> None:
    assert not_in_force(NOW.date()) == ()
    prefetch = Chart(age=80).prefetch()
    then = datetime(2021, 3, 1, 12, 0, tzinfo=NOW.tzinfo)
    assert build_context(prefetch, NOW).context.recommendations_not_in_force == ()
    old = build_context(prefetch, then).context
    assert old.recommendations_not_in_force == (
        "hepatitis-b-adults-19-59",
        "nirsevimab-infants",
        "pneumococcal-50-plus",
        "rsv-older-adults",
        "zoster-recombinant-immunocompromised",
    )
    assert not old.in_force("rsv-older-adults") and old.in_force("zoster-recombinant-50-plus")


@pytest.mark.parametrize(
    ("changes", "problem_named"),
    [
        ({"in_force_from": "21 June 2023"}, "in_force_from is a date"),
        ({"in_force_from": "2023-02-30"}, "in_force_from is a date"),
        ({"name": "RSV"}, "name is lower-case words"),
        ({"basis": "acip"}, "a basis kb id"),
        ({"note": ""}, "a basis kb id and a note"),
        ({"extra": 1}, "has exactly name"),
    ],
)
def test_a_malformed_row_is_refused_with_its_problem_named(
    changes: dict[str, Any], problem_named: str
) -> None:
    table = copy.deepcopy(raw_table())
    table["recommendations"][0].update(changes)
    with pytest.raises(RecommendationDatesError, match=r"recommendation_dates\.json") as caught:
        parse_recommendation_dates(table)
    assert problem_named in str(caught.value)


def test_repeated_names_and_a_missing_version_are_refused() -> None:
    table = raw_table()
    table["recommendations"].append(copy.deepcopy(table["recommendations"][0]))
    with pytest.raises(RecommendationDatesError, match="names repeated"):
        parse_recommendation_dates(table)
    with pytest.raises(RecommendationDatesError, match="needs a version"):
        parse_recommendation_dates({"recommendations": []})
    with pytest.raises(RecommendationDatesError, match="needs a list"):
        parse_recommendation_dates({"version": "1"})


def _as_of(chart: Chart, day: date) -> RuleFacts:
    context = dataclasses.replace(chart.build().context, recommendations_not_in_force=not_in_force(day))
    return RuleFacts.of(context)


def _ids(findings: list[Finding]) -> list[str]:
    return [f.rule_id for f in findings]


@pytest.mark.parametrize(
    ("day", "fires"),
    [(RSV_FROM - timedelta(days=1), False), (RSV_FROM, True), (RSV_FROM + timedelta(days=365), True)],
)
def test_rsv_is_not_asked_of_a_chart_dated_before_the_recommendation(day: date, fires: bool) -> None:
    assert bool(list(vaccines.rsv_due(_as_of(Chart(age=80), day)))) is fires


@pytest.mark.parametrize(
    ("age", "day", "expected"),
    [
        # 60 without risk: due only once ACIP lowered the age to 50
        (60, PNEUMOCOCCAL_50_FROM - timedelta(days=1), []),
        (60, PNEUMOCOCCAL_50_FROM, ["rule.pneumococcal-vaccine-due"]),
        # 64 and 65 before it: the old threshold was 65
        (64, PNEUMOCOCCAL_50_FROM - timedelta(days=1), []),
        (65, PNEUMOCOCCAL_50_FROM - timedelta(days=1), ["rule.pneumococcal-vaccine-due"]),
    ],
)
def test_the_age_for_every_adult_pneumococcal_vaccine_follows_the_charts_day(
    age: int, day: date, expected: list[str]
) -> None:
    assert _ids(list(catalog.pneumococcal_due(_as_of(Chart(age=age), day)))) == expected


@pytest.mark.parametrize(
    ("age", "day", "fires"),
    [
        (63, PNEUMOCOCCAL_50_FROM - timedelta(days=1), True),  # the risk-based advice ran to 64
        (64, PNEUMOCOCCAL_50_FROM - timedelta(days=1), True),
        (65, PNEUMOCOCCAL_50_FROM - timedelta(days=1), False),  # the every-adult rule speaks
        (63, PNEUMOCOCCAL_50_FROM, False),
        (49, PNEUMOCOCCAL_50_FROM, True),
    ],
)
def test_risk_based_pneumococcal_runs_to_the_age_in_force(age: int, day: date, fires: bool) -> None:
    chart = Chart(age=age, resources=(problem("diabetes"),))
    assert bool(list(vaccines.pneumococcal_risk_due(_as_of(chart, day)))) is fires


@pytest.mark.parametrize(
    ("age", "resources", "day", "fires"),
    [
        (55, (), ZOSTER_FROM - timedelta(days=1), False),
        (55, (), ZOSTER_FROM, True),
        (40, (med("methotrexate"),), ZOSTER_IMMUNOCOMPROMISED_FROM - timedelta(days=1), False),
        (40, (med("methotrexate"),), ZOSTER_IMMUNOCOMPROMISED_FROM, True),
        # 55 on an immunosuppressant between the two votes: due as an adult of 50 or more
        (55, (med("methotrexate"),), ZOSTER_IMMUNOCOMPROMISED_FROM - timedelta(days=1), True),
    ],
)
def test_zoster_follows_each_of_its_two_start_dates(
    age: int, resources: tuple[dict[str, Any], ...], day: date, fires: bool
) -> None:
    chart = Chart(age=age, resources=resources)
    assert bool(list(vaccines.zoster_due(_as_of(chart, day)))) is fires


@pytest.mark.parametrize(("days_before", "fires"), [(1, False), (0, True)])
def test_universal_adult_hepatitis_b_from_the_acip_vote(days_before: int, fires: bool) -> None:
    day = datetime.combine(HEPATITIS_B_FROM - timedelta(days=days_before), datetime.min.time(), tzinfo=UTC)
    prefetch = Chart(age=40, resources=(vaccine("influenza", 60), problem("diabetes"))).prefetch()
    context = build_context(prefetch, day).context
    assert bool(list(vaccines.hepatitis_b_vaccine_due(RuleFacts.of(context)))) is fires
