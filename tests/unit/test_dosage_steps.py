"""A prescription in steps (a starter pack, a taper): the checks read the step with the most taken."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.rule_cases import Chart, med

pytestmark = pytest.mark.unit


def _step(value: float, unit: str, per_day: int, period_unit: str = "d") -> dict[str, Any]:
    return {
        "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": period_unit}},
        "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit}}],
    }


def _dosage(*steps: dict[str, Any]) -> tuple[str | None, str | None]:
    request = med("metoclopramide")
    request["dosageInstruction"] = list(steps)
    (medication,) = Chart(resources=(request,)).build().context.medications
    return medication.dosage.dose, medication.dosage.frequency


def test_a_starter_pack_is_read_at_its_maintenance_step() -> None:
    assert _dosage(_step(0.5, "mg", 1), _step(0.5, "mg", 2), _step(1, "mg", 2)) == ("1 mg", "2 per 1 d")


def test_a_taper_is_read_at_its_highest_step_whatever_the_order() -> None:
    assert _dosage(_step(10, "mg", 1), _step(40, "mg", 1), _step(20, "mg", 1)) == ("40 mg", "1 per 1 d")


@pytest.mark.parametrize(
    "steps",
    [
        (_step(1, "tablet", 1), _step(10, "mg", 1)),  # different dose units: not comparable
        (_step(1, "mg", 1, "wk"), _step(1, "mg", 1)),  # different periods: not comparable
    ],
)
def test_steps_that_cannot_be_compared_keep_the_first(steps: tuple[dict[str, Any], ...]) -> None:
    first = steps[0]["doseAndRate"][0]["doseQuantity"]
    assert _dosage(*steps)[0] == f"{first['value']:g} {first['unit']}"


def test_one_step_is_read_as_written() -> None:
    assert _dosage(_step(10, "mg", 3)) == ("10 mg", "3 per 1 d")
