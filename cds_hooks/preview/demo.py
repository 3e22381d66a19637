"""The preview's shipped material: synthetic demo patients and the order composer's medication list.

Demo patients are small FHIR R4 Bundles written for this project (no real person; every resource is tagged
`urn:r1cds:demo|synthetic`), each built to trigger one or two of the shipped rules. Their dates are written
relative to the Bundle's `timestamp` and moved forward to today when loaded, so that "INR 18 days ago" or
"pregnant since September" stays true whenever the preview runs, and ages stay what the file says.

The composer's products are RxNorm clinical drugs (SCD) whose ingredients the terminology resolves
(tests/unit/test_preview_demo.py checks each one), so a composed order reaches the same rules an EHR's would.
"""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any, Final

import orjson

from cds_hooks.errors import MalformedRequest

RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM: Final = "http://unitsofmeasure.org"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))")


@dataclass(frozen=True, slots=True)
class DemoPatient:
    id: str  # also the Patient's id inside the Bundle
    file: str
    title: str
    summary: str
    rules: tuple[str, ...]  # rule ids its patient-view is expected to raise

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "summary": self.summary, "rules": list(self.rules)}


DEMO_PATIENTS: Final = (
    DemoPatient(
        "demo-anticoagulated",
        "anticoagulated-nsaid.json",
        "Anticoagulated patient on an NSAID",
        "70-year-old man with atrial fibrillation on warfarin, recently started on naproxen for knee pain.",
        ("rule.vka-nsaid",),
    ),
    DemoPatient(
        "demo-penicillin-allergy",
        "penicillin-allergy.json",
        "Penicillin allergy",
        "38-year-old woman with a recorded penicillin allergy (urticaria), prescribed amoxicillin for sinusitis.",
        ("rule.allergy-same-class",),
    ),
    DemoPatient(
        "demo-pregnant",
        "pregnant.json",
        "Pregnant patient",
        "32-year-old woman, currently pregnant, still on lisinopril for hypertension.",
        ("rule.pregnancy-teratogen",),
    ),
    DemoPatient(
        "demo-child",
        "child.json",
        "Child",
        "8-year-old boy with viral pharyngitis, given acetaminophen with codeine and low-dose aspirin.",
        ("rule.paediatric-codeine-tramadol", "rule.paediatric-aspirin"),
    ),
    DemoPatient(
        "demo-renal-metformin",
        "renal-metformin.json",
        "Low eGFR on metformin",
        "75-year-old woman with type 2 diabetes and stage 4 CKD (eGFR 24), still on metformin.",
        ("rule.metformin-egfr",),
    ),
)
_BY_ID: Final = {p.id: p for p in DEMO_PATIENTS}


def demo_patient(demo_id: str) -> DemoPatient:
    found = _BY_ID.get(demo_id)
    if found is None:
        raise MalformedRequest("unknown demo patient (demo)")
    return found


@functools.cache
def _raw_demo(file: str) -> bytes:
    return resources.files("cds_hooks.preview").joinpath("demo").joinpath(file).read_bytes()


def demo_bundle(demo_id: str, today: date | None = None) -> dict[str, Any]:
    """The demo patient's Bundle with its dates moved so that its `timestamp` falls on `today`."""
    patient = demo_patient(demo_id)
    bundle: dict[str, Any] = orjson.loads(_raw_demo(patient.file))
    written = date.fromisoformat(str(bundle["timestamp"])[:10])
    shift = (today or datetime.now(UTC).date()) - written
    shifted: dict[str, Any] = _shift(bundle, shift)
    return shifted


def _shift(value: Any, by: timedelta) -> Any:
    if isinstance(value, dict):
        return {key: _shift(item, by) for key, item in value.items()}
    if isinstance(value, list):
        return [_shift(item, by) for item in value]
    if isinstance(value, str):
        if _DATE.fullmatch(value):
            return (date.fromisoformat(value) + by).isoformat()
        if match := _DATETIME.fullmatch(value):
            return (date.fromisoformat(match.group(1)) + by).isoformat() + match.group(2)
    return value


@dataclass(frozen=True, slots=True)
class Product:
    code: str  # RxNorm SCD
    display: str
    strength_mg: float  # per unit of the dose form, for the composer's default dose
    form: str  # "tablet", "capsule"


PRODUCTS: Final = (
    Product("855332", "Warfarin Sodium 5 MG Oral Tablet", 5, "tablet"),
    Product("310965", "Ibuprofen 200 MG Oral Tablet", 200, "tablet"),
    Product("198014", "Naproxen 500 MG Oral Tablet", 500, "tablet"),
    Product("313782", "Acetaminophen 325 MG Oral Tablet", 325, "tablet"),
    Product("243670", "aspirin 81 MG Chewable Tablet", 81, "tablet"),
    Product("309362", "Clopidogrel 75 MG Oral Tablet", 75, "tablet"),
    Product("308182", "Amoxicillin 250 MG Oral Capsule", 250, "capsule"),
    Product("309097", "Cefuroxime 250 MG Oral Tablet", 250, "tablet"),
    Product("834102", "Penicillin V Potassium 500 MG Oral Tablet", 500, "tablet"),
    Product("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet", 500, "tablet"),
    Product("314076", "lisinopril 10 MG Oral Tablet", 10, "tablet"),
    Product("312961", "Simvastatin 20 MG Oral Tablet", 20, "tablet"),
    Product("197361", "Amlodipine 5 MG Oral Tablet", 5, "tablet"),
    Product("993781", "Acetaminophen 300 MG / Codeine Phosphate 30 MG Oral Tablet", 300, "tablet"),
    Product("1049630", "diphenhydrAMINE Hydrochloride 25 MG Oral Tablet", 25, "tablet"),
)
_PRODUCTS: Final = {p.code: p for p in PRODUCTS}

# Frequency choices as FHIR Timing.repeat (frequency per period in period units), with the usual wording.
FREQUENCIES: Final[dict[str, tuple[str, int, float, str]]] = {
    "QD": ("once daily", 1, 1, "d"),
    "BID": ("twice daily", 2, 1, "d"),
    "TID": ("three times daily", 3, 1, "d"),
    "QID": ("four times daily", 4, 1, "d"),
    "Q8H": ("every 8 hours", 1, 8, "h"),
    "Q6H-PRN": ("every 6 hours as needed", 1, 6, "h"),
}
MAX_DOSE_MG: Final = 10_000.0


def composer_options() -> dict[str, Any]:
    """What the page's order composer offers, as JSON."""
    return {
        "products": [
            {"code": p.code, "display": p.display, "defaultDoseMg": p.strength_mg, "form": p.form}
            for p in PRODUCTS
        ],
        "frequencies": [{"code": code, "display": f[0]} for code, f in FREQUENCIES.items()],
    }


def draft_medication_request(
    patient_id: str, code: str, dose_mg: float, frequency: str, encounter_id: str | None = None
) -> dict[str, Any]:
    """A draft MedicationRequest as an EHR puts it in draftOrders, validated as FHIR R4."""
    product = _PRODUCTS.get(code)
    if product is None:
        raise MalformedRequest("the medication (code) is not in the composer's list")
    timing = FREQUENCIES.get(frequency)
    if timing is None:
        raise MalformedRequest(f"unknown frequency (frequency); use one of {', '.join(FREQUENCIES)}")
    if not 0 < dose_mg <= MAX_DOSE_MG:
        raise MalformedRequest(f"dose must be above 0 and at most {MAX_DOSE_MG:g} mg")
    words, per, period, unit = timing
    dosage: dict[str, Any] = {
        "text": f"{dose_mg:g} mg {words}",
        "timing": {"repeat": {"frequency": per, "period": period, "periodUnit": unit}},
        "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral"}]},
        "doseAndRate": [{"doseQuantity": {"value": dose_mg, "unit": "mg", "system": UCUM, "code": "mg"}}],
    }
    if frequency.endswith("-PRN"):
        dosage["asNeededBoolean"] = True
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": f"preview-{uuid.uuid4().hex[:12]}",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": product.code, "display": product.display}],
            "text": product.display,
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "authoredOn": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "dosageInstruction": [dosage],
    }
    if encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{encounter_id}"}
    # A late import: fhir.resources is heavy, and only the composer needs it on this edge.
    from fhir.resources.R4B.medicationrequest import MedicationRequest

    MedicationRequest.model_validate(resource)
    return resource
