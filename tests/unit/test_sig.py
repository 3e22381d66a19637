"""The free-text sig reader: what it reads, what it leaves unread, and that structured fields win."""

from __future__ import annotations

import pytest

from plugin.context.build import build_context
from plugin.context.model import Dosage
from plugin.context.sig import Sig, read_sig
from tests.support.charts import NOW

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2 tablets (1300 mg) by mouth three times daily", Sig("1300 mg", "3 per 1 d", False)),
        ("Take 1 tablet by mouth daily", Sig("1 tablet", "1 per 1 d", False)),
        ("500 mg by mouth twice daily", Sig("500 mg", "2 per 1 d", False)),
        ("1-2 tablets every 4-6 hours as needed for pain", Sig("2 tablet", "1 per 4 h", True)),
        ("one capsule by mouth at bedtime", Sig("1 capsule", "1 per 1 d", False)),
        ("10 mg PO QID PRN", Sig("10 mg", "4 per 1 d", True)),
        ("Take 2 tabs q6h prn", Sig("2 tab", "1 per 6 h", True)),
        ("5 mL by mouth 3 times a day", Sig("5 ml", "3 per 1 d", False)),
        ("70 mg once weekly on an empty stomach", Sig("70 mg", "1 per 1 wk", False)),
        ("half tablet daily", Sig("0.5 tablet", "1 per 1 d", False)),
        # Left unread: steps, protocols, two amounts, two frequencies, concentrations.
        ("4 mg at once, then 2 mg every 2 hours", Sig(None, None, False)),
        ("Prednisone taper: 40 mg daily for 5 days", Sig(None, None, False)),
        ("Dose per INR clinic", Sig(None, None, False)),
        (
            "500-1000 mg every 8 hours as needed; do not exceed 2,000 mg in 24 hours",
            Sig("1000 mg", "1 per 8 h", True, 2000.0),
        ),
        ("650 mg every 6 hours as needed, max 3 g/day", Sig("650 mg", "1 per 6 h", True, 3000.0)),
        ("1 tablet every 6 hours as needed, max 4 per day", Sig(None, None, True)),  # a cap in tablets
        ("1 tablet (500 mg) or 2 tablets as needed", Sig(None, None, True)),
        ("5 mg in the morning and 10 mg at night", Sig(None, None, False)),
        ("250 mg/5 mL suspension, 1 teaspoon twice daily", Sig(None, "2 per 1 d", False)),
        ("twice daily or three times daily", Sig(None, None, False)),
        ("", Sig(None, None, False)),
        (None, Sig(None, None, False)),
    ],
)
def test_a_sig_is_read_only_where_it_is_plain(text: str | None, expected: Sig) -> None:
    assert read_sig(text) == expected


def _statement(dosage: dict[str, object]) -> dict[str, object]:
    return {
        "resourceType": "MedicationStatement",
        "id": "ms-1",
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"text": "acetaminophen 650 MG Extended Release Oral Tablet"},
        "dosage": [dosage],
    }


def _dosage_of(dosage: dict[str, object]) -> Dosage:
    patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1960-01-01", "gender": "male"}
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": _statement(dosage)}]}
    built = build_context({"patient": patient, "statements": bundle}, NOW, patient_id="p1")
    (medication,) = built.context.medications
    return medication.dosage


def test_a_text_only_statement_gets_its_dose_and_frequency_from_the_sig() -> None:
    dosage = _dosage_of({"text": "2 tablets (1300 mg) by mouth three times daily"})
    assert (dosage.dose, dosage.frequency, dosage.as_needed) == ("1300 mg", "3 per 1 d", False)


def test_a_daily_cap_is_read_from_max_dose_per_period_or_the_sig() -> None:
    structured = _dosage_of(
        {
            "text": "1 tablet every 6 hours as needed",
            "maxDosePerPeriod": {
                "numerator": {"value": 3, "unit": "g", "code": "g"},
                "denominator": {"value": 24, "unit": "h", "code": "h"},
            },
        }
    )
    assert structured.max_daily_mg == 3000.0
    weekly = _dosage_of(
        {
            "text": "1 tablet daily",
            "maxDosePerPeriod": {
                "numerator": {"value": 3, "unit": "g", "code": "g"},
                "denominator": {"value": 1, "unit": "wk", "code": "wk"},
            },
        }
    )
    assert weekly.max_daily_mg is None  # a cap over a week is not a daily one
    assert (
        _dosage_of({"text": "2 tablets every 6 hours; not to exceed 3000 mg per day"}).max_daily_mg == 3000.0
    )


def test_a_daily_cap_in_tablets_is_kept_apart_from_a_mass_cap() -> None:
    tablets = _dosage_of(
        {
            "text": "1-2 tablets every 6 hours as needed; maximum 8 tablets per day",
            "maxDosePerPeriod": {
                "numerator": {"value": 8, "unit": "tablet", "code": "{tbl}"},
                "denominator": {"value": 1, "unit": "d", "code": "d"},
            },
        }
    )
    assert (tablets.max_daily_units, tablets.max_daily_mg) == (8.0, None)
    grams = _dosage_of(
        {
            "text": "1 tablet every 6 hours as needed",
            "maxDosePerPeriod": {
                "numerator": {"value": 3, "unit": "g", "code": "g"},
                "denominator": {"value": 1, "unit": "d", "code": "d"},
            },
        }
    )
    assert (grams.max_daily_units, grams.max_daily_mg) == (None, 3000.0)


def test_structured_fields_win_over_the_sig() -> None:
    dosage = _dosage_of(
        {
            "text": "2 tablets by mouth three times daily",
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
        }
    )
    assert (dosage.dose, dosage.frequency) == ("1 tablet", "2 per 1 d")
