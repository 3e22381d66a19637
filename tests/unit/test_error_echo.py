"""Error bodies name the field at fault and never repeat what the client or a FHIR server sent (issue 19 item 6)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from cds_hooks.app import create_app
from cds_hooks.settings import load_settings
from plugin.feedback import MemoryFeedbackSink
from tests.support.asgi_server import unused_loopback_url
from tests.support.services import build_test_registry

pytestmark = pytest.mark.unit

MARKER = "zz-echo-marker-7f3a"
FHIR_BASE = "https://fhir.ehr.test/r4"
CONTEXT = {"userId": "Practitioner/doc-1", "patientId": "p1"}
PATIENT = {"resourceType": "Patient", "id": "p1"}


def _remote_outcome(request: httpx.Request) -> httpx.Response:
    """A FHIR server that refuses every read with an OperationOutcome carrying the marker."""
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "not-found", "diagnostics": MARKER, "details": {"text": MARKER}}
        ],
    }
    return httpx.Response(404, json=outcome, extensions={"reason_phrase": MARKER.encode()})


@asynccontextmanager
async def _edge() -> AsyncIterator[httpx.AsyncClient]:
    fhir = httpx.AsyncClient(transport=httpx.MockTransport(_remote_outcome))
    registry, _, _ = build_test_registry()
    redis_url = unused_loopback_url().replace("http://", "redis://") + "/0"
    app = create_app(
        load_settings(auth_disabled=True, redis_url=redis_url),
        registry,
        http=fhir,
        feedback_sink=MemoryFeedbackSink(),
    )
    logging.getLogger("cds_hooks").setLevel(logging.CRITICAL)
    try:
        async with app.router.lifespan_context(app), fhir:
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://r1cds.test") as client:
                yield client
    finally:
        logging.getLogger("cds_hooks").setLevel(logging.NOTSET)


def _call(**members: Any) -> dict[str, Any]:
    return {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d", "context": CONTEXT, **members}


def _assert_clean(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["diagnostics"]
    assert MARKER not in response.text


async def test_an_unknown_service_id_is_not_repeated() -> None:
    async with _edge() as client:
        _assert_clean(await client.post(f"/cds-services/{MARKER}", json=_call()), 404)


async def test_a_hook_the_service_does_not_answer_is_not_repeated() -> None:
    async with _edge() as client:
        response = await client.post("/cds-services/prefetch-probe", json=_call(hook=MARKER))
    _assert_clean(response, 400)
    assert "hook" in response.json()["issue"][0]["diagnostics"]


async def test_a_prefetch_key_is_not_repeated() -> None:
    async with _edge() as client:
        response = await client.post("/cds-services/prefetch-probe", json=_call(prefetch={MARKER: 5}))
    _assert_clean(response, 400)
    assert "prefetch" in response.json()["issue"][0]["diagnostics"]


async def test_the_fhir_servers_operation_outcome_text_is_not_repeated() -> None:
    async with _edge() as client:
        response = await client.post("/cds-services/prefetch-probe", json=_call(fhirServer=FHIR_BASE))
    _assert_clean(response, 412)
    assert response.json()["issue"][0]["code"] == "incomplete"
    assert "patient" in response.json()["issue"][0]["diagnostics"]


async def test_the_ehrs_prefetch_operation_outcome_text_is_not_repeated() -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout", "diagnostics": MARKER}],
    }
    async with _edge() as client:
        response = await client.post(
            "/cds-services/prefetch-probe", json=_call(prefetch={"patient": outcome})
        )
    _assert_clean(response, 412)
