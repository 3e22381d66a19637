"""A large hook call over real HTTP (issue 19, item 3): capped with a 413, and never holding the event loop."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from plugin.cards import Card, ServiceResult, Source
from plugin.services import HookCall, ServiceDeclaration, ServiceRegistry
from tests.integration.conftest import ServeApp
from tests.support.services import build_test_registry

pytestmark = pytest.mark.integration

PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}


def order_select(drafts: int, conditions: int = 0) -> dict[str, Any]:
    subject = {"reference": "Patient/p1"}
    entries = [
        {"resource": {"resourceType": "MedicationRequest", "id": f"d{n}", "status": "draft",
                      "intent": "proposal", "subject": subject}}
        for n in range(drafts)
    ]  # fmt: skip
    found = [
        {"resource": {"resourceType": "Condition", "id": f"c{n}", "subject": subject}}
        for n in range(conditions)
    ]
    return {
        "hook": "order-select",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "userId": "Practitioner/doc-1",
            "patientId": "p1",
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": entries},
            "selections": ["MedicationRequest/d0"],
        },
        "prefetch": {
            "patient": PATIENT,
            "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": found},
        },
    }


def test_a_call_over_the_resource_cap_is_a_413_naming_the_limit(serve_app: ServeApp) -> None:
    registry, showcase, _ = build_test_registry()
    with serve_app(registry, auth_disabled=True, max_resources_per_call=10) as api:
        url = f"{api.url}/cds-services/showcase"
        # 1 patient + 4 conditions + 5 drafts: at the cap, answered.
        at_cap = httpx.post(url, json=order_select(5, conditions=4))
        over = httpx.post(url, json=order_select(6, conditions=4))
    assert at_cap.status_code == 200
    assert over.status_code == 413
    outcome = over.json()
    assert outcome["resourceType"] == "OperationOutcome"
    (issue,) = outcome["issue"]
    assert issue["code"] == "too-long"
    assert "R1CDS_MAX_RESOURCES_PER_CALL" in issue["diagnostics"]
    assert "10-resource limit" in issue["diagnostics"]
    # The client's values are never echoed: not the count, not an id.
    assert "11" not in issue["diagnostics"] and "d5" not in issue["diagnostics"]
    assert len(showcase.calls) == 1  # the refused call reached no service


BLOCKING = ServiceDeclaration(
    id="blocking",
    hooks=("patient-view",),
    title="Blocks until another call is answered",
    description="Its evaluation waits for the other service's: possible only off the event loop.",
    prefetch={"patient": "Patient/{{context.patientId}}"},
    required_prefetch=frozenset({"patient"}),
)
QUICK = ServiceDeclaration(
    id="quick",
    hooks=("patient-view",),
    title="Answers at once",
    description="Records where it ran.",
    prefetch={"patient": "Patient/{{context.patientId}}"},
    required_prefetch=frozenset({"patient"}),
)


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Blocking:
    declaration = BLOCKING

    def __init__(self, released: threading.Event) -> None:
        self.released = released
        self.started = threading.Event()
        self.saw_release = False

    def evaluate(self, call: HookCall) -> ServiceResult:
        self.started.set()
        # On the event loop this wait would hold every other call, and the quick one could never run.
        self.saw_release = self.released.wait(10.0)
        return ServiceResult(cards=(Card(summary="slow", indicator="info", source=Source(label="t")),))


class Quick:
    declaration = QUICK

    def __init__(self, released: threading.Event) -> None:
        self.released = released
        self.on_loop: list[bool] = []

    def evaluate(self, call: HookCall) -> ServiceResult:
        self.on_loop.append(_on_event_loop())
        self.released.set()
        return ServiceResult()


def test_a_slow_evaluation_runs_off_the_loop_and_other_calls_are_answered_meanwhile(
    serve_app: ServeApp,
) -> None:
    released = threading.Event()
    blocking, quick = Blocking(released), Quick(released)
    request = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/doc-1", "patientId": "p1"},
        "prefetch": {"patient": PATIENT},
    }
    with (
        serve_app(ServiceRegistry([blocking, quick]), auth_disabled=True) as api,
        ThreadPoolExecutor(1) as pool,
    ):
        slow = pool.submit(httpx.post, f"{api.url}/cds-services/blocking", json=request, timeout=30.0)
        assert blocking.started.wait(10.0)
        health = httpx.get(f"{api.url}/healthz", timeout=5.0)
        fast = httpx.post(f"{api.url}/cds-services/quick", json=request, timeout=5.0)
        slow_answer = slow.result(30.0)
    assert health.status_code == 200
    assert fast.status_code == 200 and fast.json() == {"cards": []}
    assert quick.on_loop == [False]
    assert blocking.saw_release
    assert slow_answer.status_code == 200 and slow_answer.json()["cards"][0]["summary"] == "slow"
