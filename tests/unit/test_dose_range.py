"""Draft-order doses against the dose-range table: parsing, adult limits, mg/kg limits, and their boundaries."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from plugin.context.model import Dosage
from plugin.rules.dose_range import (
    DoseRangeError,
    daily_frequency,
    dose_range,
    dose_table,
    ingredient_strength_mg,
    parse_dose_table,
    single_dose_mg,
)
from plugin.rules.model import Finding, RuleFacts
from plugin.terminology import is_known_ingredient
from tests.support.charts import JsonDict, medication_request
from tests.support.rule_cases import PATIENT_ID, Chart, lab


def order(
    display: str,
    dose: float,
    unit: str = "tablet",
    frequency: int = 1,
    period: float = 1,
    period_unit: str = "d",
    status: str = "draft",
    resource_id: str = "draft-order",
) -> JsonDict:
    resource = medication_request(resource_id, PATIENT_ID, "000000", display, status=status)
    resource["dosageInstruction"] = [
        {
            "timing": {"repeat": {"frequency": frequency, "period": period, "periodUnit": period_unit}},
            "doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit}}],
        }
    ]
    return resource


def findings(
    *drafts: JsonDict, age: int = 50, weight: float | None = None, weight_days: int = 30
) -> list[Finding]:
    resources = (lab("weight", weight, days_ago=weight_days),) if weight is not None else ()
    built = Chart(age=age, resources=resources, drafts=drafts).build()
    return list(dose_range(RuleFacts.of(built.context)))


APAP_500 = "Acetaminophen 500 MG Oral Tablet"
AMOX_SUSP = "Amoxicillin 400 MG/5ML Oral Suspension"


# --- parsing ------------------------------------------------------------------------------------------


def test_strength_of_each_ingredient_of_a_combination() -> None:
    display = "Acetaminophen 325 MG / HYDROcodone Bitartrate 7.5 MG Oral Tablet"
    apap, hydrocodone = (
        ingredient_strength_mg(display, "acetaminophen"),
        ingredient_strength_mg(display, "hydrocodone"),
    )
    assert apap is not None and (apap.mg, apap.per_ml) == (325, None)
    assert hydrocodone is not None and hydrocodone.mg == 7.5


def test_strength_of_a_liquid_and_of_micrograms() -> None:
    liquid = ingredient_strength_mg(AMOX_SUSP, "amoxicillin")
    assert liquid is not None and (liquid.mg, liquid.per_ml) == (400, 5)
    levothyroxine = ingredient_strength_mg("Levothyroxine Sodium 75 MCG Oral Tablet", "levothyroxine")
    assert levothyroxine is not None and levothyroxine.mg == pytest.approx(0.075)
    assert ingredient_strength_mg("Ibuprofen Oral Tablet", "ibuprofen") is None


@pytest.mark.parametrize(
    ("dose", "strength_display", "expected"),
    [
        ("2 tablet", APAP_500, 1000),
        ("1000 mg", APAP_500, 1000),
        ("500 mcg", APAP_500, 0.5),
        ("10 mL", AMOX_SUSP, 800),
        ("2 tablet", AMOX_SUSP, None),  # a count of a liquid is not a dose
        ("5 mL", APAP_500, None),  # millilitres of a tablet are not a dose
        ("1 spray", APAP_500, None),
        (None, APAP_500, None),
    ],
)
def test_single_dose(dose: str | None, strength_display: str, expected: float | None) -> None:
    ingredient = strength_display.split()[0].lower()
    strength = ingredient_strength_mg(strength_display, ingredient)
    assert single_dose_mg(Dosage(dose=dose), strength) == expected


@pytest.mark.parametrize(
    ("frequency", "per_day"),
    [
        ("3 per 1 d", 3),
        ("1 per 8 h", 3),
        ("1 per 1 wk", 1 / 7),
        ("2 per 1 d", 2),
        ("1 per 0 d", None),
        (None, None),
        ("q8h", None),
    ],
)
def test_daily_frequency(frequency: str | None, per_day: float | None) -> None:
    result = daily_frequency(Dosage(frequency=frequency))
    assert result == (pytest.approx(per_day) if per_day is not None else None)


# --- adult limits: at, just below and just above (with the 10% rounding tolerance) ---------------------


def test_acetaminophen_4000_mg_a_day_is_at_the_limit() -> None:
    assert findings(order(APAP_500, 2, frequency=4)) == []  # 1,000 mg x 4 = 4,000 mg


def test_acetaminophen_within_rounding_of_the_limit_is_not_flagged() -> None:
    assert findings(order(APAP_500, 2.2, frequency=4)) == []  # 4,400 mg: exactly 10% over


def test_acetaminophen_just_over_rounding_is_a_warning() -> None:
    (finding,) = findings(order(APAP_500, 2, frequency=5))  # 5,000 mg a day, single dose at the limit
    assert (finding.rule_id, finding.severity) == ("rule.dose-above-maximum", "warning")
    assert "5,000 mg" in finding.summary and "4,000 mg" in finding.summary
    assert finding.evidence == ("kb.dose-range-limits", "kb.acetaminophen-daily-maximum")
    assert finding.proposed == finding.inputs


def test_a_tenfold_dose_is_critical() -> None:
    (finding,) = findings(order("Amlodipine 10 MG Oral Tablet", 100, unit="mg"))  # 100 mg for 10 mg
    assert (finding.severity, finding.rule_id) == ("critical", "rule.dose-above-maximum")
    assert "100 mg" in finding.summary


def test_twice_the_limit_is_critical_and_just_under_it_a_warning() -> None:
    assert [f.severity for f in findings(order("Amlodipine 10 MG Oral Tablet", 2))] == ["critical"]  # 20 = 2x
    assert [f.severity for f in findings(order("Amlodipine 10 MG Oral Tablet", 19.9, unit="mg"))] == [
        "warning"
    ]


def test_single_dose_over_while_daily_total_within() -> None:
    (finding,) = findings(order("Ibuprofen 800 MG Oral Tablet", 2, frequency=1))  # 1,600 mg at once
    assert "a dose of 1,600 mg" in finding.summary


def test_weekly_methotrexate_is_within_its_limit() -> None:
    assert findings(order("Methotrexate 2.5 MG Oral Tablet", 6, frequency=1, period_unit="wk")) == []


def test_active_medications_are_not_checked_only_orders_being_placed() -> None:
    assert findings() == []
    built = Chart(resources=(order(APAP_500, 4, frequency=4, status="active"),)).build()
    assert list(dose_range(RuleFacts.of(built.context))) == []


def test_an_order_whose_dose_cannot_be_read_yields_no_card() -> None:
    assert findings(order(APAP_500, 2, unit="spray", frequency=6)) == []


def test_a_drug_without_limits_in_the_table_is_not_checked() -> None:
    assert findings(order("Warfarin Sodium 5 MG Oral Tablet", 10)) == []


# --- children: mg/kg with a current weight --------------------------------------------------------------


def test_child_amoxicillin_at_90_mg_per_kg_a_day_is_within() -> None:
    # 20 kg: 90 mg/kg/day is 1,800 mg; 11.25 mL is 900 mg, twice a day 1,800 mg.
    assert findings(order(AMOX_SUSP, 11.25, unit="mL", frequency=2), age=6, weight=20) == []


def test_child_amoxicillin_over_mg_per_kg_is_flagged_with_the_weight() -> None:
    # 20 kg: 15 mL = 1,200 mg a dose (60 mg/kg) three times a day = 3,600 mg (180 mg/kg/day).
    (finding,) = findings(order(AMOX_SUSP, 15, unit="mL", frequency=3), age=6, weight=20)
    assert finding.rule_id == "rule.dose-above-maximum" and finding.severity == "critical"
    assert finding.evidence == ("kb.dose-range-limits", "kb.paediatric-weight-based-dosing")
    assert len(finding.inputs) == 2  # the order and the weight


@pytest.mark.parametrize(("kg", "flagged"), [(20, False), (18.2, False), (18.1, True)])
def test_child_acetaminophen_per_dose_boundary(kg: float, flagged: bool) -> None:
    # 300 mg a dose: 15 mg/kg is 300 mg at 20 kg; with 10% rounding the limit holds down to 18.18 kg.
    result = findings(
        order("Acetaminophen 160 MG/5ML Oral Suspension", 9.375, unit="mL", frequency=1), age=5, weight=kg
    )
    assert bool(result) is flagged


def test_child_without_a_current_weight_gets_a_weigh_first_card() -> None:
    (missing,) = findings(order(AMOX_SUSP, 5, unit="mL", frequency=2), age=6)
    assert (missing.rule_id, missing.severity) == ("rule.dose-weight-unknown", "info")
    assert "no weight on record" in missing.summary
    (stale,) = findings(order(AMOX_SUSP, 5, unit="mL", frequency=2), age=6, weight=20, weight_days=366)
    assert "out-of-date weight" in stale.summary and len(stale.inputs) == 2


def test_an_adult_is_held_to_adult_limits_whatever_the_weight() -> None:
    assert findings(order(AMOX_SUSP, 10, unit="mL", frequency=3), age=30, weight=50) == []  # 2,400 mg a day


# --- the table ---------------------------------------------------------------------------------------------


def test_every_row_is_a_known_ingredient() -> None:
    unknown = sorted(name for name in dose_table().limits if not is_known_ingredient(name))
    assert unknown == []


def test_the_packaged_table_parses_and_sanity_checks_its_rows() -> None:
    table = dose_table()
    assert len(table.limits) >= 70
    assert table.limits["acetaminophen"].max_daily_mg == 4000
    for limits in table.limits.values():
        if limits.max_single_mg is not None and limits.max_daily_mg is not None:
            assert limits.max_single_mg <= limits.max_daily_mg


@pytest.mark.parametrize(
    "broken",
    [
        None,
        {"version": "1", "limits": []},
        {"version": "1", "rounding_tolerance": 0.1, "critical_multiple": 1.05, "limits": []},
        {"version": "1", "rounding_tolerance": 0.1, "critical_multiple": 2, "limits": [{"ingredient": "x"}]},
        {
            "version": "1",
            "rounding_tolerance": 0.1,
            "critical_multiple": 2,
            "limits": [
                {
                    "ingredient": "x",
                    "route": "oral",
                    "source": "s",
                    "adult": {"max_single_mg": 5, "max_daily_mg": 1},
                }
            ],
        },
        {
            "version": "1",
            "rounding_tolerance": 0.1,
            "critical_multiple": 2,
            "limits": [{"ingredient": "x", "route": "oral", "source": "s", "adult": {"max_single_mg": -1}}],
        },
    ],
)
def test_a_malformed_table_is_refused(broken: object) -> None:
    with pytest.raises(DoseRangeError):
        parse_dose_table(broken)


def test_the_file_is_the_one_loaded() -> None:
    raw = json.loads(
        resources.files("plugin").joinpath("knowledge/dose_ranges.json").read_text(encoding="utf-8")
    )
    assert parse_dose_table(raw).version == dose_table().version
