"""The preview with the scripted demonstration backend: governed AI cards, their evidence page, and the abstention card.

Real parts: redis-server, a Celery worker process running `R1CDS_MODEL_BACKEND=scripted`, the API over HTTP
(EHR authentication off, as `make run` starts it) and headless Debian chromium.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from inference.scripted import NOT_A_MODEL
from plugin.ai_review import NOTHING_SUMMARY
from tests.support.asgi_server import ServedApp
from tests.support.browser import screenshot
from tests.support.charts import chart_path, raw_bundle
from tests.support.preview_page import fire, pick_demo, preview_page, topics
from tests.support.redis_server import running_redis
from tests.support.review_stack import review_settings, running_worker, serve_review_api

pytestmark = [pytest.mark.integration, pytest.mark.browser]

SETTLED_MS = 60_000
METFORMIN_SUGGESTION = "Consider discontinuing metformin: the latest eGFR is 24, below 30"


@pytest.fixture
def scripted_stack() -> Iterator[ServedApp]:
    with running_redis() as redis:
        settings = review_settings(redis.url, "http://unused.invalid", "default").model_copy(
            update={"model_backend": "scripted", "model_url": None, "review_samples": 1}
        )
        with running_worker(settings), serve_review_api(settings, preview_enabled=True) as api:
            yield api


def settled(page: Page) -> None:
    page.wait_for_selector("#summary[data-state='settled']", timeout=SETTLED_MS)


def test_demo_patient_gets_governed_scripted_ai_cards_and_their_evidence_page(
    scripted_stack: ServedApp, chromium: Browser
) -> None:
    api = scripted_stack
    with preview_page(chromium, api.url) as page:
        pick_demo(page, "demo-renal-metformin")
        fire(page, "patient-view")
        settled(page)
        assert "rule.metformin-egfr" in topics(page)  # the rule card stands beside the AI cards
        ai = page.locator("#cards article.card").filter(
            has=page.get_by_text(METFORMIN_SUGGESTION, exact=True)
        )
        assert ai.count() == 1
        assert NOT_A_MODEL in ai.locator(".source").inner_text()
        assert "Scripted demonstration output, not a model." in ai.inner_text()
        evidence = ai.locator("a", has_text="Evidence and governance review")
        href = evidence.get_attribute("href") or ""
        assert href.startswith(f"{api.url}/evidence/")
        screenshot(page, "preview-scripted-ai-cards")

        page.goto(href)
        body = page.inner_text("body")
        assert "Scripted demonstration output, not a model" in body
        assert METFORMIN_SUGGESTION in body
        assert "kb.metformin-egfr-thresholds" in page.content() or "Metformin and eGFR" in body
        screenshot(page, "evidence-scripted")


def test_a_chart_without_a_script_leaves_the_abstention_card_once(
    scripted_stack: ServedApp, chromium: Browser, tmp_path: Path
) -> None:
    api = scripted_stack
    chart = tmp_path / "chart.json"
    chart.write_text(json.dumps(raw_bundle(chart_path("Clarine_O'Keefe"))))
    with preview_page(chromium, api.url) as page:
        page.check("input[name='source'][value='bundle']", force=True)
        page.set_input_files("#bundle-file", str(chart))
        page.wait_for_function(
            "() => document.getElementById('bundle-status').textContent.includes('patient(s)')"
        )
        fire(page, "patient-view")
        settled(page)
        notice = page.locator("#cards article.card").filter(has=page.get_by_text(NOTHING_SUMMARY, exact=True))
        assert notice.count() == 1
        link = notice.locator(".links a")
        assert (link.get_attribute("href") or "").startswith(f"{api.url}/evidence/")
        screenshot(page, "preview-scripted-abstention")

        # Fired again, the same review has already said so: no second notice, and no pending card either.
        fire(page, "patient-view")
        settled(page)
        assert page.locator("#cards article.card").filter(has=page.get_by_text(NOTHING_SUMMARY)).count() == 0
        assert page.locator("#cards article.pending-card").count() == 0
