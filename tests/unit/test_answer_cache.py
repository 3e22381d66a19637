"""The per-process cache of final hook answers: what its key covers, its bound and its expiry."""

from __future__ import annotations

import pytest

from cds_hooks.answer_cache import AnswerCache
from plugin.services import HookCall, PrefetchIssue

pytestmark = pytest.mark.unit


def call(**changes: object) -> HookCall:
    values: dict[str, object] = {
        "service_id": "r1-chart-review",
        "hook": "patient-view",
        "hook_instance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"patientId": "p1", "userId": "Practitioner/1"},
        "prefetch": {"patient": {"resourceType": "Patient", "id": "p1"}},
        "tenant": "ehr",
        **changes,
    }
    return HookCall(**values)  # type: ignore[arg-type]


def test_the_key_covers_what_the_answer_is_made_from_and_nothing_volatile() -> None:
    day = ["2026-11-25"]
    cache = AnswerCache(8, 60, today=lambda: day[0])
    base = cache.key(call())
    assert cache.key(call(hook_instance="another-instance")) == base, "every call has its own instance id"
    assert cache.key(call(fhir_server="https://ehr.test/fhir")) == base
    reordered = call(context={"userId": "Practitioner/1", "patientId": "p1"})
    assert cache.key(reordered) == base
    different = [
        call(service_id="r1-order-review"),
        call(hook="encounter-start"),
        call(tenant="other-ehr"),
        call(context={"patientId": "p2", "userId": "Practitioner/1"}),
        call(prefetch={"patient": {"resourceType": "Patient", "id": "p1", "gender": "female"}}),
        call(prefetch_issues=(PrefetchIssue("labs", "timeout", "fetch-back timed out"),)),
    ]
    assert len({cache.key(c) for c in different} | {base}) == len(different) + 1
    day[0] = "2026-11-26"
    assert cache.key(call()) != base, "relative dates and ages change with the day"


def test_entries_expire_and_the_least_recent_goes_first() -> None:
    now = [0.0]
    cache = AnswerCache(2, 60, clock=lambda: now[0], today=lambda: "2026-11-25")
    cache.put(b"a", b"A")
    cache.put(b"b", b"B")
    assert cache.get(b"a") == b"A"  # a is now the most recent
    cache.put(b"c", b"C")
    assert (cache.get(b"a"), cache.get(b"b"), cache.get(b"c")) == (b"A", None, b"C")
    assert len(cache) == 2
    now[0] = 61.0
    assert cache.get(b"a") is None and len(cache) == 1
