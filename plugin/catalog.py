"""The CDS services R1 CDS ships, declared once for discovery, routing and prefetch.

Cards come from the rule and AI layers; until those land the services answer with no cards,
which the spec defines as a complete, valid answer ("nothing to say").
"""

from __future__ import annotations

from dataclasses import dataclass

from plugin.cards import ServiceResult
from plugin.services import HookCall, ServiceDeclaration, ServiceRegistry

_PATIENT = "{{context.patientId}}"

# The spec's recommended query subset only: reads by id and searches by patient with token and
# sort parameters, so any conformant EHR can fulfil them and fetch-back works against any FHIR server.
CHART_PREFETCH: dict[str, str] = {
    "patient": f"Patient/{_PATIENT}",
    "conditions": f"Condition?patient={_PATIENT}",
    "medications": f"MedicationRequest?patient={_PATIENT}&status=active",
    "allergies": f"AllergyIntolerance?patient={_PATIENT}",
    "labs": f"Observation?patient={_PATIENT}&category=laboratory&_sort=-date&_count=200",
    "vitals": f"Observation?patient={_PATIENT}&category=vital-signs&_sort=-date&_count=100",
    "encounters": f"Encounter?patient={_PATIENT}&_sort=-date&_count=10",
    "immunizations": f"Immunization?patient={_PATIENT}",
    "procedures": f"Procedure?patient={_PATIENT}&_sort=-date&_count=50",
}
ORDER_PREFETCH: dict[str, str] = {
    key: CHART_PREFETCH[key] for key in ("patient", "conditions", "medications", "allergies", "labs")
}

CHART_REVIEW = ServiceDeclaration(
    id="r1-chart-review",
    hooks=("patient-view", "encounter-start"),
    title="R1 CDS chart review",
    description=(
        "Safety rules over the open chart, and governed DeepSeek-R1 suggestions for it, each card "
        "citing the patient data and knowledge-base sources it rests on."
    ),
    prefetch=CHART_PREFETCH,
    required_prefetch=frozenset({"patient"}),
)
ORDER_REVIEW = ServiceDeclaration(
    id="r1-order-review",
    hooks=("order-select", "order-sign"),
    title="R1 CDS order review",
    description=(
        "Checks draft orders against allergies, interactions, renal function, pregnancy and duplicate "
        "therapy; order-sign cards replace the order-select cards for the same orders."
    ),
    prefetch=ORDER_PREFETCH,
    required_prefetch=frozenset({"patient"}),
)
DISCHARGE_REVIEW = ServiceDeclaration(
    id="r1-discharge-review",
    hooks=("encounter-discharge",),
    title="R1 CDS discharge review",
    description="Reviews the medication list and open monitoring at discharge.",
    prefetch=CHART_PREFETCH,
    required_prefetch=frozenset({"patient"}),
)


@dataclass(frozen=True, slots=True)
class DeclaredService:
    """A shipped service whose card layers (rules, AI) have not been wired in yet."""

    declaration: ServiceDeclaration

    def evaluate(self, call: HookCall) -> ServiceResult:
        return ServiceResult()


def shipped_registry() -> ServiceRegistry:
    return ServiceRegistry(DeclaredService(d) for d in (CHART_REVIEW, ORDER_REVIEW, DISCHARGE_REVIEW))
