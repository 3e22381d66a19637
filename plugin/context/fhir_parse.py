"""Reads raw FHIR R4 JSON into validated fhir.resources R4B models, validating only the fields we use.

Full validation of a Synthea chart costs ~0.15 s of CPU per MB; the builder needs a handful of fields
per resource. Each resource is projected onto those fields first and the projection is validated, so a
malformed field we read is still caught (and the resource skipped and reported), while the rest of the
resource costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.immunization import Immunization
from fhir.resources.R4B.medication import Medication
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure
from fhir.resources.R4B.servicerequest import ServiceRequest
from pydantic import ValidationError

_COMMON = ("resourceType", "id")
_NOTES = ("note",)
PROJECTIONS: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    "Patient": (Patient, ("gender", "birthDate", "deceasedBoolean", "deceasedDateTime")),
    "Condition": (
        Condition,
        (
            "clinicalStatus",
            "verificationStatus",
            "code",
            "subject",
            "onsetDateTime",
            "onsetPeriod",
            "onsetAge",
            "onsetString",
            "recordedDate",
            "category",
            *_NOTES,
        ),
    ),
    "MedicationRequest": (
        MedicationRequest,
        (
            "status",
            "intent",
            "subject",
            "medicationCodeableConcept",
            "medicationReference",
            "authoredOn",
            "dosageInstruction",
            *_NOTES,
        ),
    ),
    "MedicationStatement": (
        MedicationStatement,
        (
            "status",
            "subject",
            "medicationCodeableConcept",
            "medicationReference",
            "effectiveDateTime",
            "effectivePeriod",
            "dateAsserted",
            "dosage",
            *_NOTES,
        ),
    ),
    "Medication": (Medication, ("code", "status", "ingredient")),
    "AllergyIntolerance": (
        AllergyIntolerance,
        (
            "clinicalStatus",
            "verificationStatus",
            "type",
            "category",
            "criticality",
            "code",
            "patient",
            "reaction",
            "recordedDate",
            "onsetDateTime",
            *_NOTES,
        ),
    ),
    "Observation": (
        Observation,
        (
            "status",
            "category",
            "code",
            "subject",
            "effectiveDateTime",
            "effectivePeriod",
            "effectiveInstant",
            "issued",
            "valueQuantity",
            "valueCodeableConcept",
            "valueString",  # a qualitative answer written out ("Positive (ratio 1.52)")
            "interpretation",
            "component",
            *_NOTES,
        ),
    ),
    "Encounter": (Encounter, ("status", "class", "type", "subject", "period", "reasonCode")),
    "Immunization": (
        Immunization,
        ("status", "vaccineCode", "patient", "occurrenceDateTime", "occurrenceString"),
    ),
    "Procedure": (Procedure, ("status", "code", "subject", "performedDateTime", "performedPeriod", *_NOTES)),
    "ServiceRequest": (ServiceRequest, ("status", "intent", "code", "subject", "authoredOn", *_NOTES)),
}
USED_TYPES = frozenset(PROJECTIONS)


class ResourceRejected(ValueError):
    """The fields we read do not validate; `reason` names them without quoting any value (PHI)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Dates a record is still worth reading without (issue 19): a medication whose start date is impossible
# ("2024-02-30") is still a drug the patient takes, and a drug the rules cannot see is a lost interaction.
# When every error is in these fields, they are read as absent (the date is unknown) and the rest is kept.
DROPPABLE_DATES: dict[str, frozenset[str]] = {
    "MedicationRequest": frozenset({"authoredOn"}),
    "MedicationStatement": frozenset({"effectiveDateTime", "effectivePeriod", "dateAsserted"}),
    "Condition": frozenset({"onsetDateTime", "onsetPeriod", "onsetAge", "onsetString", "recordedDate"}),
    "AllergyIntolerance": frozenset({"recordedDate", "onsetDateTime"}),
}


def validated(resource: Mapping[str, Any]) -> Any:
    """The resource as its R4B model, over the projection the builder reads.

    Invalid fields of DROPPABLE_DATES alone are dropped (read as unknown) rather than rejecting the resource.
    """
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in PROJECTIONS:
        raise ResourceRejected(f"resource type {resource_type!r} is not used")
    model, fields = PROJECTIONS[resource_type]
    projection = {name: resource[name] for name in (*_COMMON, *fields) if name in resource}
    try:
        return model.model_validate(projection)
    except ValidationError as exc:
        errors = exc.errors()
        droppable = DROPPABLE_DATES.get(resource_type, frozenset())
        bad = {str(e["loc"][0]) for e in errors if e["loc"]}
        if droppable and bad and bad <= droppable and all(e["loc"] for e in errors):
            try:
                return model.model_validate({k: v for k, v in projection.items() if k not in bad})
            except (ValidationError, TypeError, ValueError):
                pass
        problems = sorted({f"{'.'.join(str(p) for p in e['loc'])} ({e['type']})" for e in errors})
        raise ResourceRejected("invalid " + ", ".join(problems[:3])) from None
    except (TypeError, ValueError) as exc:
        raise ResourceRejected(f"invalid {resource_type} ({type(exc).__name__})") from None
