"""`r1cds rules-report`: the rule cards each shipped service gives for each patient Bundle, in process."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cds_hooks import render
from cds_hooks.fire import FireError, build_context, build_prefetch, load_bundle
from plugin.fhir_search import FhirStore
from plugin.services import HookCall, ServiceRegistry

BASE_URL = "https://bundle.r1cds-report.invalid/fhir"


@dataclass(frozen=True, slots=True)
class ReportRow:
    patient: str  # the bundle's file stem
    service: str
    hook: str
    indicator: str
    rule: str
    summary: str


def report(
    bundles: Iterable[Path], registry: ServiceRegistry, draft_orders: Mapping[str, Any] | None = None
) -> list[ReportRow]:
    """Every card of every service and hook, exactly as the hook route would render it."""
    rows: list[ReportRow] = []
    for path in sorted(bundles):
        store = FhirStore.from_bundles([load_bundle(path)])
        patients = store.search("Patient", [])
        if len(patients) != 1:
            continue
        patient_id = str(patients[0]["id"])
        for service in registry:
            declaration = service.declaration
            for hook in declaration.hooks:
                try:
                    context = build_context(
                        hook, store, patient_id, "Practitioner/r1cds-report", None, draft_orders
                    )
                except FireError:
                    continue  # an order hook without draft orders, or an encounter hook without encounters
                prefetch = build_prefetch(declaration.prefetch, context, store, BASE_URL)
                call = HookCall(declaration.id, hook, str(uuid.uuid4()), context, prefetch)
                for card in render.response(service.evaluate(call)).cards:
                    topic = card.source.topic.code if card.source.topic else "-"
                    rows.append(
                        ReportRow(path.stem, declaration.id, hook, card.indicator, topic, card.summary)
                    )
    return rows


def format_rows(rows: list[ReportRow]) -> str:
    lines = [f"{'patient':<24} {'service':<20} {'hook':<20} {'indicator':<9} {'rule':<36} summary"]
    lines += [
        f"{r.patient[:24]:<24} {r.service:<20} {r.hook:<20} {r.indicator:<9} {r.rule:<36} {r.summary}"
        for r in rows
    ]
    lines.append(f"{len(rows)} cards")
    return "\n".join(lines)
