"""Prefetch by 2.0 rules over real HTTP: the app fetches back from a loopback FHIR server of Synthea data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from plugin.catalog import CHART_PREFETCH
from plugin.fhir_search import FhirStore
from plugin.services import HookCall, ServiceDeclaration, ServiceRegistry
from tests.integration.conftest import ServeApp
from tests.support.asgi_server import ServedApp, unused_loopback_url
from tests.support.fhir_server import FhirFaults, FhirServerHandle, running_fhir_server
from tests.support.fixtures_paths import require_shared_fixtures, synthea_bundle_paths
from tests.support.services import PREFETCH_PROBE, PrefetchProbe

pytestmark = pytest.mark.integration

PAGED = ServiceDeclaration(
    id="paged-probe",
    hooks=("patient-view",),
    title="Paged prefetch probe",
    description="Asks for observations seven at a time so fetch-back must follow next links.",
    prefetch={
        "patient": "Patient/{{context.patientId}}",
        "observations": "Observation?patient={{context.patientId}}&_count=7",
    },
    required_prefetch=frozenset({"patient"}),
)


@dataclass
class World:
    api: ServedApp
    fhir: FhirServerHandle
    store: FhirStore
    patient_id: str
    probe: PrefetchProbe
    paged: PrefetchProbe

    def call(self, service: str = "prefetch-probe", **request: Any) -> httpx.Response:
        body = {
            "hook": "patient-view",
            "hookInstance": "0b5e7f0c-8f7e-4a53-9d4c-6f1a2b3c4d5e",
            "fhirServer": self.fhir.base_url,
            "fhirAuthorization": {
                "access_token": "ehr-token-123",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "r1-cds",
            },
            "context": {"userId": "Practitioner/doc-1", "patientId": self.patient_id},
            **request,
        }
        return httpx.post(f"{self.api.url}/cds-services/{service}", json=body, timeout=30)

    def last(self, probe: PrefetchProbe | None = None) -> HookCall:
        return (probe or self.probe).calls[-1]

    def expected(self, relative: str) -> list[str]:
        """Ids the template should yield, computed by the store directly (no paging, no HTTP)."""
        resource_type, _, query = relative.partition("?")
        params = [tuple(p.split("=", 1)) for p in query.split("&") if p and not p.startswith("_count")]
        return [r["id"] for r in self.store.search(resource_type, params)]  # type: ignore[arg-type]


def _ids(bundle: dict[str, Any] | None) -> list[str]:
    assert bundle is not None and bundle["resourceType"] == "Bundle"
    return [e["resource"]["id"] for e in bundle.get("entry", [])]


@pytest.fixture
def world(serve_app: ServeApp) -> Iterator[World]:
    require_shared_fixtures()
    path = next(p for p in synthea_bundle_paths() if p.name.startswith("Derek_Becker"))
    store = FhirStore.from_bundles([json.loads(path.read_bytes())])
    patient_id = store.search("Patient", [])[0]["id"]
    probe, paged = PrefetchProbe(), PrefetchProbe(declaration=PAGED)
    faults = FhirFaults(required_bearer="ehr-token-123")
    with (
        running_fhir_server(store, faults) as fhir,
        serve_app(ServiceRegistry([probe, paged]), auth_disabled=True, fhir_max_pages=30) as api,
    ):
        yield World(api, fhir, store, patient_id, probe, paged)


def _rendered(world: World, key: str) -> str:
    return CHART_PREFETCH[key].replace("{{context.patientId}}", world.patient_id)


def test_absent_keys_are_fetched_back_with_the_ehr_token(world: World) -> None:
    patient = world.store.read("Patient", world.patient_id)
    response = world.call(prefetch={"patient": patient})
    assert response.status_code == 200, response.text
    call = world.last()
    assert call.prefetch["patient"] == patient
    fetched = set(world.fhir.faults.requests)
    for key in CHART_PREFETCH:
        if key == "patient":
            assert not any(r.startswith("Patient/") for r in fetched)
            continue
        assert _rendered(world, key) in fetched, key
        assert (
            _ids(call.prefetch[key]) == world.expected(_rendered(world, key))[: len(_ids(call.prefetch[key]))]
        )
    assert _ids(call.prefetch["medications"]) == world.expected(_rendered(world, "medications"))
    # Sorted templates with a page size want the newest N: one page, no paging walk.
    encounter_requests = [r for r in world.fhir.faults.requests if r.startswith("Encounter")]
    assert encounter_requests == [_rendered(world, "encounters")]
    assert len(_ids(call.prefetch["encounters"])) == 10 < len(world.expected(_rendered(world, "encounters")))
    assert call.prefetch_issues == ()


def test_null_keys_are_not_fetched_and_outcomes_are_recorded(world: World) -> None:
    patient = world.store.read("Patient", world.patient_id)
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout", "diagnostics": "EHR prefetch timed out"}],
    }
    response = world.call(prefetch={"patient": patient, "conditions": None, "allergies": outcome})
    assert response.status_code == 200, response.text
    call = world.last()
    assert call.prefetch["conditions"] is None and call.prefetch["allergies"] is None
    assert not any(r.startswith(("Condition", "AllergyIntolerance")) for r in world.fhir.faults.requests)
    issue = next(i for i in call.prefetch_issues if i.key == "allergies")
    assert "EHR prefetch timed out" in issue.diagnostics


def test_fhir_server_outcome_degrades_an_optional_key(world: World) -> None:
    world.fhir.faults.operation_outcome_for = {"Immunization"}
    world.fhir.faults.outcome_200_for = {"Procedure"}
    response = world.call()
    assert response.status_code == 200, response.text
    call = world.last()
    assert call.prefetch["patient"]["id"] == world.patient_id  # type: ignore[index]
    assert call.prefetch["immunizations"] is None and call.prefetch["procedures"] is None
    assert {i.key for i in call.prefetch_issues} == {"immunizations", "procedures"}


def test_pages_are_followed_until_the_last(world: World) -> None:
    response = world.call(service="paged-probe")
    assert response.status_code == 200, response.text
    observations = world.last(world.paged).prefetch["observations"]
    expected = world.expected(f"Observation?patient={world.patient_id}")
    assert len(expected) > 7 * 3  # the fixture makes this a real multi-page walk
    assert _ids(observations) == expected
    pages = [r for r in world.fhir.faults.requests if r.startswith("Observation")]
    assert len(pages) == -(-len(expected) // 7)


def test_page_cap_bounds_the_walk_and_says_so(world: World, serve_app: ServeApp) -> None:
    paged = PrefetchProbe(declaration=PAGED)
    with serve_app(ServiceRegistry([paged]), auth_disabled=True, fhir_max_pages=2) as capped:
        world.api = capped
        response = world.call(service="paged-probe")
    assert response.status_code == 200
    call = world.last(paged)
    assert len(_ids(call.prefetch["observations"])) == 14
    assert [(i.key, i.code) for i in call.prefetch_issues] == [("observations", "too-costly")]


def test_paged_prefetch_from_the_ehr_is_completed(world: World) -> None:
    first_page = httpx.get(
        f"{world.fhir.base_url}/Observation",
        params={"patient": world.patient_id, "_count": "10"},
        headers={"Authorization": "Bearer ehr-token-123"},
    ).json()
    patient = world.store.read("Patient", world.patient_id)
    response = world.call(service="paged-probe", prefetch={"patient": patient, "observations": first_page})
    assert response.status_code == 200, response.text
    assert _ids(world.last(world.paged).prefetch["observations"]) == world.expected(
        f"Observation?patient={world.patient_id}"
    )


def test_next_link_off_the_fhir_server_is_not_followed(world: World) -> None:
    foreign = unused_loopback_url() + "/steal?token-goes-here"
    page = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "next", "url": foreign}],
        "entry": [],
    }
    patient = world.store.read("Patient", world.patient_id)
    response = world.call(service="paged-probe", prefetch={"patient": patient, "observations": page})
    assert response.status_code == 200
    issue = next(i for i in world.last(world.paged).prefetch_issues if i.key == "observations")
    assert issue.code == "security"


def test_required_data_unobtainable_is_412(world: World) -> None:
    down = world.call(fhirServer=unused_loopback_url() + "/fhir")
    assert down.status_code == 412
    assert down.json()["issue"][0]["code"] == "incomplete"
    world.fhir.faults.required_bearer = "another-token"
    refused = world.call()
    assert refused.status_code == 412
    assert "ehr-token-123" not in refused.text


def test_fhir_server_down_for_optional_keys_still_answers(world: World) -> None:
    patient = world.store.read("Patient", world.patient_id)
    response = world.call(fhirServer=unused_loopback_url() + "/fhir", prefetch={"patient": patient})
    assert response.status_code == 200
    call = world.last()
    assert {i.key for i in call.prefetch_issues} == set(CHART_PREFETCH) - {"patient"}
    assert all(i.code == "transient" for i in call.prefetch_issues)


def test_plain_http_fhir_server_refused_unless_allowed(serve_app: ServeApp) -> None:
    probe = PrefetchProbe(declaration=PREFETCH_PROBE)
    with serve_app(ServiceRegistry([probe]), auth_disabled=True, fhir_allow_http=False) as api:
        response = httpx.post(
            f"{api.url}/cds-services/prefetch-probe",
            json={
                "hook": "patient-view",
                "hookInstance": "x",
                "fhirServer": "http://127.0.0.1:9/fhir",
                "context": {"userId": "Practitioner/1", "patientId": "p1"},
            },
        )
    assert response.status_code == 412
    assert (
        "allowlist" in response.json()["issue"][0]["diagnostics"]
        or "http" in response.json()["issue"][0]["diagnostics"]
    )
