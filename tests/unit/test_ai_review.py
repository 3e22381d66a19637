"""What a clinician sees for each state of an AI review, through the memory broker beside the port."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from plugin.ai_review import (
    BUSY_SUMMARY,
    NOTHING_SUMMARY,
    PENDING_SUMMARY,
    UNAVAILABLE_SUMMARY,
    AiReview,
    MemoryReviewBroker,
    ReviewStatus,
    ReviewTicket,
)
from plugin.cards import by_severity
from plugin.catalog import CHART_REVIEW, ORDER_REVIEW, shipped_registry
from plugin.model_port import ModelIdentity, ModelTimeout, ModelUnavailable, ScriptedModel
from plugin.review import ReviewOutcome
from plugin.services import HookCall
from tests.support import governance_corpus as corpus
from tests.support.memory_review import scripted_runner, version

pytestmark = pytest.mark.unit

CLEAN = json.dumps(corpus.answer(corpus.clean_inr()))


runner = scripted_runner


def reviewer(broker: MemoryReviewBroker) -> AiReview:
    return AiReview(
        broker, corpus.knowledge(), version, lambda rid: f"https://cds.test.invalid/evidence/{rid}"
    )


async def test_ready_review_gives_governed_cards_bound_to_the_callers_patient() -> None:
    broker = MemoryReviewBroker(runner(ScriptedModel([ScriptedModel.answer(CLEAN, CLEAN)])))
    cards = (
        await reviewer(broker).review(CHART_REVIEW.id, "patient-view", corpus.built(), corpus.PATIENT, 5.0)
    ).cards
    [card] = cards
    assert card.summary == "Consider checking the INR"
    assert card.indicator in ("info", "warning")
    [suggestion] = card.suggestions
    assert suggestion.actions[0].resource is not None
    assert suggestion.actions[0].resource["subject"] == {"reference": corpus.PATIENT}
    assert broker.requests == 1


class FullQueueBroker(MemoryReviewBroker):
    """The queue-depth cap refused the review: nothing was enqueued, no review id was issued."""

    async def obtain(self, ticket: ReviewTicket, wait_s: float) -> ReviewStatus:
        return ReviewStatus("busy", "")


async def test_a_full_queue_says_no_review_was_queued() -> None:
    broker = FullQueueBroker(runner(ScriptedModel()))
    answer = await reviewer(broker).review(
        CHART_REVIEW.id, "patient-view", corpus.built(), corpus.PATIENT, 1.0
    )
    [card] = answer.cards
    assert (card.summary, card.indicator, answer.state, answer.final) == (BUSY_SUMMARY, "info", "busy", False)
    assert card.source.topic is not None and card.source.topic.code == "busy"
    assert "No AI review of this chart was queued" in card.detail
    text = f"{card.summary} {card.detail}".lower()
    for claim in ("in progress", "still running", "is queued", "reviews are queued", "may take longer"):
        assert claim not in text
    assert card.links == ()  # no review, so no status page to link to
    assert broker.requests == 0


async def test_pending_review_gives_one_info_card_linking_to_its_status_page() -> None:
    gate = asyncio.Event()
    broker = MemoryReviewBroker(runner(ScriptedModel([ScriptedModel.answer(CLEAN, CLEAN)]), gate))
    review = reviewer(broker)
    [card] = (
        await review.review(CHART_REVIEW.id, "patient-view", corpus.built(), corpus.PATIENT, 0.01)
    ).cards
    assert (card.summary, card.indicator) == (PENDING_SUMMARY, "info")
    [link] = card.links
    assert link.url == "https://cds.test.invalid/evidence/evidence-1"
    status = await broker.status("review-1")
    assert status is not None and status.state == "pending"
    evidence = await broker.evidence("evidence-1")
    assert evidence is not None and evidence.status.state == "pending" and evidence.context is None
    # The link keeps this caller's own references, which the shared review never holds.
    assert dict(evidence.link.references) == corpus.built().handles.references
    # The same chart again joins the review in flight; when it lands, the card replaces the pending one.
    [again] = (
        await review.review(CHART_REVIEW.id, "patient-view", corpus.built(), corpus.PATIENT, 0.01)
    ).cards
    assert again.summary == PENDING_SUMMARY
    gate.set()
    [done] = (await review.review(CHART_REVIEW.id, "patient-view", corpus.built(), corpus.PATIENT, 5.0)).cards
    assert done.summary == "Consider checking the INR"
    assert broker.requests == 1
    assert await broker.status("unknown") is None


@pytest.mark.parametrize("error", [ModelUnavailable("down"), ModelTimeout("slow")])
async def test_model_failure_gives_the_unavailable_card(error: Exception) -> None:
    broker = MemoryReviewBroker(runner(ScriptedModel([error])))  # type: ignore[list-item]
    [card] = (await reviewer(broker).review(CHART_REVIEW.id, "patient-view", corpus.built(), None, 5.0)).cards
    assert (card.summary, card.indicator) == (UNAVAILABLE_SUMMARY, "info")
    status = await broker.status("review-1")
    assert status is not None and status.state == "failed"


async def test_unreachable_broker_gives_no_ai_card_at_all() -> None:
    broker = MemoryReviewBroker(runner(ScriptedModel()), unavailable=True)
    assert (
        await reviewer(broker).review(CHART_REVIEW.id, "patient-view", corpus.built(), None, 1.0)
    ).cards == ()


async def test_abstention_leaves_one_info_card_once_per_review() -> None:
    abstain = json.dumps(corpus.abstention())
    broker = MemoryReviewBroker(runner(ScriptedModel([ScriptedModel.answer(abstain, abstain)])))
    first = await reviewer(broker).review(CHART_REVIEW.id, "patient-view", corpus.built(), None, 5.0)
    (card,) = first.cards
    assert (card.summary, card.indicator) == (NOTHING_SUMMARY, "info")
    assert card.source.topic is not None and card.source.topic.code == "abstained"
    assert card.detail is not None and "has finished" in card.detail
    (link,) = card.links
    assert link.url.startswith("https://cds.test.invalid/evidence/")
    token = link.url.rsplit("/", 1)[1]
    evidence = await broker.evidence(token)
    assert evidence is not None and evidence.status.state == "ready"
    assert not first.final  # an answer that must not be repeated as it is (the answer cache)
    # The same review asked again (another opening of the chart): the notice is not repeated.
    again = await reviewer(broker).review(CHART_REVIEW.id, "patient-view", corpus.built(), None, 5.0)
    assert again.cards == () and again.final
    assert broker.requests == 1


async def test_pending_card_names_the_configured_model() -> None:
    never = asyncio.Event()

    async def slow(ticket: ReviewTicket) -> ReviewOutcome:
        await never.wait()
        raise AssertionError("never reached")

    broker = MemoryReviewBroker(slow)
    review = dataclasses.replace(reviewer(broker), model_label="DeepSeek-R1 on SGLang")
    answer = await review.review(CHART_REVIEW.id, "patient-view", corpus.built(), None, 0.01)
    (card,) = answer.cards
    assert card.summary == PENDING_SUMMARY
    assert card.detail is not None and "DeepSeek-R1 on SGLang" in card.detail
    for task in broker._tasks.values():
        task.cancel()


async def test_demo_model_cards_say_they_are_not_clinical() -> None:
    model = ScriptedModel([ScriptedModel.answer(CLEAN, CLEAN)])
    inner = runner(model)

    async def demo(ticket: ReviewTicket) -> ReviewOutcome:
        outcome = await inner(ticket)
        identity = ModelIdentity(
            "llamacpp", "gemma-3-270m.gguf", {"clinical_use": "not clinically meaningful"}
        )
        return dataclasses.replace(outcome, model=identity)

    [card] = (
        await reviewer(MemoryReviewBroker(demo)).review(
            CHART_REVIEW.id, "patient-view", corpus.built(), None, 5.0
        )
    ).cards
    assert "demo model: not clinically meaningful" in card.source.label


def test_tickets_share_a_key_across_order_hooks_and_queue_by_urgency() -> None:
    review = reviewer(MemoryReviewBroker(runner(ScriptedModel())))
    context = corpus.build([corpus.draft_order(*corpus.IBUPROFEN)]).context
    select = review.ticket(ORDER_REVIEW.id, "order-select", context)
    sign = review.ticket(ORDER_REVIEW.id, "order-sign", context)
    assert select.fingerprint == sign.fingerprint
    assert (select.urgency, sign.urgency) == ("order-select", "order-sign")
    assert review.ticket(CHART_REVIEW.id, "encounter-start", context).urgency == "encounter"
    assert review.ticket(CHART_REVIEW.id, "patient-view", context).fingerprint != sign.fingerprint


async def test_services_answer_rules_plus_ai_and_skip_order_review_without_drafts() -> None:
    broker = MemoryReviewBroker(runner(ScriptedModel([ScriptedModel.answer(CLEAN, CLEAN)])))
    registry = shipped_registry(clock=lambda: corpus.NOW, ai=reviewer(broker))
    prefetch = corpus.prefetch()
    call = HookCall(
        CHART_REVIEW.id, "patient-view", "h-1", {"patientId": "gov-1", "userId": "Practitioner/1"}, prefetch
    )
    service = registry.get(CHART_REVIEW.id)
    rules_only = service.evaluate(call)
    answered = await service.answer(call, 5.0)  # type: ignore[attr-defined]
    ai_cards = tuple(c for c in answered.cards if c not in rules_only.cards)
    assert [c.summary for c in ai_cards] == ["Consider checking the INR"]
    # One list, most severe first; within a severity the rule cards lead the AI's.
    assert answered.cards == by_severity(rules_only.cards + ai_cards)
    order_call = HookCall(
        ORDER_REVIEW.id, "order-sign", "h-2", {"patientId": "gov-1", "userId": "Practitioner/1"}, prefetch
    )
    await registry.get(ORDER_REVIEW.id).answer(order_call, 5.0)  # type: ignore[attr-defined]
    assert broker.requests == 1, "no draft orders: the order review has nothing to review"
