"""Governance against the adversarial corpus: each case is dropped for exactly the expected reason."""

from __future__ import annotations

import dataclasses
import json

import pytest

from inference.parsing import parse_sample
from plugin.governance import Decision, GovernancePolicy, ParsedOutput, Reason, govern
from plugin.knowledge import Assertion
from plugin.model_port import Sample
from tests.support import governance_corpus as corpus

pytestmark = pytest.mark.unit

POLICY = GovernancePolicy()


def _govern(*samples: ParsedOutput, retrieved: frozenset[str] = corpus.RETRIEVED) -> Decision:
    return govern(samples, corpus.context(), retrieved, corpus.knowledge(), POLICY, corpus.PATIENT)


@pytest.mark.parametrize("case", corpus.cases(), ids=lambda c: c.name)
def test_adversarial_case_is_rejected_with_its_reason(case: corpus.Case) -> None:
    decision = _govern(*(corpus.parsed(s) for s in case.samples))
    assert decision.accepted == ()
    assert decision.abstained
    assert decision.abstain_reason == "nothing-passed"
    assert [r.reason.value for r in decision.rejected] == [case.reason]
    failed = [r for r in decision.log if not r.passed]
    assert [(r.step, r.reason) for r in failed][-1][1] == Reason(case.reason)


def test_safety_vetoes_name_the_rules() -> None:
    details = {}
    for case in corpus.cases():
        if case.reason == "safety-veto":
            details[case.name] = _govern(*(corpus.parsed(s) for s in case.samples)).rejected[0].detail
    assert "rule.allergy-same-class" in details["allergy-conflict"]
    assert "rule.metformin-egfr" in details["renal-contraindication"]


@pytest.mark.parametrize(
    ("extra", "where"),
    [({"indicator": "critical"}, "suggestion"), ({"systemActions": [{"type": "create"}]}, "answer")],
    ids=["critical-indicator", "system-actions"],
)
def test_schema_refusals_reject_the_sample(extra: dict[str, object], where: str) -> None:
    document = corpus.answer(corpus.clean_inr())
    if where == "suggestion":
        document["suggestions"][0].update(extra)
    else:
        document.update(extra)
    sample = parse_sample(Sample(json.dumps(document), None, "stop"))
    assert sample.outcome == "schema_violation"
    decision = _govern(sample)
    assert [(r.sample, r.suggestion, r.reason) for r in decision.rejected] == [
        (0, None, Reason.NOT_OK_OUTPUT)
    ]
    assert decision.abstain_reason == "no-valid-output"
    schema = [r for r in decision.log if r.step == "schema"]
    assert len(schema) == 1
    assert not schema[0].passed
    assert schema[0].detail.startswith("schema_violation")


def test_disagreeing_samples_abstain() -> None:
    products = [
        ("313782", "Acetaminophen 325 MG Oral Tablet"),
        ("198440", "Acetaminophen 500 MG Oral Tablet"),
        ("1148399", "Acetaminophen 650 MG Extended Release Oral Tablet"),
    ]
    samples = [
        corpus.parsed(
            corpus.answer(
                corpus.suggestion(
                    "Consider acetaminophen for pain",
                    "Acetaminophen avoids the bleeding risk of NSAIDs; keep under the daily maximum.",
                    corpus.medication(code, display),
                    knowledge_ids=["kb.acetaminophen-daily-maximum"],
                )
            )
        )
        for code, display in products
    ]
    # Each product alone would pass: the cited passage is given a supporting assertion for starting
    # acetaminophen, so that only the disagreement between samples decides.
    entry = corpus.knowledge().get("kb.acetaminophen-daily-maximum")
    assert entry is not None
    starting = Assertion("supports", "start", ("acetaminophen",))
    knowledge = dataclasses.replace(
        corpus.knowledge(),
        entries={
            **corpus.knowledge().entries,
            entry.id: dataclasses.replace(entry, assertions=(*entry.assertions, starting)),
        },
    )
    decision = govern(samples, corpus.context(), corpus.RETRIEVED, knowledge, POLICY, corpus.PATIENT)
    assert decision.accepted == ()
    assert decision.abstained
    assert [r.reason for r in decision.rejected] == [Reason.BELOW_AGREEMENT] * 3
    assert all("1/3" in r.detail for r in decision.rejected)


def test_clean_outputs_are_accepted_with_full_agreement() -> None:
    sample = corpus.parsed(corpus.answer(corpus.clean_inr()))
    decision = _govern(sample, sample, sample)
    assert not decision.abstained
    assert decision.abstain_reason is None
    assert decision.rejected == ()
    (accepted,) = decision.accepted
    assert accepted.agreement == (3, 3)
    assert accepted.members == ((0, 0), (1, 0), (2, 0))
    assert accepted.patient_handles == (corpus.handle_of("MedicationRequest/warfarin"),)
    assert accepted.knowledge_ids == ("kb.warfarin-inr-monitoring",)
    # A rule already asks for the INR on this chart, so the suggestion may be a warning, never critical.
    assert accepted.severity == "warning"
    assert accepted.backing_rules == ("rule.inr-monitoring",)
    assert accepted.resource is not None
    assert accepted.resource["subject"] == {"reference": corpus.PATIENT}
    assert accepted.resource["status"] == "draft"
    assert accepted.resource["intent"] == "proposal"
    steps = [r.step for r in decision.log if r.sample == 0]
    assert steps == [
        "schema",
        "grounding",
        "untrusted-text",
        "language",
        "phrasing",
        "intent",
        "support",
        "safety",
        "basis",
        "actions",
        "consistency",
    ]


def test_agreeing_samples_are_judged_once_and_logged_per_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    from plugin.governance import steps as governance_steps

    calls: list[str] = []
    real = governance_steps.check_safety

    def counted(*args: object, **kwargs: object) -> object:
        calls.append("safety")
        return real(*args, **kwargs)

    monkeypatch.setattr(governance_steps, "check_safety", counted)
    same = corpus.parsed(corpus.answer(corpus.clean_inr()))
    french = corpus.parsed(corpus.answer(corpus.clean_inr(), language="fr"))
    decision = _govern(same, same, same, french)
    assert calls == ["safety"]  # three identical samples judged once; the French one stops at language
    per_sample = [[(r.step, r.passed, r.detail) for r in decision.log if r.sample == n] for n in range(3)]
    assert per_sample[0] == per_sample[1] == per_sample[2]
    assert [r.reason for r in decision.rejected] == [Reason.WRONG_LANGUAGE]
    assert decision.accepted[0].agreement == (3, 4)


def test_two_of_three_is_enough_and_failures_count_against_agreement() -> None:
    good = corpus.parsed(corpus.answer(corpus.clean_inr()))
    broken = parse_sample(Sample("not json", None, "stop"))
    decision = _govern(good, broken, good)
    assert decision.accepted[0].agreement == (2, 3)
    strict = govern(
        [good, broken, good],
        corpus.context(),
        corpus.RETRIEVED,
        corpus.knowledge(),
        GovernancePolicy(min_agreement=0.7),
    )
    assert strict.accepted == ()
    assert strict.abstain_reason == "nothing-passed"
    assert Reason.BELOW_AGREEMENT in {r.reason for r in strict.rejected}


def test_empty_retrieval_rejects_every_suggestion() -> None:
    sample = corpus.parsed(corpus.answer(corpus.clean_inr()))
    decision = _govern(sample, sample, retrieved=frozenset())
    assert decision.abstain_reason == "empty-retrieval"
    assert [r.reason for r in decision.rejected] == [Reason.EMPTY_RETRIEVAL] * 2
    assert not decision.log[0].passed


def test_model_abstention_is_respected() -> None:
    decision = _govern(corpus.parsed(corpus.abstention()), corpus.parsed(corpus.abstention()))
    assert decision.abstain_reason == "model-abstained"
    assert decision.rejected == ()
    assert decision.log[1].detail == "abstained"


def test_no_samples_is_no_valid_output() -> None:
    assert _govern().abstain_reason == "no-valid-output"


def test_clusters_order_by_agreement_and_advice_clusters_by_terms() -> None:
    warfarin = corpus.handle_of("MedicationRequest/warfarin")
    advice = corpus.suggestion(
        "Consider reviewing INR monitoring on warfarin",
        "Warfarin needs regular INR monitoring.",
        corpus.action(),
        [warfarin],
    )
    reworded = corpus.suggestion(
        "Consider reviewing warfarin INR monitoring",
        "Warfarin needs regular INR monitoring.",
        corpus.action(),
        [warfarin],
    )
    first = corpus.parsed(corpus.answer(advice))
    both = corpus.parsed(corpus.answer(reworded, corpus.clean_inr()))
    decision = _govern(first, both, both)
    assert [(g.suggestion.action.type, g.agreement) for g in decision.accepted] == [
        ("none", (3, 3)),
        ("create", (2, 3)),
    ]
    assert decision.accepted[0].resource is None
