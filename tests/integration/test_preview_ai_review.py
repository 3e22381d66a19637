"""The preview shows a pending AI review, refreshes the call, and shows the AI card once the worker's result lands.

Real parts: redis-server, a Celery worker process, the SGLang stand-in behind it, the API over HTTP (EHR
authentication off, as `make run` starts it) and headless Debian chromium.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from plugin.ai_review import PENDING_SUMMARY
from tests.support import governance_corpus as corpus
from tests.support import sglang_stand_in as sglang
from tests.support.asgi_server import ServedApp
from tests.support.browser import screenshot
from tests.support.preview_page import fire, preview_page, topics
from tests.support.redis_server import running_redis
from tests.support.review_stack import (
    clean_answer,
    review_settings,
    running_worker,
    serve_review_api,
    stand_in,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

MODEL_DELAY_S = 4.0  # longer than the 2.5 s sync budget: the first answer must carry the pending card


@pytest.fixture
def review_stack() -> Iterator[tuple[ServedApp, sglang.SGLangStandIn]]:
    model = stand_in()
    model.default = sglang.ok(clean_answer(), delay_s=MODEL_DELAY_S)
    with running_redis() as redis, sglang.running_sglang(model):
        # A model timeout well above the delay: on a loaded machine a retried request would be a second one.
        # The visibility timeout is derived from it (the stack's 4 s would hand the slow review out again
        # while it still runs: workers sweep for unacked tasks every second or so).
        settings = review_settings(
            redis.url, model.url, model.model_name, model_timeout_s=30.0, visibility_timeout_s=None
        )
        with running_worker(settings), serve_review_api(settings, preview_enabled=True) as api:
            yield api, model


def test_pending_ai_review_is_refreshed_until_the_ai_card_shows(
    review_stack: tuple[ServedApp, sglang.SGLangStandIn], chromium: Browser, tmp_path: Path
) -> None:
    api, model = review_stack
    chart = tmp_path / "chart.json"
    chart.write_text(json.dumps(corpus.bundle()))
    with preview_page(chromium, api.url) as page:
        assert "authentication is off" in page.inner_text("#auth-note")
        page.check("input[name='source'][value='bundle']", force=True)
        page.set_input_files("#bundle-file", str(chart))
        page.wait_for_function(
            "() => document.getElementById('bundle-status').textContent.includes('patient(s)')"
        )
        fire(page, "patient-view")
        pending = page.locator("#cards article.pending-card")
        assert pending.count() == 1
        assert pending.locator(".summary-text").inner_text() == PENDING_SUMMARY
        assert page.get_attribute("#summary", "data-state") == "pending"
        status_link = pending.locator(".links a")
        assert f"{api.url}/evidence/" in (status_link.get_attribute("href") or "")
        assert status_link.get_attribute("target") == "_blank"
        assert "rule.inr-monitoring" in topics(page)  # the rule cards come at once, beside the pending card
        screenshot(page, "preview-ai-review-pending")

        page.wait_for_selector("#summary[data-state='settled']", timeout=60_000)
        assert page.locator("#cards article.pending-card").count() == 0
        ai = page.locator("#cards article.card").filter(
            has=page.get_by_text("Consider checking the INR", exact=True)
        )
        assert ai.count() == 1
        assert "deepseek-r1-test" in ai.locator(".source").inner_text()
        assert "rule.inr-monitoring" in topics(page)
        [refreshes] = page.locator("#calls details[data-label^='patient-view']").evaluate_all(
            "ns => ns.map(n => Number(n.dataset.refreshes))"
        )  # one entry for the one hook call fired, however often it was sent again
        assert refreshes >= 1, "the page called again while the review was pending"
        assert model.chat_requests == 1, "the refreshes share the one review"
        screenshot(page, "preview-ai-review-ready")
