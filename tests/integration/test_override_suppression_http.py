"""Override suppression through the real app, over HTTP, on a real redis-server: shown, overridden, hidden,
shown again on a changed fact and after the period; a critical card is never hidden; the audit says so."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis

from cds_hooks.app import create_app
from cds_hooks.settings import load_settings
from cds_hooks.suppression_store import PREFIX
from plugin.audit import HookCallRecord, MemoryAuditSink
from plugin.catalog import shipped_registry
from tests.support.asgi_server import ServedApp, serve_asgi
from tests.support.charts import NOW
from tests.support.redis_server import RedisHandle
from tests.support.rule_cases import PATIENT_ID, Chart, lab, med

pytestmark = pytest.mark.integration

SERVICE = "r1-chart-review"
PERIOD_S = 4.0
WARNING_RULE, CRITICAL_RULE = "rule.metformin-egfr", "rule.hyperkalaemia-on-raising-drug"
# Metformin with an eGFR of 40 (a warning) and lisinopril with a potassium of 6.0 (critical).
BASE = (med("metformin"), med("lisinopril"), lab("egfr", 40, days_ago=3), lab("potassium", 6.0, days_ago=2))


@contextmanager
def served(redis_url: str, audit: MemoryAuditSink) -> Iterator[ServedApp]:
    def build(url: str) -> Any:
        settings = load_settings(
            public_base_url=url,
            redis_url=redis_url,
            auth_disabled=True,
            override_suppression_hours=PERIOD_S / 3600,
        )
        return create_app(settings, shipped_registry(clock=lambda: NOW), audit=audit)

    with serve_asgi(build, name="r1cds-api") as api:
        yield api


def patient_view(client: httpx.Client, url: str, chart: Chart) -> dict[str, dict[str, Any]]:
    """The answer's cards by rule id (each rule gives one card for this chart)."""
    request = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": PATIENT_ID, "userId": "Practitioner/x"},
        "prefetch": chart.prefetch(),
    }
    response = client.post(f"{url}/cds-services/{SERVICE}", json=request)
    assert response.status_code == 200, response.text
    return {c["source"]["topic"]["code"]: c for c in response.json()["cards"]}


def override(client: httpx.Client, url: str, card: dict[str, Any]) -> None:
    reason = card["overrideReasons"][0]
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": {"code": reason["code"], "system": reason["system"]}},
        "outcomeTimestamp": "2026-11-25T12:00:00Z",
    }
    response = client.post(f"{url}/cds-services/{SERVICE}/feedback", json={"feedback": [item]})
    assert response.status_code == 200, response.text


def hook_calls(audit: MemoryAuditSink, count: int) -> list[HookCallRecord]:
    deadline = time.monotonic() + 10
    while True:
        calls = [r for r in audit.records if isinstance(r, HookCallRecord)]
        if len(calls) >= count or time.monotonic() > deadline:
            return calls
        time.sleep(0.02)


def test_an_overridden_rule_card_is_hidden_until_its_facts_change_or_the_period_ends(
    redis_server: RedisHandle,
) -> None:
    audit = MemoryAuditSink()
    chart = Chart(resources=BASE)
    with served(redis_server.url, audit) as api, httpx.Client(timeout=30) as client:
        first = patient_view(client, api.url, chart)
        warning, critical = first[WARNING_RULE], first[CRITICAL_RULE]
        assert (warning["indicator"], critical["indicator"]) == ("warning", "critical")
        # The card offers its rule's own reasons, the generic chart-incorrect last.
        assert [r["code"] for r in warning["overrideReasons"]][-1] == "chart-incorrect"
        assert warning["overrideReasons"][0]["code"] not in {"benefit-outweighs-risk", "already-managed"}

        override(client, api.url, warning)
        override(client, api.url, critical)
        overridden_at = time.monotonic()
        again = patient_view(client, api.url, chart)  # identical: answered from the answer cache
        assert WARNING_RULE not in again, "the overridden warning is not shown again"
        assert again[CRITICAL_RULE]["uuid"] == critical["uuid"], "a critical card is never suppressed"

        # A new eGFR (another Observation, another value): another finding, shown despite the override.
        changed = Chart(resources=(*BASE, lab("egfr", 38, days_ago=0, resource_id="egfr-today")))
        shown = patient_view(client, api.url, changed)
        assert WARNING_RULE in shown and shown[WARNING_RULE]["uuid"] != warning["uuid"]
        assert time.monotonic() - overridden_at < PERIOD_S, "the steps above ran within the period"

        # After the period the original card returns, with its own uuid.
        time.sleep(max(0.0, PERIOD_S - (time.monotonic() - overridden_at)) + 0.2)
        later = patient_view(client, api.url, chart)
        assert later[WARNING_RULE]["uuid"] == warning["uuid"]
        assert CRITICAL_RULE in later

        calls = hook_calls(audit, 4)
    assert [c.suppressed for c in calls] == [(), (warning["uuid"],), (), ()]
    hidden_call = calls[1]
    assert warning["uuid"] not in hidden_call.card_uuids and critical["uuid"] in hidden_call.card_uuids
    # Nothing in Redis names the patient: the keys are a tenant digest and card uuids.
    store = redis.Redis.from_url(redis_server.url)
    try:
        for key in store.scan_iter(match=f"{PREFIX}*"):
            assert PATIENT_ID.encode() not in key
    finally:
        store.close()


def test_suppression_off_shows_the_overridden_card(redis_server: RedisHandle) -> None:
    def build(url: str) -> Any:
        settings = load_settings(
            public_base_url=url, redis_url=redis_server.url, auth_disabled=True, override_suppression_hours=0
        )
        return create_app(settings, shipped_registry(clock=lambda: NOW))

    chart = Chart(resources=(med("metformin"), lab("egfr", 41, days_ago=3, resource_id="egfr-off")))
    with serve_asgi(build, name="r1cds-api") as api, httpx.Client(timeout=30) as client:
        warning = patient_view(client, api.url, chart)[WARNING_RULE]
        override(client, api.url, warning)
        assert patient_view(client, api.url, chart)[WARNING_RULE]["uuid"] == warning["uuid"]


def test_a_redis_outage_shows_every_card(redis_server: RedisHandle) -> None:
    """Fail open: with Redis unreachable the cards are shown; feedback is refused (503) as before."""

    def build(url: str) -> Any:
        settings = load_settings(public_base_url=url, redis_url="redis://127.0.0.1:1/0", auth_disabled=True)
        return create_app(settings, shipped_registry(clock=lambda: NOW))

    chart = Chart(resources=BASE)
    with serve_asgi(build, name="r1cds-api") as api, httpx.Client(timeout=30) as client:
        cards = patient_view(client, api.url, chart)
        assert {WARNING_RULE, CRITICAL_RULE} <= set(cards)
