"""The feedback port: what a clinician did with a card, as the core records it, and an in-memory fake."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, Protocol

from plugin.cards import Coding

Outcome = Literal["accepted", "overridden"]


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    service_id: str
    card_uuid: str
    outcome: Outcome
    outcome_timestamp: str
    accepted_suggestions: tuple[str, ...] = ()
    override_reason: Coding | None = None
    user_comment: str | None = None
    tenant: str | None = None

    @property
    def identity(self) -> str:
        """Same feedback, same identity: EHRs retry, and a retry must not count twice."""
        reason = self.override_reason
        parts = (
            self.tenant or "",
            self.service_id,
            self.card_uuid,
            self.outcome,
            self.outcome_timestamp,
            ",".join(sorted(self.accepted_suggestions)),
            f"{reason.system}|{reason.code}" if reason else "",
        )
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class FeedbackSink(Protocol):
    async def record(self, items: tuple[FeedbackRecord, ...]) -> int:
        """Store the items not seen before; return how many were new. Raise if they cannot be stored."""
        ...


class MemoryFeedbackSink:
    """Keeps feedback in process; for unit tests and single-process demos."""

    def __init__(self) -> None:
        self.records: dict[str, FeedbackRecord] = {}

    async def record(self, items: tuple[FeedbackRecord, ...]) -> int:
        new = 0
        for item in items:
            if item.identity not in self.records:
                self.records[item.identity] = item
                new += 1
        return new
