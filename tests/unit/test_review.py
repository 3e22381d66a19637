"""The review service with a scripted model: retrieval → prompt → n samples → parse → govern → outcome."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from inference.budget import TokenBudget
from inference.parsing import parse_sample
from inference.prompts import build_prompt
from inference.recorded import PARSER, PROMPTS, RecordedModel, load_sample, load_samples
from plugin.ai_cards import ai_cards
from plugin.governance import GovernancePolicy, Reason
from plugin.model_port import ModelTimeout, Sample, ScriptedModel
from plugin.review import ReviewOutcome, ReviewService
from plugin.suggestions import suggestion_json_schema
from tests.support import governance_corpus as corpus

pytestmark = pytest.mark.unit

SERVICE = "r1-chart-review"


def service(model: ScriptedModel | RecordedModel, samples: int = 5) -> ReviewService:
    return ReviewService(
        model,
        build_prompt,
        parse_sample,
        corpus.knowledge(),
        GovernancePolicy(),
        samples=samples,
        completion=TokenBudget(1024, 2048),
    )


def text(document: dict[str, object]) -> str:
    return json.dumps(document)


async def review(model: ScriptedModel, samples: int = 5) -> ReviewOutcome:
    return await service(model, samples).review(SERVICE, corpus.built(), corpus.PATIENT)


async def test_accepted_suggestion_flows_into_a_card() -> None:
    model = ScriptedModel([ScriptedModel.answer(*[text(corpus.answer(corpus.clean_inr()))] * 5)])
    outcome = await review(model)
    assert not outcome.failed
    assert outcome.decision is not None
    [accepted] = outcome.decision.accepted
    assert accepted.agreement == (5, 5)
    # The request: the prompt with the retrieved passages, the schema, n samples, the caller's budget.
    [request] = model.requests
    assert request.sampling.n == 5
    assert request.sampling.max_completion_tokens == 1024
    assert request.output_schema == suggestion_json_schema()
    assert outcome.prompt is not None
    assert outcome.prompt.passage_ids == outcome.retrieval.ids
    assert all(f"[{i}]" in request.prompt for i in outcome.prompt.passage_ids)
    assert outcome.prompt.template_name == "chart-review"
    assert [s.name for s in outcome.steps] == ["retrieval", "prompt", "model", "parse", "govern"]
    assert set(outcome.timings) == {"retrieval", "prompt", "model", "parse", "govern"}
    assert [s.outcome for s in outcome.samples] == ["ok"] * 5
    assert outcome.model is not None and outcome.usage is not None
    built = corpus.built()
    [card] = ai_cards(
        outcome.decision.accepted, SERVICE, built.context, built.handles, corpus.knowledge(), "scripted"
    )
    assert card.summary == "Consider checking the INR"
    assert card.indicator in ("info", "warning")


async def test_model_error_gives_a_failed_outcome_not_an_exception() -> None:
    outcome = await review(ScriptedModel([ModelTimeout("no answer in 120 s")]))
    assert outcome.failed
    assert outcome.decision is None
    assert outcome.error == "ModelTimeout"
    assert outcome.transient is True
    assert outcome.retrieval.entries  # what was done before the failure is still recorded
    assert outcome.steps[-1].name == "model"
    assert not outcome.steps[-1].ok


async def test_all_samples_invalid_abstains() -> None:
    model = ScriptedModel([ScriptedModel.answer("not json", "{", "I'm sorry, but I can't help with that.")])
    outcome = await review(model, samples=3)
    assert outcome.decision is not None
    assert outcome.decision.abstained
    assert outcome.decision.abstain_reason == "no-valid-output"
    assert [s.outcome for s in outcome.samples] == ["invalid_json", "invalid_json", "refused"]


async def test_citation_outside_the_prompt_passages_is_rejected() -> None:
    # kb.warfarin-nsaid-bleeding exists in the knowledge base but was not among this chart's passages.
    document = corpus.clean_inr()
    document["citations"]["knowledge"] = ["kb.warfarin-inr-monitoring", "kb.warfarin-nsaid-bleeding"]
    model = ScriptedModel([ScriptedModel.answer(text(corpus.answer(document)))])
    outcome = await review(model, samples=1)
    assert "kb.warfarin-nsaid-bleeding" not in outcome.retrieval.ids
    assert outcome.decision is not None
    assert [r.reason for r in outcome.decision.rejected] == [Reason.KNOWLEDGE_NOT_RETRIEVED]


def test_review_recorded_skips_the_model() -> None:
    model = ScriptedModel()
    samples = [Sample(text(corpus.answer(corpus.clean_inr())), "thinking", "stop")] * 2
    outcome = service(model, 2).review_recorded(SERVICE, corpus.built(), samples, corpus.PATIENT)
    assert model.requests == []
    assert outcome.recorded
    assert outcome.decision is not None
    assert outcome.decision.accepted[0].agreement == (2, 2)


async def test_recorded_model_and_the_inference_ports() -> None:
    samples = (Sample(text(corpus.answer(corpus.clean_inr())), None, "stop"),)
    model = RecordedModel(samples, "deepseek-r1-recorded")
    outcome = await ReviewService(
        model, PROMPTS, PARSER, corpus.knowledge(), GovernancePolicy(), samples=1
    ).review(SERVICE, corpus.built(), corpus.PATIENT)
    assert outcome.model is not None and outcome.model.model == "deepseek-r1-recorded"
    assert outcome.decision is not None and len(outcome.decision.accepted) == 1
    assert model.requests[0].sampling.max_completion_tokens == 8192


def test_service_refuses_impossible_settings() -> None:
    with pytest.raises(ValueError, match="samples"):
        service(ScriptedModel(), samples=0)


def test_recorded_sample_files(tmp_path: Path) -> None:
    plain, wrapped, bad = tmp_path / "a.txt", tmp_path / "b.json", tmp_path / "c.json"
    plain.write_text("```json\n{}\n```")
    wrapped.write_text(json.dumps({"content": "{}", "reasoning": "r", "finish_reason": "length"}))
    bad.write_text(json.dumps({"content": 1}))
    assert load_samples([plain, wrapped]) == (
        Sample("```json\n{}\n```", None, "stop"),
        Sample("{}", "r", "length"),
    )
    bare = tmp_path / "d.json"
    bare.write_text("{}")  # JSON, but not the wrapper shape: the answer itself
    assert load_sample(bare).content == "{}"
    with pytest.raises(ValueError, match="content"):
        load_sample(bad)
    with pytest.raises(ValueError, match="at least one"):
        RecordedModel([])


async def test_samples_truncated_in_reasoning_are_asked_again_once_with_the_retry_budget() -> None:
    good = text(corpus.answer(corpus.clean_inr()))
    model = ScriptedModel(
        [
            ScriptedModel.answer(good, "", "", reasoning="thinking", finish="length"),
            ScriptedModel.answer(good, good),
        ]
    )
    outcome = await review(model, samples=3)
    first, retry = model.requests
    assert (first.sampling.n, first.sampling.max_completion_tokens) == (3, 1024)
    assert (retry.sampling.n, retry.sampling.max_completion_tokens) == (2, 2048)
    assert retry.prompt == first.prompt
    assert [s.outcome for s in outcome.samples] == ["ok", "ok", "ok"]
    assert outcome.decision is not None and outcome.decision.accepted[0].agreement == (3, 3)
    assert [s.name for s in outcome.steps] == ["retrieval", "prompt", "model", "retry", "parse", "govern"]
    assert outcome.usage is not None and outcome.usage.completion_tokens == 150 + 100


async def test_a_second_truncation_or_a_failed_retry_stands() -> None:
    good = text(corpus.answer(corpus.clean_inr()))
    cut = ScriptedModel.answer("", reasoning="thinking", finish="length")
    twice = ScriptedModel([ScriptedModel.answer(good, "", reasoning="", finish="length"), cut])
    outcome = await review(twice, samples=2)
    assert len(twice.requests) == 2, "one retry, never a second"
    assert twice.requests[1].sampling.n == 1, "only the truncated sample is asked again"
    assert [s.outcome for s in outcome.samples] == ["ok", "truncated_in_reasoning"]
    failing = ScriptedModel(
        [ScriptedModel.answer("", "", reasoning="", finish="length"), ModelTimeout("slow")]
    )
    outcome = await review(failing, samples=2)
    assert not outcome.failed, "the first answer stands when its retry fails"
    assert [s.outcome for s in outcome.samples] == ["truncated_in_reasoning"] * 2
    assert outcome.steps[3].name == "retry" and not outcome.steps[3].ok


async def test_no_retry_when_the_budget_has_no_room_to_grow() -> None:
    model = ScriptedModel([ScriptedModel.answer("", reasoning="", finish="length")])
    outcome = await ReviewService(
        model,
        build_prompt,
        parse_sample,
        corpus.knowledge(),
        GovernancePolicy(),
        samples=1,
        completion=TokenBudget(2048, 2048),
    ).review(SERVICE, corpus.built(), corpus.PATIENT)
    assert len(model.requests) == 1
    assert outcome.decision is not None and outcome.decision.abstained
