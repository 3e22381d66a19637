"""Turns rule findings into CDS cards whose detail shows their basis: patient data, evidence, rule."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final

from fhir.resources.R4B.servicerequest import ServiceRequest

from plugin.cards import Action, Card, Coding, Link, Source, Suggestion
from plugin.context.model import ClinicalContext, Code, Dosage, HandleMap
from plugin.knowledge import KnowledgeBase
from plugin.rules.model import Finding, LabOrder
from plugin.rules.override_reasons import GENERIC_REASONS, OVERRIDE_SYSTEM, override_reasons

__all__ = [
    "OVERRIDE_REASONS",
    "OVERRIDE_SYSTEM",
    "RULE_SYSTEM",
    "describe",
    "facts_of",
    "finding_card",
    "lab_order",
    "rule_card_uuid",
]

RULE_SYSTEM = "urn:r1cds:rule"
# The generic reasons: AI cards offer them, and so does a rule card no entry of override_reasons.json covers.
OVERRIDE_REASONS = GENERIC_REASONS
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


def _code(code: Code) -> str:
    return f"{code.system}|{code.code}"


def _dosage(dosage: Dosage) -> str:
    return f"{dosage.dose}|{dosage.route}|{dosage.frequency}|{dosage.as_needed}"


def facts_of(context: ClinicalContext) -> dict[str, str]:
    """Handle → the values of that fact a rule can decide on, without relative times (rule_card_uuid).

    Times relative to the hook (days ago, ages) are left out: they change every day while the fact stays
    the same, and a card about the same fact must keep its uuid from day to day.
    """
    facts: dict[str, str] = {}
    for m in context.medications:
        facts[m.handle] = f"med|{_code(m.code)}|{m.status}|{m.strength}|{_dosage(m.dosage)}|{m.source}"
    for d in context.draft_orders:
        facts[d.handle] = (
            f"draft|{d.resource_type}|{_code(d.code)}|{d.status}|{d.intent}|{d.strength}|{_dosage(d.dosage)}"
        )
    for a in context.allergies:
        facts[a.handle] = (
            f"allergy|{_code(a.substance)}|{a.clinical_status}|{a.criticality}|{a.kind}|"
            f"{','.join(a.category)}|{','.join(a.reactions)}"
        )
    for p in context.problems:
        facts[p.handle] = f"problem|{_code(p.code)}|{p.clinical_status}"
    for series in context.labs:
        for r in series.measurements:
            facts.setdefault(r.handle, f"lab|{r.analyte}|{r.value!r}|{r.unit}|{r.interpretation}")
    for i in context.immunizations:
        facts[i.handle] = f"immunization|{_code(i.vaccine)}"
    for proc in context.procedures:
        facts[proc.handle] = f"procedure|{_code(proc.code)}"
    return facts


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
    finding: Finding,
    handles: HandleMap,
    patient_id: str | None,
    knowledge_version: str,
    facts: Mapping[str, str] | None = None,
) -> str:
    """Stable for the same rule, patient, facts and knowledge base, so feedback can be joined to it.

    The same finding about the same chart keeps its uuid from call to call (as AI cards do); another
    patient, other resources, another value of a fact it rests on, another severity or a new
    knowledge-base version give another. `facts` is `facts_of(context)`: the references alone miss a value
    corrected in place (an amended Observation, a dose or allergy criticality edited in the same resource)
    and the summary shows only some values, so the uuid also hashes each input's values. The uuid is the
    "same finding, same facts" key of override suppression (cds_hooks.suppression): a card whose facts
    changed is a new card and is shown again. Feedback carries only the uuid, so the facts must be in it.
    """
    facts = facts or {}
    cited = [(handles.resolve(h) or h, facts.get(h, "")) for h in (*finding.inputs, *finding.proposed)]
    references = sorted(reference for reference, _ in cited)
    values = sorted(f"{reference}={value}" for reference, value in cited)
    basis = [
        finding.rule_id,
        patient_id or "",
        references,
        finding.summary,
        knowledge_version,
        finding.severity,
        values,
    ]
    return str(uuid.uuid5(RULE_CARD_NAMESPACE, json.dumps(basis, separators=(",", ":"))))


def finding_card(
    finding: Finding,
    context: ClinicalContext,
    handles: HandleMap,
    knowledge: KnowledgeBase,
    patient_id: str | None,
    described: dict[str, str] | None = None,
    facts: Mapping[str, str] | None = None,
) -> Card:
    """`described` is `describe(context)` and `facts` is `facts_of(context)`, passed in when one call
    renders several cards."""
    described = described if described is not None else describe(context)
    facts = facts if facts is not None else facts_of(context)
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
        uuid=rule_card_uuid(finding, handles, patient_id, knowledge.version, facts),
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
        override_reasons=override_reasons().for_rule(finding.rule_id),
        links=links,
    )
