"""What clinicians did with the cards: feedback joined to the cards issued, rates, and the HTI-1 export rows.

I/O-free: it reads audit records (plugin.audit) in chain order from any iterable, so the CLI, a test or a
notebook can feed it from the store. The join:

    hook-call records   card uuid → service, kind (the rule id, or "ai"), tenant, hook, clinician, when issued
    ai-run records      AI card uuid → suggestion kind ("create ServiceRequest", "advice", ...)
    feedback records    card uuid → accepted / overridden (with the override reason code)

Rates are counted per card, not per feedback message: the EHR may send the same feedback again (the
store keeps one copy per card, outcome and EHR timestamp, and the audit relay delivers at least once), and
a card shown on ten chart openings is one intervention. A card's latest feedback is its outcome.

    acceptance rate = accepted cards / cards with feedback
    override rate   = overridden cards / cards with feedback
    response rate   = cards with feedback / cards issued

Only interventions are counted: cards a clinician can act on, rule cards and governed AI suggestion cards.
An AI review status card ("AI review in progress", "unavailable", "found nothing it could stand behind",
and any status added later) is not one: shown on every chart opening while a review runs, it would swamp
the counts. The hook-call record names it `ai-status.<code>` (plugin.audit.card_kind, from its topic
system). Records written before that say "ai" for status and suggestion cards alike; there an AI card
counts only when an ai-run record lists it among the suggestions governance accepted, which a status card
never is (a run whose record was lost takes its cards out of the counts with it). Status cards are left
out of the issued counts, the rates and the export; feedback an EHR sends on one is set aside and
reported apart (`status_cards()`: cards shown and feedback events per status code, "unknown" for the
older records), never counted as an acceptance or an override.

Feedback on a card the chain never saw issued (an older chain, another deployment) still counts under its
service, with kind "unknown". With `since`, every record is still read for the join (a card issued last
month and overridden today keeps its rule), but only calls and feedback at or after `since` are counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from plugin.audit import (
    AI_CARD_KIND,
    STATUS_CARD_KIND_PREFIX,
    AiRunRecord,
    AuditRecord,
    CardFeedbackRecord,
    HookCallRecord,
    timestamp_text,
)

__all__ = ["EXPORT_FIELDS", "ExportRow", "FeedbackAnalytics", "RateRow", "StatusCards", "analyse"]

UNKNOWN: Final = "unknown"
EXPORT_FIELDS: Final = (
    "date",
    "intervention",
    "service_id",
    "intervention_kind",
    "ai_suggestion_kind",
    "action_taken",
    "accepted_suggestions",
    "feedback",
    "user",
    "location",
)
Grouping = Literal["service", "rule", "ai-kind"]


@dataclass
class _Card:
    service_id: str
    kind: str = UNKNOWN  # rule id, "ai", or "ai-status.<code>"
    ai_kind: str | None = None
    governed: bool = False  # an ai-run record lists it among the suggestions governance accepted
    tenant: str | None = None
    hook: str | None = None
    user: str | None = None
    first_issued: datetime | None = None
    times_shown: int = 0


@dataclass(frozen=True, slots=True)
class RateRow:
    """One line of the rates table."""

    grouping: Grouping
    key: str
    cards_issued: int
    cards_with_feedback: int
    accepted: int
    overridden: int
    top_override_reasons: tuple[tuple[str, int], ...]

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.cards_with_feedback if self.cards_with_feedback else None

    @property
    def override_rate(self) -> float | None:
        return self.overridden / self.cards_with_feedback if self.cards_with_feedback else None

    @property
    def response_rate(self) -> float | None:
        return self.cards_with_feedback / self.cards_issued if self.cards_issued else None

    def as_dict(self) -> dict[str, object]:
        return {
            "grouping": self.grouping,
            "key": self.key,
            "cards_issued": self.cards_issued,
            "cards_with_feedback": self.cards_with_feedback,
            "accepted": self.accepted,
            "overridden": self.overridden,
            "acceptance_rate": self.acceptance_rate,
            "override_rate": self.override_rate,
            "response_rate": self.response_rate,
            "top_override_reasons": [{"code": c, "count": n} for c, n in self.top_override_reasons],
        }


@dataclass(frozen=True, slots=True)
class StatusCards:
    """AI review status cards of one status code: not interventions, so counted here and nowhere else."""

    code: str  # the status card's topic code ("pending", "failed", "abstained", ...), or "unknown"
    cards_shown: int  # distinct cards shown in the window
    feedback_events: int  # distinct feedback events on them, set aside

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "cards_shown": self.cards_shown, "feedback_events": self.feedback_events}


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One feedback event in the export HTI-1 asks for: intervention, action taken, feedback, user, date,
    location. Location is where the card was shown as far as the service knows: the EHR tenant and hook."""

    date: str  # the EHR's outcome timestamp, UTC ISO 8601
    intervention: str  # card uuid
    service_id: str
    intervention_kind: str  # rule id, "ai", or "unknown"
    ai_suggestion_kind: str | None
    action_taken: Literal["accepted", "overridden"]
    accepted_suggestions: tuple[str, ...]
    feedback: str | None  # the override reason code (system|code), the free text is never kept
    user: str | None
    location: str | None

    def as_dict(self) -> dict[str, object]:
        return {
            "date": self.date,
            "intervention": self.intervention,
            "service_id": self.service_id,
            "intervention_kind": self.intervention_kind,
            "ai_suggestion_kind": self.ai_suggestion_kind,
            "action_taken": self.action_taken,
            "accepted_suggestions": list(self.accepted_suggestions),
            "feedback": self.feedback,
            "user": self.user,
            "location": self.location,
        }


@dataclass
class FeedbackAnalytics:
    """The join, built by `analyse`; read it with `rates()`, `export()` and `status_cards()`."""

    since: datetime | None = None
    cards: dict[str, _Card] = field(default_factory=dict)
    # (card uuid, outcome, EHR timestamp) → the feedback record, first copy kept
    feedback: dict[tuple[str, str, datetime], CardFeedbackRecord] = field(default_factory=dict)
    _seen_calls: set[tuple[str, datetime]] = field(default_factory=set)

    def add(self, record: AuditRecord) -> None:
        if isinstance(record, HookCallRecord):
            self._add_call(record)
        elif isinstance(record, AiRunRecord):
            self._add_run(record)
        elif self.since is None or record.at >= self.since:
            key = (record.card_uuid, record.outcome, record.outcome_timestamp)
            self.feedback.setdefault(key, record)
            self.cards.setdefault(record.card_uuid, _Card(record.service_id))

    def _add_call(self, record: HookCallRecord) -> None:
        call = (record.hook_instance, record.at)
        if call in self._seen_calls:  # relayed twice (at-least-once delivery)
            return
        self._seen_calls.add(call)
        kinds = record.card_kinds if len(record.card_kinds) == len(record.card_uuids) else ()
        for index, uuid in enumerate(record.card_uuids):
            card = self.cards.setdefault(uuid, _Card(record.service_id))
            card.service_id = record.service_id
            if kinds:
                card.kind = kinds[index]
            if self.since is None or record.at >= self.since:
                card.times_shown += 1
            if card.first_issued is None or record.at < card.first_issued:
                card.first_issued = record.at
                card.tenant, card.hook, card.user = record.tenant, record.hook, record.user

    def _add_run(self, record: AiRunRecord) -> None:
        if record.decision is None:
            return
        for accepted in record.decision.accepted:
            card = self.cards.setdefault(accepted.card_uuid, _Card(record.service_id, kind=AI_CARD_KIND))
            card.governed = True
            card.ai_kind = (
                "advice"
                if accepted.action_type == "none"
                else f"{accepted.action_type} {accepted.resource_type}"
            )

    def _status_code(self, uuid: str) -> str | None:
        """The status code of an AI review status card; None for an intervention (or a card never seen)."""
        card = self.cards.get(uuid)
        if card is None:
            return None
        if card.kind.startswith(STATUS_CARD_KIND_PREFIX):
            return card.kind[len(STATUS_CARD_KIND_PREFIX) :]
        if card.kind == AI_CARD_KIND and not card.governed:
            return UNKNOWN  # an older record's "ai": no review vouches for it as a suggestion
        return None

    def _interventions(self) -> Iterator[tuple[str, _Card]]:
        return ((uuid, card) for uuid, card in self.cards.items() if self._status_code(uuid) is None)

    def _intervention_feedback(self) -> Iterator[CardFeedbackRecord]:
        return (record for record in self.feedback.values() if self._status_code(record.card_uuid) is None)

    def _outcomes(self) -> dict[str, CardFeedbackRecord]:
        """Each intervention's latest feedback (by the EHR's timestamp, then by arrival)."""
        latest: dict[str, CardFeedbackRecord] = {}
        for record in self._intervention_feedback():
            held = latest.get(record.card_uuid)
            if held is None or (record.outcome_timestamp, record.at) >= (held.outcome_timestamp, held.at):
                latest[record.card_uuid] = record
        return latest

    def rates(self) -> list[RateRow]:
        """Rows per service, per rule and per AI suggestion kind, each group sorted by key."""
        outcomes = self._outcomes()
        groups: dict[tuple[Grouping, str], list[str]] = {}
        for uuid, card in self._interventions():
            groups.setdefault(("service", card.service_id), []).append(uuid)
            if card.kind.startswith("rule."):
                groups.setdefault(("rule", card.kind), []).append(uuid)
            elif card.kind == AI_CARD_KIND or card.ai_kind is not None:
                groups.setdefault(("ai-kind", card.ai_kind or UNKNOWN), []).append(uuid)
        order: dict[Grouping, int] = {"service": 0, "rule": 1, "ai-kind": 2}
        rows = []
        for (grouping, key), uuids in sorted(
            groups.items(), key=lambda item: (order[item[0][0]], item[0][1])
        ):
            issued = sum(1 for u in uuids if self.cards[u].times_shown > 0)
            answered = [outcomes[u] for u in uuids if u in outcomes]
            reasons = Counter(_reason(r) for r in answered if r.outcome == "overridden" and r.override_reason)
            rows.append(
                RateRow(
                    grouping,
                    key,
                    cards_issued=issued,
                    cards_with_feedback=len(answered),
                    accepted=sum(1 for r in answered if r.outcome == "accepted"),
                    overridden=sum(1 for r in answered if r.outcome == "overridden"),
                    top_override_reasons=tuple(
                        (code, n) for code, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
                    ),
                )
            )
        return rows

    def status_cards(self) -> list[StatusCards]:
        """AI review status cards shown in the window and the feedback set aside on them, by code."""
        shown: Counter[str] = Counter()
        fed_back: Counter[str] = Counter()
        for uuid, card in self.cards.items():
            code = self._status_code(uuid)
            if code is not None and card.times_shown > 0:
                shown[code] += 1
        for record in self.feedback.values():
            code = self._status_code(record.card_uuid)
            if code is not None:
                fed_back[code] += 1
        return [
            StatusCards(code, shown[code], fed_back[code]) for code in sorted(shown.keys() | fed_back.keys())
        ]

    def export(self) -> Iterator[ExportRow]:
        """Every distinct feedback event on an intervention, oldest first by the EHR's timestamp."""
        events = sorted(self._intervention_feedback(), key=lambda r: (r.outcome_timestamp, r.at, r.card_uuid))
        for record in events:
            card = self.cards.get(record.card_uuid, _Card(record.service_id))
            tenant = record.tenant or card.tenant
            location = " / ".join(part for part in (tenant, card.hook) if part) or None
            yield ExportRow(
                date=timestamp_text(record.outcome_timestamp),
                intervention=record.card_uuid,
                service_id=record.service_id,
                intervention_kind=card.kind,
                ai_suggestion_kind=card.ai_kind,
                action_taken=record.outcome,
                accepted_suggestions=record.accepted_suggestions,
                feedback=_reason(record) if record.override_reason else None,
                user=record.user or card.user,
                location=location,
            )


def _reason(record: CardFeedbackRecord) -> str:
    reason = record.override_reason
    if reason is None:
        return ""
    return f"{reason.system}|{reason.code}" if reason.system else reason.code


def analyse(records: Iterable[AuditRecord], since: datetime | None = None) -> FeedbackAnalytics:
    analytics = FeedbackAnalytics(since)
    for record in records:
        analytics.add(record)
    return analytics
