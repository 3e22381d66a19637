"""Turns rule findings into CDS cards whose detail shows their basis: patient data, evidence, rule."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Final

from fhir.resources.R4B.servicerequest import ServiceRequest

from plugin.cards import Action, Card, Coding, Link, Source, Suggestion
from plugin.context.model import ClinicalContext, HandleMap
from plugin.knowledge import KnowledgeBase
from plugin.rules.model import Finding, LabOrder

RULE_SYSTEM = "urn:r1cds:rule"
OVERRIDE_SYSTEM = "urn:r1cds:override-reason"
OVERRIDE_REASONS = (
    Coding("benefit-outweighs-risk", OVERRIDE_SYSTEM, "Benefit outweighs the risk for this patient"),
    Coding("already-managed", OVERRIDE_SYSTEM, "Already managed or being monitored"),
    Coding("not-applicable", OVERRIDE_SYSTEM, "Does not apply to this patient"),
    Coding("chart-incorrect", OVERRIDE_SYSTEM, "The chart data behind this card is wrong"),
)
_LITERAL_REFERENCE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


def _ago(days: int | None) -> str:
    if days is None:
        return "date unknown"
    return "today" if days == 0 else f"{days} days ago" if days > 0 else f"in {-days} days"


def describe(context: ClinicalContext) -> dict[str, str]:
    """Handle → what a clinician should read for it (the card never shows handles alone)."""
    text: dict[str, str] = {}
    for m in context.medications:
        text[m.handle] = (
            f"{m.code.display} — current medication ({m.status}), since {_ago(m.authored_days_ago)}"
        )
    for d in context.draft_orders:
        text[d.handle] = f"{d.code.display} — draft order ({d.status})"
    for a in context.allergies:
        reactions = f"; reactions: {', '.join(a.reactions)}" if a.reactions else ""
        text[a.handle] = (
            f"Allergy: {a.substance.display} (criticality {a.criticality or 'unknown'}{reactions})"
        )
    for p in context.problems:
        text[p.handle] = f"{p.code.display} — {p.clinical_status} problem, onset {_ago(p.onset_days_ago)}"
    for series in context.labs:
        for reading in series.measurements:
            unit = f" {reading.unit}" if reading.unit else ""
            text.setdefault(
                reading.handle, f"{series.label} {reading.value:g}{unit} — {_ago(reading.days_ago)}"
            )
    for i in context.immunizations:
        text[i.handle] = f"{i.vaccine.display} — last given {_ago(i.days_ago)}"
    for handle in context.pregnancy.evidence:
        text.setdefault(handle, "Pregnancy recorded")
    return text


def lab_order(order: LabOrder, patient_id: str) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "code": {"coding": [{"system": "http://loinc.org", "code": order.loinc, "display": order.display}]},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    ServiceRequest.model_validate(resource)  # a card must never carry an action the EHR cannot apply
    return resource


def _suggestions(
    finding: Finding, handles: HandleMap, described: dict[str, str], patient_id: str | None
) -> tuple[Suggestion, ...]:
    suggestions: list[Suggestion] = []
    for handle in finding.proposed:
        reference = handles.resolve(handle)
        if reference is None or not _LITERAL_REFERENCE.fullmatch(reference):
            continue  # an order we cannot name exactly cannot be deleted safely
        name = described.get(handle, "the draft order").split(" — ")[0]
        suggestions.append(
            Suggestion(
                label=f"Remove the draft order for {name}",
                actions=(Action("delete", f"Remove the draft order for {name}", resource_id=reference),),
            )
        )
    if finding.order_lab is not None and patient_id:
        order = finding.order_lab
        suggestions.append(
            Suggestion(
                label=f"Order {order.display.split(' in ')[0].split(' [')[0]}",
                actions=(Action("create", f"Order {order.display}", resource=lab_order(order, patient_id)),),
            )
        )
    return tuple(suggestions)


RULE_CARD_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:r1cds:rule-card")


def rule_card_uuid(
    finding: Finding, handles: HandleMap, patient_id: str | None, knowledge_version: str
) -> str:
    """Stable for the same rule, patient, resources and knowledge base, so feedback can be joined to it.

    The same finding about the same chart keeps its uuid from call to call (as AI cards do); another
    patient, other resources or a new knowledge-base version give another.
    """
    references = sorted(handles.resolve(h) or h for h in (*finding.inputs, *finding.proposed))
    basis = [finding.rule_id, patient_id or "", references, finding.summary, knowledge_version]
    return str(uuid.uuid5(RULE_CARD_NAMESPACE, json.dumps(basis, separators=(",", ":"))))


def finding_card(
    finding: Finding,
    context: ClinicalContext,
    handles: HandleMap,
    knowledge: KnowledgeBase,
    patient_id: str | None,
    described: dict[str, str] | None = None,
) -> Card:
    """`described` is `describe(context)`, passed in when one call renders several cards."""
    described = described if described is not None else describe(context)
    entries = [e for e in (knowledge.get(i) for i in finding.evidence) if e is not None]
    inputs = "\n".join(f"- {described.get(h, h)}" for h in finding.inputs) or "- (no patient data)"
    evidence = "\n".join(
        f"{n}. [{e.title}]({e.source.url}) — {e.source.organisation}, {e.source.document} ({e.source.version}). "
        f"{e.statement}"
        for n, e in enumerate(entries, start=1)
    )
    detail = (
        f"{finding.explanation}\n\n**Patient data used**\n{inputs}\n\n**Evidence**\n{evidence}\n\n"
        f"**Basis:** deterministic rule `{finding.rule_id}`, knowledge base {knowledge.version}. "
        "Not an AI suggestion; verify against the full chart."
    )
    suggestions = _suggestions(finding, handles, described, patient_id)
    links = tuple(
        Link(label=f"Source: {e.source.document}", url=e.source.url, type="absolute") for e in entries[:2]
    )
    return Card(
        summary=finding.summary,
        indicator=finding.severity,
        uuid=rule_card_uuid(finding, handles, patient_id, knowledge.version),
        source=Source(
            label="R1 CDS safety rules",
            url=entries[0].source.url if entries else None,
            topic=Coding(
                finding.rule_id, RULE_SYSTEM, finding.rule_id.removeprefix("rule.").replace("-", " ")
            ),
        ),
        detail=detail,
        suggestions=suggestions,
        selection_behavior="at-most-one" if suggestions else None,
        override_reasons=OVERRIDE_REASONS,
        links=links,
    )
