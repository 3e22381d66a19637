"""The evidence page's content for each review state, rendered from the memory broker beside the port."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import json
import re

import pytest

from cds_hooks.evidence_page import (
    ABSTAIN_TEXT,
    REASON_PHRASES,
    REASON_TEXT,
    SCRIPTED_NOTICE,
    abstention_line,
    render_evidence,
)
from plugin.ai_review import AiReview, MemoryReviewBroker
from plugin.catalog import CHART_REVIEW
from plugin.governance.model import Decision, Reason, Rejection, StepRecord
from plugin.model_port import ModelIdentity, ModelUnavailable, ScriptedModel
from tests.support import governance_corpus as corpus
from tests.support.memory_review import scripted_runner, version

pytestmark = pytest.mark.unit

BASE = "https://cds.test.invalid/evidence/"


def broker_for(model: ScriptedModel, gate: asyncio.Event | None = None) -> MemoryReviewBroker:
    return MemoryReviewBroker(scripted_runner(model, gate))


async def page_for(broker: MemoryReviewBroker, wait_s: float = 5.0) -> tuple[str, list[str]]:
    review = AiReview(broker, corpus.knowledge(), version, lambda token: BASE + token)
    answer = await review.review(CHART_REVIEW.id, "patient-view", corpus.built(), corpus.PATIENT, wait_s)
    urls = [link.url for card in answer.cards for link in card.links if link.url.startswith(BASE)]
    token = urls[0].removeprefix(BASE).split("#")[0]
    evidence = await broker.evidence(token)
    assert evidence is not None
    return render_evidence(evidence, corpus.knowledge()), urls


async def test_ready_page_shows_the_card_its_inputs_evidence_rationale_and_confidence() -> None:
    clean = json.dumps(corpus.answer(corpus.clean_inr()))
    page, urls = await page_for(broker_for(ScriptedModel([ScriptedModel.answer(clean, clean)])))
    # The card's own link lands on its section of the page.
    [url] = urls
    anchor = url.split("#")[1]
    assert anchor.startswith("card-") and f'id="{anchor}"' in page
    assert 'data-state="ready" data-accepted="1" data-rejected="0"' in page
    assert "Consider checking the INR" in page
    # The input: the handle the model saw, the caller's original reference, and the value shown.
    warfarin = corpus.handle_of("MedicationRequest/warfarin")
    row = re.search(rf'<tr data-handle="{warfarin}">(.*?)</tr>', page)
    assert row is not None and "MedicationRequest/warfarin" in row.group(1)
    assert "Warfarin" in row.group(1) and "current medication" in row.group(1)
    entry = corpus.knowledge().get("kb.warfarin-inr-monitoring")
    assert entry is not None
    assert f'href="{html.escape(entry.source.url)}"' in page and html.escape(entry.title) in page
    assert "no recent INR result is on file" in page
    assert "2 of 2 independent samples proposed this" in page
    assert "Nothing was dropped." in page
    assert "Prompt template hash" in page and "scripted" in page
    assert "<script" not in page


async def test_dropped_suggestions_are_listed_with_reason_and_meaning() -> None:
    clean = corpus.clean_inr()
    directive = dict(clean, summary="Order an INR test today")
    first = json.dumps(corpus.answer(clean))
    second = json.dumps(corpus.answer(clean, directive))
    page, _ = await page_for(broker_for(ScriptedModel([ScriptedModel.answer(first, second)])))
    rejection = re.search(r'<tr class="rejection" data-reason="([a-z-]+)">(.*?)</tr>', page)
    assert rejection is not None and rejection.group(1) == Reason.DIRECTIVE_PHRASING
    assert html.escape(REASON_TEXT[Reason.DIRECTIVE_PHRASING]) in rejection.group(2)
    assert "order an" in rejection.group(2)
    # Row numbers are 1-based for readers: sample 2, its suggestion 2.
    assert rejection.group(2).startswith("<td>2</td><td>2</td>")


async def test_pending_page_refreshes_and_failed_page_says_why() -> None:
    gate = asyncio.Event()
    clean = json.dumps(corpus.answer(corpus.clean_inr()))
    page, _ = await page_for(broker_for(ScriptedModel([ScriptedModel.answer(clean, clean)]), gate), 0.01)
    assert 'data-state="pending"' in page and 'http-equiv="refresh"' in page
    gate.set()

    failed, _ = await page_for(broker_for(ScriptedModel([ModelUnavailable("down")])))  # type: ignore[list-item]
    assert 'data-state="failed"' in failed and "ModelUnavailable" in failed
    assert 'http-equiv="refresh"' not in failed


def test_every_governance_reason_is_explained() -> None:
    assert set(REASON_TEXT) == set(Reason)
    assert set(REASON_PHRASES) == set(Reason)


def _abstained(samples: int, *reasons: Reason) -> Decision:
    log = tuple(StepRecord("schema", i, None, True, None, "1 suggestion(s)") for i in range(samples))
    rejected = tuple(Rejection(i, 0, r, "detail with model text M1 7.5") for i, r in enumerate(reasons))
    return Decision((), rejected, True, "nothing-passed" if reasons else "model-abstained", log)


@pytest.mark.parametrize(
    ("decision", "line"),
    [
        (
            _abstained(3, Reason.SAFETY_VETO, Reason.KNOWLEDGE_NOT_RETRIEVED, Reason.SAFETY_VETO),
            "3 model answers were checked; none could be shown: 2 conflicted with safety rules, 1 cited a "
            "source that was not retrieved.",
        ),
        (
            _abstained(1, Reason.INJECTION_ECHO),
            "1 model answer was checked; none could be shown: 1 repeated text from a chart note.",
        ),
        (
            _abstained(2),
            "2 model answers were checked; none could be shown: the model offered no suggestion.",
        ),
        (_abstained(0), "No model answer came back to check, so none could be shown."),
    ],
)
def test_abstention_line_says_why_in_plain_words_from_reason_codes_only(
    decision: Decision, line: str
) -> None:
    assert abstention_line(decision) == line
    assert "M1" not in line and "7.5" not in line and "detail" not in line


async def test_abstained_review_links_its_page_from_the_one_notice_card_only() -> None:
    abstain = json.dumps(corpus.abstention())
    broker = broker_for(ScriptedModel([ScriptedModel.answer(abstain, abstain)]))
    page, urls = await page_for(broker)
    assert len(urls) == 1
    assert "found nothing it could stand behind" in page and 'data-state="ready"' in page
    # Later answers for the same review show no card, and link no further evidence page.
    review = AiReview(broker, corpus.knowledge(), version, lambda token: BASE + token)
    again = await review.review(CHART_REVIEW.id, "patient-view", corpus.built(), corpus.PATIENT, 5.0)
    assert again.cards == () and await broker.evidence("evidence-2") is None


async def settled_page_for(model: ScriptedModel) -> str:
    """The page of a review that finished after the hook answered: reached from the pending card's link."""
    gate = asyncio.Event()
    broker = broker_for(model, gate)
    review = AiReview(broker, corpus.knowledge(), version, lambda token: BASE + token)
    answer = await review.review(CHART_REVIEW.id, "patient-view", corpus.built(), corpus.PATIENT, 0.01)
    [token] = [
        link.url.removeprefix(BASE)
        for card in answer.cards
        for link in card.links
        if link.url.startswith(BASE)
    ]
    gate.set()
    for _ in range(500):
        evidence = await broker.evidence(token)
        assert evidence is not None
        if evidence.status.state not in ("pending", "busy"):
            return render_evidence(evidence, corpus.knowledge())
        await asyncio.sleep(0.01)
    raise AssertionError("the review did not land")


def state_box(page: str) -> str:
    found = re.search(r'<div class="state [a-z]+" id="review-state".*?</div>', page, re.DOTALL)
    assert found is not None
    return found.group(0)


async def test_an_abstained_review_says_it_found_nothing_and_why_not_review_complete() -> None:
    abstain = json.dumps(corpus.abstention())
    page = await settled_page_for(ScriptedModel([ScriptedModel.answer(abstain, abstain)]))
    box = state_box(page)
    assert box.startswith('<div class="state nothing" id="review-state" data-state="ready"')
    assert 'data-accepted="0"' in box and 'data-abstain-reason="model-abstained"' in box
    assert "Review complete" not in page and 'class="state ready"' not in page
    assert "found nothing it could stand behind" in box
    assert html.escape(ABSTAIN_TEXT["model-abstained"]) in box
    assert "Governance dropped nothing" in box
    assert "none could be shown: the model offered no suggestion." in box
    assert "<title>AI review: no suggestion - R1 CDS</title>" in page


async def test_when_governance_dropped_everything_the_page_lists_what_and_why() -> None:
    directive = json.dumps(corpus.answer(dict(corpus.clean_inr(), summary="Order an INR test today")))
    page = await settled_page_for(ScriptedModel([ScriptedModel.answer(directive, directive)]))
    box = state_box(page)
    assert 'class="state nothing"' in box and 'data-abstain-reason="nothing-passed"' in box
    assert html.escape(ABSTAIN_TEXT["nothing-passed"]) in box
    assert f"2 × {html.escape(REASON_TEXT[Reason.DIRECTIVE_PHRASING])}" in box
    assert (
        '<p id="abstain-line">2 model answers were checked; none could be shown: 2 read as orders rather '
        "than options.</p>"
    ) in box
    assert '<table id="dropped">' in page  # and each dropped finding below, as before


async def test_scripted_output_is_announced_at_the_top() -> None:
    clean = json.dumps(corpus.answer(corpus.clean_inr()))
    page = await settled_page_for(ScriptedModel([ScriptedModel.answer(clean, clean)]))
    notice = page.find(SCRIPTED_NOTICE)
    assert notice != -1 and notice < page.find('id="review-state"')
    assert 'id="model-notice" data-backend="scripted"' in page


async def test_model_details_have_labels_and_no_server_path() -> None:
    gguf = "/root/.cache/huggingface/hub/models--r1cds--demo/snapshots/0123/gemma-3-270m-it-Q4_K_M.gguf"
    identity = ModelIdentity(
        "llamacpp",
        "gemma-3-270m-it-Q4_K_M.gguf",
        {"model_path": gguf, "clinical_use": "not clinically meaningful", "kv_cache_dtype": "q8_0"},
    )
    clean = json.dumps(corpus.answer(corpus.clean_inr()))
    response = dataclasses.replace(ScriptedModel.answer(clean, clean), identity=identity)
    page = await settled_page_for(ScriptedModel([response]))
    provenance = page[page.index('<dl id="provenance">') :]
    assert "<dt>Clinical use</dt><dd>not clinically meaningful</dd>" in provenance
    assert "<dt>Model weights</dt><dd>gemma-3-270m-it-Q4_K_M.gguf</dd>" in provenance
    assert "<dt>KV cache data type</dt>" in provenance
    assert "/root/" not in page and ".cache" not in page
    assert not re.search(r"<dt>[^<]*_[^<]*</dt>", page), "a raw field name is shown"
    assert "Demonstration model (gemma-3-270m-it-Q4_K_M.gguf): not clinically meaningful" in page
    assert SCRIPTED_NOTICE not in page
