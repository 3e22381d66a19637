"""`r1cds serve` and `r1cds fire` as an integration tester runs them: real processes over loopback HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from plugin.catalog import CHART_REVIEW, ORDER_REVIEW
from plugin.fhir_search import FhirStore
from tests.integration.conftest import EHR_ISSUER, ServeApp
from tests.support.asgi_server import unused_loopback_url
from tests.support.fhir_server import running_fhir_server
from tests.support.fixtures_paths import require_shared_fixtures, synthea_bundle_paths
from tests.support.jwt_factory import SigningKey
from tests.support.services import build_test_registry

pytestmark = pytest.mark.integration

R1CDS = [sys.executable, "-m", "cds_hooks.cli"]


def fire(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*R1CDS, "fire", *args], capture_output=True, text=True, timeout=60, check=False)


def private_jwk(key: SigningKey, path: Path) -> Path:
    path.write_text(json.dumps({**key.key.as_dict(private=True), "kid": key.kid}))
    return path


@pytest.fixture
def bundle_path() -> Path:
    require_shared_fixtures()
    return next(p for p in synthea_bundle_paths() if p.name.startswith("Clarine"))


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command", [[*R1CDS, "serve"], ["make", "--no-print-directory", "run"]], ids=["r1cds-serve", "make-run"]
)
def test_serve_starts_the_api_and_serves_discovery(command: list[str]) -> None:
    port = unused_loopback_url().rsplit(":", 1)[1]
    env = {**os.environ, "R1CDS_PORT": port, "R1CDS_AUTH_DISABLED": "true", "R1CDS_LOG_LEVEL": "WARNING"}
    # A session of its own, so that stopping `make` also stops the server it started, and nothing else.
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/cds-services", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "r1cds serve did not answer within 30 s"
                time.sleep(0.1)
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group is gone if the server died on start
            os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert response.status_code == 200
    ids = {(s["id"], s["hook"]) for s in response.json()["services"]}
    assert ids == {(d.id, h) for d in (CHART_REVIEW, ORDER_REVIEW) for h in d.hooks} | {
        ("r1-discharge-review", "encounter-discharge")
    }
    assert b"authentication is DISABLED" in stderr
    if command[-1] == "serve":  # JSON logs by default (make run asks for text)
        lines = [json.loads(line) for line in stderr.decode().splitlines() if line.strip()]
        assert lines and all({"ts", "level", "logger", "msg", "pid"} <= set(line) for line in lines)


def test_fire_builds_prefetch_from_the_bundle_and_signs(
    serve_app: ServeApp, ehr_keys: tuple[SigningKey, SigningKey], bundle_path: Path, tmp_path: Path
) -> None:
    registry, showcase, _ = build_test_registry()
    for key in ehr_keys:
        with serve_app(registry) as api:
            done = fire(
                "--url",
                api.url,
                "--service",
                "showcase",
                "--bundle",
                str(bundle_path),
                "--key",
                str(private_jwk(key, tmp_path / f"{key.kid}.json")),
                "--iss",
                EHR_ISSUER,
            )
        assert done.returncode == 0, done.stderr
        assert "HTTP 200" in done.stderr
        cards = json.loads(done.stdout)["cards"]
        patient_id = FhirStore.from_bundles([json.loads(bundle_path.read_bytes())]).search("Patient", [])[0][
            "id"
        ]
        assert cards[0]["summary"] == f"Patient {patient_id} seen via patient-view"
    assert showcase.calls[-1].prefetch["patient"]["id"] == patient_id  # type: ignore[index]


def test_fire_unsigned_call_is_refused_when_auth_is_on(serve_app: ServeApp, bundle_path: Path) -> None:
    registry, _, _ = build_test_registry()
    with serve_app(registry) as api:
        done = fire("--url", api.url, "--service", "showcase", "--bundle", str(bundle_path))
    assert done.returncode == 1
    assert "HTTP 401" in done.stderr


def test_fire_without_prefetch_forces_fetch_back(serve_app: ServeApp, bundle_path: Path) -> None:
    store = FhirStore.from_bundles([json.loads(bundle_path.read_bytes())])
    registry, _, probe = build_test_registry()
    with running_fhir_server(store) as fhir, serve_app(registry, auth_disabled=True) as api:
        done = fire(
            "--url",
            api.url,
            "--service",
            "prefetch-probe",
            "--bundle",
            str(bundle_path),
            "--prefetch",
            "none",
            "--fhir-server",
            fhir.base_url,
            "--access-token",
            "t0k",
        )
        fetched = list(fhir.faults.requests)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"cards": []}
    first_pages = [r for r in fetched if "_offset=" not in r]
    assert len(first_pages) == len(probe.declaration.prefetch)  # later requests are next-page links
    assert probe.calls[-1].prefetch_issues == ()


def test_fire_order_hook_without_draft_orders_explains(serve_app: ServeApp, bundle_path: Path) -> None:
    registry, _, _ = build_test_registry()
    with serve_app(registry, auth_disabled=True) as api:
        done = fire(
            "--url", api.url, "--service", "showcase", "--hook", "order-sign", "--bundle", str(bundle_path)
        )
    assert done.returncode == 2
    assert "needs draft orders" in done.stderr


def test_fire_order_sign_with_draft_orders(serve_app: ServeApp, bundle_path: Path, tmp_path: Path) -> None:
    draft = {
        "resourceType": "MedicationRequest",
        "id": "draft-ibuprofen",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "197806",
                    "display": "Ibuprofen 600 MG Oral Tablet",
                }
            ]
        },
    }
    orders = tmp_path / "draft.json"
    orders.write_text(json.dumps(draft))
    registry, showcase, _ = build_test_registry()
    with serve_app(registry, auth_disabled=True) as api:
        done = fire(
            "--url",
            api.url,
            "--service",
            "showcase",
            "--hook",
            "order-select",
            "--bundle",
            str(bundle_path),
            "--draft-orders",
            str(orders),
        )
    assert done.returncode == 0, done.stderr
    context = showcase.calls[-1].context
    assert context["selections"] == ["MedicationRequest/draft-ibuprofen"]
    assert context["draftOrders"]["entry"][0]["resource"] == draft


# --- errors a newcomer can cause: one line on stderr, no traceback ------------------------------------------


def r1cds(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*R1CDS, *args], capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **env}
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The only line on stderr, which must be `r1cds: error: ...`; nothing on stdout."""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("r1cds: error: "), done.stderr
    assert done.stdout == ""
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [
        ["fire", "--service", "r1-chart-review", "--bundle", "{missing}"],
        ["rules-report", "{missing}"],
        ["replay", "--bundle", "{missing}", "--hook", "patient-view", "--model-output", "{missing}"],
    ],
    ids=["fire", "rules-report", "replay"],
)
def test_a_missing_file_is_one_line_and_status_2(command: list[str], tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-bundle.json")
    done = r1cds(*(part.format(missing=missing) for part in command))
    assert done.returncode == 2
    line = one_error_line(done)
    assert missing in line and "No such file or directory" in line


def test_a_file_that_is_not_json_or_not_a_bundle_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"resourceType": "Bundle", ')
    done = fire("--service", "r1-chart-review", "--bundle", str(broken))
    assert done.returncode == 2
    assert f"{broken} is not valid JSON" in one_error_line(done)

    observation = tmp_path / "observation.json"
    observation.write_text(json.dumps({"resourceType": "Bundle", "entry": [{"resource": {"id": "x"}}]}))
    done = fire("--service", "r1-chart-review", "--bundle", str(observation))
    assert done.returncode == 2
    assert "entry 1 has a resource without a resourceType" in one_error_line(done)


def test_a_bad_url_is_a_usage_error_and_an_unreachable_service_status_1(bundle_path: Path) -> None:
    done = fire("--url", "localhost:8000", "--service", "r1-chart-review", "--bundle", str(bundle_path))
    assert done.returncode == 2
    assert "--url must be an http:// or https:// URL" in one_error_line(done)

    nobody = unused_loopback_url()
    done = fire("--url", nobody, "--service", "r1-chart-review", "--bundle", str(bundle_path))
    assert done.returncode == 1
    assert f"could not reach the CDS service at {nobody}" in one_error_line(done)


def test_bad_settings_name_the_variable_and_never_echo_its_value() -> None:
    done = r1cds("serve", R1CDS_PORT="s3cret-looking-port")
    assert done.returncode == 2
    line = one_error_line(done)
    assert "invalid R1CDS_* settings: R1CDS_PORT:" in line
    assert "s3cret-looking-port" not in line


def test_argument_errors_are_one_line_too() -> None:
    done = r1cds("fire", "--bundle", "chart.json")
    assert done.returncode == 2
    line = one_error_line(done)
    assert "the following arguments are required: --service" in line
    assert "r1cds fire --help" in line


def test_audit_export_carries_ai_transparency_on_every_ai_card_provenance(tmp_path: Path) -> None:
    """`r1cds audit export` writes each AI card's Provenance as HL7 AI Transparency on FHIR (1.0.0-ballot)
    has it: the model as a contained AI-Device with its model card, the prompt template's hash, the AIAST
    reason and the governed sample agreement as AIconfidence."""
    # Imported here: this file's other tests drive processes and need none of the audit modules.
    from datetime import timedelta
    from uuid import UUID

    from fhir.resources.R4B.provenance import Provenance

    from plugin.audit import (
        AcceptedSuggestion,
        AiRunRecord,
        DecisionSummary,
        HookCallRecord,
        ModelInfo,
        PromptInfo,
        SamplingInfo,
    )
    from tests.support.charts import NOW
    from workers.audit_store import AuditStore, migrate

    ig = "http://hl7.org/fhir/uv/aitransparency"
    card = str(UUID(int=42))
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    migrate(url)
    with AuditStore(url) as store:
        store.write(
            HookCallRecord(
                at=NOW,
                hook_instance=str(UUID(int=1)),
                service_id="r1-chart-review",
                hook="patient-view",
                tenant="test-ehr",
                fingerprint="7c" * 32,
                http_status=200,
                outcome="ai-pending",
            )
        )
        store.write(
            AiRunRecord(
                at=NOW + timedelta(seconds=20),
                fingerprint="7c" * 32,
                service_id="r1-chart-review",
                outcome="accepted",
                model=ModelInfo(backend="sglang", model="deepseek-ai/DeepSeek-R1", details={"tp_size": "8"}),
                prompt=PromptInfo(
                    template_name="chart-review", template_version="4", template_hash="9f8e7d6c5b4a"
                ),
                knowledge_base_version="kb-2026.11",
                sampling=SamplingInfo(temperature=0.6, top_p=0.95, max_completion_tokens=4096, n=5),
                usage=None,
                decision=DecisionSummary(
                    accepted=(
                        AcceptedSuggestion(
                            card_uuid=card,
                            agreement=(4, 5),
                            severity="warning",
                            action_type="create",
                            resource_type="ServiceRequest",
                            action_code="loinc|6301-6",
                            knowledge_ids=("kb.warfarin-inr-monitoring",),
                            patient_handles=("M1",),
                        ),
                    ),
                    abstain_reason=None,
                    rejections=(),
                ),
            )
        )

    out = tmp_path / "export.ndjson"
    done = r1cds(
        "audit",
        "export",
        "--since",
        "2000-01-01",
        "--database-url",
        url,
        "--out",
        str(out),
        "--public-base-url",
        "https://cds.example.org/r1/",
        R1CDS_AUDIT_DATABASE_URL=url,
    )
    assert done.returncode == 0, done.stderr
    assert "exported 2 resource(s)" in done.stderr
    resources = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["resourceType"] for r in resources] == ["AuditEvent", "Provenance"]
    resource = resources[1]
    Provenance.model_validate(resource)
    assert resource["meta"]["profile"] == [f"{ig}/StructureDefinition/AI-Provenance"]
    assert resource["target"][0]["identifier"]["value"] == f"urn:uuid:{card}"
    assert (
        resource["reason"][0]["coding"][0]["system"]
        == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
    )
    assert resource["reason"][0]["coding"][0]["code"] == "AIAST"
    inner = {c["id"]: c for c in resource["contained"]}
    device = inner[resource["agent"][0]["who"]["reference"].removeprefix("#")]
    assert device["meta"]["profile"] == [f"{ig}/StructureDefinition/AI-Device"]
    assert device["type"]["coding"][0]["code"] == "Artificial-Intelligence"
    assert device["deviceName"][0]["name"] == "deepseek-ai/DeepSeek-R1"
    [card_link] = [e for e in device["extension"] if e["url"].endswith("aitransparency.modelCardDescription")]
    model_card = inner[card_link["valueReference"]["reference"].removeprefix("#")]
    assert model_card["meta"]["profile"] == [f"{ig}/StructureDefinition/AI-ModelCard"]
    assert model_card["type"]["coding"][0] == {
        "system": f"{ig}/CodeSystem/AImodelCardCS",
        "code": "AIModelCard",
        "display": "AI Model-Card",
    }
    # The deployment's own card comes first, at its public /about.json.
    assert model_card["content"][0]["attachment"]["url"] == "https://cds.example.org/r1/about.json"
    prompt = next(c for c in resource["contained"] if c["type"]["coding"][0]["code"] == "AIInputPrompt")
    assert {"system": "urn:r1cds:prompt-template-hash", "value": "9f8e7d6c5b4a"} in prompt["identifier"]
    assert {e["what"]["reference"] for e in resource["entity"] if e["role"] == "derivation"} == {
        f"#{model_card['id']}",
        f"#{prompt['id']}",
    }
    [confidence] = resource["extension"]
    assert confidence["url"] == f"{ig}/StructureDefinition/AIconfidence"
    assert confidence["valueString"].startswith("4/5 ")
