"""Fixture charts prefetched as an EHR would: each Synthea bundle in a FhirStore, queried by the templates."""

from __future__ import annotations

import functools
import random
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from cds_hooks.prefetch import render_template
from plugin.catalog import CHART_PREFETCH
from plugin.fhir_search import FhirStore
from tests.support.fixtures_paths import SYNTHEA_FIXTURES, require_shared_fixtures

# A fixed "now" makes ages and relative days reproducible; it lies after every date in the fixtures.
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
BASE_URL = "https://ehr.example/fhir"
USER_ID = "Practitioner/x"
ABSENT = "shared-fixtures-absent"

JsonDict = dict[str, Any]


def chart_names() -> list[str]:
    """File stems of the Synthea bundles, for parametrize ids; one placeholder that skips when absent."""
    names = sorted(path.stem for path in SYNTHEA_FIXTURES.glob("*.json")) if SYNTHEA_FIXTURES.is_dir() else []
    return names or [ABSENT]


def chart_path(name: str) -> Path:
    """The bundle whose file name starts with `name` ("Clarine_O'Keefe" or a full stem); skips when absent."""
    require_shared_fixtures()
    matches = sorted(SYNTHEA_FIXTURES.glob(f"{glob_escape(name)}*.json"))
    if not matches:
        pytest.skip(f"no Synthea bundle named {name}* under {SYNTHEA_FIXTURES}")
    return matches[0]


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def copy_json(value: Any) -> Any:
    """A deep copy of JSON data (fast enough to hand every test its own prefetch)."""
    return orjson.loads(orjson.dumps(value))


@functools.cache
def _raw_bytes(path: Path) -> bytes:
    return path.read_bytes()


def raw_bundle(path: Path) -> JsonDict:
    """The fixture bundle exactly as published; a fresh copy on every call."""
    bundle: JsonDict = orjson.loads(_raw_bytes(path))
    return bundle


def raw_resources(bundle: Mapping[str, Any], resource_type: str | None = None) -> list[JsonDict]:
    return [
        entry["resource"]
        for entry in bundle.get("entry") or ()
        if resource_type is None or entry["resource"].get("resourceType") == resource_type
    ]


def raw_patient(bundle: Mapping[str, Any]) -> JsonDict:
    (patient,) = raw_resources(bundle, "Patient")
    return patient


def prefetch_from_store(
    store: FhirStore, patient_id: str, templates: Mapping[str, str] = CHART_PREFETCH, **context: Any
) -> JsonDict:
    """Each template rendered against the hook context and answered by the store, as an EHR fills prefetch."""
    hook_context = {"patientId": patient_id, "userId": USER_ID, **context}
    return {
        key: store.query(render_template(template, hook_context), BASE_URL)
        for key, template in templates.items()
    }


@functools.cache
def _chart(path: Path) -> tuple[bytes, FhirStore, str]:
    bundle = raw_bundle(path)
    store = FhirStore.from_bundles([bundle])
    patient_id = str(raw_patient(bundle)["id"])
    return orjson.dumps(prefetch_from_store(store, patient_id)), store, patient_id


def chart_prefetch(path: Path) -> tuple[JsonDict, FhirStore, str]:
    """(CHART_PREFETCH values, the store that answered them, the patient id); the dict is the caller's own.

    The store is shared between callers: it copies on every read, so it cannot be changed through results.
    """
    encoded, store, patient_id = _chart(path)
    prefetch: JsonDict = orjson.loads(encoded)
    return prefetch, store, patient_id


def bundle_of(resources: Sequence[Mapping[str, Any]], bundle_type: str = "collection") -> JsonDict:
    """A Bundle holding `resources`, each with the fullUrl a server would give it."""
    return {
        "resourceType": "Bundle",
        "type": bundle_type,
        "entry": [
            {"fullUrl": f"{BASE_URL}/{r['resourceType']}/{r['id']}", "resource": dict(r)} for r in resources
        ],
    }


def add_entry(prefetch: JsonDict, key: str, resource: Mapping[str, Any]) -> None:
    """Append `resource` to the searchset Bundle under `key` (which may hold no entries yet)."""
    bundle = prefetch[key]
    bundle.setdefault("entry", []).append(
        {"fullUrl": f"{BASE_URL}/{resource['resourceType']}/{resource['id']}", "resource": dict(resource)}
    )
    if "total" in bundle:
        bundle["total"] += 1


def bundles_in(prefetch: Mapping[str, Any]) -> Iterator[JsonDict]:
    for value in prefetch.values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            yield value


def shuffle_entries(prefetch: JsonDict, rng: random.Random) -> JsonDict:
    """A copy of `prefetch` with the entries of every Bundle in another order."""
    shuffled: JsonDict = copy_json(prefetch)
    for bundle in bundles_in(shuffled):
        rng.shuffle(bundle.get("entry") or [])
    return shuffled


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def resource_ids(prefetch: Mapping[str, Any]) -> set[str]:
    ids: set[str] = set()
    for value in prefetch.values():
        if not isinstance(value, dict):
            continue
        if value.get("resourceType") == "Bundle":
            ids.update(str(e["resource"]["id"]) for e in value.get("entry") or () if "id" in e["resource"])
        elif "id" in value:
            ids.add(str(value["id"]))
    return ids


def rename_ids(prefetch: Mapping[str, Any], rng: random.Random) -> tuple[JsonDict, dict[str, str]]:
    """Every resource id replaced by a fresh one, with every reference and fullUrl naming it rewritten.

    Synthea ids are UUIDs, which never occur by accident inside other strings, so a whole-text replacement
    is exactly the consistent rename a second EHR holding the same chart would produce.
    """
    ids = resource_ids(prefetch)
    assert ids and all(UUID.fullmatch(i) for i in ids), "the rename assumes UUID ids"
    mapping = {old: str(uuid.UUID(int=rng.getrandbits(128), version=4)) for old in sorted(ids)}
    text = orjson.dumps(prefetch).decode()
    pattern = re.compile("|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)))
    renamed: JsonDict = orjson.loads(pattern.sub(lambda m: mapping[m.group(0)], text))
    return renamed, mapping


def walk_json(value: Any, key: str | None = None) -> Iterator[tuple[str | None, Any]]:
    """Every (member name, value) pair under `value`, depth first; list items carry their list's name."""
    yield key, value
    if isinstance(value, dict):
        for name, item in value.items():
            yield from walk_json(item, name)
    elif isinstance(value, list):
        for item in value:
            yield from walk_json(item, key)


def coding_codes(concept: Any, system: str | None = None) -> set[str]:
    """The codes of a raw CodeableConcept, optionally only those of one system."""
    if not isinstance(concept, dict):
        return set()
    return {
        str(c.get("code"))
        for c in concept.get("coding") or ()
        if isinstance(c, dict) and (system is None or c.get("system") == system)
    }


RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def medication_request(
    resource_id: str,
    patient_id: str,
    rxnorm: str,
    display: str,
    status: str = "active",
    authored: str = "2026-11-25",
) -> JsonDict:
    """A MedicationRequest for one RxNorm product, as an EHR writes a new prescription or a draft order."""
    return {
        "resourceType": "MedicationRequest",
        "id": resource_id,
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": rxnorm, "display": display}],
            "text": display,
        },
        "authoredOn": authored,
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            }
        ],
    }


def ibuprofen_draft(patient_id: str, resource_id: str = "draft-ibuprofen") -> JsonDict:
    return medication_request(
        resource_id, patient_id, "197806", "Ibuprofen 600 MG Oral Tablet", status="draft"
    )


def draft_orders(*resources: Mapping[str, Any]) -> JsonDict:
    """`context.draftOrders` of an order hook: a collection Bundle."""
    return bundle_of(resources, "collection")


_HEADER = re.compile(r"^([A-Z][A-Z ,]*[A-Z])(?: \([^)]*\))?:$")


def rendered_sections(text: str) -> dict[str, list[str]]:
    """Rendered model input split at its section headers ("CURRENT MEDICATIONS:"), keyed by bare title.

    Lines before the first header and the closing "OMITTED FOR LENGTH" line belong to no section.
    """
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header is not None:
            current = sections.setdefault(header.group(1), [])
        elif line.startswith("OMITTED FOR LENGTH:"):
            current = None
        elif current is not None:
            current.append(line)
    return sections
