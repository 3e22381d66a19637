"""Doses against the dose-range table: parsing, adult, modified-release, age-band and mg/kg limits, and their
boundaries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

import pytest

from plugin.context.model import Dosage
from plugin.rules.dose_range import (
    DoseRangeError,
    LowWeight,
    daily_frequency,
    dose_range,
    dose_table,
    ingredient_strength_mg,
    parse_dose_table,
    single_dose_mg,
)
from plugin.rules.dosing import is_parenteral
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
    route: str | None = None,
) -> JsonDict:
    """A dosed order; a frequency of 0 leaves the timing out (a dose with no daily total)."""
    resource = medication_request(resource_id, PATIENT_ID, "000000", display, status=status)
    instruction: JsonDict = {"doseAndRate": [{"doseQuantity": {"value": dose, "unit": unit}}]}
    if frequency:
        instruction["timing"] = {
            "repeat": {"frequency": frequency, "period": period, "periodUnit": period_unit}
        }
    if route is not None:
        instruction["route"] = {"text": route}
    resource["dosageInstruction"] = [instruction]
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
    table = dose_table()
    unknown = sorted(name for name in (*table.limits, *table.parenteral) if not is_known_ingredient(name))
    assert unknown == []


def test_the_packaged_table_parses_and_sanity_checks_its_rows() -> None:
    table = dose_table()
    assert len(table.limits) >= 70 and len(table.parenteral) >= 10
    assert table.limits["acetaminophen"].max_daily_mg == 4000
    for limits in (*table.limits.values(), *table.parenteral.values()):
        if limits.max_single_mg is not None and limits.max_daily_mg is not None:
            assert limits.max_single_mg <= limits.max_daily_mg
    assert {r.route for r in table.limits.values()} == {"oral"}
    assert {r.route for r in table.parenteral.values()} == {"parenteral"}


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


# --- routes: parenteral rows beside oral ones ---------------------------------------------------------------


def _table_with(*rows: JsonDict) -> JsonDict:
    return {"version": "1", "rounding_tolerance": 0.1, "critical_multiple": 2, "limits": list(rows)}


def _row(route: object = "oral", **extra: object) -> JsonDict:
    return {"ingredient": "x", "route": route, "source": "s", "adult": {"max_single_mg": 5}, **extra}


def test_a_parenteral_row_sits_beside_the_oral_one() -> None:
    table = parse_dose_table(_table_with(_row(), _row("parenteral", adult={"max_single_mg": 50})))
    oral, parenteral = table.row("x", parenteral=False), table.row("x", parenteral=True)
    assert oral is not None and (oral.route, oral.max_single_mg) == ("oral", 5)
    assert parenteral is not None and (parenteral.route, parenteral.max_single_mg) == ("parenteral", 50)
    assert table.limits["x"] is oral and table.parenteral["x"] is parenteral


def test_an_oral_order_never_reads_a_parenteral_only_row() -> None:
    table = parse_dose_table(_table_with(_row("parenteral")))
    assert table.row("x", parenteral=False) is None and table.row("x", parenteral=True) is not None


def test_a_parenteral_order_falls_back_to_the_oral_row() -> None:
    table = parse_dose_table(_table_with(_row()))
    assert table.row("x", parenteral=True) is table.row("x", parenteral=False) is not None


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ((_row("rectal"),), "route must be one of oral, parenteral, not 'rectal'"),
        ((_row(None),), "route must be one of oral, parenteral, not None"),
        ((_row("IV"),), "route must be one of oral, parenteral"),
        ((_row(), _row()), "more than one oral row"),
        ((_row("parenteral"), _row("parenteral")), "more than one parenteral row"),
        (
            ({"ingredient": "x", "route": "parenteral", "adult": {}},),
            r"x \(parenteral\): every row cites its source",
        ),
        ((_row(source=" "),), "every row cites its source"),
        (
            (_row("parenteral", extended_release={"max_daily_mg": 5}),),
            "extended_release limits are for oral rows",
        ),
        ((_row(paediatric={"max_daily_mg": 50}),), "paediatric limits include a mg/kg limit"),
        (
            (_row(paediatric={"max_mg_per_kg_dose": 1, "max_single_mg": 60, "max_daily_mg": 50}),),
            "the children's single-dose limit exceeds the daily one",
        ),
        (
            (_row(paediatric={"max_mg_per_kg_dose": 1, "adult_from_kg": -5}),),
            "adult_from_kg must be a positive",
        ),
        ((_row(adult={"max_mg_per_kg_dose": 0}),), "adult.max_mg_per_kg_dose must be a positive number"),
        (
            (_row(adult_low_weight={"max_single_mg": 2}),),
            "adult_low_weight needs below_kg and at least one limit",
        ),
        (
            (_row(adult_low_weight={"below_kg": 50}),),
            "adult_low_weight needs below_kg and at least one limit",
        ),
        (
            (_row(adult_low_weight={"below_kg": 50, "max_dose": 2}),),
            "adult_low_weight is an object of below_kg",
        ),
        ((_row(adult_low_weight=[50, 2]),), "adult_low_weight is an object of below_kg"),
        (
            (_row(adult_low_weight={"below_kg": 50, "max_single_mg": 9, "max_daily_mg": 8}),),
            "the low-weight single-dose limit exceeds the daily one",
        ),
    ],
)
def test_a_malformed_route_or_weight_limit_is_refused(rows: tuple[JsonDict, ...], message: str) -> None:
    with pytest.raises(DoseRangeError, match=message):
        parse_dose_table(_table_with(*rows))


@pytest.mark.parametrize(
    ("words", "injected"),
    [
        ("Ondansetron 2 MG/ML Injectable Solution ", True),
        ("ceftriaxone 1000 MG Injection ", True),
        ("Ondansetron 4 MG Oral Tablet Intravenous route", True),
        ("ketorolac tromethamine 30 MG/ML Prefilled Syringe Intramuscular route", True),
        ("enoxaparin sodium 40 MG/0.4ML Prefilled Syringe ", True),
        ("morphine 10 MG/ML ampule SC", True),
        ("semaglutide 1 MG/DOSE pen injector ", True),
        ("Ondansetron 4 MG Oral Tablet Oral route", False),
        ("Imipramine 25 MG Oral Tablet ", False),
    ],
)
def test_an_injected_order_is_told_by_its_product_name_or_route(words: str, injected: bool) -> None:
    assert is_parenteral(words) is injected


ONDANSETRON_IV = "Ondansetron 2 MG/ML Injectable Solution"


def test_an_iv_order_is_held_to_the_parenteral_row() -> None:
    # 24 mg at once is the oral label's single dose, and 1.5 times the IV one (16 mg since the 2012 QT change).
    (card,) = findings(order(ONDANSETRON_IV, 24, unit="mg", route="Intravenous route"))
    assert card.summary.startswith(
        "Ondansetron a dose of 24 mg exceeds the adult parenteral single-dose maximum"
    )
    assert "(16 mg)" in card.summary and card.severity == "warning"
    assert findings(order("Ondansetron 8 MG Oral Tablet", 3, frequency=1)) == []  # the same 24 mg by mouth


def test_the_route_alone_can_make_an_order_parenteral() -> None:
    # A product name without an injection word, given IM: only the order's route says it. Ketorolac has no
    # oral row here, so the same order without a route is not dosed at all.
    vial = "Ketorolac Tromethamine 30 MG/ML"
    (card,) = findings(order(vial, 90, unit="mg", route="Intramuscular route"))
    assert "adult parenteral single-dose maximum (60 mg)" in card.summary
    assert findings(order(vial, 90, unit="mg")) == []


def test_an_oral_order_ignores_a_parenteral_row() -> None:
    # Oral vancomycin (C. difficile) has no oral row: the IV loading-dose limit of 3,000 mg does not apply to it.
    assert findings(order("Vancomycin 250 MG Oral Capsule", 16, frequency=4)) == []
    # Acyclovir by mouth keeps its oral 800 mg a dose, not IV acyclovir's 20 mg/kg.
    (card,) = findings(order("Acyclovir 800 MG Oral Tablet", 1000, unit="mg"), weight=70)
    assert "the adult single-dose maximum (800 mg)" in card.summary


def test_an_iv_order_without_a_parenteral_row_keeps_the_oral_limits() -> None:
    (card,) = findings(
        order("Famotidine 10 MG/ML Injectable Solution", 100, unit="mg", route="Intravenous route")
    )
    assert "exceeds the adult single-dose maximum (40 mg)" in card.summary


def test_iv_acyclovir_by_weight_is_not_held_to_the_oral_tablet() -> None:
    # 10 mg/kg every 8 hours at 90 kg: 900 mg a dose, over the oral 800 mg, well within 20 mg/kg.
    drafted = order(
        "Acyclovir 50 MG/ML Injectable Solution", 900, unit="mg", frequency=3, route="Intravenous route"
    )
    assert findings(drafted, weight=90) == []
    assert findings(drafted) == []  # no current weight: IV acyclovir has no fixed adult limit


def test_an_iv_levetiracetam_loading_dose_is_not_the_oral_maximum() -> None:
    assert findings(order("Levetiracetam 100 MG/ML Injectable Solution", 4500, unit="mg", route="IV")) == []
    assert findings(order("Levetiracetam 500 MG Oral Tablet", 9)) != []  # 4,500 mg by mouth


# --- the adult low-weight limit (IV acetaminophen: 15 mg/kg and 75 mg/kg a day under 50 kg) ---------------

APAP_IV = "Acetaminophen 10 MG/ML Injectable Solution"


def _names_the_weight(card: Finding) -> bool:
    """The card's inputs are the order and, after it, the weight reading."""
    return len(card.inputs) == 2 and card.inputs[:1] == card.proposed and card.inputs[1] != card.inputs[0]


@pytest.mark.parametrize(("kg", "carded"), [(49.9, True), (50, False), (None, False)])
def test_iv_acetaminophen_1_g_every_6_hours_under_50_kg(kg: float | None, carded: bool) -> None:
    found = findings(order(APAP_IV, 100, unit="mL", frequency=4, route="Intravenous route"), weight=kg)
    assert bool(found) is carded
    if carded:
        (card,) = found
        # 1,000 mg against 15 mg/kg at 49.9 kg (748.5 mg); the daily total is 4,000 mg against 3,742.5 mg.
        assert (
            "a dose of 1,000 mg exceeds the adult parenteral limit of 15 mg/kg a dose under 50 kg (748.5 mg)"
            in card.summary
        )
        assert card.evidence == ("kb.dose-range-limits", "kb.acetaminophen-daily-maximum")
        assert _names_the_weight(card)


def test_an_adult_weight_is_named_where_it_chose_the_limit_and_not_otherwise() -> None:
    (heavy,) = findings(order(APAP_IV, 1200, unit="mg", route="IV"), weight=80)  # over the 1,000 mg cap
    assert _names_the_weight(heavy)
    (oral,) = findings(order(APAP_500, 2, frequency=5), weight=80)  # the oral row sets no weight limit
    assert oral.inputs == oral.proposed and len(oral.inputs) == 1


def test_the_redundant_label_caps_are_read() -> None:
    # The label's 3,750 mg a day under 50 kg (and for children) never binds: 75 mg/kg x 49.9 kg is 3,742.5 mg.
    # Doxycycline's 200 mg a day cap likewise sits above 4.4 mg/kg a day under 45 kg. Read, not boundary-tested.
    apap = dose_table().parenteral["acetaminophen"]
    assert apap.adult_low_weight == LowWeight(50, None, 3750, 15, 75)
    assert (apap.paediatric_max_daily_mg, apap.paediatric_adult_from_kg) == (3750, 50)
    doxycycline = dose_table().limits["doxycycline"]
    assert (doxycycline.paediatric_max_daily_mg, doxycycline.paediatric_adult_from_kg) == (200, 45)


# --- children on parenteral rows -----------------------------------------------------------------------------


def test_a_child_without_a_weight_on_a_parenteral_mg_per_kg_row_is_asked_for_one() -> None:
    (missing,) = findings(order(APAP_IV, 200, unit="mg", frequency=4, route="IV"), age=6)
    assert (missing.rule_id, missing.severity) == ("rule.dose-weight-unknown", "info")
    # Without a weight a child is still held to the adult limits.
    (over,) = findings(order(APAP_IV, 1500, unit="mg", route="IV"), age=6)
    assert "adult parenteral single-dose maximum (1,000 mg)" in over.summary


def test_a_child_card_on_a_parenteral_row_cites_weight_based_dosing() -> None:
    (card,) = findings(order(APAP_IV, 600, unit="mg", route="IV"), age=6, weight=20)  # 30 mg/kg
    assert (
        card.severity == "critical"
        and "children's parenteral limit of 15 mg/kg a dose (300 mg)" in card.summary
    )
    assert card.evidence == (
        "kb.dose-range-limits",
        "kb.paediatric-weight-based-dosing",
        "kb.acetaminophen-daily-maximum",
    )
    assert _names_the_weight(card)


@pytest.mark.parametrize(
    ("display", "mg", "per_day", "kg", "carded"),
    [
        # From 50 kg the label doses a child as an adult: 1 g of IV acetaminophen at 14 years.
        (APAP_IV, 1000, 4, 50, False),
        (APAP_IV, 1000, 4, 49.9, True),
        ("Morphine Sulfate 4 MG/ML Injectable Solution", 10, 6, 50, False),
        ("Morphine Sulfate 4 MG/ML Injectable Solution", 10, 6, 49.9, True),
        ("Oxycodone Hydrochloride 5 MG Oral Tablet", 15, 4, 50, False),
        ("Oxycodone Hydrochloride 5 MG Oral Tablet", 15, 4, 49.9, True),
        ("Doxycycline Hyclate 100 MG Oral Tablet", 200, 1, 45, False),
        ("Doxycycline Hyclate 100 MG Oral Tablet", 200, 1, 44.9, True),
    ],
)
def test_a_child_at_the_labels_adult_weight_is_dosed_as_an_adult(
    display: str, mg: float, per_day: int, kg: float, carded: bool
) -> None:
    assert bool(findings(order(display, mg, unit="mg", frequency=per_day), age=14, weight=kg)) is carded


# --- every new limit at, just below and just above its threshold (the limit plus the 10% rounding) ----------
#
# Each case names the limit as its card does, a dose in mg and the administrations a day (0: none given),
# chosen so that only the named limit is crossed. `at` is the threshold itself, which is still quiet.

ADULT, CHILD = 50, 6


@dataclass(frozen=True)
class Edge:
    display: str
    named: str
    below: float
    at: float
    above: float
    per_day: int = 0
    age: int = ADULT
    kg: float | None = None


KETOROLAC_IV = "Ketorolac Tromethamine 30 MG/ML Injectable Solution"
CEFTRIAXONE = "Ceftriaxone 1000 MG Injection"
CEFAZOLIN = "Cefazolin 1000 MG Injection"
AMPICILLIN = "Ampicillin 2000 MG Injection"
VANCOMYCIN = "Vancomycin 1000 MG Injection"
ACYCLOVIR_IV = "Acyclovir 50 MG/ML Injectable Solution"
MORPHINE_IV = "Morphine Sulfate 4 MG/ML Injectable Solution"
LEVETIRACETAM = "Levetiracetam 100 MG/ML Oral Solution"
LEVETIRACETAM_IV = "Levetiracetam 100 MG/ML Injectable Solution"
CLINDAMYCIN_IV = "Clindamycin 150 MG/ML Injectable Solution"
DIPHENHYDRAMINE_IV = "Diphenhydramine Hydrochloride 50 MG/ML Injectable Solution"
PANTOPRAZOLE_IV = "Pantoprazole 40 MG Injection"
OXYCODONE = "Oxycodone Hydrochloride 5 MG Oral Tablet"
DOXYCYCLINE = "Doxycycline Hyclate 100 MG Oral Tablet"
LORAZEPAM_IV = "Lorazepam 2 MG/ML Injectable Solution"
VALACYCLOVIR = "Valacyclovir 1000 MG Oral Tablet"
CEFUROXIME = "Cefuroxime axetil 50 MG/ML Oral Suspension"
CEFPODOXIME = "Cefpodoxime proxetil 20 MG/ML Oral Suspension"
DEXAMETHASONE = "Dexamethasone 1 MG/ML Oral Solution"
GENTAMICIN = "Gentamicin 10 MG/ML Injectable Solution"
ONDANSETRON_ORAL = "Ondansetron 0.8 MG/ML Oral Solution"
PREDNISONE = "Prednisone 1 MG/ML Oral Solution"
METRONIDAZOLE = "Metronidazole 50 MG/ML Oral Suspension"
FLUCONAZOLE = "Fluconazole 40 MG/ML Oral Suspension"
FAMOTIDINE = "Famotidine 8 MG/ML Oral Suspension"
CIPROFLOXACIN = "Ciprofloxacin 50 MG/ML Oral Suspension"
VINCRISTINE = "Vincristine Sulfate 1 MG/ML Injectable Solution"
TRIMETHOPRIM = "Trimethoprim 10 MG/ML Oral Solution"
PIPERACILLIN = "Piperacillin 4000 MG Injection"

EDGES: dict[str, Edge] = {
    # lorazepam IV
    "lorazepam iv adult dose": Edge(
        LORAZEPAM_IV, "adult parenteral single-dose maximum (4 mg)", 4.39, 4.4, 4.41
    ),
    "lorazepam iv child dose": Edge(
        LORAZEPAM_IV,
        "children's parenteral limit of 0.1 mg/kg a dose (1.8 mg)",
        1.97,
        1.98,
        1.99,
        0,
        CHILD,
        18,
    ),
    "lorazepam iv child cap": Edge(
        LORAZEPAM_IV, "children's parenteral single-dose cap (4 mg)", 4.39, 4.4, 4.41, 0, 16, 50
    ),
    # vincristine: the 2 mg cap, for children too
    "vincristine adult dose": Edge(
        VINCRISTINE, "adult parenteral single-dose maximum (2 mg)", 2.19, 2.2, 2.21
    ),
    "vincristine child dose": Edge(
        VINCRISTINE, "adult parenteral single-dose maximum (2 mg)", 2.19, 2.2, 2.21, 0, CHILD, 30
    ),
    # acetaminophen IV
    "apap iv adult dose": Edge(APAP_IV, "adult parenteral single-dose maximum (1,000 mg)", 1099, 1100, 1101),
    "apap iv adult day": Edge(APAP_IV, "adult parenteral daily maximum (4,000 mg)", 879.9, 880, 880.2, 5),
    "apap iv under 50 kg dose": Edge(
        APAP_IV, "parenteral limit of 15 mg/kg a dose under 50 kg (600 mg)", 659, 660, 661, kg=40
    ),
    "apap iv under 50 kg day": Edge(
        APAP_IV, "parenteral limit of 75 mg/kg a day under 50 kg (3,000 mg)", 549.9, 550, 550.2, 6, kg=40
    ),
    "apap iv child dose": Edge(
        APAP_IV, "children's parenteral limit of 15 mg/kg a dose (300 mg)", 329, 330, 331, age=CHILD, kg=20
    ),
    "apap iv child day": Edge(
        APAP_IV, "children's parenteral limit of 75 mg/kg a day (1,500 mg)", 274.9, 275, 275.2, 6, CHILD, 20
    ),
    # ketorolac IV/IM
    "ketorolac adult dose": Edge(
        KETOROLAC_IV, "adult parenteral single-dose maximum (60 mg)", 65.9, 66, 66.1
    ),
    "ketorolac adult day": Edge(KETOROLAC_IV, "adult parenteral daily maximum (120 mg)", 32.9, 33, 33.1, 4),
    "ketorolac child day": Edge(
        KETOROLAC_IV, "children's parenteral limit of 2 mg/kg a day (40 mg)", 10.9, 11, 11.1, 4, CHILD, 20
    ),
    "ketorolac child day cap": Edge(
        KETOROLAC_IV, "children's parenteral daily cap (120 mg)", 26.3, 26.4, 26.5, 5, 16, 65
    ),
    # ondansetron IV
    "ondansetron adult dose": Edge(
        ONDANSETRON_IV, "adult parenteral single-dose maximum (16 mg)", 17.5, 17.6, 17.7
    ),
    "ondansetron adult day": Edge(
        ONDANSETRON_IV, "adult parenteral daily maximum (48 mg)", 13.1, 13.2, 13.25, 4
    ),
    "ondansetron child dose": Edge(
        ONDANSETRON_IV,
        "children's parenteral limit of 0.15 mg/kg a dose (3 mg)",
        3.29,
        3.3,
        3.31,
        age=CHILD,
        kg=20,
    ),
    "ondansetron child day": Edge(
        ONDANSETRON_IV,
        "children's parenteral limit of 0.45 mg/kg a day (9 mg)",
        1.97,
        1.98,
        1.99,
        5,
        CHILD,
        20,
    ),
    "ondansetron child cap": Edge(
        ONDANSETRON_IV, "children's parenteral single-dose cap (16 mg)", 17.5, 17.6, 17.7, 0, 16, 120
    ),
    "ondansetron child day cap": Edge(
        ONDANSETRON_IV, "children's parenteral daily cap (48 mg)", 13.1, 13.2, 13.25, 4, 16, 120
    ),
    # ceftriaxone
    "ceftriaxone adult dose": Edge(
        CEFTRIAXONE, "adult parenteral single-dose maximum (2,000 mg)", 2199, 2200, 2201
    ),
    "ceftriaxone adult day": Edge(
        CEFTRIAXONE, "adult parenteral daily maximum (4,000 mg)", 1099.9, 1100, 1100.5, 4
    ),
    "ceftriaxone child dose": Edge(
        CEFTRIAXONE,
        "children's parenteral limit of 100 mg/kg a dose (2,000 mg)",
        2199,
        2200,
        2201,
        age=CHILD,
        kg=20,
    ),
    "ceftriaxone child day": Edge(
        CEFTRIAXONE,
        "children's parenteral limit of 100 mg/kg a day (2,000 mg)",
        1099.5,
        1100,
        1100.5,
        2,
        CHILD,
        20,
    ),
    "ceftriaxone child day cap": Edge(
        CEFTRIAXONE, "children's parenteral daily cap (4,000 mg)", 1099.9, 1100, 1100.5, 4, 12, 45
    ),
    # cefazolin
    "cefazolin adult dose": Edge(
        CEFAZOLIN, "adult parenteral single-dose maximum (3,000 mg)", 3299, 3300, 3301
    ),
    "cefazolin adult day": Edge(
        CEFAZOLIN, "adult parenteral daily maximum (12,000 mg)", 2199.9, 2200, 2200.5, 6
    ),
    "cefazolin under 120 kg": Edge(
        CEFAZOLIN, "adult parenteral single-dose maximum under 120 kg (2,000 mg)", 2199, 2200, 2201, kg=119.9
    ),
    "cefazolin child dose": Edge(
        CEFAZOLIN,
        "children's parenteral limit of 50 mg/kg a dose (1,000 mg)",
        1099,
        1100,
        1101,
        age=CHILD,
        kg=20,
    ),
    "cefazolin child day": Edge(
        CEFAZOLIN,
        "children's parenteral limit of 150 mg/kg a day (3,000 mg)",
        824.9,
        825,
        825.5,
        4,
        CHILD,
        20,
    ),
    "cefazolin child cap": Edge(
        CEFAZOLIN, "children's parenteral single-dose cap (2,000 mg)", 2199, 2200, 2201, 0, 14, 60
    ),
    "cefazolin child day cap": Edge(
        CEFAZOLIN, "children's parenteral daily cap (12,000 mg)", 1649.9, 1650, 1650.5, 8, 16, 90
    ),
    # ampicillin
    "ampicillin adult dose": Edge(
        AMPICILLIN, "adult parenteral single-dose maximum (2,000 mg)", 2199, 2200, 2201
    ),
    "ampicillin adult day": Edge(
        AMPICILLIN, "adult parenteral daily maximum (12,000 mg)", 1649.9, 1650, 1650.5, 8
    ),
    "ampicillin child dose": Edge(
        AMPICILLIN, "children's parenteral limit of 100 mg/kg a dose (1,000 mg)", 1099, 1100, 1101, 1, 2, 10
    ),
    "ampicillin child day": Edge(
        AMPICILLIN, "children's parenteral limit of 400 mg/kg a day (4,000 mg)", 549.9, 550, 550.5, 8, 2, 10
    ),
    "ampicillin child day cap": Edge(
        AMPICILLIN, "children's parenteral daily cap (12,000 mg)", 1649.9, 1650, 1650.5, 8, 12, 40
    ),
    # vancomycin
    "vancomycin adult dose": Edge(
        VANCOMYCIN, "adult parenteral single-dose maximum (3,000 mg)", 3299, 3300, 3301
    ),
    "vancomycin child dose": Edge(
        VANCOMYCIN, "children's parenteral limit of 20 mg/kg a dose (400 mg)", 439, 440, 441, 1, CHILD, 20
    ),
    "vancomycin child day": Edge(
        VANCOMYCIN,
        "children's parenteral limit of 80 mg/kg a day (1,600 mg)",
        351.9,
        352,
        352.5,
        5,
        CHILD,
        20,
    ),
    # acyclovir IV
    "acyclovir iv adult dose": Edge(
        ACYCLOVIR_IV, "adult parenteral limit of 20 mg/kg a dose (1,400 mg)", 1539, 1540, 1541, 1, kg=70
    ),
    "acyclovir iv adult day": Edge(
        ACYCLOVIR_IV, "adult parenteral limit of 60 mg/kg a day (4,200 mg)", 1154.9, 1155, 1155.5, 4, kg=70
    ),
    "acyclovir iv child dose": Edge(
        ACYCLOVIR_IV, "children's parenteral limit of 20 mg/kg a dose (400 mg)", 439, 440, 441, 1, CHILD, 20
    ),
    "acyclovir iv child day": Edge(
        ACYCLOVIR_IV,
        "children's parenteral limit of 60 mg/kg a day (1,200 mg)",
        329.9,
        330,
        330.5,
        4,
        CHILD,
        20,
    ),
    # morphine IV
    "morphine child dose": Edge(
        MORPHINE_IV, "children's parenteral limit of 0.1 mg/kg a dose (2 mg)", 2.19, 2.2, 2.21, 6, CHILD, 20
    ),
    # levetiracetam by mouth
    "levetiracetam adult dose": Edge(
        LEVETIRACETAM, "the adult single-dose maximum (1,500 mg)", 1649, 1650, 1651, 1
    ),
    "levetiracetam adult day": Edge(
        LEVETIRACETAM, "the adult daily maximum (3,000 mg)", 1099.9, 1100, 1100.5, 3
    ),
    "levetiracetam child dose": Edge(
        LEVETIRACETAM, "exceeds 30 mg/kg a dose (600 mg)", 659, 660, 661, 1, CHILD, 20
    ),
    "levetiracetam child day": Edge(
        LEVETIRACETAM, "exceeds 60 mg/kg a day (1,200 mg)", 439.9, 440, 440.5, 3, CHILD, 20
    ),
    "levetiracetam child cap": Edge(
        LEVETIRACETAM, "the children's single-dose cap (1,500 mg)", 1649, 1650, 1651, 1, 14, 60
    ),
    "levetiracetam child day cap": Edge(
        LEVETIRACETAM, "the children's daily cap (3,000 mg)", 1099.9, 1100, 1100.5, 3, 14, 60
    ),
    # levetiracetam IV (status epilepticus loading dose)
    "levetiracetam iv adult dose": Edge(
        LEVETIRACETAM_IV, "adult parenteral single-dose maximum (4,500 mg)", 4949, 4950, 4951
    ),
    "levetiracetam iv child dose": Edge(
        LEVETIRACETAM_IV,
        "children's parenteral limit of 60 mg/kg a dose (1,200 mg)",
        1319,
        1320,
        1321,
        0,
        CHILD,
        20,
    ),
    "levetiracetam iv child cap": Edge(
        LEVETIRACETAM_IV, "children's parenteral single-dose cap (4,500 mg)", 4949, 4950, 4951, 0, 16, 80
    ),
    # clindamycin IV
    "clindamycin iv adult dose": Edge(
        CLINDAMYCIN_IV, "adult parenteral single-dose maximum (1,200 mg)", 1319, 1320, 1321
    ),
    "clindamycin iv adult day": Edge(
        CLINDAMYCIN_IV, "adult parenteral daily maximum (4,800 mg)", 879.9, 880, 880.5, 6
    ),
    "clindamycin iv child dose": Edge(
        CLINDAMYCIN_IV,
        "children's parenteral limit of 13.3 mg/kg a dose (133 mg)",
        146.2,
        146.3,
        146.4,
        1,
        CHILD,
        10,
    ),
    "clindamycin iv child day": Edge(
        CLINDAMYCIN_IV,
        "children's parenteral limit of 40 mg/kg a day (400 mg)",
        109.9,
        110,
        110.5,
        4,
        CHILD,
        10,
    ),
    "clindamycin iv child day cap": Edge(
        CLINDAMYCIN_IV, "children's parenteral daily cap (4,800 mg)", 879.9, 880, 880.5, 6, 16, 130
    ),
    # diphenhydramine IV
    "diphenhydramine iv adult dose": Edge(
        DIPHENHYDRAMINE_IV, "adult parenteral single-dose maximum (100 mg)", 109, 110, 111
    ),
    "diphenhydramine iv adult day": Edge(
        DIPHENHYDRAMINE_IV, "adult parenteral daily maximum (400 mg)", 87.9, 88, 88.5, 5
    ),
    "diphenhydramine iv child dose": Edge(
        DIPHENHYDRAMINE_IV,
        "children's parenteral limit of 1.25 mg/kg a dose (25 mg)",
        27.4,
        27.5,
        27.6,
        1,
        CHILD,
        20,
    ),
    "diphenhydramine iv child day": Edge(
        DIPHENHYDRAMINE_IV,
        "children's parenteral limit of 5 mg/kg a day (100 mg)",
        21.9,
        22,
        22.2,
        5,
        CHILD,
        20,
    ),
    "diphenhydramine iv child day cap": Edge(
        DIPHENHYDRAMINE_IV, "children's parenteral daily cap (300 mg)", 54.9, 55, 55.5, 6, 14, 70
    ),
    # pantoprazole IV
    "pantoprazole iv adult dose": Edge(
        PANTOPRAZOLE_IV, "adult parenteral single-dose maximum (80 mg)", 87.9, 88, 88.1
    ),
    "pantoprazole iv adult day": Edge(
        PANTOPRAZOLE_IV, "adult parenteral daily maximum (240 mg)", 65.9, 66, 66.5, 4
    ),
    # children's rows added to oral drugs
    "oxycodone child dose": Edge(OXYCODONE, "exceeds 0.2 mg/kg a dose (4 mg)", 4.39, 4.4, 4.41, 4, CHILD, 20),
    "doxycycline child dose": Edge(
        DOXYCYCLINE, "exceeds 2.2 mg/kg a dose (44 mg)", 48.3, 48.4, 48.5, 1, 9, 20
    ),
    "doxycycline child day": Edge(
        DOXYCYCLINE, "exceeds 4.4 mg/kg a day (88 mg)", 24.1, 24.2, 24.25, 4, 9, 20
    ),
    # rows added from the v28 and v29 reviews
    "valacyclovir adult dose": Edge(VALACYCLOVIR, "adult single-dose maximum (2,000 mg)", 2199, 2200, 2201),
    "valacyclovir child dose": Edge(
        VALACYCLOVIR, "exceeds 20 mg/kg a dose (360 mg)", 395, 396, 397, 1, 5, 18
    ),
    "cefuroxime child dose": Edge(CEFUROXIME, "exceeds 15 mg/kg a dose (300 mg)", 329, 330, 331, 1, 4, 20),
    "cefpodoxime child dose": Edge(
        CEFPODOXIME, "exceeds 5 mg/kg a dose (100 mg)", 109.9, 110, 110.5, 1, 4, 20
    ),
    "cefpodoxime child cap": Edge(
        CEFPODOXIME, "children's single-dose cap (200 mg)", 219, 220, 221, 1, 11, 45
    ),
    "dexamethasone child dose": Edge(
        DEXAMETHASONE, "exceeds 0.6 mg/kg a dose (12 mg)", 13.19, 13.2, 13.21, 1, 3, 20
    ),
    "dexamethasone child cap": Edge(
        DEXAMETHASONE, "children's single-dose cap (16 mg)", 17.59, 17.6, 17.61, 1, 8, 30
    ),
    "gentamicin neonate dose": Edge(GENTAMICIN, "7.5 mg/kg a dose (25.5 mg)", 28.0, 28.05, 28.1, 1, 0, 3.4),
    "gentamicin adult dose": Edge(GENTAMICIN, "7 mg/kg a dose (490 mg)", 538, 539, 540, 1, ADULT, 70),
    "ondansetron oral child dose": Edge(
        ONDANSETRON_ORAL, "exceeds 0.3 mg/kg a dose (3 mg)", 3.29, 3.3, 3.31, 1, 2, 10
    ),
    "prednisone child day": Edge(PREDNISONE, "exceeds 2 mg/kg a day (40 mg)", 43.9, 44, 44.1, 1, 6, 20),
    "metronidazole child day": Edge(
        METRONIDAZOLE, "exceeds 50 mg/kg a day (1,000 mg)", 549, 550, 551, 2, 6, 20
    ),
    "famotidine child dose": Edge(FAMOTIDINE, "exceeds 0.5 mg/kg a dose (10 mg)", 10.99, 11, 11.01, 1, 8, 20),
    "ciprofloxacin child dose": Edge(
        CIPROFLOXACIN, "exceeds 20 mg/kg a dose (600 mg)", 659, 660, 661, 1, 10, 30
    ),
    "ciprofloxacin child cap": Edge(
        CIPROFLOXACIN, "children's single-dose cap (750 mg)", 824, 825, 826, 1, 14, 45
    ),
    "fluconazole child dose": Edge(FLUCONAZOLE, "exceeds 12 mg/kg a dose (240 mg)", 263, 264, 265, 1, 6, 20),
    "trimethoprim child dose": Edge(TRIMETHOPRIM, "exceeds 6 mg/kg a dose (120 mg)", 131, 132, 133, 2, 5, 20),
    "piperacillin child dose": Edge(
        PIPERACILLIN, "limit of 112.5 mg/kg a dose (2,250 mg)", 2474, 2475, 2476, 3, 6, 20
    ),
    "piperacillin adult dose": Edge(
        PIPERACILLIN, "adult parenteral single-dose maximum", 4949, 4950, 4951, 1
    ),
}


def _edge_cases() -> list[object]:
    return [
        pytest.param(edge, mg, named, id=f"{name} {where}")
        for name, edge in EDGES.items()
        for where, mg, named in (
            ("below", edge.below, None),
            ("at", edge.at, None),
            ("above", edge.above, edge.named),
        )
    ]


@pytest.mark.parametrize(("edge", "mg", "named"), _edge_cases())
def test_every_new_limit_at_its_threshold(edge: Edge, mg: float, named: str | None) -> None:
    injected = "Inject" in edge.display
    drafted = order(
        edge.display, mg, unit="mg", frequency=edge.per_day, route="Intravenous route" if injected else None
    )
    found = findings(drafted, age=edge.age, weight=edge.kg)
    if named is None:
        assert found == []
    else:
        (card,) = found
        assert card.rule_id == "rule.dose-above-maximum" and named in card.summary, card.summary


def test_the_edges_cross_only_the_named_limit_by_a_hair() -> None:
    # Guards the table above: the crossing dose is within 1% of the threshold, so no other limit explains a card.
    for name, edge in EDGES.items():
        assert edge.below < edge.at < edge.above <= edge.at * 1.01, name


@pytest.mark.parametrize(
    ("display", "grams", "carded"),
    [
        # "3 g" of Unasyn is the whole vial: ampicillin 2 g of it, within the 2 g single dose.
        ("ampicillin 2 G / sulbactam 1 G Injection (Unasyn)", 3, False),
        # A mass dose of a combination is judged on the ingredient's share: 4.5 g is 3 g of ampicillin.
        ("ampicillin 2 G / sulbactam 1 G Injection (Unasyn)", 4.5, True),
        ("ampicillin 2 G Injection", 3, True),  # one ingredient: the dose is all ampicillin
        # A strength the name does not give leaves the dose as written (3 g of ampicillin).
        ("ampicillin / sulbactam Injection", 3, True),
    ],
)
def test_a_mass_dose_of_a_combination_is_read_as_the_ingredients_share(
    display: str, grams: float, carded: bool
) -> None:
    found = findings(order(display, grams * 1000, "mg", 4, route="intravenous"))
    assert any(f.rule_id == "rule.dose-above-maximum" for f in found) is carded


@pytest.mark.parametrize(
    ("mg", "carded"),
    [(0.16, False), (0.176, False), (0.18, True), (0.5, True)],  # 10 mcg/kg at 16 kg, with the 10% rounding
)
def test_a_childs_clonidine_dose_is_held_to_10_mcg_per_kg(mg: float, carded: bool) -> None:
    found = findings(order("clonidine hydrochloride 0.1 MG Oral Tablet", mg, "mg", 1), age=4, weight=16)
    assert any(f.rule_id == "rule.dose-above-maximum" for f in found) is carded


def test_an_adults_clonidine_is_held_to_the_daily_maximum_only() -> None:
    assert not findings(order("clonidine hydrochloride 0.3 MG Oral Tablet", 0.6, "mg", 3))  # 1.8 mg a day
    assert findings(order("clonidine hydrochloride 0.3 MG Oral Tablet", 0.9, "mg", 3))  # 2.7 mg a day
