"""HealthChain's CDS Hooks client side against the real app over HTTP: discovery, hooks, cards, feedback.

HealthChain (requirements/healthchain.in) runs from its own venv, .venv-healthchain (`make test` builds it),
through tests/interop/healthchain_client.py; this test serves the app, writes the chart fixture, runs the
driver and asserts on its JSON report. Where HealthChain departs from CDS Hooks 2.0 the assertion pins the
departure, so a HealthChain release that fixes one, or a change on our side, shows up here.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from cds_hooks import fire
from cds_hooks.feedback_store import STREAM
from plugin.catalog import shipped_registry
from plugin.fhir_search import FhirStore
from tests.integration.conftest import EHR_ISSUER, ServeApp
from tests.support.charts import USER_ID, chart_path, draft_orders, ibuprofen_draft, raw_bundle
from tests.support.fixtures_paths import SHARED_FIXTURES
from tests.support.jwt_factory import SigningKey
from tests.support.redis_server import RedisHandle

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HC_PYTHON = ROOT / ".venv-healthchain" / "bin" / "python"
DRIVER = ROOT / "tests" / "interop" / "healthchain_client.py"
DRIVER_TIMEOUT_S = 45
FHIR_BASE = "https://ehr.test.invalid/fhir"
CHART = "Derek_Becker"
SPEC_EXAMPLES = SHARED_FIXTURES / "cds-hooks" / "spec-examples-extracted"
# Members CDS Hooks 2.0 makes OPTIONAL that HealthChain's models require to be present (even as null).
PRESENCE_ONLY = frozenset({"autoLaunchable", "isRecommended"})


def require_healthchain() -> None:
    if HC_PYTHON.exists():
        return
    reason = f"{HC_PYTHON.relative_to(ROOT)} is missing: `make .venv-healthchain/.installed` builds it"
    if os.environ.get("R1CDS_REQUIRE_HEALTHCHAIN") == "1":
        pytest.fail(f"R1CDS_REQUIRE_HEALTHCHAIN=1 but {reason}")
    pytest.skip(reason)


def chart_fixture(base_url: str) -> dict[str, Any]:
    """The chart as an EHR would hand it over: ids, a draft order, and each service's prefetch answered."""
    store = FhirStore.from_bundles([raw_bundle(chart_path(CHART))])
    patient_id = fire.pick_patient(store, None)
    drafts = draft_orders(ibuprofen_draft(patient_id))
    services = httpx.get(f"{base_url}/cds-services", timeout=30).json()["services"]
    prefetch: dict[str, Any] = {}
    for service in services:
        if service["id"] in prefetch:
            continue
        hook = service["hook"]
        context = fire.build_context(
            hook, store, patient_id, USER_ID, None, drafts if hook in fire.ORDER_HOOKS else None
        )
        prefetch[service["id"]] = fire.build_prefetch(
            service.get("prefetch") or {}, context, store, FHIR_BASE
        )
    return {"userId": USER_ID, "patientId": patient_id, "draftOrders": drafts, "prefetch": prefetch}


def run_driver(base_url: str, fixture_path: Path, key: SigningKey) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "R1CDS_HC_SIGNING_KEY": key.key.as_pem(private=True).decode("ascii"),
        "R1CDS_HC_KEY_ID": key.kid,
        "R1CDS_HC_ISSUER": EHR_ISSUER,
    }
    argv = [
        str(HC_PYTHON),
        str(DRIVER),
        "--base-url",
        base_url,
        "--fixture",
        str(fixture_path),
        "--synthea-bundle",
        str(chart_path(CHART)),
        "--spec-example",
        str(SPEC_EXAMPLES / "response-cards-smart-link.json"),
        "--spec-example",
        str(SPEC_EXAMPLES / "response-cards-full.json"),
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=DRIVER_TIMEOUT_S, env=env, cwd=ROOT, check=False
    )
    assert done.returncode == 0, f"the HealthChain driver exited {done.returncode}:\n{done.stderr[-4000:]}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@dataclass(frozen=True)
class Run:
    report: dict[str, Any]
    base_url: str


@pytest.fixture
def run(serve_app: ServeApp, ehr_keys: tuple[SigningKey, SigningKey], tmp_path: Path) -> Run:
    """The shipped services with EHR authentication on, driven once by HealthChain."""
    require_healthchain()
    with serve_app(registry=shipped_registry()) as api:
        fixture = tmp_path / "fixture.json"
        fixture.write_text(json.dumps(chart_fixture(api.url)), encoding="utf-8")
        return Run(run_driver(api.url, fixture, ehr_keys[0]), api.url)


def pinned_version() -> str:
    (line,) = [
        x
        for x in (ROOT / "requirements" / "healthchain.in").read_text().splitlines()
        if x.startswith("healthchain==")
    ]
    return line.split("==")[1]


def spec_optional_members_only(errors: list[dict[str, str]]) -> bool:
    """Every error is HealthChain demanding a member 2.0 makes OPTIONAL (and R1 CDS therefore omits)."""
    return all(e["type"] == "missing" and e["loc"].rsplit(".", 1)[-1] in PRESENCE_ONLY for e in errors)


def assert_cards_read_by_healthchain(hook_report: dict[str, Any], base_url: str) -> list[dict[str, Any]]:
    """Every card: rejected by HealthChain's Card only for OPTIONAL members, read whole once they are present."""
    cards: list[dict[str, Any]] = hook_report["cards"]
    assert cards
    for card in cards:
        assert spec_optional_members_only(card["parse_errors"]), card["parse_errors"]
        assert card["parses_with_explicit_nulls"], card["errors_with_explicit_nulls"]
        assert card["round_trip"] == {
            "summary": True,
            "indicator": True,
            "source_label": True,
            "source_url": True,
        }
        parsed = card["parsed"]
        assert parsed["indicator"] in ("info", "warning", "critical")
        assert parsed["source"]["label"] and parsed["source"]["url"] == f"{base_url}/about"
        assert 0 < len(parsed["summary"]) < 140
    # The response as a whole fails HealthChain's CDSResponse for the same members, and only those.
    assert spec_optional_members_only(hook_report["cds_response_parse_errors"])
    return cards


def summaries(cards: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {card["parsed"]["summary"]: card["parsed"] for card in cards}


def test_discovery_is_read_at_the_spec_path_and_healthchains_default_path_differs(run: Run) -> None:
    report = run.report
    assert report["healthchain_version"] == pinned_version()
    assert report["signed"] is True
    discovery = report["discovery"]
    assert discovery["status"] == 200 and discovery["parse_errors"] == []
    listed = {(s["id"], s["hook"]) for s in discovery["services"]}
    assert {
        ("r1-chart-review", "patient-view"),
        ("r1-order-review", "order-select"),
        ("r1-order-review", "order-sign"),
    } <= listed
    assert all("patient" in s["prefetch_keys"] for s in discovery["services"])
    # 2.0 "Discovery": {baseUrl}/cds-services. A HealthChain server puts it elsewhere by default.
    default = discovery["healthchain_default"]
    assert default["discovery_path"] == "/cds/cds-discovery"
    assert default["service_path"] == "/cds/cds-services/{id}"
    assert default["status_at_our_base"] == 404


def test_patient_view_cards_round_trip_through_healthchains_card_model(run: Run) -> None:
    patient_view = run.report["hooks"]["patient-view"]
    assert patient_view["service"] == "r1-chart-review" and patient_view["status"] == 200
    assert patient_view["context_members_dropped"] == []
    sent = patient_view["sent"]
    assert sent["hookInstance_is_uuid"] and sent["context_keys"] == ["patientId", "userId"]
    assert sent["prefetch"]["patient"] == {"resourceType": "Patient", "type": None}
    cards = assert_cards_read_by_healthchain(patient_view, run.base_url)
    bleeding = summaries(cards)
    warfarin = [s for s in bleeding if s.startswith("Warfarin with naproxen raises bleeding risk")]
    assert len(warfarin) == 1 and bleeding[warfarin[0]]["indicator"] == "warning"
    # What HealthChain's Card trips on: links without autoLaunchable, suggestions without isRecommended.
    locs = {e["loc"] for c in cards for e in c["parse_errors"]}
    assert {"links.0.autoLaunchable", "suggestions.0.isRecommended"} <= locs


def test_order_hooks_lose_their_context_in_healthchains_serialisation(run: Run) -> None:
    hooks = run.report["hooks"]
    dropped = {"order-select": ["draftOrders", "selections"], "order-sign": ["draftOrders"]}
    for hook, members in dropped.items():
        call = hooks[hook]
        assert call["service"] == "r1-order-review"
        # As SandboxClient sends it: 400, naming the missing context member (2.0 order hooks REQUIRE it).
        assert call["context_members_dropped"] == members
        assert call["status"] == 400
        assert f"context.{members[-1]}" in call["diagnostics"][0]
        # The same HealthChain request serialised with its context subclass's fields: answered with cards.
        full = call["with_subclass_fields"]
        assert full["status"] == 200
        assert full["context_members_invented"] == ["encounterId"]  # HealthChain's default_factory
        assert full["sent"]["draftOrders_entries"] == 1
        if hook == "order-select":
            assert full["sent"]["selections"] == ["MedicationRequest/draft-ibuprofen"]
        cards = assert_cards_read_by_healthchain(full, run.base_url)
        bleeding = [
            p for s, p in summaries(cards).items() if s.startswith("Warfarin with") and "ibuprofen" in s
        ]
        assert len(bleeding) == 1
        assert bleeding[0]["indicator"] == "warning" and bleeding[0]["suggestions"] == 1


def test_healthchains_own_sender_sends_no_jwt_and_a_random_patient(run: Run) -> None:
    report = run.report
    assert report["unsigned_status"] == 401
    sandbox = report["sandbox_client"]
    # SandboxClient.send_requests: no Authorization header, so 401; it hands back {} and only logs the status.
    assert sandbox["send_requests_returned"] == [{}]
    assert sandbox["logged_error_statuses"] == [401]
    # Its default context names a random patient, not the one the prefetch is about: refused as such.
    assert sandbox["patientId_matches_fixture"] is False
    signed = sandbox["same_request_signed"]
    assert signed["status"] == 412
    assert signed["diagnostics"][0].startswith(
        "prefetch or draft orders for a patient other than context.patientId"
    )


def test_healthchains_synthea_prefetch_keys_match_no_template_of_ours(run: Run) -> None:
    loader = run.report["synthea_loader"]
    prefetch = loader["sent"]["prefetch"]
    # One collection Bundle per resource type, keyed by the lower-cased type, the Patient included.
    assert set(prefetch) <= {"patient", "condition", "medicationrequest", "allergyintolerance"}
    assert prefetch["patient"] == {"resourceType": "Bundle", "type": "collection"}
    assert "medicationrequest" in prefetch
    # Only `patient` coincides with a key we declared; with no fhirServer the rest count as not prefetched,
    # so the medication checks have nothing to read: the warfarin cards of the spec-shaped call are absent.
    assert loader["status"] == 200
    cards = assert_cards_read_by_healthchain(loader, run.base_url)
    spec_shaped = summaries(run.report["hooks"]["patient-view"]["cards"])
    assert not any(s.startswith("Warfarin") for s in summaries(cards))
    assert len(cards) < len(spec_shaped)
    # Fail closed: the records that never arrived are named on a card, not read as an empty chart.
    assert any(
        s.endswith("could not be obtained from the EHR: safety checks may be incomplete")
        for s in summaries(cards)
    )


def test_healthchains_feedback_model_misnames_the_override_reason(
    run: Run, redis_server: RedisHandle
) -> None:
    feedback = run.report["feedback"]
    assert feedback["status"] == 200
    # 2.0 "Feedback" names overrideReason and acceptedSuggestions (an array); HealthChain's CDSFeedback has
    # overriddeReason and acceptedSuggestion, so the reason goes out under a name no service reads.
    assert "overriddeReason" in feedback["sent_keys"] and "overrideReason" not in feedback["sent_keys"]
    assert "acceptedSuggestion" in feedback["model_fields"]
    assert "acceptedSuggestions" not in feedback["model_fields"]
    store = redis.Redis.from_url(redis_server.url)
    try:
        entries: Any = store.xrange(STREAM)  # redis-py types the sync and async answers as one union
        stored = [json.loads(fields[b"item"]) for _, fields in entries]
    finally:
        store.close()
    mine = [s for s in stored if s["card_uuid"] == feedback["card"] and s["outcome"] == "overridden"]
    assert mine, "the feedback HealthChain built was not stored"
    assert mine[-1].get("override_reason") is None


def test_healthchains_card_model_rejects_the_specs_own_examples(run: Run) -> None:
    # Control: the same presence demand fails examples printed in the specification, so it is HealthChain's.
    examples = {e["file"]: e["parse_errors"] for e in run.report["spec_examples"]}
    full = examples["response-cards-full.json"]
    assert full and spec_optional_members_only(full)
    assert {e["loc"] for e in full} == {f"cards.0.links.{i}.autoLaunchable" for i in range(3)}
    smart = {e["loc"] for e in examples["response-cards-smart-link.json"]}
    # That example spells the member `autolaunchable`, as 2.0 does; HealthChain looks for `autoLaunchable`.
    assert "cards.0.links.0.autoLaunchable" in smart
