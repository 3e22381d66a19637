"""The loopback FHIR server over HTTP: reads, paged searches, faults, and a server that is down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from plugin.fhir_search import FhirStore
from tests.support.fhir_server import FhirServerHandle, running_fhir_server, stopped_base_url
from tests.support.fixtures_paths import synthea_bundle_paths

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def raw_bundle() -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(synthea_bundle_paths()[0].read_text(encoding="utf-8"))
    return bundle


@pytest.fixture(scope="module")
def store(raw_bundle: dict[str, Any]) -> FhirStore:
    return FhirStore.from_bundles([raw_bundle])


@pytest.fixture
def server(store: FhirStore) -> Iterator[FhirServerHandle]:
    with running_fhir_server(store) as handle:
        yield handle


@pytest.fixture
def client(server: FhirServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url + "/", timeout=5.0) as http:
        yield http


def raw_resources(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        entry["resource"] for entry in bundle["entry"] if entry["resource"]["resourceType"] == resource_type
    ]


def patient_of(bundle: dict[str, Any]) -> dict[str, Any]:
    (patient,) = raw_resources(bundle, "Patient")
    return patient


def assert_operation_outcome(response: httpx.Response, status_code: int, issue_code: str) -> None:
    assert response.status_code == status_code
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == issue_code


def test_reads_the_patient(client: httpx.Client, raw_bundle: dict[str, Any]) -> None:
    patient = patient_of(raw_bundle)
    response = client.get(f"Patient/{patient['id']}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["id"] == patient["id"]
    assert body["name"] == patient["name"]
    assert body["birthDate"] == patient["birthDate"]


def test_follows_next_links_to_every_observation(
    client: httpx.Client, server: FhirServerHandle, raw_bundle: dict[str, Any]
) -> None:
    patient_id = patient_of(raw_bundle)["id"]
    expected = [obs["id"] for obs in raw_resources(raw_bundle, "Observation")]
    url: str | None = f"{server.base_url}/Observation?patient={patient_id}&_count=10"
    collected: list[str] = []
    while url is not None:
        assert url.startswith(server.base_url + "/"), "next links must point back at this server"
        page = client.get(url)
        assert page.status_code == 200
        bundle = page.json()
        assert bundle["total"] == len(expected)
        collected.extend(entry["resource"]["id"] for entry in bundle.get("entry", []))
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert len(collected) == len(expected)
    assert collected == expected
    pages = -(-len(expected) // 10)
    assert len(server.faults.requests) == pages
    assert server.faults.requests[0] == f"Observation?patient={patient_id}&_count=10"
    assert server.faults.requests[-1].endswith(f"_count=10&_offset={(pages - 1) * 10}")


def test_unencoded_plus_in_a_date_keeps_its_timezone(
    client: httpx.Client, raw_bundle: dict[str, Any]
) -> None:
    patient_id = patient_of(raw_bundle)["id"]
    observation = raw_resources(raw_bundle, "Observation")[0]
    moment = observation["effectiveDateTime"]
    assert "+" in moment
    same_moment = [
        o["id"] for o in raw_resources(raw_bundle, "Observation") if o["effectiveDateTime"] == moment
    ]
    response = client.get(f"Observation?patient={patient_id}&date=eq{moment}")
    assert response.status_code == 200
    assert [entry["resource"]["id"] for entry in response.json()["entry"]] == same_moment


def test_bearer_token_is_enforced_except_for_metadata(
    client: httpx.Client, server: FhirServerHandle, raw_bundle: dict[str, Any]
) -> None:
    server.faults.required_bearer = "test-access-token"
    patient_path = f"Patient/{patient_of(raw_bundle)['id']}"

    missing = client.get(patient_path)
    assert_operation_outcome(missing, 401, "login")
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = client.get(patient_path, headers={"Authorization": "Bearer another-token"})
    assert_operation_outcome(wrong, 401, "login")
    accepted = client.get(patient_path, headers={"Authorization": "Bearer test-access-token"})
    assert accepted.status_code == 200

    metadata = client.get("metadata")
    assert metadata.status_code == 200
    capability = metadata.json()
    assert capability["resourceType"] == "CapabilityStatement"
    assert capability["fhirVersion"] == "4.0.1"
    served = {resource["type"] for resource in capability["rest"][0]["resource"]}
    assert {"Patient", "Observation", "MedicationRequest"} <= served


def test_operation_outcome_faults(
    client: httpx.Client, server: FhirServerHandle, raw_bundle: dict[str, Any]
) -> None:
    patient_id = patient_of(raw_bundle)["id"]
    server.faults.operation_outcome_for = {"MedicationRequest"}
    server.faults.outcome_200_for = {"Condition"}

    assert_operation_outcome(client.get(f"MedicationRequest?patient={patient_id}"), 500, "exception")
    warned = client.get(f"Condition?patient={patient_id}")
    assert_operation_outcome(warned, 200, "processing")
    assert warned.json()["issue"][0]["severity"] == "warning"
    untouched = client.get(f"Observation?patient={patient_id}&_summary=count")
    assert untouched.json() == {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(raw_resources(raw_bundle, "Observation")),
        "link": [
            {
                "relation": "self",
                "url": f"{server.base_url}/Observation?patient={patient_id}&_summary=count",
            }
        ],
    }


def test_unknown_id_is_404_and_bad_parameters_are_400(client: httpx.Client) -> None:
    assert_operation_outcome(client.get("Patient/does-not-exist"), 404, "not-found")
    assert_operation_outcome(client.get("Observation?value-quantity=gt5"), 400, "not-supported")
    assert_operation_outcome(client.get("Observation?date=yesterday"), 400, "invalid")


def test_delay_makes_impatient_clients_time_out(client: httpx.Client, server: FhirServerHandle) -> None:
    server.faults.delay_s = 0.5
    with pytest.raises(httpx.ReadTimeout):
        client.get("metadata", timeout=0.1)
    server.faults.delay_s = 0.0
    assert client.get("metadata").status_code == 200


def test_server_stops_on_exit_and_stopped_url_refuses(store: FhirStore) -> None:
    with running_fhir_server(store) as handle:
        assert httpx.get(f"{handle.base_url}/metadata", timeout=5.0).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{handle.base_url}/metadata", timeout=5.0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stopped_base_url()}/metadata", timeout=5.0)
