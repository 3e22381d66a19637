"""The preview's refreshing while an AI review is pending: one Calls entry per hook call, backing off, resumable.

The page runs on Playwright's fake clock, so that the back-off and the half-hour cap take no real time; the
hook answers come from a real app over loopback HTTP, from a service that is pending for its first calls.
"""

from __future__ import annotations

import threading

import pytest
from playwright.sync_api import Browser, Page

from plugin.ai_review import PENDING_SUMMARY, REVIEW_SYSTEM
from plugin.cards import Card, Coding, ServiceResult, Source
from plugin.catalog import CHART_PREFETCH
from plugin.services import HookCall, ServiceDeclaration, ServiceRegistry
from tests.integration.conftest import ServeApp
from tests.support.browser import screenshot
from tests.support.preview_page import CARD_TIMEOUT_MS, fire, preview_page

pytestmark = [pytest.mark.integration, pytest.mark.browser]

READY_SUMMARY = "Consider checking the INR"


class SlowReview:
    """A patient-view service answering with the pending AI review card to its first `pending` calls."""

    declaration = ServiceDeclaration(
        id="slow-review",
        hooks=("patient-view",),
        title="Slow review",
        description="Pending for its first calls, then one card: an AI review that takes a while.",
        prefetch={"patient": CHART_PREFETCH["patient"]},
        required_prefetch=frozenset({"patient"}),
    )

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.calls = 0
        self._lock = threading.Lock()

    def evaluate(self, call: HookCall) -> ServiceResult:
        with self._lock:
            self.calls += 1
            calls = self.calls
        if calls <= self.pending:
            topic = Coding("pending", REVIEW_SYSTEM, "AI review pending")
            card = Card(PENDING_SUMMARY, "info", Source("R1 CDS AI review", topic=topic))
            return ServiceResult(cards=(card,), final=False)
        return ServiceResult(cards=(Card(READY_SUMMARY, "info", Source("R1 CDS AI review (test)")),))


def wait_refreshed(page: Page, entry: int, times: int) -> None:
    page.wait_for_function(
        "([i, n]) => document.querySelectorAll('#calls details')[i]?.dataset.refreshes === String(n)",
        arg=[entry, times],
        timeout=CARD_TIMEOUT_MS,
    )


def summary(page: Page) -> str:
    return page.inner_text("#summary")


def test_refreshes_update_the_hook_calls_one_entry_and_back_off(
    serve_app: ServeApp, chromium: Browser
) -> None:
    service = SlowReview(pending=3)
    with (
        serve_app(ServiceRegistry((service,)), preview_enabled=True) as served,
        preview_page(chromium, served.url, clock=True) as page,
    ):
        fire(page, "patient-view")
        calls = page.locator("#calls details")
        assert page.locator("#cards article.pending-card").count() == 1
        assert page.get_attribute("#summary", "data-state") == "pending"
        assert "calling again in 2 s" in summary(page)

        page.clock.run_for(2_000)
        wait_refreshed(page, 0, 1)
        assert "calling again in 4 s" in summary(page)  # doubling
        page.clock.run_for(4_000)
        wait_refreshed(page, 0, 2)
        assert "calling again in 8 s" in summary(page)

        # Fired once, sent three times: one entry, saying how often, showing the latest exchange.
        assert calls.count() == 1 and service.calls == 3
        entry = calls.first
        assert entry.get_attribute("data-label") == "patient-view → slow-review"
        assert "refreshed 2 times, last at" in entry.locator("summary").inner_text()
        entry.locator("summary").click()
        assert "sent again 2 times while the AI review was pending" in entry.inner_text()
        screenshot(page, "preview-refreshed-entry")

        page.clock.run_for(8_000)
        page.wait_for_selector("#summary[data-state='settled']", timeout=CARD_TIMEOUT_MS)
        assert calls.count() == 1 and entry.get_attribute("data-refreshes") == "3"
        assert page.locator("#cards article.pending-card").count() == 0
        assert page.locator("#cards .summary-text").all_inner_texts() == [READY_SUMMARY]
        assert READY_SUMMARY in entry.locator("pre.response").inner_text()  # the latest response
        page.clock.run_for(60_000)
        assert service.calls == 4, "no refresh after the review landed"


def test_firing_again_starts_a_new_entry_and_stops_refreshing_the_old(
    serve_app: ServeApp, chromium: Browser
) -> None:
    service = SlowReview(pending=100)
    with (
        serve_app(ServiceRegistry((service,)), preview_enabled=True) as served,
        preview_page(chromium, served.url, clock=True) as page,
    ):
        fire(page, "patient-view")
        fire(page, "patient-view")
        assert page.locator("#calls details").count() == 2
        page.clock.run_for(2_000)
        wait_refreshed(page, 0, 1)  # the newest entry
        page.clock.run_for(4_000)
        wait_refreshed(page, 0, 2)
        assert page.locator("#calls details").nth(1).get_attribute("data-refreshes") == "0"
        assert service.calls == 4


def test_after_half_an_hour_the_page_says_it_stopped_and_can_resume(
    serve_app: ServeApp, chromium: Browser
) -> None:
    service = SlowReview(pending=100)
    with (
        serve_app(ServiceRegistry((service,)), preview_enabled=True) as served,
        preview_page(chromium, served.url, clock=True) as page,
    ):
        fire(page, "patient-view")
        page.clock.fast_forward("30:00")  # the 2 s refresh fires once, half an hour late
        page.wait_for_selector("#summary[data-state='stopped']", timeout=CARD_TIMEOUT_MS)
        assert "still in progress after 30 minutes" in summary(page)
        assert "stopped calling again" in summary(page)
        screenshot(page, "preview-refresh-stopped")
        page.clock.run_for(600_000)
        assert service.calls == 2, "stopped means stopped"

        page.click("#resume-refresh")
        wait_refreshed(page, 0, 2)
        page.wait_for_selector("#summary[data-state='pending']", timeout=CARD_TIMEOUT_MS)
        assert "calling again in 2 s" in summary(page)
        page.clock.run_for(2_000)
        wait_refreshed(page, 0, 3)
        assert page.locator("#calls details").count() == 1 and service.calls == 4
