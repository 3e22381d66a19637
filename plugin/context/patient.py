"""Whose data is this: every resource a hook call uses must belong to the patient in its context (issue 19).

A resource belongs to the context's patient when it is that Patient (`Patient.id`), or when its `subject` or
`patient` reference names that patient. References are read as:
- relative, `Patient/p1` (a version suffix `/_history/n` is ignored);
- absolute, `https://ehr/fhir/Patient/p1`: the last `Patient/<id>` segment pair decides;
- `urn:uuid:...`: resolved through the `fullUrl` of a Patient entry in the same data when there is one,
  else read as the patient's id (the convention of Bundles that name resources by uuid, e.g. Synthea).
A reference to anything other than a Patient (`Group/g1`, a contained `#p`) is not the patient. A resource
with no patient reference at all (a Medication a MedicationRequest points at) belongs to no one and is fine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from plugin.context.fhir_parse import USED_TYPES

PATIENT_MEMBERS: Final = ("subject", "patient")


@dataclass(frozen=True, slots=True)
class ForeignResource:
    """A resource that names another patient: where it came from and its type, never an id (PHI)."""

    source: str  # the prefetch key, or "draftOrders"
    resource_type: str


def bundle_entries(value: Mapping[str, Any] | None) -> Iterator[tuple[str | None, Mapping[str, Any]]]:
    """(fullUrl, resource) of a Bundle's entries, or of the single resource; skips entries without one."""
    if value is None:
        return
    if value.get("resourceType") == "Bundle":
        entries = value.get("entry")
        for entry in entries if isinstance(entries, list) else ():
            resource = entry.get("resource") if isinstance(entry, Mapping) else None
            if isinstance(resource, Mapping):
                full_url = entry.get("fullUrl")
                yield (full_url if isinstance(full_url, str) else None), resource
    else:
        yield None, value


def patients_by_url(values: Mapping[str, Mapping[str, Any] | None]) -> dict[str, str]:
    """fullUrl → id of every Patient entry with both, across the data of one call."""
    found: dict[str, str] = {}
    for value in values.values():
        for full_url, resource in bundle_entries(value):
            resource_id = resource.get("id")
            if full_url and resource.get("resourceType") == "Patient" and isinstance(resource_id, str):
                found[full_url] = resource_id
    return found


def referenced_patient(reference: str, by_url: Mapping[str, str]) -> str | None:
    """The id of the Patient a reference names; None when it names something else or nothing readable."""
    if reference in by_url:
        return by_url[reference]
    if reference.startswith("urn:uuid:"):
        return reference[len("urn:uuid:") :] or None
    parts = reference.split("?", 1)[0].split("#", 1)[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return parts[-1]
    return None


def belongs(resource: Mapping[str, Any], patient_id: str, by_url: Mapping[str, str]) -> bool:
    """Whether the resource is, or is about, the patient (True when it names no patient at all)."""
    if resource.get("resourceType") == "Patient":
        resource_id = resource.get("id")
        return resource_id is None or resource_id == patient_id
    for member in PATIENT_MEMBERS:
        value = resource.get(member)
        if not isinstance(value, Mapping):
            continue
        reference = value.get("reference")
        if isinstance(reference, str) and referenced_patient(reference, by_url) != patient_id:
            return False
    return True


def foreign_resources(
    values: Mapping[str, Mapping[str, Any] | None],
    patient_id: str,
    keys: frozenset[str] | None = None,
    by_url: Mapping[str, str] | None = None,
) -> tuple[ForeignResource, ...]:
    """Resources under `keys` (every key when None) that belong to a patient other than `patient_id`."""
    by_url = patients_by_url(values) if by_url is None else by_url
    found: list[ForeignResource] = []
    for key in sorted(values):
        if keys is not None and key not in keys:
            continue
        for _, resource in bundle_entries(values[key]):
            if not belongs(resource, patient_id, by_url):
                found.append(ForeignResource(key, _type_name(resource.get("resourceType"))))
    return tuple(found)


def _type_name(value: object) -> str:
    # Client data: only a FHIR type we read is repeated in a diagnostic. Any other word, however
    # plausible as a type name, could be a name or other PHI the client put there (issue 19 fuzz).
    if isinstance(value, str) and value in USED_TYPES:
        return value
    return "resource"


def describe(found: tuple[ForeignResource, ...]) -> str:
    """`medications (MedicationRequest x2), patient (Patient)`: keys and types, never ids or values."""
    by_source: dict[str, dict[str, int]] = {}
    for item in found:
        counts = by_source.setdefault(item.source, {})
        counts[item.resource_type] = counts.get(item.resource_type, 0) + 1
    return ", ".join(
        f"{source} (" + ", ".join(f"{t} x{n}" if n > 1 else t for t, n in sorted(counts.items())) + ")"
        for source, counts in sorted(by_source.items())
    )
