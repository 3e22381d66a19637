"""The CDS Hooks edge over real HTTP: discovery, every card feature, auth, errors, feedback, CORS."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import redis

from cds_hooks.feedback_store import STREAM
from tests.integration.conftest import EHR_ISSUER, ServeApp
from tests.support.jwt_factory import SigningKey, claims, mint
from tests.support.redis_server import RedisHandle
from tests.support.services import build_test_registry

pytestmark = pytest.mark.integration

PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}


def hook_request(hook: str = "patient-view", **extra: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"userId": "Practitioner/doc-1", "patientId": "p1"}
    if hook in ("order-select", "order-sign"):
        draft = {"resourceType": "MedicationRequest", "id": "mr-1", "status": "draft", "intent": "proposal"}
        context["draftOrders"] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": draft}],
        }
        if hook == "order-select":
            context["selections"] = ["MedicationRequest/mr-1"]
    return {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context,
        "prefetch": {"patient": PATIENT},
        **extra,
    }


def bearer(key: SigningKey, audience: str, **claim_overrides: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(key, claims(EHR_ISSUER, audience, **claim_overrides))}"}


def test_discovery_lists_one_entry_per_hook(serve_app: ServeApp) -> None:
    registry, _, _ = build_test_registry()
    with serve_app(registry) as api:
        response = httpx.get(f"{api.url}/cds-services")
    assert response.status_code == 200
    services = response.json()["services"]
    assert [(s["id"], s["hook"]) for s in services] == [
        ("showcase", "patient-view"),
        ("showcase", "order-select"),
        ("showcase", "order-sign"),
        ("prefetch-probe", "patient-view"),
    ]
    assert services[0]["usageRequirements"] == "Test deployments only."
    assert all(None not in s.values() for s in services)


def test_every_card_feature_reaches_the_wire_without_nulls(
    serve_app: ServeApp, ehr_keys: tuple[SigningKey, SigningKey]
) -> None:
    registry, showcase, _ = build_test_registry()
    with serve_app(registry) as api:
        url = f"{api.url}/cds-services/showcase"
        response = httpx.post(url, json=hook_request("order-select"), headers=bearer(ehr_keys[0], url))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert "null" not in response.text and "[]" not in response.text
    first, second = body["cards"]
    assert first["summary"] == "Patient p1 seen via order-select"
    assert first["source"]["topic"] == {
        "code": "drug-interaction",
        "system": "https://example.org/topics",
        "display": "Drug interaction",
    }
    assert [a["type"] for a in first["suggestions"][0]["actions"]] == ["delete", "create", "update"]
    assert first["suggestions"][0]["actions"][0] == {
        "type": "delete",
        "description": "Remove the draft",
        "resourceId": "MedicationRequest/d0",
    }
    assert first["selectionBehavior"] == "at-most-one"
    assert first["overrideReasons"][0]["display"] == "Patient is aware"
    assert first["links"][1] == {
        "label": "SMART app",
        "url": "https://example.org/launch",
        "type": "smart",
        "appContext": '{"review":"1"}',
        "autolaunchable": False,
    }
    # Cards and suggestions the service left without ids still get them: feedback needs them.
    assert len(second["uuid"]) == 36 and len(first["suggestions"][1]["uuid"]) == 36
    assert set(second) == {"summary", "indicator", "source", "uuid"}
    assert body["systemActions"] == [
        {"type": "update", "description": "Flag the chart", "resource": {"resourceType": "Flag"}}
    ]
    assert showcase.calls[0].context["selections"] == ["MedicationRequest/mr-1"]


def test_es384_and_rs384_accepted_and_replay_refused_through_real_redis(
    serve_app: ServeApp, ehr_keys: tuple[SigningKey, SigningKey]
) -> None:
    registry, _, _ = build_test_registry()
    with serve_app(registry) as api:
        url = f"{api.url}/cds-services/showcase"
        for key in ehr_keys:
            headers = bearer(key, url)
            assert httpx.post(url, json=hook_request(), headers=headers).status_code == 200
            replayed = httpx.post(url, json=hook_request(), headers=headers)
            assert replayed.status_code == 401
            assert replayed.content == b""


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic Zm9vOmJhcg=="}, {"Authorization": "Bearer not.a.jwt"}],
    ids=["missing", "basic", "garbage"],
)
def test_unauthenticated_calls_get_an_empty_401(serve_app: ServeApp, headers: dict[str, str]) -> None:
    registry, showcase, _ = build_test_registry()
    with serve_app(registry) as api:
        for path in ("/cds-services/showcase", "/cds-services/showcase/feedback"):
            response = httpx.post(api.url + path, json=hook_request(), headers=headers)
            assert (response.status_code, response.content) == (401, b"")
    assert showcase.calls == []


def test_token_for_another_endpoint_is_refused(
    serve_app: ServeApp, ehr_keys: tuple[SigningKey, SigningKey]
) -> None:
    registry, _, _ = build_test_registry()
    with serve_app(registry) as api:
        other = f"{api.url}/cds-services/prefetch-probe"
        response = httpx.post(
            f"{api.url}/cds-services/showcase", json=hook_request(), headers=bearer(ehr_keys[0], other)
        )
    assert response.status_code == 401


def _outcome(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/fhir+json"
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"][0]


def test_client_errors_are_operation_outcomes(serve_app: ServeApp) -> None:
    registry, showcase, _ = build_test_registry()
    with serve_app(registry, auth_disabled=True, max_body_bytes=4096) as api:
        base = f"{api.url}/cds-services"
        cases = {
            "unknown service": (httpx.post(f"{base}/nope", json=hook_request()), 404, "not-found"),
            "not json": (
                httpx.post(
                    f"{base}/showcase", content=b"{oops", headers={"content-type": "application/json"}
                ),
                400,
                "invalid",
            ),
            "wrong hook": (
                httpx.post(
                    f"{base}/showcase",
                    json=hook_request(
                        "encounter-discharge",
                        context={"userId": "Practitioner/1", "patientId": "p1", "encounterId": "e1"},
                    ),
                ),
                400,
                "not-supported",
            ),
            "reference as id": (
                httpx.post(
                    f"{base}/showcase",
                    json={
                        **hook_request(),
                        "context": {"userId": "Practitioner/1", "patientId": "Patient/p1"},
                    },
                ),
                400,
                "invalid",
            ),
            "too large": (
                httpx.post(f"{base}/showcase", json={**hook_request(), "extension": {"pad": "x" * 5000}}),
                413,
                "too-long",
            ),
            "media type": (
                httpx.post(
                    f"{base}/showcase",
                    content=b"hook=x",
                    headers={"content-type": "application/x-www-form-urlencoded"},
                ),
                415,
                "not-supported",
            ),
            "no prefetch, no server": (
                httpx.post(f"{base}/showcase", json={**hook_request(), "prefetch": {}}),
                412,
                "incomplete",
            ),
        }
    for name, (response, status, code) in cases.items():
        assert response.status_code == status, name
        issue = _outcome(response)
        assert issue["code"] == code, name
        assert "Traceback" not in issue["diagnostics"], name
    assert "patientId must be a FHIR id" in _outcome(cases["reference as id"][0])["diagnostics"]
    assert showcase.calls == []


def test_feedback_single_or_wrapped_is_stored_once(
    serve_app: ServeApp, ehr_keys: tuple[SigningKey, SigningKey], redis_server: RedisHandle
) -> None:
    store = redis.Redis.from_url(redis_server.url)
    store.delete(STREAM)
    item = {
        "card": "9368d37b-283f-44a0-93ea-547cebab93ed",
        "outcome": "overridden",
        "overrideReason": {
            "reason": {"code": "d7ecf885", "system": "https://example.com/reasons"},
            "userComment": "c",
        },
        "outcomeTimestamp": "2020-12-11T00:00:00Z",
    }
    registry, _, _ = build_test_registry()
    with serve_app(registry) as api:
        url = f"{api.url}/cds-services/showcase/feedback"
        for body in ({"feedback": [item]}, item, {"feedback": [item]}):
            response = httpx.post(url, json=body, headers=bearer(ehr_keys[0], url))
            assert response.status_code == 200
        bad = httpx.post(
            url, json={"feedback": [{**item, "outcome": "ignored"}]}, headers=bearer(ehr_keys[0], url)
        )
        assert bad.status_code == 400
    entries = store.xrange(STREAM)
    assert len(entries) == 1
    stored = json.loads(entries[0][1][b"item"])
    assert stored["card_uuid"] == item["card"] and stored["tenant"] == "test-ehr"
    assert stored["override_reason"]["code"] == "d7ecf885"
    store.close()


def test_feedback_with_redis_down_is_503_so_the_ehr_retries(serve_app: ServeApp) -> None:
    registry, _, _ = build_test_registry()
    with serve_app(registry, auth_disabled=True, redis_url="redis://127.0.0.1:1/0") as api:
        response = httpx.post(
            f"{api.url}/cds-services/showcase/feedback",
            json={"card": "c", "outcome": "accepted", "outcomeTimestamp": "2021-12-11T10:05:31Z"},
        )
        hook = httpx.post(f"{api.url}/cds-services/showcase", json=hook_request())
    assert response.status_code == 503
    assert _outcome(response)["code"] == "transient"
    assert hook.status_code == 200  # hooks do not depend on Redis when auth is off


def test_cors_preflight_needs_no_auth(serve_app: ServeApp) -> None:
    registry, _, _ = build_test_registry()
    with serve_app(registry, cors_origins="https://ehr.example.org") as api:
        response = httpx.options(
            f"{api.url}/cds-services/showcase",
            headers={
                "Origin": "https://ehr.example.org",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        stranger = httpx.options(
            f"{api.url}/cds-services/showcase",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://ehr.example.org"
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in stranger.headers
