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


AI_TOPIC_SYSTEM = "urn:r1cds:ai-review"  # plugin.ai_cards.AI_SYSTEM: cards whose text a model wrote


def card(card: core.Card, about_url: str | None = None) -> wire.Card:
    """The wire card; with `about_url`, source.url opens the published model card (HTI-1 source attributes)."""
    source = card.source
    url = source.url
    if about_url is not None:
        is_ai = source.topic is not None and source.topic.system == AI_TOPIC_SYSTEM
        url = f"{about_url}#model" if is_ai else about_url
    return wire.Card(
        # Feedback names cards by uuid, so every card gets one even when the core left it open.
        uuid=card.uuid or str(uuid.uuid4()),
        summary=card.summary,
        indicator=card.indicator,
        detail=card.detail,
        source=wire.Source(
            label=source.label,
            url=url,
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


def response(result: core.ServiceResult, about_url: str | None = None) -> wire.HookResponse:
    return wire.HookResponse(
        cards=[card(c, about_url) for c in result.cards],
        system_actions=[_action(a) for a in result.system_actions] or None,
    )


def service_definitions(
    declaration: ServiceDeclaration, about_url: str | None = None
) -> list[wire.ServiceDefinition]:
    """One discovery entry per hook: the spec's way for one service id to answer several hooks.

    Discovery has no link field; the model card's address goes at the end of the description.
    """
    description = declaration.description
    if about_url is not None:
        description = f"{description} Model card and source attributes: {about_url}"
    return [
        wire.ServiceDefinition(
            hook=hook,
            id=declaration.id,
            title=declaration.title,
            description=description,
            prefetch=dict(declaration.prefetch) or None,
            usage_requirements=declaration.usage_requirements,
        )
        for hook in declaration.hooks
    ]
