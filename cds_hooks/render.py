"""Maps the core's cards and declarations onto CDS Hooks wire models (empty collections become absent)."""

from __future__ import annotations

import uuid

from cds_hooks import protocol as wire
from plugin import cards as core
from plugin.services import ServiceDeclaration


def _coding(coding: core.Coding) -> wire.Coding:
    return wire.Coding(code=coding.code, system=coding.system, display=coding.display)


def _action(action: core.Action) -> wire.Action:
    return wire.Action(
        type=action.type,
        description=action.description,
        resource=dict(action.resource) if action.resource is not None else None,
        resource_id=action.resource_id,
    )


def _suggestion(suggestion: core.Suggestion) -> wire.Suggestion:
    return wire.Suggestion(
        label=suggestion.label,
        # Feedback names accepted suggestions by uuid, so every suggestion gets one.
        uuid=suggestion.uuid or str(uuid.uuid4()),
        is_recommended=suggestion.is_recommended,
        actions=[_action(a) for a in suggestion.actions] or None,
    )


def _link(link: core.Link) -> wire.Link:
    return wire.Link(
        label=link.label,
        url=link.url,
        type=link.type,
        app_context=link.app_context,
        autolaunchable=link.autolaunchable,
    )


def card(card: core.Card) -> wire.Card:
    source = card.source
    return wire.Card(
        # Feedback names cards by uuid, so every card gets one even when the core left it open.
        uuid=card.uuid or str(uuid.uuid4()),
        summary=card.summary,
        indicator=card.indicator,
        detail=card.detail,
        source=wire.Source(
            label=source.label,
            url=source.url,
            icon=source.icon,
            topic=_coding(source.topic) if source.topic else None,
        ),
        suggestions=[_suggestion(s) for s in card.suggestions] or None,
        selection_behavior=card.selection_behavior,
        override_reasons=[
            wire.OverrideReason(code=r.code, system=r.system, display=r.display or r.code)
            for r in card.override_reasons
        ]
        or None,
        links=[_link(link) for link in card.links] or None,
    )


def response(result: core.ServiceResult) -> wire.HookResponse:
    return wire.HookResponse(
        cards=[card(c) for c in result.cards],
        system_actions=[_action(a) for a in result.system_actions] or None,
    )


def service_definitions(declaration: ServiceDeclaration) -> list[wire.ServiceDefinition]:
    """One discovery entry per hook: the spec's way for one service id to answer several hooks."""
    return [
        wire.ServiceDefinition(
            hook=hook,
            id=declaration.id,
            title=declaration.title,
            description=declaration.description,
            prefetch=dict(declaration.prefetch) or None,
            usage_requirements=declaration.usage_requirements,
        )
        for hook in declaration.hooks
    ]
