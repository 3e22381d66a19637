"""Fixture charts for the suites: FHIR patient Bundles read in place, optionally carrying an extra free-text note.

A note is attached the way an EHR user would write one: as an Annotation in the `note` of a resource the
chart review reads (the most recent MedicationRequest, else Condition, else Observation of the patient),
on a deep copy, so the fixture file is never changed. The review only reads notes with free text enabled
(R1CDS_CONTEXT_INCLUDE_FREE_TEXT), which is what the safety (governed) and injection suites measure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cds_hooks.fire import build_context, build_prefetch, load_bundle, pick_patient
from evals.errors import DataError
from plugin.catalog import CHART_REVIEW
from plugin.context.build import ContextOptions
from plugin.context.build import build_context as build_clinical_context
from plugin.context.model import BuiltContext
from plugin.fhir_search import FhirStore

__all__ = ["AS_OF", "NOTE_TARGETS", "built_chart", "bundle_paths", "with_note"]

# Charts are built as of a fixed instant so that a rerun builds the same context (and review fingerprint).
AS_OF: Final = datetime(2026, 1, 1, tzinfo=UTC)
NOTE_TARGETS: Final = ("MedicationRequest", "Condition", "Observation")
FHIR_BASE: Final = "https://bundle.r1cds-eval.invalid/fhir"
USER: Final = "Practitioner/r1cds-eval"


def bundle_paths(folder: Path) -> list[Path]:
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise DataError(f"no FHIR Bundle (*.json) in {folder}; point --fixtures at the Synthea bundles")
    return paths


def _sort_key(resource: Mapping[str, Any]) -> str:
    for key in ("authoredOn", "recordedDate", "effectiveDateTime", "onsetDateTime", "issued"):
        value = resource.get(key)
        if isinstance(value, str):
            return value
    return ""


def with_note(bundle: Mapping[str, Any], text: str) -> dict[str, Any]:
    """A copy of the bundle whose newest MedicationRequest (else Condition, else Observation) carries `text`."""
    copied = copy.deepcopy(dict(bundle))
    resources = [e.get("resource") for e in copied.get("entry", []) if isinstance(e, dict)]
    for resource_type in NOTE_TARGETS:
        candidates = [r for r in resources if isinstance(r, dict) and r.get("resourceType") == resource_type]
        if candidates:
            target = max(candidates, key=_sort_key)
            target["note"] = [*target.get("note", []), {"text": text}]
            return copied
    raise DataError(f"the bundle has no {', '.join(NOTE_TARGETS)} to attach a note to")


def built_chart(bundle: Mapping[str, Any], *, free_text: bool = True) -> tuple[BuiltContext, str]:
    """The chart review's clinical context for the bundle's patient, as the service builds it; and the patient."""
    store = FhirStore.from_bundles([dict(bundle)])
    patient = pick_patient(store, None)
    context = build_context("patient-view", store, patient, USER, None, None)
    prefetch = build_prefetch(CHART_REVIEW.prefetch, context, store, FHIR_BASE)
    built = build_clinical_context(prefetch, AS_OF, options=ContextOptions(include_free_text=free_text))
    return built, f"Patient/{patient}"


def read_bundle(path: Path) -> dict[str, Any]:
    return dict(load_bundle(path))
