"""The audit trail as the running system writes it: API, worker, Redis, SGLang stand-in, one SQLite chain.

One scripted session: a cold patient-view (pending card), the review lands, the same hook again (AI
card), once more (answered from the answer cache), feedback accepting the AI card, and the same feedback
again (an EHR retry). Then the chain is read back, verified and exported with `r1cds audit`, and scanned
for the chart's identifying values.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.provenance import Provenance

from cds_hooks import fire
from plugin.ai_review import PENDING_SUMMARY
from plugin.audit import AiRunRecord, CardFeedbackRecord, HookCallRecord, StoredRecord
from plugin.catalog import CHART_PREFETCH
from plugin.fhir_search import FhirStore
from tests.support import governance_corpus as corpus
from tests.support import sglang_stand_in as sglang
from tests.support.phi import Identifying, identifying, leaks
from tests.support.redis_server import running_redis
from tests.support.review_stack import (
    FHIR_BASE,
    REPO,
    USER,
    clean_answer,
    post,
    review_settings,
    running_worker,
    serve_review_api,
    stand_in,
    wait_for,
)
from tests.support.suite_phi import IDENTIFYING_PATIENT, keep_artifact
from workers.audit_store import AuditStore

pytestmark = pytest.mark.integration

SERVICE = "r1-chart-review"
AI_LABEL = "R1 CDS AI review ("


def chart() -> dict[str, Any]:
    """The governance corpus chart, its Patient carrying a name, identifiers, an address, telecom and relatives."""
    bundle = copy.deepcopy(corpus.bundle())
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"].update(copy.deepcopy(IDENTIFYING_PATIENT))
    return bundle


def patient_view(bundle: dict[str, Any]) -> dict[str, Any]:
    """A fresh patient-view call (its own hookInstance) with every prefetch key filled, as an EHR sends it."""
    store = FhirStore.from_bundles([bundle])
    patient_id = corpus.PATIENT.split("/", 1)[1]
    context = fire.build_context("patient-view", store, patient_id, USER)
    prefetch = fire.build_prefetch(dict(CHART_PREFETCH), context, store, FHIR_BASE)
    return fire.build_request("patient-view", context, prefetch, None)


def r1cds_audit(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("R1CDS_")}
    return subprocess.run(
        [sys.executable, "-m", "cds_hooks.cli", "audit", *args, "--database-url", url],
        cwd=REPO,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def chain(url: str) -> list[StoredRecord]:
    with AuditStore(url) as store:
        return list(store.records())


def test_a_session_leaves_one_verified_phi_free_audit_trail(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    bundle = chart()
    model = stand_in()
    model.default = sglang.ok(clean_answer(), delay_s=3.5)  # slower than the 2.5 s budget: pending first
    with (
        running_redis() as redis,
        sglang.running_sglang(model),
        httpx.Client(timeout=30) as client,
    ):
        # The visibility timeout derived from the model timeout: the stack's short one would hand the 3.5 s
        # review out again while it runs (a second model request, a second run record).
        settings = review_settings(
            redis.url, model.url, model.model_name, audit_database_url=url, visibility_timeout_s=None
        )
        with running_worker(settings), serve_review_api(settings) as api:
            cold, _ = post(client, api.url, SERVICE, patient_view(bundle))
            [pending] = [c for c in cold["cards"] if c["summary"] == PENDING_SUMMARY]
            status_url = pending["links"][0]["url"]
            wait_for(lambda: "Review complete." in client.get(status_url).text, 30, "the review to land")

            ready, _ = post(client, api.url, SERVICE, patient_view(bundle))
            [ai_card] = [c for c in ready["cards"] if c["source"]["label"].startswith(AI_LABEL)]
            cached, _ = post(client, api.url, SERVICE, patient_view(bundle))
            assert cached == ready, "the same final answer, from the answer cache"

            feedback = {
                "feedback": [
                    {
                        "card": ai_card["uuid"],
                        "outcome": "accepted",
                        "outcomeTimestamp": "2026-11-25T12:10:00Z",
                        "acceptedSuggestions": [{"id": ai_card["suggestions"][0]["uuid"]}],
                    }
                ]
            }
            for _ in range(2):  # the EHR retries: stored once, audited once
                sent = client.post(f"{api.url}/cds-services/{SERVICE}/feedback", json=feedback)
                assert sent.status_code == 200, sent.text
        # The API and the worker have stopped: the API wrote what it had queued on its way out.
        assert model.chat_requests == 1

    stored = chain(url)
    records = [s.record for s in stored]
    calls = [r for r in records if isinstance(r, HookCallRecord)]
    runs = [r for r in records if isinstance(r, AiRunRecord)]
    feedbacks = [r for r in records if isinstance(r, CardFeedbackRecord)]
    assert len(records) == len(calls) + len(runs) + len(feedbacks) == 5

    assert [c.outcome for c in calls] == ["ai-pending", "ai-ready", "ai-ready"]
    assert {c.service_id for c in calls} == {SERVICE} and {c.hook for c in calls} == {"patient-view"}
    assert all(c.http_status == 200 and c.tenant is None for c in calls)  # authentication is off
    assert len({c.hook_instance for c in calls}) == 3
    assert [list(c.card_uuids) for c in calls] == [
        [card["uuid"] for card in answer["cards"]] for answer in (cold, ready, cached)
    ]
    assert calls[2].card_uuids == calls[1].card_uuids, "the cached call is audited as the answer it served"
    assert all(c.timings_ms["total"] > 0 for c in calls)
    assert calls[0].timings_ms["service"] >= 2000, "the cold call waited for the review within its budget"
    assert "service" not in calls[2].timings_ms, "answered from the cache: no service ran"

    [run] = runs
    assert run.outcome == "accepted"
    assert run.model is not None and run.model.backend == "sglang" and run.model.model == model.model_name
    assert run.sampling.n == settings.review_samples
    assert run.card_uuids == (ai_card["uuid"],), "the worker's record names the card the API served"
    assert {c.fingerprint for c in calls} == {run.fingerprint}

    [accepted] = feedbacks
    assert (accepted.card_uuid, accepted.outcome) == (ai_card["uuid"], "accepted")
    assert accepted.accepted_suggestions == (ai_card["suggestions"][0]["uuid"],)

    verified = r1cds_audit(url, "verify")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("audit chain intact: 5 record(s)")

    out = tmp_path / "export.ndjson"
    exported = r1cds_audit(url, "export", "--since", "2000-01-01", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    resources = [json.loads(line) for line in out.read_text().splitlines()]
    # An AuditEvent per hook call, a Provenance per AI card, in chain order (feedback has no resource).
    assert sorted(r["resourceType"] for r in resources) == ["AuditEvent"] * 3 + ["Provenance"]
    for resource in resources:
        (AuditEvent if resource["resourceType"] == "AuditEvent" else Provenance).model_validate(resource)

    # The Patient's names, id, identifier values, address parts and telecom values. Its dates are left out
    # (the records' own timestamps are today's, as the chart's relative dates are), and so are the other
    # resources' ids: this chart names them after their drugs ("warfarin"), as knowledge-base ids do.
    [patient] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    found = identifying({"resourceType": "Bundle", "entry": [{"resource": patient}]})
    phi = Identifying(found.name_tokens, found.literals, frozenset())
    assert {"Quimbyfield", "Harriet", "Ottoline", "Brackenridge", "Thaddeus", "Wintersloe"} <= phi.name_tokens
    assert {"gov-1", "MRN-77310942", "532-41-9087", "42 Wallaby Crescent", "02474"} <= phi.literals
    assert {"+1-617-555-0142", "harriet.q@example.org"} <= phi.literals
    assert leaks(out.read_text(), phi) == []
    assert leaks("\n".join(s.body for s in stored), phi) == []

    # Feedback joined to the cards: every card of the answers has its kind, the rule cards their rule id.
    kinds = dict(zip(calls[1].card_uuids, calls[1].card_kinds, strict=True))
    assert kinds[ai_card["uuid"]] == "ai"
    rule_cards = [c for c in ready["cards"] if c["source"]["label"] == "R1 CDS safety rules"]
    assert rule_cards and all(kinds[c["uuid"]] == c["source"]["topic"]["code"] for c in rule_cards)
    assert "rule.inr-monitoring" in {kinds[c["uuid"]] for c in rule_cards}
    assert all(c.user == USER for c in calls)
    exported_feedback = tmp_path / "feedback.csv"
    rates = r1cds_audit(url, "feedback", "--format", "json", "--export", str(exported_feedback))
    assert rates.returncode == 0, rates.stderr
    table = {(row["grouping"], row["key"]): row for row in json.loads(rates.stdout)}
    assert table[("service", SERVICE)]["accepted"] == 1
    issued = {u for c in calls for u in c.card_uuids} - {pending["uuid"]}
    assert table[("service", SERVICE)]["cards_issued"] == len(issued), "the pending card is no intervention"
    assert "not counted: 1 AI review status card(s) shown" in rates.stderr
    assert table[("ai-kind", "create ServiceRequest")]["acceptance_rate"] == 1.0
    assert table[("rule", "rule.inr-monitoring")]["cards_with_feedback"] == 0
    lines = exported_feedback.read_text().splitlines()
    assert (
        lines[0]
        == "date,intervention,service_id,intervention_kind,ai_suggestion_kind,action_taken,accepted_suggestions,feedback,user,location"
    )
    [event] = lines[1:]  # the EHR's retry is one event
    assert f"{ai_card['uuid']},{SERVICE},ai,create ServiceRequest,accepted" in event
    assert USER in event and "patient-view" in event
    assert leaks(exported_feedback.read_text(), phi) == []
    keep_artifact(out)
    keep_artifact(exported_feedback)
