"""Driving the card preview page in chromium, reading back stored feedback, and a service with hostile Markdown."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import redis
from playwright.sync_api import Browser, Locator, Page

from cds_hooks.feedback_store import STREAM
from plugin.cards import Card, Coding, Link, ServiceResult, Source, Suggestion
from plugin.catalog import CHART_PREFETCH
from plugin.services import HookCall, ServiceDeclaration

CARD_TIMEOUT_MS = 15_000

HOSTILE = ServiceDeclaration(
    id="hostile-markdown",
    hooks=("patient-view",),
    title="Hostile Markdown",
    description="Emits a card whose detail and links try to run script, for the preview's sanitiser test.",
    prefetch={"patient": CHART_PREFETCH["patient"]},
    required_prefetch=frozenset({"patient"}),
)
HOSTILE_DETAIL = "\n".join(
    [
        "Plain **bold** text and `code`.",
        "",
        "<script>window.__r1cdsInjected = 'script'</script>",
        "<img src=x onerror=\"window.__r1cdsInjected = 'img'\">",
        "",
        "- [click me](javascript:window.__r1cdsInjected='link')",
        "- [data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "- [mixed case](JaVaScRiPt:window.__r1cdsInjected='case')",
        "- [safe link](https://example.org/evidence)",
    ]
)


class HostileService:
    """A patient-view service whose one card carries script in every place a card has text or a URL."""

    declaration = HOSTILE

    def evaluate(self, call: HookCall) -> ServiceResult:
        card = Card(
            summary="<b>Hostile</b> card <script>window.__r1cdsInjected='summary'</script>",
            indicator="warning",
            source=Source(label="<i>evil</i> source", url="javascript:window.__r1cdsInjected='source'"),
            uuid="33333333-3333-4333-8333-333333333333",
            detail=HOSTILE_DETAIL,
            suggestions=(
                Suggestion(label="<img src=x onerror=alert(1)>", uuid="44444444-4444-4444-8444-444444444444"),
            ),
            selection_behavior="at-most-one",
            override_reasons=(Coding("nope", "urn:test", "<script>bad()</script>"),),
            links=(
                Link(label="evil link", url="javascript:window.__r1cdsInjected='link2'", type="absolute"),
            ),
        )
        return ServiceResult(cards=(card,))


@contextmanager
def preview_page(browser: Browser, url: str, *, clock: bool = False) -> Iterator[Page]:
    """The preview page loaded and its script ready, in a fresh browser context closed afterwards.

    With `clock`, the page's timers and clock are Playwright's fake ones (`page.clock.run_for` moves them),
    so that minutes of refreshing take no real time.
    """
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    try:
        page = context.new_page()
        if clock:
            page.clock.install()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{url}/preview")
        page.wait_for_selector("body[data-ready='true']")
        yield page
        assert errors == [], f"script errors on the page: {errors}"
    finally:
        context.close()


def pick_demo(page: Page, demo_id: str) -> None:
    page.check("input[name='source'][value='demo']", force=True)
    page.check(f"input[name='demo'][value='{demo_id}']")


def fire(page: Page, hook: str) -> None:
    """Fire `hook` and wait until its answer (or its error) is on the page."""
    before = page.locator("#calls details").count()
    page.select_option("#hook", hook)
    page.click("#fire")
    page.wait_for_function(
        "([n]) => document.querySelectorAll('#calls details').length > n"
        " || !document.getElementById('form-error').hidden",
        arg=[before],
        timeout=CARD_TIMEOUT_MS,
    )
    page.wait_for_function("() => !document.getElementById('fire').disabled", timeout=CARD_TIMEOUT_MS)


def card(page: Page, topic: str) -> Locator:
    return page.locator(f"#cards article.card[data-topic='{topic}']")


def topics(page: Page) -> list[str]:
    return [
        str(t) for t in page.locator("#cards article.card").evaluate_all("ns => ns.map(n => n.dataset.topic)")
    ]


def indicators(page: Page) -> list[str]:
    found = page.locator("#cards article.card").evaluate_all("ns => ns.map(n => n.dataset.indicator)")
    return [str(i) for i in found]


def add_order(page: Page, code: str, dose_mg: float, frequency: str) -> None:
    before = page.locator("#draft-list li[data-ref]").count()
    page.select_option("#order-product", code)
    page.fill("#order-dose", f"{dose_mg:g}")
    page.select_option("#order-frequency", frequency)
    page.click("#add-order")
    page.wait_for_function(
        "([n]) => document.querySelectorAll('#draft-list li[data-ref]').length > n", arg=[before]
    )


def draft_names(page: Page) -> list[str]:
    names = page.locator("#draft-list li[data-ref]").evaluate_all("ns => ns.map(n => n.dataset.name)")
    return [str(n) for n in names]


def last_request(page: Page) -> dict[str, Any]:
    """The JSON body of the newest call in the page's request/response panel."""
    text = page.locator("#calls details").first.locator("pre").first.text_content() or ""
    request: dict[str, Any] = orjson.loads(text.split("\n\n", 1)[1])
    return request


def stored_feedback(redis_url: str, card_uuid: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The feedback items the service stored for one card (the feedback stream), waiting briefly for one."""
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(STREAM)  # type: ignore[assignment]
            items = [orjson.loads(fields[b"item"]) for _, fields in entries]
            mine: list[dict[str, Any]] = [i for i in items if i.get("card_uuid") == card_uuid]
            if mine or time.monotonic() > deadline:
                return mine
            time.sleep(0.1)
    finally:
        client.close()
