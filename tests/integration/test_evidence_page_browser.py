"""The evidence page in headless Debian chromium: pending, then by itself the governed result, with its basis."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser

from plugin.ai_review import PENDING_SUMMARY
from tests.support import governance_corpus as corpus
from tests.support import sglang_stand_in as sglang
from tests.support.browser import screenshot
from tests.support.redis_server import running_redis
from tests.support.review_stack import (
    clean_answer,
    hook_request,
    post,
    review_settings,
    running_worker,
    serve_review_api,
    stand_in,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

MODEL_DELAY_S = 4.0  # longer than the 2.5 s sync budget: the hook answers with the pending card


@pytest.fixture
def review_api() -> Iterator[tuple[str, sglang.SGLangStandIn]]:
    model = stand_in()
    # Three samples agree on the INR check; one sample adds a directive suggestion governance drops.
    clean = corpus.clean_inr()
    directive = dict(clean, summary="Order an INR test today")
    model.default = sglang.ok(
        json.dumps(corpus.answer(clean, directive)), clean_answer(), clean_answer(), delay_s=MODEL_DELAY_S
    )
    with running_redis() as redis, sglang.running_sglang(model):
        # The visibility timeout derived from a 30 s model timeout: the stack's 4 s would hand the 4 s review
        # out again while it runs, and a second worker thread would ask the model a second time.
        settings = review_settings(
            redis.url, model.url, model.model_name, model_timeout_s=30.0, visibility_timeout_s=None
        )
        with running_worker(settings), serve_review_api(settings) as api:
            yield api.url, model


def test_evidence_page_moves_from_pending_to_the_governed_card_and_its_basis(
    chromium: Browser, review_api: tuple[str, sglang.SGLangStandIn]
) -> None:
    api_url, model = review_api
    service, request = hook_request("patient-view")
    with httpx.Client(timeout=30) as client:
        body, _ = post(client, api_url, service, request)
    [pending] = [c for c in body["cards"] if c["summary"] == PENDING_SUMMARY]
    page_url = pending["links"][0]["url"]
    assert page_url.startswith(f"{api_url}/evidence/")

    context = chromium.new_context(java_script_enabled=False)  # the page must work without script
    try:
        page = context.new_page()
        page.goto(page_url)
        assert page.locator("#review-state").get_attribute("data-state") == "pending"
        screenshot(page, "evidence-page-pending")

        # The page reloads itself (meta refresh) until the worker's governed result lands.
        page.wait_for_selector('#review-state[data-state="ready"]', timeout=30_000)
        screenshot(page, "evidence-page-ready")
        cards = page.locator("section.card")
        assert cards.count() == 1
        card = cards.first
        assert "Consider checking the INR" in card.locator("h3").first.inner_text()
        # Inputs: the handle the model saw, the caller's own reference, the value it was shown.
        warfarin = corpus.handle_of("MedicationRequest/warfarin")
        row = card.locator(f'tr[data-handle="{warfarin}"]')
        assert "MedicationRequest/warfarin" in row.inner_text() and "Warfarin" in row.inner_text()
        # Evidence links go to the knowledge base's publisher, never to a model-supplied URL.
        links = card.locator("a.evidence-link")
        assert links.count() >= 1
        entry = corpus.knowledge().get("kb.warfarin-inr-monitoring")
        assert entry is not None and links.first.get_attribute("href") == entry.source.url
        assert "3 of 3 independent samples" in card.locator(".confidence").inner_text()
        # Governance: the directive suggestion was dropped, with its reason and what it means.
        dropped = page.locator("#dropped tr.rejection")
        assert dropped.count() == 1 and dropped.first.get_attribute("data-reason") == "directive-phrasing"
        assert "phrased as an order" in dropped.first.inner_text()
        provenance = page.locator("#provenance").inner_text()
        assert model.model_name in provenance and "Prompt template hash" in provenance
        assert model.chat_requests == 1
    finally:
        context.close()


def test_unknown_evidence_token_is_a_plain_404(chromium: Browser, review_api: tuple[str, object]) -> None:
    api_url, _ = review_api
    context = chromium.new_context()
    try:
        page = context.new_page()
        response = page.goto(f"{api_url}/evidence/not-a-token-that-exists")
        assert response is not None and response.status == 404
        assert page.locator("h1").inner_text() == "Review not found"
    finally:
        context.close()
