"""The evidence page's content for each review state, rendered from the memory broker beside the port."""

from __future__ import annotations

import asyncio
import html
import json
import re

import pytest

from cds_hooks.evidence_page import REASON_TEXT, render_evidence
from plugin.ai_review import AiReview, MemoryReviewBroker
from plugin.catalog import CHART_REVIEW
from plugin.governance.model import Reason
from plugin.model_port import ModelUnavailable, ScriptedModel
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


async def test_abstained_review_links_no_evidence_page() -> None:
    abstain = json.dumps(corpus.abstention())
    broker = broker_for(ScriptedModel([ScriptedModel.answer(abstain, abstain)]))
    review = AiReview(broker, corpus.knowledge(), version, lambda token: BASE + token)
    answer = await review.review(CHART_REVIEW.id, "patient-view", corpus.built(), corpus.PATIENT, 5.0)
    assert answer.cards == () and await broker.evidence("evidence-1") is None
