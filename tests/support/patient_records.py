"""Small hand-written charts for issue 19: one patient's data, another patient's, and malformed records."""

from __future__ import annotations

from typing import Any

from tests.support.charts import NOW

__all__ = [
    "NOW",
    "PATIENT_ID",
    "bundle",
    "malformed_bp",
    "medication",
    "patient",
    "resource_for",
    "warfarin_naproxen",
]

PATIENT_ID = "p1"
JsonDict = dict[str, Any]


def patient(patient_id: str = PATIENT_ID) -> JsonDict:
    return {"resourceType": "Patient", "id": patient_id, "gender": "male", "birthDate": "1950-01-01"}


def bundle(*resources: JsonDict, full_urls: tuple[str, ...] = ()) -> JsonDict:
    entries: list[JsonDict] = []
    for index, resource in enumerate(resources):
        entry: JsonDict = {"resource": resource}
        if index < len(full_urls):
            entry["fullUrl"] = full_urls[index]
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "searchset", "entry": entries}


def medication(
    resource_id: str, text: str, subject: str = f"Patient/{PATIENT_ID}", **fields: Any
) -> JsonDict:
    return {
        "resourceType": "MedicationRequest",
        "id": resource_id,
        "status": "active",
        "intent": "order",
        "subject": {"reference": subject},
        "medicationCodeableConcept": {"text": text},
        "authoredOn": "2026-01-02",
        **fields,
    }


def warfarin_naproxen(**naproxen_fields: Any) -> JsonDict:
    return bundle(
        medication("m-warfarin", "Warfarin Sodium 5 MG Oral Tablet"),
        medication("m-naproxen", "Naproxen 500 MG Oral Tablet", **naproxen_fields),
    )


def malformed_bp(subject: str = f"Patient/{PATIENT_ID}") -> JsonDict:
    """A blood-pressure panel whose component has `code: null` (once a 500 that erased every card)."""
    return {
        "resourceType": "Observation",
        "id": "o-bp",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],
        "subject": {"reference": subject},
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "effectiveDateTime": "2026-11-01",
        "component": [{"code": None, "valueQuantity": {"value": 120, "unit": "mm[Hg]"}}],
    }


def resource_for(resource_type: str, reference: str) -> JsonDict:
    """A minimal resource of the type naming `reference` as its patient (in `patient` or `subject`)."""
    member = "patient" if resource_type in ("AllergyIntolerance", "Immunization") else "subject"
    base: JsonDict = {
        "resourceType": resource_type,
        "id": f"{resource_type.lower()}-1",
        member: {"reference": reference},
    }
    extra: dict[str, JsonDict] = {
        "Condition": {"code": {"text": "Hypertension"}},
        "MedicationRequest": {
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "Naproxen 500 MG Oral Tablet"},
        },
        "MedicationStatement": {
            "status": "active",
            "medicationCodeableConcept": {"text": "Naproxen 500 MG Oral Tablet"},
        },
        "AllergyIntolerance": {"code": {"text": "Penicillin"}},
        "Observation": {
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0"}]},
            "valueQuantity": {"value": 1.0, "unit": "mg/dL"},
        },
        "Encounter": {"status": "finished", "class": {"code": "AMB"}},
        "Immunization": {"status": "completed", "vaccineCode": {"text": "Influenza"}},
        "Procedure": {"status": "completed", "code": {"text": "Appendectomy"}},
    }
    return {**base, **extra.get(resource_type, {})}
