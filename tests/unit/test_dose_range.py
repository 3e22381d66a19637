"""Doses against the dose-range table: parsing, adult, modified-release, age-band and mg/kg limits, and their
boundaries."""

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


def current(*resources: JsonDict, age: int = 50) -> list[Finding]:
    built = Chart(age=age, resources=resources).build()
    return list(dose_range(RuleFacts.of(built.context)))


def test_a_current_medication_over_its_limit_is_carded_without_a_proposal() -> None:
    (found,) = current(order("Metformin Hydrochloride 1000 MG Oral Tablet", 1, frequency=3, status="active"))
    assert (found.rule_id, found.severity, found.proposed) == ("rule.dose-above-maximum", "warning", ())
    assert "2,550" in found.summary


def test_current_acetaminophen_is_left_to_its_daily_total_rule() -> None:
    # rule.acetaminophen-daily-total adds every acetaminophen product up; a card per product says nothing more.
    assert current(order(APAP_500, 4, frequency=4, status="active")) == []
    assert findings(order(APAP_500, 4, frequency=4)) != []


def test_a_product_for_local_use_is_not_dosed_against_oral_limits() -> None:
    assert (
        current(
            order("Diclofenac Sodium 10 MG/ML Topical Gel", 4000, unit="mg", frequency=4, status="active")
        )
        == []
    )


# --- modified release and age bands -------------------------------------------------------------------

METFORMIN_XR = "Metformin Hydrochloride 500 MG Extended Release Oral Tablet"


@pytest.mark.parametrize(("tablets", "carded"), [(3, False), (4, False), (5, True)])
def test_metformin_extended_release_daily_limit_at_below_and_above(tablets: int, carded: bool) -> None:
    found = current(order(METFORMIN_XR, tablets, status="active"))
    assert bool(found) is carded
    if carded:
        assert "extended-release" in found[0].summary and "(2,000 mg)" in found[0].summary


def test_immediate_release_metformin_keeps_its_own_limit() -> None:
    # 2,500 mg a day is within immediate release's 2,550 mg, over extended release's 2,000 mg.
    assert current(order("Metformin Hydrochloride 500 MG Oral Tablet", 1, frequency=5, status="active")) == []


VENLAFAXINE_XR = "24 HR Venlafaxine 75 MG Extended Release Oral Capsule"


@pytest.mark.parametrize(("capsules", "carded"), [(2, False), (3, False), (4, True)])
def test_venlafaxine_extended_release_stops_at_225_mg(capsules: int, carded: bool) -> None:
    found = current(order(VENLAFAXINE_XR, capsules, status="active"))
    assert bool(found) is carded
    if carded:
        assert "extended-release" in found[0].summary


def test_immediate_release_venlafaxine_keeps_375_mg() -> None:
    assert current(order("Venlafaxine 75 MG Oral Tablet", 2, frequency=2, status="active")) == []


CETIRIZINE_SOLUTION = "Cetirizine Hydrochloride 1 MG/ML Oral Solution"


@pytest.mark.parametrize(
    ("age", "millilitres", "carded"),
    [
        (1, 2.5, False),  # at the under-2 single dose
        (1, 2.6, False),  # within rounding
        (1, 5, True),  # twice the under-2 single dose
        (2, 5, False),  # at the 2-5 years daily dose
        (5, 7.5, True),  # above it
        (6, 10, False),  # from 6 the adult 10 mg
        (6, 15, True),
    ],
)
def test_cetirizine_by_age_band(age: int, millilitres: float, carded: bool) -> None:
    found = current(order(CETIRIZINE_SOLUTION, millilitres, unit="mL", status="active"), age=age)
    assert bool(found) is carded


@pytest.mark.parametrize(
    ("age", "mg", "carded"), [(5, 4, False), (5, 5, True), (6, 5, False), (14, 10, True), (15, 10, False)]
)
def test_montelukast_by_age_band_at_the_boundaries(age: int, mg: float, carded: bool) -> None:
    drafted = order("Montelukast 4 MG Chewable Tablet", mg, unit="mg")
    assert bool(findings(drafted, age=age)) is carded


def test_an_age_band_card_needs_no_weight_and_names_the_band() -> None:
    (found,) = findings(order("Ondansetron 8 MG Disintegrating Oral Tablet", 1, frequency=3), age=5)
    assert "ages 4-11" in found.summary and found.proposed == (found.inputs[0],)


@pytest.mark.parametrize(("strength", "carded"), [("2.5", False), ("2.7", False), ("5", True)])
def test_a_tablet_stronger_than_the_age_bands_single_dose_is_noted_when_no_dose_is_given(
    strength: str, carded: bool
) -> None:
    resource = medication_request(
        "M1", PATIENT_ID, "000000", f"Cetirizine Hydrochloride {strength} MG Oral Tablet"
    )
    resource["dosageInstruction"] = [{"asNeededBoolean": True}]
    found = current(resource, age=1)
    assert [(f.rule_id, f.severity) for f in found] == (
        [("rule.dose-above-maximum", "info")] if carded else []
    )
    assert current(resource, age=6) == []  # from 6 the adult 10 mg


def test_age_bands_must_be_ordered_and_bounded() -> None:
    table = json.loads(resources.files("plugin").joinpath("knowledge/dose_ranges.json").read_text())
    row = next(r for r in table["limits"] if r["ingredient"] == "montelukast")
    for bands in (
        [{"from_years": 6, "below_years": 2, "max_daily_mg": 5}],
        [{"from_years": 0, "below_years": 20, "max_daily_mg": 5}],
        [
            {"from_years": 0, "below_years": 6, "max_daily_mg": 4},
            {"from_years": 5, "below_years": 15, "max_daily_mg": 5},
        ],
        [{"from_years": 0, "below_years": 6}],
        "0-6",
    ):
        row["paediatric_age_bands"] = bands
        with pytest.raises(DoseRangeError):
            parse_dose_table(table)


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


# --- from held-out v7: guanfacine and hydroxyzine ---------------------------------------------------------------

GUANFACINE_ER = "Guanfacine 4 MG Extended Release Oral Tablet"


@pytest.mark.parametrize(
    ("kg", "carded"),
    [(34, False), (33.3, False), (30, True), (22, True)],  # 4 mg is 0.12 mg/kg at 33.3 kg (rounding 10 %)
)
def test_guanfacine_extended_release_by_weight_for_a_child(kg: float, carded: bool) -> None:
    assert bool(findings(order(GUANFACINE_ER, 1), age=7, weight=kg)) is carded


def test_guanfacine_extended_release_without_a_weight_is_held_to_the_age_band() -> None:
    found = findings(order("Guanfacine 1 MG Extended Release Oral Tablet", 5), age=10)  # 5 mg at 10 years
    assert [f.rule_id for f in found] == ["rule.dose-above-maximum"] and "ages 6-12" in found[0].summary
    assert [f.rule_id for f in findings(order(GUANFACINE_ER, 1), age=10)] == ["rule.dose-weight-unknown"]


def test_guanfacine_extended_release_in_an_adult_has_its_own_limit() -> None:
    assert findings(order(GUANFACINE_ER, 1)) == []  # 4 mg: over the 3 mg immediate-release limit, within 7 mg
    assert findings(order("Guanfacine 2 MG Oral Tablet", 2)) != []


@pytest.mark.parametrize(
    ("age", "per_day", "carded"), [(5, 2, False), (5, 3, True), (6, 3, False), (6, 5, True)]
)
def test_hydroxyzine_by_age_band(age: int, per_day: int, carded: bool) -> None:
    drafted = order("Hydroxyzine Hydrochloride 25 MG Oral Tablet", 1, frequency=per_day)
    assert bool(findings(drafted, age=age)) is carded


@pytest.mark.parametrize(
    ("kg", "carded"), [(43, False), (39, False), (38, True), (15, True)]
)  # 600 mg a day: 14 mg/kg at 42.9 kg, within the 10 % rounding down to 39 kg
def test_cefdinir_14_mg_per_kg_a_day_for_a_child(kg: float, carded: bool) -> None:
    drafted = order("Cefdinir 300 MG Oral Capsule", 1, frequency=2)
    assert bool(findings(drafted, age=3, weight=kg)) is carded


@pytest.mark.parametrize(("kg", "flagged"), [(27, False), (26, False), (25.9, True)])
def test_child_nitrofurantoin_7_mg_per_kg_a_day(kg: float, flagged: bool) -> None:
    # 50 mg four times a day: 1.75 mg/kg a dose and 7 mg/kg a day both reach it at 28.6 kg, and the 10% rounding
    # tolerance moves the line to 25.97 kg.
    found = findings(order("nitrofurantoin 50 MG Oral Capsule", 1, frequency=4), age=8, weight=kg)
    assert bool(found) is flagged


def test_child_ferrous_sulfate_three_tablets_a_day_at_18_kg_is_flagged() -> None:
    # 975 mg a day of the salt is 54 mg/kg/day at 18 kg; the limit is 30 (6 mg/kg/day of elemental iron).
    assert findings(order("ferrous sulfate 325 MG Oral Tablet", 1, frequency=3), age=5, weight=18)
    assert not findings(order("ferrous sulfate 325 MG Oral Tablet", 1, frequency=1), age=5, weight=18)
