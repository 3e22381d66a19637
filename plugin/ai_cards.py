"""Turns accepted, governed AI suggestions into CDS cards whose detail shows their basis (FDA CDS criterion 4)."""

# Card rules:
# - Indicator is the governed severity, info or warning; critical belongs to the deterministic rules.
# - Detail, in order: the recommendation; the patient data used (each cited handle described as the rule
#   cards describe it, never a bare handle where a description exists); numbered evidence linked to the
#   knowledge base's own URLs (the model never supplies one); the rationale in plain language (the
#   suggestion's rationale, never the reasoning); confidence as sample agreement k/n; limitations.
# - A suggestion carries the governance-validated action only when the EHR can apply it exactly: create
#   with the validated resource (its subject bound to the patient), update with that resource under the
#   id of the target, delete by resourceId; an update or delete whose target does not resolve to a literal
#   Type/id of the same type is shown as advice without an action.
# - Every resource a card proposes carries the AIAST security label in meta.security (HL7 AI Transparency
#   on FHIR: a resource whose content an AI asserted), so the EHR that applies it keeps that mark.
# - The card uuid is a uuid5 over the service, the suggestion's summary and action, and its cited ids,
#   so the same suggestion for the same chart has the same uuid and feedback can be joined to it.

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from plugin.cards import Action, Card, Coding, Link, Source, Suggestion
from plugin.context.model import ClinicalContext, HandleMap
from plugin.governance import GovernedSuggestion
from plugin.governance.govern import cluster_key
from plugin.knowledge import KnowledgeBase
from plugin.rules.cards import OVERRIDE_REASONS, describe

__all__ = [
    "AI_ASSERTED",
    "AI_SYSTEM",
    "CARD_NAMESPACE",
    "OBSERVATION_VALUE_SYSTEM",
    "ai_asserted",
    "ai_card",
    "ai_cards",
    "card_uuid",
]

AI_SYSTEM: Final = "urn:r1cds:ai-review"
# HL7 v3 ObservationValue AIAST, "Artificial Intelligence asserted": the security label that AI Transparency
# on FHIR (1.0.0-ballot, value set ProvenanceVS) puts in meta.security of content an AI asserted.
OBSERVATION_VALUE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
AI_ASSERTED: Final[Mapping[str, str]] = MappingProxyType(
    {"system": OBSERVATION_VALUE_SYSTEM, "code": "AIAST", "display": "Artificial Intelligence asserted"}
)
CARD_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:r1cds:ai-card")
_LITERAL_REFERENCE: Final = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})")


def card_uuid(service_id: str, governed: GovernedSuggestion, fingerprint: str | None = None) -> str:
    """Stable for the same service, suggestion and citations (and review fingerprint, when given)."""
    suggestion = governed.suggestion
    basis = [
        service_id,
        fingerprint or "",
        suggestion.summary,
        list(cluster_key(suggestion)),
        sorted(governed.patient_handles),
        sorted(governed.knowledge_ids),
    ]
    return str(uuid.uuid5(CARD_NAMESPACE, json.dumps(basis, ensure_ascii=False, separators=(",", ":"))))


def ai_asserted(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a FHIR resource with AIAST in meta.security, added once; the resource's other labels kept.

    For any resource an AI suggestion proposes, wherever it is put on a card."""
    labelled = copy.deepcopy(dict(resource))
    meta = labelled.get("meta")
    meta = dict(meta) if isinstance(meta, Mapping) else {}
    found = meta.get("security")
    security = list(found) if isinstance(found, list) else []
    if not any(
        isinstance(label, Mapping)
        and label.get("system") == AI_ASSERTED["system"]
        and label.get("code") == AI_ASSERTED["code"]
        for label in security
    ):
        security.append(dict(AI_ASSERTED))
    meta["security"] = security
    labelled["meta"] = meta
    return labelled


def _validated(resource: Mapping[str, Any]) -> dict[str, Any] | None:
    # Imported on first use, as governance does: the fhir.resources modules are large.
    from fhir.resources.R4B.medicationrequest import MedicationRequest
    from fhir.resources.R4B.servicerequest import ServiceRequest
    from pydantic import ValidationError

    model = MedicationRequest if resource.get("resourceType") == "MedicationRequest" else ServiceRequest
    try:
        model.model_validate(dict(resource))
    except ValidationError:
        return None  # a card must never carry an action the EHR cannot apply
    return dict(resource)


def _bound(resource: Mapping[str, Any], patient_reference: str | None) -> dict[str, Any]:
    bound = copy.deepcopy(dict(resource))
    subject = bound.get("subject")
    if patient_reference is not None and not (isinstance(subject, dict) and subject.get("reference")):
        bound["subject"] = {"reference": patient_reference}
    return bound


def _action(
    governed: GovernedSuggestion,
    handles: HandleMap,
    patient_reference: str | None,
    label: str,
) -> Action | None:
    proposed = governed.suggestion.action
    if proposed.type == "none":
        return None
    if proposed.type == "create":
        if governed.resource is None:
            return None
        resource = _validated(ai_asserted(_bound(governed.resource, patient_reference)))
        return None if resource is None else Action("create", label, resource=resource)
    reference = handles.resolve(proposed.target) if proposed.target is not None else None
    match = _LITERAL_REFERENCE.fullmatch(reference) if reference is not None else None
    if match is None or match.group(1) != proposed.resource_type:
        return None  # an order we cannot name exactly cannot be changed or withdrawn safely
    if proposed.type == "delete":
        return Action("delete", label, resource_id=reference)
    if governed.resource is None:
        return None
    resource = _validated(ai_asserted({**_bound(governed.resource, patient_reference), "id": match.group(2)}))
    return None if resource is None else Action("update", label, resource=resource, resource_id=reference)


def _detail(
    governed: GovernedSuggestion,
    context: ClinicalContext,
    knowledge: KnowledgeBase,
    model_id: str,
    described: Mapping[str, str],
    notice: str | None = None,
) -> str:
    suggestion = governed.suggestion
    entries = [e for e in (knowledge.get(i) for i in governed.knowledge_ids) if e is not None]
    inputs = "\n".join(f"- {described.get(h, h)}" for h in governed.patient_handles) or "- (no patient data)"
    evidence = "\n".join(
        f"{n}. [{e.title}]({e.source.url}) — {e.source.organisation}, {e.source.document} ({e.source.version}). "
        f"{e.statement}"
        for n, e in enumerate(entries, start=1)
    )
    k, n = governed.agreement
    # A demo model's or the scripted backend's own words about what it is come first, before the advice.
    heading = f"**{notice[:1].upper()}{notice[1:]}.**\n\n" if notice else ""
    return (
        f"{heading}{suggestion.summary}\n\n**Patient data used**\n{inputs}\n\n**Evidence**\n{evidence}\n\n"
        f"**Rationale**\n{suggestion.rationale}\n\n"
        f"**Confidence:** {k} of {n} independent model samples proposed this "
        f"(the model rated its own confidence {suggestion.confidence}).\n\n"
        f"**Limitations:** AI-generated by {model_id} from a de-identified summary of the chart, then checked "
        "by R1 CDS governance (citations, patient data, safety rules, order validity, agreement across "
        f"samples) against knowledge base {knowledge.version}. It is not a substitute for clinical "
        "judgement; verify against the full chart."
    )


def ai_card(
    governed: GovernedSuggestion,
    service_id: str,
    context: ClinicalContext,
    handles: HandleMap,
    knowledge: KnowledgeBase,
    model_id: str,
    patient_reference: str | None = None,
    *,
    fingerprint: str | None = None,
    described: Mapping[str, str] | None = None,
    evidence_url: str | None = None,
    notice: str | None = None,
) -> Card:
    """One card for one accepted suggestion; `described` is describe(context), passed in for several."""
    described = described if described is not None else describe(context)
    suggestion = governed.suggestion
    identifier = card_uuid(service_id, governed, fingerprint)
    action = _action(governed, handles, patient_reference, suggestion.summary)
    suggestions = (
        (
            Suggestion(
                label=suggestion.summary,
                uuid=str(uuid.uuid5(CARD_NAMESPACE, f"{identifier}/suggestion")),
                actions=(action,),
            ),
        )
        if action is not None
        else ()
    )
    entries = [e for e in (knowledge.get(i) for i in governed.knowledge_ids) if e is not None]
    links = tuple(
        Link(label=f"Source: {e.source.document}", url=e.source.url, type="absolute") for e in entries[:2]
    )
    if evidence_url is not None:
        # The page with everything this card stands on: inputs, evidence, governance, model and prompt.
        links += (
            Link(
                label="Evidence and governance review",
                url=f"{evidence_url}#card-{identifier}",
                type="absolute",
            ),
        )
    return Card(
        summary=suggestion.summary,
        # Governance only ever gives info or warning; the guard keeps a card from saying more if it changed.
        indicator="warning" if governed.severity == "warning" else "info",
        source=Source(
            label=f"R1 CDS AI review ({model_id})",
            url=entries[0].source.url if entries else None,
            topic=Coding(service_id, AI_SYSTEM, f"AI review by {model_id}"),
        ),
        uuid=identifier,
        detail=_detail(governed, context, knowledge, model_id, described, notice),
        suggestions=suggestions,
        selection_behavior="at-most-one" if suggestions else None,
        override_reasons=OVERRIDE_REASONS,
        links=links,
    )


def ai_cards(
    accepted: tuple[GovernedSuggestion, ...],
    service_id: str,
    context: ClinicalContext,
    handles: HandleMap,
    knowledge: KnowledgeBase,
    model_id: str,
    patient_reference: str | None = None,
    *,
    fingerprint: str | None = None,
    evidence_url: str | None = None,
    notice: str | None = None,
) -> tuple[Card, ...]:
    """Cards for a decision's accepted suggestions, in the decision's order; `notice` heads each detail."""
    described = describe(context)
    return tuple(
        ai_card(
            g,
            service_id,
            context,
            handles,
            knowledge,
            model_id,
            patient_reference,
            fingerprint=fingerprint,
            described=described,
            evidence_url=evidence_url,
            notice=notice,
        )
        for g in accepted
    )
