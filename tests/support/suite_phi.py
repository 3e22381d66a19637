"""The suite-wide PHI scan: logs and exports the test run produced, searched for fixture patients' identity.

Every test's captured log and stderr, every worker process's log and every export a test hands to
`keep_artifact` land in one folder per run (`R1CDS_TEST_SUITE_ARTIFACTS`, inherited by child processes).
At the end of the session (tests/conftest.py) the folder is searched for the names, identifiers,
addresses and telecom values of every Synthea fixture patient and of the identifying chart the audit
tests build; any hit fails the run.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.fixtures_paths import SYNTHEA_FIXTURES
from tests.support.phi import Identifying, identifying, leaks

ENV = "R1CDS_TEST_SUITE_ARTIFACTS"
_counter = itertools.count()

# A chart the audit tests give a name, identifiers, an address, telecom, a next of kin and a mother's
# maiden name that nothing else has.
IDENTIFYING_PATIENT: dict[str, Any] = {
    "name": [{"use": "official", "family": "Quimbyfield", "given": ["Harriet", "Ottoline"]}],
    "identifier": [
        {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-77310942"},
        {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "532-41-9087"},
    ],
    "address": [{"line": ["42 Wallaby Crescent"], "city": "Fernhollow", "postalCode": "02474"}],
    "telecom": [
        {"system": "phone", "value": "+1-617-555-0142"},
        {"system": "email", "value": "harriet.q@example.org"},
    ],
    # Next of kin and the mother's maiden name are identifiers too (Safe Harbor: names of relatives).
    "contact": [
        {
            "relationship": [{"text": "next of kin"}],
            "name": {"family": "Brackenridge", "given": ["Thaddeus"]},
            "telecom": [{"system": "phone", "value": "+1-617-555-0178"}],
        }
    ],
    "extension": [
        {
            "url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
            "valueString": "Philippa Wintersloe",
        }
    ],
}


def artifact_dir() -> Path | None:
    folder = os.environ.get(ENV)
    return Path(folder) if folder else None


def keep_artifact(path: Path) -> None:
    """Copy an export (or any file a product command wrote) into the run's scanned folder."""
    folder = artifact_dir()
    if folder is not None and path.is_file():
        target = folder / "exports" / f"{next(_counter):04d}-{path.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def keep_log(name: str, text: str) -> None:
    """Append log text to the run's scanned folder."""
    folder = artifact_dir()
    if folder is not None and text:
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        with (folder / "logs" / name).open("a", encoding="utf-8") as out:
            out.write(text if text.endswith("\n") else text + "\n")


def _patient_only(bundle: dict[str, Any]) -> dict[str, Any]:
    # Only the Patient: other resources' ids and dates are not identity (and ids like "warfarin" recur).
    patients = [e for e in bundle.get("entry", []) if e.get("resource", {}).get("resourceType") == "Patient"]
    return {"resourceType": "Bundle", "entry": copy.deepcopy(patients)}


def fixture_identities() -> Identifying:
    names: set[str] = set()
    literals: set[str] = set()
    bundles = [json.loads(p.read_text()) for p in sorted(SYNTHEA_FIXTURES.glob("*.json"))]
    made = {
        "resourceType": "Bundle",
        "entry": [{"resource": {"resourceType": "Patient", **IDENTIFYING_PATIENT}}],
    }
    for bundle in [*bundles, made]:
        found = identifying(_patient_only(bundle))
        names |= found.name_tokens
        literals |= found.literals
    return Identifying(frozenset(names), frozenset(literals), frozenset())


@dataclass(frozen=True)
class ScanResult:
    files: int
    size: int
    patients: int
    hits: dict[str, list[str]]


def scan(folder: Path) -> ScanResult:
    found = fixture_identities()
    hits: dict[str, list[str]] = {}
    files = [p for p in sorted(folder.rglob("*")) if p.is_file()]
    size = 0
    for path in files:
        text = path.read_text(errors="replace")
        size += len(text)
        leaked = leaks(text, found)
        if leaked:
            hits[str(path.relative_to(folder))] = leaked
    patients = len(list(SYNTHEA_FIXTURES.glob("*.json"))) + 1
    return ScanResult(len(files), size, patients, hits)
