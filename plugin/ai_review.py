"""The AI half of a hook call: the governed review of this chart from the review broker, within a budget.

The broker (a port; `workers.broker.RedisReviewBroker` in production, `MemoryReviewBroker` beside it for
unit tests) owns the queue and the result store. This module decides what a clinician sees for each state:

    ready, accepted suggestions   their governed AI cards (patient bound here, never in the shared result)
    ready, abstained or nothing   one info card, "AI review found nothing it could stand behind", linking to
                                  the review's page, in the first answer that finds it so (once per review,
                                  across processes: the broker's claim_notice); none after that
    pending                       one info card, "AI review in progress", linking to the review's page
    busy (queue full)             one info card, "AI review not started: the review queue is full"; no
                                  review was queued (none is in progress for it), so it links to nothing
    failed (model down, errors)   one info card, "AI review unavailable"
    broker unreachable (Redis)    no AI card at all: the rule cards answer alone, still 200

Results are keyed by the review fingerprint (de-identified facts plus service, prompt, model and
knowledge-base versions), so two charts with the same facts share one result. That is why the stored
outcome never carries a patient reference or a FHIR reference: this module maps handles back to the
caller's own references and binds the caller's patient when it renders cards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from plugin.ai_cards import ai_cards
from plugin.cards import Card, Coding, Link, Source
from plugin.context.fingerprint import ReviewVersion, fingerprint
from plugin.context.model import BuiltContext, ClinicalContext
from plugin.errors import PluginError
from plugin.knowledge import KnowledgeBase
from plugin.review import ReviewOutcome

__all__ = [
    "BUSY_SUMMARY",
    "NOTHING_SUMMARY",
    "PENDING_SUMMARY",
    "UNAVAILABLE_SUMMARY",
    "URGENCY",
    "AiAnswer",
    "AiReview",
    "BrokerUnavailable",
    "Evidence",
    "EvidenceLink",
    "MemoryReviewBroker",
    "ReviewBroker",
    "ReviewState",
    "ReviewStatus",
    "ReviewTicket",
    "Urgency",
]

Urgency = Literal["order-sign", "order-select", "encounter", "patient-view"]
# Queue per hook: a clinician signing an order waits on it now; a chart just opened can wait longest.
URGENCY: Final[Mapping[str, Urgency]] = {
    "order-sign": "order-sign",
    "order-select": "order-select",
    "encounter-start": "encounter",
    "encounter-discharge": "encounter",
    "patient-view": "patient-view",
}
ReviewState = Literal["ready", "pending", "busy", "failed"]
PENDING_SUMMARY: Final = "AI review in progress"
UNAVAILABLE_SUMMARY: Final = "AI review unavailable"
BUSY_SUMMARY: Final = "AI review not started: the review queue is full"
NOTHING_SUMMARY: Final = "AI review found nothing it could stand behind"
NOTHING_CODE: Final = "abstained"  # its status-card topic code (the others are the review states)
REVIEW_SYSTEM: Final = "urn:r1cds:ai-review-status"
# A demo model (the packaged 270m base model) and the scripted backend say what they are, in their identity's
# `clinical_use` detail, on every card they produce.
_NOT_CLINICAL_KEY: Final = "clinical_use"
_SCRIPTED_BACKEND: Final = "scripted"


class BrokerUnavailable(PluginError):
    """The queue or result store cannot be reached; the hook answers with its rule cards alone."""


@dataclass(frozen=True, slots=True)
class ReviewTicket:
    """What a worker needs to run one review: ids and de-identified facts, never references or tokens."""

    fingerprint: str
    service_id: str
    urgency: Urgency
    context: ClinicalContext


@dataclass(frozen=True, slots=True)
class AiAnswer:
    """The AI part of one hook answer: its cards, whether they are final (the same call may be answered the
    same way again: nothing pending, failed or shown once), and for the audit trail the
    review's fingerprint and the state it was found in ("unreachable": the broker could not be asked).
    Fingerprint and state are None when no review applies (a deceased patient's chart)."""

    cards: tuple[Card, ...]
    final: bool
    fingerprint: str | None = None
    state: ReviewState | Literal["unreachable"] | None = None


@dataclass(frozen=True, slots=True)
class ReviewStatus:
    state: ReviewState
    review_id: str  # unguessable id of this review's status page; empty when none was issued
    outcome: ReviewOutcome | None = None  # set when state is ready or failed


@dataclass(frozen=True, slots=True)
class EvidenceLink:
    """What one hook call's evidence page needs besides the shared review: this caller's references.

    The review is shared by every chart with the same de-identified facts, so the handle → reference map
    of this call (which FHIR resources the handles stood for) is kept per call, under its own token.
    """

    review_id: str
    service_id: str
    fingerprint: str
    references: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything the evidence page shows: the link, the review's state, and the facts it was run on."""

    link: EvidenceLink
    status: ReviewStatus
    context: ClinicalContext | None  # the de-identified facts; None until the review lands (or expired)


class ReviewBroker(Protocol):
    async def obtain(self, ticket: ReviewTicket, wait_s: float) -> ReviewStatus:
        """The review's state: the cached result, or start it (once per fingerprint) and wait up to wait_s.

        Raises BrokerUnavailable when the store or queue cannot be reached.
        """
        ...

    async def status(self, review_id: str) -> ReviewStatus | None:
        """The state behind a status-page id, or None when it is unknown or expired."""
        ...

    async def link_evidence(self, link: EvidenceLink) -> str:
        """Keep one call's evidence link for as long as the review's result lives; its unguessable token.

        Raises BrokerUnavailable when the store cannot be reached.
        """
        ...

    async def evidence(self, token: str) -> Evidence | None:
        """The evidence behind a token, or None when it is unknown or expired."""
        ...

    async def claim_notice(self, review_id: str) -> bool:
        """True the first time it is asked for this review, False after (across processes): the answer
        that gets True shows the one "found nothing" card.

        Raises BrokerUnavailable when the store cannot be reached.
        """
        ...


class ReviewRunner(Protocol):
    async def __call__(self, ticket: ReviewTicket) -> ReviewOutcome: ...


@dataclass
class MemoryReviewBroker:
    """A fake beside the port: runs reviews in-process on asyncio tasks, single-flight by fingerprint.

    For unit tests only; `requests` counts reviews started, as the SGLang stand-in counts model calls.
    """

    runner: ReviewRunner
    unavailable: bool = False
    requests: int = 0
    _tasks: dict[str, asyncio.Task[ReviewOutcome]] = field(default_factory=dict)
    _ids: dict[str, str] = field(default_factory=dict)
    _contexts: dict[str, ClinicalContext] = field(default_factory=dict)
    _links: dict[str, EvidenceLink] = field(default_factory=dict)
    _notices: set[str] = field(default_factory=set)

    async def obtain(self, ticket: ReviewTicket, wait_s: float) -> ReviewStatus:
        if self.unavailable:
            raise BrokerUnavailable("memory broker marked unavailable")
        task = self._tasks.get(ticket.fingerprint)
        if task is None:
            self.requests += 1
            task = asyncio.ensure_future(self.runner(ticket))
            self._tasks[ticket.fingerprint] = task
            self._ids[f"review-{len(self._ids) + 1}"] = ticket.fingerprint
            self._contexts[ticket.fingerprint] = ticket.context
        review_id = next(k for k, v in self._ids.items() if v == ticket.fingerprint)
        done, _ = await asyncio.wait({task}, timeout=max(0.0, wait_s))
        if not done:
            return ReviewStatus("pending", review_id)
        outcome = task.result()
        return ReviewStatus("failed" if outcome.failed else "ready", review_id, outcome)

    async def status(self, review_id: str) -> ReviewStatus | None:
        fp = self._ids.get(review_id)
        if fp is None:
            return None
        task = self._tasks[fp]
        if not task.done():
            return ReviewStatus("pending", review_id)
        outcome = task.result()
        return ReviewStatus("failed" if outcome.failed else "ready", review_id, outcome)

    async def link_evidence(self, link: EvidenceLink) -> str:
        if self.unavailable:
            raise BrokerUnavailable("memory broker marked unavailable")
        token = f"evidence-{len(self._links) + 1}"
        self._links[token] = link
        return token

    async def evidence(self, token: str) -> Evidence | None:
        link = self._links.get(token)
        status = await self.status(link.review_id) if link is not None else None
        if link is None or status is None:
            return None
        context = self._contexts.get(link.fingerprint) if status.outcome is not None else None
        return Evidence(link, status, context)

    async def claim_notice(self, review_id: str) -> bool:
        if self.unavailable:
            raise BrokerUnavailable("memory broker marked unavailable")
        first = review_id not in self._notices
        self._notices.add(review_id)
        return first


def _notice(outcome: ReviewOutcome) -> str | None:
    """What a demo model or the scripted backend says of itself; None for a model that says nothing."""
    if outcome.model is None:
        return None
    note = outcome.model.details.get(_NOT_CLINICAL_KEY)
    if not note:
        return None
    return note if outcome.model.backend == _SCRIPTED_BACKEND else f"demo model: {note}"


def _model_label(outcome: ReviewOutcome) -> str:
    if outcome.model is None:
        return "unknown model"
    notice = _notice(outcome)
    return outcome.model.model if notice is None else f"{outcome.model.model}, {notice}"


def _nothing_to_show(status: ReviewStatus) -> bool:
    """The review landed and governance let nothing through (abstained, nothing to add, all rejected)."""
    outcome = status.outcome
    return (
        status.state == "ready"
        and bool(status.review_id)
        and outcome is not None
        and not outcome.failed
        and outcome.decision is not None
        and not outcome.decision.accepted
    )


@dataclass(frozen=True, slots=True)
class AiReview:
    """Turns a hook call's built context into its AI cards, asking the broker within the time left."""

    broker: ReviewBroker
    knowledge: KnowledgeBase
    version: Callable[[str], ReviewVersion]  # service id → prompt, model and knowledge-base versions
    evidence_url: Callable[[str], str]  # evidence token → absolute URL of its evidence page
    # How the pending card names the configured model ("DeepSeek-R1 on SGLang", "the scripted demonstration
    # backend, not a model"): the workers' settings decide it, not a fixed name.
    model_label: str = "the configured model"

    def ticket(self, service_id: str, hook: str, context: ClinicalContext) -> ReviewTicket:
        key = fingerprint(context, self.version(service_id))
        return ReviewTicket(key, service_id, URGENCY.get(hook, "patient-view"), context)

    async def review(
        self,
        service_id: str,
        hook: str,
        built: BuiltContext,
        patient_reference: str | None,
        wait_s: float,
        *,
        ticket: ReviewTicket | None = None,
    ) -> AiAnswer:
        """The AI cards, and whether they are final (the review landed: nothing pending, failed or down).

        `ticket` is `self.ticket(service_id, hook, built.context)` when the caller made it already (off the
        event loop: the fingerprint's cost grows with the chart)."""
        if built.context.demographics.deceased:
            return AiAnswer((), True)
        if ticket is None:
            ticket = self.ticket(service_id, hook, built.context)
        try:
            status = await self.broker.obtain(ticket, wait_s)
            notice_due = _nothing_to_show(status) and await self.broker.claim_notice(status.review_id)
            evidence_url = await self._evidence_url(status, ticket, built, notice_due=notice_due)
        except BrokerUnavailable:
            return AiAnswer((), False, ticket.fingerprint, "unreachable")
        cards = self.render(status, ticket, built, patient_reference, evidence_url, notice_due=notice_due)
        # An answer carrying the once-only notice is not final: repeated as it is (the answer cache), the
        # notice would be shown again; the next call gets the review's lasting answer, without it.
        final = status.state == "ready" and not notice_due
        return AiAnswer(cards, final, ticket.fingerprint, status.state)

    async def _evidence_url(
        self, status: ReviewStatus, ticket: ReviewTicket, built: BuiltContext, *, notice_due: bool = False
    ) -> str | None:
        """The page showing this call's review; none for an answer without AI cards or a review id."""
        decision = status.outcome.decision if status.outcome is not None else None
        if not status.review_id or (decision is not None and not decision.accepted and not notice_due):
            return None
        link = EvidenceLink(
            status.review_id, ticket.service_id, ticket.fingerprint, dict(built.handles.references)
        )
        return self.evidence_url(await self.broker.link_evidence(link))

    def render(
        self,
        status: ReviewStatus,
        ticket: ReviewTicket,
        built: BuiltContext,
        patient_reference: str | None,
        evidence_url: str | None = None,
        *,
        notice_due: bool = False,
    ) -> tuple[Card, ...]:
        outcome = status.outcome
        if status.state == "busy":
            return (self._status_card(ticket.service_id, status, BUSY_SUMMARY, None),)
        if status.state == "pending":
            return (self._status_card(ticket.service_id, status, PENDING_SUMMARY, evidence_url),)
        if outcome is None or outcome.failed or outcome.decision is None:
            return (self._status_card(ticket.service_id, status, UNAVAILABLE_SUMMARY, evidence_url),)
        if not outcome.decision.accepted:
            if not notice_due:
                return ()
            return (self._status_card(ticket.service_id, status, NOTHING_SUMMARY, evidence_url, outcome),)
        return ai_cards(
            outcome.decision.accepted,
            ticket.service_id,
            built.context,
            built.handles,
            self.knowledge,
            _model_label(outcome),
            patient_reference,
            fingerprint=ticket.fingerprint,
            evidence_url=evidence_url,
            notice=_notice(outcome),
        )

    def _status_card(
        self,
        service_id: str,
        status: ReviewStatus,
        summary: str,
        evidence_url: str | None,
        outcome: ReviewOutcome | None = None,
    ) -> Card:
        code: str = status.state
        if summary == PENDING_SUMMARY:
            detail = (
                f"The rule checks on this chart are complete and shown. An AI review by {self.model_label}, "
                "checked by R1 CDS governance before anything is shown, is still running; its suggestions "
                "appear the next time this chart or order is opened, or on the review page."
            )
        elif summary == BUSY_SUMMARY:
            detail = (
                "No AI review of this chart was queued: the review queue is full. The rule checks on this "
                "chart are complete and shown. A review is requested again the next time this chart or "
                "order is opened."
            )
        elif summary == NOTHING_SUMMARY:
            code = NOTHING_CODE
            by = _model_label(outcome) if outcome is not None else self.model_label
            detail = (
                f"The AI review of this chart ({by}) has finished, and R1 CDS governance let none of its "
                "suggestions through: the model abstained, had nothing to add, or every suggestion failed a "
                "check. No AI suggestion is shown rather than an unsupported one; the rule checks are "
                "complete. The review page shows what was considered and why it was dropped."
            )
        else:
            detail = (
                "The AI review of this chart could not be completed (the model server did not answer "
                "or its answers failed). The rule checks are unaffected and complete. No AI suggestion "
                "is shown rather than an unchecked one."
            )
        label = "What the AI review considered" if code == NOTHING_CODE else "AI review status"
        links = (Link(label=label, url=evidence_url, type="absolute"),) if evidence_url else ()
        return Card(
            summary=summary,
            indicator="info",
            source=Source(
                label="R1 CDS AI review",
                topic=Coding(code, REVIEW_SYSTEM, summary),
            ),
            detail=detail,
            links=links,
        )
