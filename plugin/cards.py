"""Transport-neutral CDS cards as the core builds them; the HTTP edge maps them onto the wire."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Indicator = Literal["info", "warning", "critical"]
SelectionBehavior = Literal["at-most-one", "any"]
ActionType = Literal["create", "update", "delete"]
LinkType = Literal["absolute", "smart"]


@dataclass(frozen=True, slots=True)
class Coding:
    code: str
    system: str | None = None
    display: str | None = None


@dataclass(frozen=True, slots=True)
class Source:
    label: str
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None


@dataclass(frozen=True, slots=True)
class Action:
    type: ActionType
    description: str
    resource: Mapping[str, Any] | None = None
    resource_id: str | None = None


@dataclass(frozen=True, slots=True)
class Suggestion:
    label: str
    uuid: str | None = None
    is_recommended: bool | None = None
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str
    type: LinkType
    app_context: str | None = None
    autolaunchable: bool | None = None


@dataclass(frozen=True, slots=True)
class Card:
    summary: str
    indicator: Indicator
    source: Source
    uuid: str | None = None
    detail: str | None = None
    suggestions: tuple[Suggestion, ...] = ()
    selection_behavior: SelectionBehavior | None = None
    override_reasons: tuple[Coding, ...] = ()
    links: tuple[Link, ...] = ()


INDICATOR_RANK: dict[Indicator, int] = {"critical": 0, "warning": 1, "info": 2}


def by_severity(cards: tuple[Card, ...]) -> tuple[Card, ...]:
    """Most severe first (critical, warning, info); cards of one severity keep their order (sorted is stable).

    An EHR may show only the first few cards, so a critical AI card must not trail a list of info rule cards.
    """
    return tuple(sorted(cards, key=lambda card: INDICATOR_RANK[card.indicator]))


@dataclass(frozen=True, slots=True)
class ServiceResult:
    """What one service answers for one hook call."""

    cards: tuple[Card, ...] = ()
    system_actions: tuple[Action, ...] = field(default=())
    # True when the same call would get the same answer until the day changes: no review is pending and
    # nothing failed or was unreachable. Only a final answer may be reused for an identical call.
    final: bool = True
    # The AI review behind this answer, for the audit trail: its fingerprint, and its state as the answer
    # saw it ("ready", "pending", "busy", "failed", "unreachable"); both None when no AI review applied.
    fingerprint: str | None = None
    ai_state: str | None = None
