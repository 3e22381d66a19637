"""The card preview in headless Debian chromium against the real app over HTTP, EHR authentication on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from cds_hooks.preview.demo import DEMO_PATIENTS, demo_bundle
from plugin.catalog import shipped_registry
from plugin.fhir_search import FhirStore
from plugin.services import ServiceRegistry
from tests.integration.conftest import ServeApp
from tests.support.browser import screenshot
from tests.support.fhir_server import running_fhir_server
from tests.support.preview_page import (
    HostileService,
    add_order,
    card,
    draft_names,
    fire,
    indicators,
    last_request,
    pick_demo,
    preview_page,
    stored_feedback,
    topics,
)
from tests.support.redis_server import RedisHandle

pytestmark = [pytest.mark.integration, pytest.mark.browser]

RANK = {"critical": 0, "warning": 1, "info": 2}


def test_each_demo_patient_shows_its_rule_cards_sorted_by_urgency(
    serve_app: ServeApp, chromium: Browser
) -> None:
    with serve_app(preview_enabled=True) as served, preview_page(chromium, served.url) as page:
        for demo in DEMO_PATIENTS:
            pick_demo(page, demo.id)
            fire(page, "patient-view")
            shown = topics(page)
            assert set(demo.rules) <= set(shown), (demo.id, shown)
            order = [RANK[i] for i in indicators(page)]
            assert order == sorted(order), f"{demo.id}: cards not sorted critical → warning → info"
            first = card(page, demo.rules[0])
            assert "R1 CDS safety rules" in first.locator(".source").inner_text()
            # Detail is rendered Markdown: its bold headings and evidence links are elements, not text.
            assert first.locator(".detail strong", has_text="Patient data used").count() == 1
            assert first.locator(".detail a[href^='https://']").count() >= 1
            call = page.locator("#calls details").first
            assert call.get_attribute("data-status") == "200"
            assert "patient-view" in call.inner_text()
            screenshot(page, f"preview-demo-{demo.id}")


def test_warfarin_and_ibuprofen_order_then_accept_and_dismiss(
    serve_app: ServeApp, chromium: Browser, redis_server: RedisHandle
) -> None:
    with serve_app(preview_enabled=True) as served, preview_page(chromium, served.url) as page:
        pick_demo(page, "demo-penicillin-allergy")  # on no anticoagulant: the composed orders make the pair
        page.select_option("#hook", "order-select")
        add_order(page, "855332", 5, "QD")
        add_order(page, "310965", 400, "TID")
        assert draft_names(page) == ["Warfarin Sodium 5 MG Oral Tablet", "Ibuprofen 200 MG Oral Tablet"]
        assert "400 mg three times daily" in page.inner_text("#draft-list")
        fire(page, "order-select")
        interaction = card(page, "rule.vka-nsaid")
        assert interaction.count() == 1
        assert "bleeding risk" in interaction.locator(".summary-text").inner_text()
        screenshot(page, "preview-order-select-warfarin-ibuprofen")

        fire(page, "order-sign")
        interaction = card(page, "rule.vka-nsaid")
        assert interaction.count() == 1
        request = last_request(page)
        assert request["hook"] == "order-sign"
        assert [e["resource"]["status"] for e in request["context"]["draftOrders"]["entry"]] == [
            "draft",
            "draft",
        ]
        page.locator("#calls details").first.locator("summary").click()  # the request/response panel
        screenshot(page, "preview-order-sign-warfarin-ibuprofen")
        page.locator("#calls details").first.locator("summary").click()

        # Accept "remove the ibuprofen draft": the draft goes, and the service stores `accepted`.
        card_uuid = interaction.get_attribute("data-uuid")
        assert card_uuid
        remove = interaction.locator("button.suggestion", has_text="Ibuprofen")
        suggestion_uuid = remove.get_attribute("data-suggestion")
        remove.click()
        page.wait_for_selector(f"article[data-uuid='{card_uuid}'] .outcome")
        assert "feedback stored" in interaction.locator(".outcome").inner_text()
        assert draft_names(page) == ["Warfarin Sodium 5 MG Oral Tablet"]
        [accepted] = stored_feedback(redis_server.url, card_uuid)
        assert accepted["outcome"] == "accepted"
        assert accepted["accepted_suggestions"] == [suggestion_uuid]
        assert accepted["service_id"] == "r1-order-review"
        assert accepted["tenant"] == "r1cds-preview"  # verified as the preview key's tenant

        # Dismiss the INR card with one of its override reasons: the service stores `overridden`.
        inr = card(page, "rule.inr-monitoring")
        inr_uuid = inr.get_attribute("data-uuid")
        assert inr_uuid
        inr.locator("button.dismiss").click()
        # The INR card offers its own reasons (knowledge/override_reasons.json), not only the generic ones.
        inr.locator("select.override-reason").select_option(label="Lab already ordered or scheduled")
        inr.locator("input.override-comment").fill("INR booked for Friday")
        screenshot(page, "preview-dismiss-form")
        inr.locator("button.confirm-dismiss").click()
        page.wait_for_selector(f"article[data-uuid='{inr_uuid}'] .outcome")
        [overridden] = stored_feedback(redis_server.url, inr_uuid)
        assert overridden["outcome"] == "overridden"
        assert overridden["override_reason"]["code"] == "lab-scheduled"
        assert overridden["user_comment"] == "INR booked for Friday"
        feedback_calls = page.locator("#calls details[data-label^='feedback']")
        assert feedback_calls.count() == 2
        assert all(s == "200" for s in feedback_calls.evaluate_all("ns => ns.map(n => n.dataset.status)"))
        screenshot(page, "preview-feedback-stored")

        # Signing again without the ibuprofen: the interaction card is gone.
        fire(page, "order-sign")
        assert card(page, "rule.vka-nsaid").count() == 0


def test_markdown_and_urls_in_cards_cannot_run_script(serve_app: ServeApp, chromium: Browser) -> None:
    registry = ServiceRegistry((HostileService(), *shipped_registry()))
    with serve_app(registry, preview_enabled=True) as served, preview_page(chromium, served.url) as page:
        fire(page, "patient-view")
        hostile = card(page, "")
        assert hostile.count() == 1
        detail = hostile.locator(".detail")
        assert detail.locator("strong", has_text="bold").count() == 1
        assert detail.locator("code", has_text="code").count() == 1
        # The raw HTML is shown as the text it is, not parsed.
        assert "<script>window.__r1cdsInjected = 'script'</script>" in detail.inner_text()
        assert "<img src=x" in detail.inner_text()
        assert page.locator("#cards script, #cards img, #cards iframe, #cards b, #cards i").count() == 0
        hrefs = page.locator("#cards a").evaluate_all("ns => ns.map(n => n.getAttribute('href'))")
        # The service points every card's source at its model card; the card's own links stay as sent.
        assert hrefs == [f"{served.url}/about", "https://example.org/evidence"]
        assert detail.locator(".unsafe-link").count() == 3
        assert hostile.locator(".links .unsafe-link", has_text="evil link").count() == 1
        detail.locator(".unsafe-link", has_text="click me").click()
        hostile.locator(".links .unsafe-link").click()
        hostile.locator("button.dismiss").click()
        assert hostile.locator("select.override-reason option").all_inner_texts() == [
            "<script>bad()</script>"
        ]
        assert hostile.locator("button.suggestion").inner_text() == "<img src=x onerror=alert(1)>"
        assert page.evaluate("() => window.__r1cdsInjected === undefined")
        assert "<b>Hostile</b>" in hostile.locator(".summary-text").inner_text()
        screenshot(page, "preview-hostile-markdown-inert")


def test_uploaded_bundle_and_fhir_server_sources(
    serve_app: ServeApp, chromium: Browser, tmp_path: Path
) -> None:
    bundle = demo_bundle("demo-renal-metformin")
    upload = tmp_path / "renal.json"
    upload.write_text(json.dumps(bundle))
    not_json = tmp_path / "notes.json"
    not_json.write_text("this is not JSON")
    with (
        running_fhir_server(FhirStore.from_bundles([bundle])) as fhir,
        serve_app(preview_enabled=True) as served,
        preview_page(chromium, served.url) as page,
    ):
        page.check("input[name='source'][value='bundle']", force=True)
        page.set_input_files("#bundle-file", str(not_json))
        page.wait_for_selector("#bundle-status.error")
        assert "not JSON" in page.inner_text("#bundle-status")
        page.set_input_files("#bundle-file", str(upload))
        page.wait_for_function(
            "() => document.getElementById('bundle-status').textContent.includes('patient(s)')"
        )
        fire(page, "patient-view")
        assert "rule.metformin-egfr" in topics(page)
        screenshot(page, "preview-uploaded-bundle")

        page.check("input[name='source'][value='fhir']", force=True)
        page.fill("#fhir-server", fhir.base_url)
        page.fill("#fhir-patient", "demo-renal-metformin")
        fire(page, "encounter-start")
        assert "rule.metformin-egfr" in topics(page)
        request = last_request(page)
        assert request["fhirServer"] == fhir.base_url and "prefetch" not in request
        # No encounter id was given: the preview looked up the patient's newest on the server.
        assert request["context"]["encounterId"] == "demo-renal-metformin-e1"
        assert any(r.startswith("Observation?patient=demo-renal-metformin") for r in fhir.faults.requests)
        screenshot(page, "preview-fhir-server-fetch-back")
