"""Override suppression's policy (plugin.suppression), the facts in a rule card's uuid, card order, settings."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError

from cds_hooks.settings import load_settings
from plugin.ai_review import AiAnswer
from plugin.cards import Card, Coding, Source, by_severity
from plugin.catalog import CHART_REVIEW, RuleService
from plugin.context.model import BuiltContext
from plugin.feedback import FeedbackRecord
from plugin.knowledge import load_knowledge_base
from plugin.rules.cards import RULE_SYSTEM
from plugin.rules.registry import CARE_GAP_RULES, MEDICATION_RULES
from plugin.services import HookCall
from plugin.suppression import MemorySuppressionStore, OverrideSuppression, suppressible
from tests.support.charts import NOW
from tests.support.rule_cases import PATIENT_ID, Chart, lab, med

pytestmark = pytest.mark.unit

HOUR_S = 3600.0


def card(indicator: str, topic_system: str = RULE_SYSTEM, name: str | None = None) -> Card:
    code = name or f"rule.{indicator}-{uuid.uuid4().hex[:6]}"
    return Card(
        summary=f"{indicator} card",
        indicator=indicator,  # type: ignore[arg-type]
        source=Source("test", topic=Coding(code, topic_system, code)),
        uuid=str(uuid.uuid4()),
    )


def overridden(card_uuid: str, tenant: str | None = "ehr-a", reason: bool = True) -> FeedbackRecord:
    return FeedbackRecord(
        service_id="r1-chart-review",
        card_uuid=card_uuid,
        outcome="overridden",
        outcome_timestamp="2026-11-25T12:00:00Z",
        override_reason=Coding("lab-pending", "urn:r1cds:override-reason") if reason else None,
        tenant=tenant,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the policy ----------------------------------------------------------------------------------------


async def test_an_override_with_a_reason_hides_that_rule_card_for_the_period_only() -> None:
    clock = Clock()
    policy = OverrideSuppression(MemorySuppressionStore(clock), 24 * HOUR_S)
    warning, info, other = card("warning"), card("info"), card("warning")
    cards = (warning, info, other)
    assert warning.uuid and info.uuid
    assert await policy.record(overridden(warning.uuid))
    assert await policy.record(overridden(info.uuid))
    assert await policy.apply("ehr-a", cards) == ((other,), (warning.uuid, info.uuid))
    assert await policy.apply("ehr-b", cards) == (cards, ()), "another tenant's override hides nothing"
    clock.now += 23 * HOUR_S
    assert await policy.record(overridden(warning.uuid)), "an EHR's retry"
    clock.now += 1 * HOUR_S + 1
    assert await policy.apply("ehr-a", cards) == (cards, ()), "the retry did not extend the period"


async def test_critical_and_ai_cards_are_never_hidden() -> None:
    policy = OverrideSuppression(MemorySuppressionStore(Clock()), HOUR_S)
    critical, ai, status = (
        card("critical"),
        card("warning", "urn:r1cds:ai"),
        card("info", "urn:r1cds:ai-review-status"),
    )
    cards = (critical, ai, status)
    for c in cards:
        assert c.uuid and await policy.record(overridden(c.uuid))
    assert await policy.apply("ehr-a", cards) == (cards, ())
    assert not any(suppressible(c) for c in cards)


async def test_only_an_override_with_a_reason_of_a_uuid_shaped_card_is_recorded() -> None:
    store = MemorySuppressionStore(Clock())
    policy = OverrideSuppression(store, HOUR_S)
    warning = card("warning")
    assert warning.uuid
    assert not await policy.record(overridden(warning.uuid, reason=False))
    assert not await policy.record(dataclasses.replace(overridden(warning.uuid), outcome="accepted"))
    assert not await policy.record(overridden("not-a-uuid"))
    assert store.until == {}
    # An unknown card's uuid is recorded and hides nothing: no card has it.
    assert await policy.record(overridden(str(uuid.uuid4())))
    assert await policy.apply("ehr-a", (warning,)) == ((warning,), ())


class BrokenStore:
    async def suppress(self, tenant: str | None, card_uuid: str, ttl_s: float) -> None:
        raise ConnectionError(f"cannot reach store for {card_uuid}")

    async def suppressed(self, tenant: str | None, card_uuids: Sequence[str]) -> frozenset[str]:
        raise ConnectionError(f"cannot reach store for {card_uuids}")


async def test_a_broken_store_shows_every_card_and_logs_no_identifier(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = OverrideSuppression(BrokenStore(), HOUR_S)
    warning = card("warning")
    assert warning.uuid
    with caplog.at_level(logging.WARNING, logger="plugin.suppression"):
        assert not await policy.record(overridden(warning.uuid, tenant="ehr-secret-name"))
        assert await policy.apply("ehr-secret-name", (warning,)) == ((warning,), ())
    assert policy.failures == 2
    assert caplog.records and "ConnectionError" in caplog.text
    assert warning.uuid not in caplog.text and "ehr-secret-name" not in caplog.text


def test_a_period_must_be_positive_and_the_setting_refuses_negatives(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="positive"):
        OverrideSuppression(MemorySuppressionStore(), 0)
    assert load_settings().override_suppression_hours == 24
    assert load_settings(override_suppression_hours=0).override_suppression_hours == 0
    monkeypatch.setenv("R1CDS_OVERRIDE_SUPPRESSION_HOURS", "-1")
    with pytest.raises(ValidationError, match="override_suppression_hours"):
        load_settings()
    for bad in ("nan", "inf", "721"):
        monkeypatch.setenv("R1CDS_OVERRIDE_SUPPRESSION_HOURS", bad)
        with pytest.raises(ValidationError):
            load_settings()


# --- "same finding, same facts": the rule card uuid ------------------------------------------------------

SERVICE = RuleService(
    CHART_REVIEW, "chart", load_knowledge_base(), (*MEDICATION_RULES, *CARE_GAP_RULES), lambda: NOW
)


def hook(chart: Chart) -> HookCall:
    context = {"patientId": PATIENT_ID, "userId": "Practitioner/x"}
    return HookCall("r1-chart-review", "patient-view", str(uuid.uuid4()), context, chart.prefetch())


def uuids_by_rule(chart: Chart) -> dict[str, str]:
    return {
        c.source.topic.code: c.uuid
        for c in SERVICE.evaluate(hook(chart)).cards
        if c.source.topic is not None and c.uuid is not None
    }


def with_dose(resource: dict[str, Any], tablets: float) -> dict[str, Any]:
    changed = copy.deepcopy(resource)
    changed["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = tablets
    return changed


def test_a_value_changed_in_the_same_resource_gives_a_new_uuid_and_time_passing_does_not() -> None:
    warfarin, naproxen = med("warfarin"), med("naproxen")
    base = uuids_by_rule(Chart(resources=(warfarin, naproxen, lab("inr", 2.5, days_ago=5))))["rule.vka-nsaid"]
    # The same naproxen prescription (same id, same summary) at twice the dose: another finding.
    doubled = Chart(resources=(warfarin, with_dose(naproxen, 2), lab("inr", 2.5, days_ago=5)))
    assert uuids_by_rule(doubled)["rule.vka-nsaid"] != base
    # The same prescriptions written on another day: the finding, and its uuid, stay.
    older = Chart(resources=(warfarin, med("naproxen", days_ago=300), lab("inr", 2.5, days_ago=5)))
    assert uuids_by_rule(older)["rule.vka-nsaid"] == base
    # An eGFR corrected in place (same Observation id) is another fact for the card citing it.
    stale = uuids_by_rule(Chart(resources=(med("metformin"), lab("egfr", 80, days_ago=400))))
    corrected = uuids_by_rule(Chart(resources=(med("metformin"), lab("egfr", 82, days_ago=400))))
    assert stale["rule.egfr-recheck"] != corrected["rule.egfr-recheck"]


# --- card order ---------------------------------------------------------------------------------------


def test_by_severity_is_most_severe_first_and_stable() -> None:
    cards = (
        card("info", name="a"),
        card("warning", name="b"),
        card("info", name="c"),
        card("critical", name="d"),
    )
    ordered = by_severity(cards)
    assert [c.source.topic.code for c in ordered if c.source.topic] == ["d", "b", "a", "c"]


class FakeAi:
    """Stands in for plugin.ai_review.AiReview: a fixed answer, pending status card first."""

    def __init__(self, cards: tuple[Card, ...]) -> None:
        self.cards = cards

    def ticket(self, service_id: str, hook: str, context: object) -> None:
        return None  # made with the rules, off the event loop, and handed to review

    async def review(
        self,
        service_id: str,
        hook: str,
        built: BuiltContext,
        patient: str | None,
        wait_s: float,
        *,
        ticket: object = None,
    ) -> AiAnswer:
        return AiAnswer(self.cards, False, "0" * 64, "pending")


async def test_rule_and_ai_cards_of_an_answer_are_ordered_most_severe_first() -> None:
    chart = Chart(
        resources=(med("warfarin"), med("naproxen"), med("metformin"), lab("egfr", 80, days_ago=400))
    )
    pending = card("info", "urn:r1cds:ai-review-status", "pending")
    ai_critical, ai_warning = (
        card("critical", "urn:r1cds:ai", "ai-1"),
        card("warning", "urn:r1cds:ai", "ai-2"),
    )
    service = dataclasses.replace(SERVICE, ai=FakeAi((pending, ai_critical, ai_warning)))  # type: ignore[arg-type]
    rules_only = SERVICE.evaluate(hook(chart)).cards
    answer = await service.answer(hook(chart), 0.0)
    indicators = [c.indicator for c in answer.cards]
    assert indicators == sorted(indicators, key=["critical", "warning", "info"].index)
    assert {c.indicator for c in rules_only} == {"warning", "info"}, "the chart gives both"
    assert answer.cards[0] is ai_critical and answer.cards[-1] is pending
    # Within a severity the order stays: rule cards as the rules listed them, then the AI's.
    warnings = [c for c in answer.cards if c.indicator == "warning"]
    assert warnings == [*(c for c in rules_only if c.indicator == "warning"), ai_warning]


T = TypeVar("T")


class RecordingAi(FakeAi):
    """Remembers the wait it was given."""

    waits: list[float]

    def __init__(self, cards: tuple[Card, ...]) -> None:
        super().__init__(cards)
        self.waits = []

    async def review(
        self,
        service_id: str,
        hook: str,
        built: BuiltContext,
        patient: str | None,
        wait_s: float,
        *,
        ticket: object = None,
    ) -> AiAnswer:
        self.waits.append(wait_s)
        return await super().review(service_id, hook, built, patient, wait_s, ticket=ticket)


async def test_the_time_the_rules_took_comes_out_of_the_ai_wait() -> None:
    # The budget is a deadline from the call: rules that wait 0.2 s for a worker thread leave the AI review
    # 0.2 s less, never the whole wait on top (issue 19, item 4).
    chart = Chart(resources=(med("warfarin"), med("naproxen")))
    ai = RecordingAi((card("info", "urn:r1cds:ai-review-status", "pending"),))
    service = dataclasses.replace(SERVICE, ai=ai)  # type: ignore[arg-type]

    async def slow(work: Callable[[], T]) -> T:
        await asyncio.sleep(0.2)
        return work()

    await service.answer(hook(chart), 1.0, offload=slow)
    (wait,) = ai.waits
    assert 0.0 < wait <= 0.8 + 0.05
    ai.waits.clear()
    await service.answer(hook(chart), 0.1, offload=slow)
    assert ai.waits == [0.0]  # past the deadline already: no wait at all, never a negative one
