"""Test-only CDS services: one that emits every card feature, one that echoes what prefetch resolved."""

from __future__ import annotations

from dataclasses import dataclass, field

from plugin.cards import Action, Card, Coding, Link, ServiceResult, Source, Suggestion
from plugin.catalog import CHART_PREFETCH
from plugin.services import HookCall, ServiceDeclaration, ServiceRegistry

SHOWCASE = ServiceDeclaration(
    id="showcase",
    hooks=("patient-view", "order-select", "order-sign"),
    title="Every card feature",
    description="Emits cards using every CDS Hooks 2.0 card member, for edge tests.",
    prefetch={"patient": "Patient/{{context.patientId}}"},
    required_prefetch=frozenset({"patient"}),
    usage_requirements="Test deployments only.",
)
PREFETCH_PROBE = ServiceDeclaration(
    id="prefetch-probe",
    hooks=("patient-view",),
    title="Prefetch probe",
    description="Reports, as card text, which prefetch keys resolved to data.",
    prefetch=CHART_PREFETCH,
    required_prefetch=frozenset({"patient"}),
)


def showcase_cards(call: HookCall) -> ServiceResult:
    patient = call.prefetch.get("patient") or {}
    source = Source(
        label="R1 CDS test service",
        url="https://example.org/r1cds/model-card",
        icon="https://example.org/icon.png",
        topic=Coding(
            code="drug-interaction", system="https://example.org/topics", display="Drug interaction"
        ),
    )
    draft = {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "proposal"}
    return ServiceResult(
        cards=(
            Card(
                summary=f"Patient {patient.get('id', '?')} seen via {call.hook}",
                indicator="warning",
                source=source,
                uuid="11111111-1111-4111-8111-111111111111",
                detail="**Markdown** detail with a [reference](https://example.org).",
                suggestions=(
                    Suggestion(
                        label="Replace the order",
                        uuid="22222222-2222-4222-8222-222222222222",
                        is_recommended=True,
                        actions=(
                            Action(
                                type="delete",
                                description="Remove the draft",
                                resource_id="MedicationRequest/d0",
                            ),
                            Action(type="create", description="Order the alternative", resource=draft),
                            Action(
                                type="update",
                                description="Adjust the draft",
                                resource={**draft, "status": "active"},
                            ),
                        ),
                    ),
                    Suggestion(label="Keep the order", is_recommended=False),
                ),
                selection_behavior="at-most-one",
                override_reasons=(
                    Coding(
                        code="patient-aware",
                        system="https://example.org/override",
                        display="Patient is aware",
                    ),
                ),
                links=(
                    Link(label="Evidence", url="https://example.org/evidence", type="absolute"),
                    Link(
                        label="SMART app",
                        url="https://example.org/launch",
                        type="smart",
                        app_context='{"review":"1"}',
                        autolaunchable=False,
                    ),
                ),
            ),
            Card(summary="Plain info card", indicator="info", source=Source(label="R1 CDS test service")),
        ),
        system_actions=(
            Action(type="update", description="Flag the chart", resource={"resourceType": "Flag"}),
        ),
    )


@dataclass(slots=True)
class ShowcaseService:
    declaration: ServiceDeclaration = SHOWCASE
    calls: list[HookCall] = field(default_factory=list)

    def evaluate(self, call: HookCall) -> ServiceResult:
        self.calls.append(call)
        return showcase_cards(call)


@dataclass(slots=True)
class PrefetchProbe:
    """Keeps every call so tests can assert exactly what prefetch resolution handed the core."""

    declaration: ServiceDeclaration = PREFETCH_PROBE
    calls: list[HookCall] = field(default_factory=list)

    def evaluate(self, call: HookCall) -> ServiceResult:
        self.calls.append(call)
        return ServiceResult()


def build_test_registry() -> tuple[ServiceRegistry, ShowcaseService, PrefetchProbe]:
    showcase, probe = ShowcaseService(), PrefetchProbe()
    return ServiceRegistry([showcase, probe]), showcase, probe
