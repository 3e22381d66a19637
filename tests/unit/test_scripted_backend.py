"""The scripted demonstration backend: its answers for the demo patients pass real governance, and say what they are."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cds_hooks.preview.demo import DEMO_PATIENTS, demo_bundle, draft_medication_request
from inference.parsing import parse_sample
from inference.prompts import build_prompt
from inference.scripted import (
    NO_SCRIPT_REASON,
    NOT_A_MODEL,
    ScriptedDemoModel,
    load_script_book,
    scripted_answer,
)
from plugin.ai_review import AiReview, MemoryReviewBroker, ReviewTicket
from plugin.catalog import CHART_PREFETCH, CHART_REVIEW, ORDER_PREFETCH, ORDER_REVIEW
from plugin.context.build import build_context
from plugin.context.model import BuiltContext
from plugin.context.render import render
from plugin.fhir_search import FhirStore
from plugin.governance import GovernancePolicy
from plugin.knowledge import load_knowledge_base
from plugin.model_port import ModelRequest
from plugin.review import ReviewOutcome, ReviewService
from plugin.suggestions import SuggestionSet
from tests.support.charts import chart_names, chart_path, prefetch_from_store, raw_bundle
from tests.support.memory_review import version

pytestmark = pytest.mark.unit

IBUPROFEN, ACETAMINOPHEN = "310965", "313782"  # RxNorm SCDs of the preview's order composer
NOW = datetime.now(UTC)  # demo bundles are moved to today when loaded, so the review runs as of today
KNOWLEDGE = load_knowledge_base()
# Which script was written for which demo patient (the data file's `written_for` says the same in words).
SCRIPT_FOR = {
    "demo-anticoagulated": "anticoagulated-nsaid/chart",
    "demo-penicillin-allergy": "penicillin-allergy/chart",
    "demo-pregnant": "pregnant/chart",
    "demo-child": "child/chart",
    "demo-renal-metformin": "renal-metformin/chart",
}


def chart(bundle: dict[str, Any]) -> BuiltContext:
    store = FhirStore.from_bundles([bundle])
    (patient,) = [r["resource"]["id"] for r in bundle["entry"] if r["resource"]["resourceType"] == "Patient"]
    return build_context(prefetch_from_store(store, patient, CHART_PREFETCH), NOW)


async def review(built: BuiltContext, model: ScriptedDemoModel) -> ReviewOutcome:
    service = ReviewService(model, build_prompt, parse_sample, KNOWLEDGE, GovernancePolicy(), samples=5)
    return await service.review(CHART_REVIEW.id, built, None)


ORDER_SCRIPT = "anticoagulated-nsaid/order-ibuprofen"


def test_every_demo_patient_has_a_script_and_every_script_a_demo_patient() -> None:
    assert {d.id for d in DEMO_PATIENTS} == set(SCRIPT_FOR)
    assert {s.id for s in load_script_book().scripts} == {*SCRIPT_FOR.values(), ORDER_SCRIPT}


def order_chart(drug_code: str) -> BuiltContext:
    """The anticoagulated demo patient with one draft order from the preview's composer."""
    bundle = demo_bundle("demo-anticoagulated")
    draft = draft_medication_request("demo-anticoagulated", drug_code, 400, "QD")
    prefetch = prefetch_from_store(FhirStore.from_bundles([bundle]), "demo-anticoagulated", ORDER_PREFETCH)
    drafts = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]}
    return build_context(prefetch, NOW, draft_orders=drafts)


async def test_the_order_script_withdraws_a_draft_nsaid_beside_warfarin_and_passes_governance() -> None:
    model = ScriptedDemoModel()
    service = ReviewService(model, build_prompt, parse_sample, KNOWLEDGE, GovernancePolicy(), samples=1)
    outcome = await service.review(ORDER_REVIEW.id, order_chart(IBUPROFEN), None)
    assert list(model.answered) == [ORDER_SCRIPT]
    assert outcome.decision is not None and outcome.decision.rejected == ()
    (accepted,) = outcome.decision.accepted
    assert accepted.suggestion.action.type == "delete" and accepted.suggestion.action.target == "D1"
    # Another draft (acetaminophen) is not what the script was written for: the review abstains.
    other = ScriptedDemoModel()
    service = ReviewService(other, build_prompt, parse_sample, KNOWLEDGE, GovernancePolicy(), samples=1)
    await service.review(ORDER_REVIEW.id, order_chart(ACETAMINOPHEN), None)
    assert list(other.answered) == [None]


@pytest.mark.parametrize("demo_id", sorted(SCRIPT_FOR))
async def test_each_demo_patients_scripted_answer_passes_governance(demo_id: str) -> None:
    model = ScriptedDemoModel()
    outcome = await review(chart(demo_bundle(demo_id)), model)
    assert list(model.answered) == [SCRIPT_FOR[demo_id]]
    assert outcome.decision is not None and not outcome.failed
    assert outcome.decision.rejected == ()
    script = next(s for s in load_script_book().scripts if s.id == SCRIPT_FOR[demo_id])
    assert len(outcome.decision.accepted) == len(script.answer["suggestions"]) >= 1
    # One sample, so agreement is 1 of 1: the backend claims no agreement it did not produce.
    assert {g.agreement for g in outcome.decision.accepted} == {(1, 1)}
    assert outcome.model is not None and outcome.model.backend == "scripted"
    assert outcome.model.details["clinical_use"] == NOT_A_MODEL


async def test_the_cards_and_their_detail_say_scripted_demonstration_output_not_a_model() -> None:
    built = chart(demo_bundle("demo-renal-metformin"))

    async def run(ticket: ReviewTicket) -> ReviewOutcome:
        return await review(built, ScriptedDemoModel())

    ai = AiReview(MemoryReviewBroker(run), KNOWLEDGE, version, lambda t: f"https://cds.test.invalid/e/{t}")
    answer = await ai.review(CHART_REVIEW.id, "patient-view", built, "Patient/demo-renal-metformin", 5.0)
    assert len(answer.cards) == 2
    for card in answer.cards:
        assert NOT_A_MODEL in card.source.label
        assert card.detail is not None
        assert card.detail.startswith("**Scripted demonstration output, not a model.**")
    # The UACR suggestion carries its draft order, bound to the caller's patient.
    (ordered,) = [c for c in answer.cards if c.suggestions]
    (action,) = ordered.suggestions[0].actions
    assert action.resource is not None and action.resource["resourceType"] == "ServiceRequest"
    assert action.resource["subject"] == {"reference": "Patient/demo-renal-metformin"}


@pytest.mark.parametrize("name", chart_names()[:3])
async def test_a_chart_without_a_script_gets_an_abstention_saying_so(name: str) -> None:
    built = chart(raw_bundle(chart_path(name)))
    model = ScriptedDemoModel()
    outcome = await review(built, model)
    assert list(model.answered) == [None]
    assert outcome.decision is not None and outcome.decision.abstained
    assert outcome.decision.abstain_reason == "model-abstained"
    assert outcome.decision.accepted == ()
    prompt = build_prompt(CHART_REVIEW.id, render(built.context).text, [], "en").text
    assert scripted_answer(prompt, load_script_book())[1]["abstain_reason"] == NO_SCRIPT_REASON


def prompt_for(demo_id: str) -> str:
    built = chart(demo_bundle(demo_id))
    return build_prompt(CHART_REVIEW.id, render(built.context).text, [], "en").text


def test_a_script_applies_only_when_every_fact_it_cites_is_in_the_chart() -> None:
    book = load_script_book()
    prompt = prompt_for("demo-anticoagulated")
    assert scripted_answer(prompt, book)[0] == "anticoagulated-nsaid/chart"
    # The same chart without its naproxen line: the warfarin + NSAID script no longer applies.
    without = "\n".join(line for line in prompt.splitlines() if "[rxnorm 198014]" not in line)
    script_id, answer = scripted_answer(without, book)
    assert script_id is None and answer["abstain"] is True


def test_placeholders_become_the_handles_of_this_chart() -> None:
    _, answer = scripted_answer(prompt_for("demo-anticoagulated"), load_script_book())
    parsed = SuggestionSet.model_validate_json(json.dumps(answer))
    # M1 naproxen, M2 warfarin, C1 osteoarthritis (the handles the summary gives them).
    assert parsed.suggestions[0].citations.patient == ["M1", "M2", "C1"]


def test_another_task_or_answer_language_is_not_answered_from_the_chart_scripts() -> None:
    book = load_script_book()
    prompt = prompt_for("demo-anticoagulated")
    order_prompt = prompt.replace("## Task: chart review", "## Task: order review")
    assert scripted_answer(order_prompt, book)[0] is None
    french = prompt.replace("Answer language: en", "Answer language: fr")
    assert scripted_answer(french, book)[1]["language"] == "en"  # written in English: governance decides


def test_a_prompt_without_a_patient_summary_gets_the_abstention() -> None:
    script_id, answer = scripted_answer("## Task: chart review\nAnswer language: en\n", load_script_book())
    assert script_id is None and answer["abstain_reason"] == NO_SCRIPT_REASON


async def test_the_model_port_contract() -> None:
    model = ScriptedDemoModel()
    assert await model.ready()
    identity = await model.identity()
    assert (identity.backend, identity.details["clinical_use"]) == ("scripted", NOT_A_MODEL)
    response = await model.generate(ModelRequest(prompt="no summary", output_schema={}))
    assert len(response.samples) == 1 and response.samples[0].finish_reason == "stop"
    assert json.loads(response.samples[0].content)["abstain"] is True
