"""Feedback joined to the cards issued: rates per service, rule and AI suggestion kind, and the export rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from plugin.ai_cards import AI_SYSTEM
from plugin.ai_review import REVIEW_SYSTEM
from plugin.audit import (
    AcceptedSuggestion,
    AiRunRecord,
    AuditRecord,
    CardFeedbackRecord,
    DecisionSummary,
    HookCallRecord,
    MemoryAuditSink,
    OverrideReason,
    SamplingInfo,
    canonical,
    card_kind,
    parse_record,
    verify_chain,
)
from plugin.feedback_analytics import EXPORT_FIELDS, analyse
from plugin.rules.cards import RULE_SYSTEM

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
FP = "a" * 64
CHART, ORDERS = "r1-chart-review", "r1-order-review"
INR, NSAID = "rule.inr-monitoring", "rule.anticoagulant-nsaid"
OVERRIDE = OverrideReason(system="http://snomed.info/sct", code="428119001")


def call(
    n: int, service: str, cards: dict[str, str], minutes: int = 0, tenant: str = "ehr-a"
) -> HookCallRecord:
    return HookCallRecord(
        at=T0 + timedelta(minutes=minutes),
        hook_instance=f"call-{n}",
        service_id=service,
        hook="patient-view" if service == CHART else "order-sign",
        tenant=tenant,
        fingerprint=FP,
        http_status=200,
        outcome="ai-ready",
        card_uuids=tuple(cards),
        card_kinds=tuple(cards.values()),
        user="Practitioner/doc-1",
    )


def feedback(card: str, outcome: str, minutes: int, service: str = CHART) -> CardFeedbackRecord:
    return CardFeedbackRecord(
        at=T0 + timedelta(minutes=minutes, seconds=5),
        service_id=service,
        card_uuid=card,
        outcome=outcome,  # type: ignore[arg-type]
        outcome_timestamp=T0 + timedelta(minutes=minutes),
        override_reason=OVERRIDE if outcome == "overridden" else None,
        tenant="ehr-a",
    )


def ai_run(card: str, action: str, resource: str | None) -> AiRunRecord:
    suggestion = AcceptedSuggestion(
        card_uuid=card,
        agreement=(3, 3),
        severity="info",
        action_type=action,  # type: ignore[arg-type]
        resource_type=resource,
        action_code=None,
        knowledge_ids=("kb.warfarin-inr-monitoring",),
        patient_handles=("M1",),
    )
    return AiRunRecord(
        at=T0,
        fingerprint=FP,
        service_id=CHART,
        outcome="accepted",
        model=None,
        prompt=None,
        knowledge_base_version="kb-1",
        sampling=SamplingInfo(temperature=0.6, top_p=0.95, max_completion_tokens=4096, n=3),
        usage=None,
        decision=DecisionSummary(accepted=(suggestion,), abstain_reason=None, rejections=()),
    )


def scenario() -> list[AuditRecord]:
    inr_card, ai_lab, ai_advice, nsaid_card = "card-inr", "card-ai-lab", "card-ai-advice", "card-nsaid"
    first = call(1, CHART, {inr_card: INR, ai_lab: "ai", ai_advice: "ai"})
    return [
        first,
        first,  # the audit relay delivered it twice
        ai_run(ai_lab, "create", "ServiceRequest"),
        ai_run(ai_advice, "none", None),
        call(2, CHART, {inr_card: INR, ai_lab: "ai", ai_advice: "ai"}, minutes=5),  # same cards again
        call(3, ORDERS, {nsaid_card: NSAID}, minutes=6),
        feedback(inr_card, "overridden", 10),
        feedback(inr_card, "overridden", 10),  # an EHR retry
        feedback(ai_lab, "accepted", 11),
        feedback(nsaid_card, "overridden", 12, ORDERS),
        feedback(nsaid_card, "accepted", 13, ORDERS),  # the clinician changed their mind: latest counts
        feedback("card-from-elsewhere", "accepted", 14),
    ]


def test_rates_per_service_rule_and_ai_kind_match_the_hand_count() -> None:
    rows = {(r.grouping, r.key): r for r in analyse(scenario()).rates()}
    chart = rows[("service", CHART)]
    # Issued: inr, ai-lab, ai-advice (shown twice, counted once); the unknown card was never issued here.
    assert (chart.cards_issued, chart.cards_with_feedback, chart.accepted, chart.overridden) == (3, 3, 2, 1)
    assert chart.acceptance_rate == pytest.approx(2 / 3) and chart.override_rate == pytest.approx(1 / 3)
    assert chart.response_rate == pytest.approx(1.0)  # 3 fed back of 3 issued (the stray one is extra)
    orders = rows[("service", ORDERS)]
    assert (orders.cards_issued, orders.accepted, orders.overridden) == (1, 1, 0)
    inr = rows[("rule", INR)]
    assert (inr.cards_issued, inr.cards_with_feedback, inr.accepted, inr.overridden) == (1, 1, 0, 1)
    assert inr.top_override_reasons == (("http://snomed.info/sct|428119001", 1),)
    lab = rows[("ai-kind", "create ServiceRequest")]
    assert (lab.cards_issued, lab.accepted, lab.acceptance_rate) == (1, 1, 1.0)
    advice = rows[("ai-kind", "advice")]
    assert (advice.cards_issued, advice.cards_with_feedback, advice.acceptance_rate) == (1, 0, None)
    assert advice.response_rate == 0.0
    assert [k for k, _ in rows] == ["service"] * 2 + ["rule"] * 2 + ["ai-kind"] * 2


def test_export_has_one_row_per_distinct_feedback_event_with_user_and_location() -> None:
    rows = list(analyse(scenario()).export())
    assert [(r.intervention, r.action_taken) for r in rows] == [
        ("card-inr", "overridden"),
        ("card-ai-lab", "accepted"),
        ("card-nsaid", "overridden"),
        ("card-nsaid", "accepted"),
        ("card-from-elsewhere", "accepted"),
    ]
    inr = rows[0]
    assert inr.intervention_kind == INR and inr.feedback == "http://snomed.info/sct|428119001"
    assert inr.user == "Practitioner/doc-1" and inr.location == "ehr-a / patient-view"
    assert inr.date == "2026-11-25T09:10:00.000000Z"
    assert rows[1].ai_suggestion_kind == "create ServiceRequest" and rows[1].feedback is None
    assert rows[4].intervention_kind == "unknown" and rows[4].user is None
    # HTI-1's export names these at a minimum; the export has them, in EXPORT_FIELDS order.
    assert tuple(rows[0].as_dict()) == EXPORT_FIELDS
    assert {"intervention", "action_taken", "feedback", "user", "date", "location"} <= set(EXPORT_FIELDS)


def test_since_keeps_the_join_but_counts_only_the_window() -> None:
    rows = {(r.grouping, r.key): r for r in analyse(scenario(), since=T0 + timedelta(minutes=12)).rates()}
    # Cards issued before the window keep their rule; only the NSAID card's two feedbacks are inside it.
    nsaid = rows[("rule", NSAID)]
    assert (nsaid.cards_issued, nsaid.accepted, nsaid.overridden) == (0, 1, 0)
    assert rows[("rule", INR)].cards_with_feedback == 0


# ------------------------------------------------------------------------ AI review status cards


PENDING, FAILED = card_kind(REVIEW_SYSTEM, "pending"), card_kind(REVIEW_SYSTEM, "failed")


def status_call(n: int, card: str, kind: str, minutes: int, outcome: str = "ai-pending") -> HookCallRecord:
    """A chart opening while the review runs: the INR rule card again, and a fresh status card."""
    return call(n, CHART, {"card-inr": INR, card: kind}, minutes=minutes).model_copy(
        update={"outcome": outcome}
    )


def busy_day(status_kind: str) -> list[AuditRecord]:
    """200 chart openings with a pending card each, then the review's two AI cards, one rule card,
    feedback on three real cards and on two status cards (EHRs send it)."""
    records: list[AuditRecord] = [
        status_call(n, f"status-{n}", status_kind, minutes=n % 50) for n in range(200)
    ]
    records.append(status_call(200, "status-failed", FAILED, 55, outcome="ai-unavailable"))
    records += [
        ai_run("card-ai-lab", "create", "ServiceRequest"),
        ai_run("card-ai-advice", "none", None),
        call(201, CHART, {"card-inr": INR, "card-ai-lab": "ai", "card-ai-advice": "ai"}, minutes=60),
        feedback("card-inr", "overridden", 61),
        feedback("card-ai-lab", "accepted", 62),
        feedback("card-ai-advice", "accepted", 63),
        feedback("status-7", "overridden", 64),
        feedback("status-failed", "accepted", 65),
    ]
    return records


@pytest.mark.parametrize("status_kind", [PENDING, "ai"], ids=["status-named", "older-record-says-ai"])
def test_status_cards_are_no_interventions(status_kind: str) -> None:
    analytics = analyse(busy_day(status_kind))
    rows = {(r.grouping, r.key): r for r in analytics.rates()}
    chart = rows[("service", CHART)]
    # Issued: the INR card and the two AI cards, not 201 status cards.
    assert (chart.cards_issued, chart.cards_with_feedback, chart.accepted, chart.overridden) == (3, 3, 2, 1)
    assert chart.response_rate == pytest.approx(1.0)
    assert chart.acceptance_rate == pytest.approx(2 / 3) and chart.override_rate == pytest.approx(1 / 3)
    assert rows[("rule", INR)].cards_issued == 1
    assert rows[("ai-kind", "create ServiceRequest")].acceptance_rate == 1.0
    assert rows[("ai-kind", "advice")].cards_issued == 1
    assert [k for k, _ in rows] == ["service", "rule", "ai-kind", "ai-kind"]
    assert [r.intervention for r in analytics.export()] == ["card-inr", "card-ai-lab", "card-ai-advice"]
    # Set aside, not lost: the status cards shown and the feedback the EHR sent on them.
    code = "pending" if status_kind == PENDING else "unknown"
    assert [s.as_dict() for s in analytics.status_cards()] == [
        {"code": "failed", "cards_shown": 1, "feedback_events": 1},
        {"code": code, "cards_shown": 200, "feedback_events": 1},
    ]


def test_any_status_code_is_set_aside_by_its_topic_system_alone() -> None:
    # "abstained" ("AI review found nothing it could stand behind") lands with the review, in an
    # ai-ready answer; a code nobody has thought of yet is set aside all the same.
    records: list[AuditRecord] = [
        status_call(1, "nothing", card_kind(REVIEW_SYSTEM, "abstained"), 0, outcome="ai-ready"),
        status_call(2, "later", card_kind(REVIEW_SYSTEM, "rate-limited"), 1, outcome="ai-ready"),
        feedback("nothing", "overridden", 2),
    ]
    analytics = analyse(records)
    assert [(r.key, r.cards_issued, r.cards_with_feedback) for r in analytics.rates()] == [
        (CHART, 1, 0),
        (INR, 1, 0),
    ]
    assert list(analytics.export()) == []
    assert {s.code: (s.cards_shown, s.feedback_events) for s in analytics.status_cards()} == {
        "abstained": (1, 1),
        "rate-limited": (1, 0),
    }


def test_since_counts_status_cards_of_the_window_only() -> None:
    analytics = analyse(busy_day(PENDING), since=T0 + timedelta(minutes=55))
    chart = {(r.grouping, r.key): r for r in analytics.rates()}[("service", CHART)]
    assert (chart.cards_issued, chart.cards_with_feedback) == (3, 3)
    assert {s.code: (s.cards_shown, s.feedback_events) for s in analytics.status_cards()} == {
        "failed": (1, 1),
        "pending": (0, 1),  # shown before the window; its feedback came inside it
    }


def test_a_chain_of_older_records_still_verifies_and_analyses() -> None:
    sink = MemoryAuditSink()
    for record in busy_day("ai"):
        sink.write(record)
    assert verify_chain(sink.chain) is None
    reread = [parse_record(stored.body) for stored in sink.chain]
    assert [canonical(r) for r in reread] == [stored.body for stored in sink.chain]
    rows = {(r.grouping, r.key): r for r in analyse(reread).rates()}
    assert rows[("service", CHART)].cards_issued == 3


@pytest.mark.parametrize(
    ("system", "code", "kind"),
    [
        (RULE_SYSTEM, INR, INR),
        (REVIEW_SYSTEM, "pending", "ai-status.pending"),
        (REVIEW_SYSTEM, "abstained", "ai-status.abstained"),
        (REVIEW_SYSTEM, "no token, a sentence", "ai-status.unknown"),
        (REVIEW_SYSTEM, None, "ai-status.unknown"),
        (AI_SYSTEM, CHART, "ai"),
        (None, None, "ai"),
    ],
)
def test_card_kind_names_status_cards_by_their_topic_system(
    system: str | None, code: str | None, kind: str
) -> None:
    assert card_kind(system, code) == kind
    assert call(1, CHART, {"card-1": kind}).card_kinds == (kind,), "it fits the record's token field"
