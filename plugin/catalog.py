"""The CDS services R1 CDS ships: declared once for discovery, routing and prefetch, answered by the rules.

Rule cards are returned synchronously. The AI review joins them when the worker layer lands.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from plugin.cards import ServiceResult, by_severity
from plugin.context.build import ContextOptions, build_context
from plugin.context.codes import ANALYTES
from plugin.context.model import BuiltContext
from plugin.knowledge import KnowledgeBase, load_knowledge_base
from plugin.rules.cards import describe, facts_of, finding_card
from plugin.rules.engine import run_rules
from plugin.rules.model import RuleFacts
from plugin.rules.registry import CARE_GAP_RULES, MEDICATION_RULES, Rule
from plugin.rules.resolution import UNAVAILABLE_RULE_ID, UNREADABLE_RULE_ID, records_unavailable
from plugin.services import HookCall, ServiceDeclaration, ServiceRegistry

if TYPE_CHECKING:
    from plugin.ai_review import AiReview, ReviewTicket

T = TypeVar("T")


class Offload(Protocol):
    """Runs synchronous work and hands back its result: on a worker thread at the edge."""

    def __call__(self, work: Callable[[], T], /) -> Awaitable[T]: ...


_PATIENT = "{{context.patientId}}"
_LVEF_CODES = ",".join(f"http://loinc.org|{code}" for code in sorted(ANALYTES["lvef"].loinc))

# The spec's recommended query subset only: reads by id and searches by patient with token and
# sort parameters, so any conformant EHR can fulfil them and fetch-back works against any FHIR server.
CHART_PREFETCH: dict[str, str] = {
    "patient": f"Patient/{_PATIENT}",
    "conditions": f"Condition?patient={_PATIENT}",
    "medications": f"MedicationRequest?patient={_PATIENT}&status=active",
    # What the patient reports taking (OTC, other prescribers): a drug the rules cannot see is not absent.
    "statements": f"MedicationStatement?patient={_PATIENT}&status=active",
    "allergies": f"AllergyIntolerance?patient={_PATIENT}",
    "labs": f"Observation?patient={_PATIENT}&category=laboratory&_sort=-date&_count=200",
    "vitals": f"Observation?patient={_PATIENT}&category=vital-signs&_sort=-date&_count=100",
    # EHRs (Synthea among them) file an echo's ejection fraction under imaging, not laboratory: asked for by
    # code so that heart failure with a reduced EF is seen as such.
    "ejection_fraction": f"Observation?patient={_PATIENT}&code={_LVEF_CODES}&_sort=-date&_count=10",
    "encounters": f"Encounter?patient={_PATIENT}&_sort=-date&_count=10",
    "immunizations": f"Immunization?patient={_PATIENT}",
    "procedures": f"Procedure?patient={_PATIENT}&_sort=-date&_count=50",
}
# Order and discharge reviews read vital signs too: weight decides a child's dose (and body weight is in
# the summary the model sees), so without it every weight-based check would read "no weight on record".
ORDER_PREFETCH: dict[str, str] = {
    key: CHART_PREFETCH[key]
    for key in ("patient", "conditions", "medications", "statements", "allergies", "labs", "vitals")
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
    prefetch=ORDER_PREFETCH,
    required_prefetch=frozenset({"patient"}),
)


Scope = Literal["chart", "orders", "discharge"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _selected(context: Mapping[str, Any]) -> frozenset[str] | None:
    selections = context.get("selections")
    return frozenset(s for s in selections if isinstance(s, str)) if isinstance(selections, list) else None


@dataclass(frozen=True, slots=True)
class RuleService:
    """A shipped service: builds the clinical context of the call and returns the rules' cards."""

    declaration: ServiceDeclaration
    scope: Scope
    knowledge: KnowledgeBase
    rules: tuple[Rule, ...]
    clock: Callable[[], datetime] = field(default=_utc_now)
    context_options: ContextOptions = field(default_factory=ContextOptions)

    ai: AiReview | None = None  # the governed AI review, when a broker is configured

    def evaluate(self, call: HookCall) -> ServiceResult:
        """The rule cards alone, at once."""
        return self._assess(call)[1]

    async def answer(self, call: HookCall, wait_s: float, offload: Offload | None = None) -> ServiceResult:
        """The rule cards plus the AI review's cards (or its pending card) as they stand after wait_s.

        `offload` runs the synchronous work (context, rules, rule cards, the review fingerprint) where the
        caller wants it: the edge hands in a worker thread, so that a large call never holds its event loop.
        `wait_s` runs from this call: the time the rules took (a wait for a worker thread included) comes
        out of the AI review's wait, so the answer's deadline holds under load.
        """
        began = time.monotonic()
        if offload is None:
            built, result, ticket = self._assess_for_review(call)
        else:
            built, result, ticket = await offload(lambda: self._assess_for_review(call))
        wait_s = max(0.0, wait_s - (time.monotonic() - began))
        if self.ai is None or built.context.demographics.deceased:
            return result
        if self.scope == "orders" and not built.context.draft_orders:
            return result  # nothing being ordered, nothing for the order review to review
        patient_id = call.context.get("patientId")
        patient = f"Patient/{patient_id}" if isinstance(patient_id, str) else None
        ai = await self.ai.review(self.declaration.id, call.hook, built, patient, wait_s, ticket=ticket)
        return ServiceResult(
            # One list, most severe first: a critical AI card leads the rule warnings, and the pending
            # (info) status card follows them.
            cards=by_severity(result.cards + ai.cards),
            system_actions=result.system_actions,
            final=ai.final,
            fingerprint=ai.fingerprint,
            ai_state=ai.state,
        )

    def _assess_for_review(self, call: HookCall) -> tuple[BuiltContext, ServiceResult, ReviewTicket | None]:
        built, result = self._assess(call)
        reviewed = self.ai is not None and not built.context.demographics.deceased
        if not reviewed or (self.scope == "orders" and not built.context.draft_orders):
            return built, result, None
        assert self.ai is not None
        # The fingerprint (de-identified, rendered facts) grows with the chart: computed here, with the rules.
        return built, result, self.ai.ticket(self.declaration.id, call.hook, built.context)

    def _unavailable_types(self, call: HookCall) -> list[str]:
        """Resource types of the prefetch keys that ended without data because of an issue (fail closed:
        absent is unknown, never empty)."""
        troubled = {issue.key for issue in call.prefetch_issues}
        return [
            template.split("?", 1)[0].split("/", 1)[0]
            for key, template in self.declaration.prefetch.items()
            if key in troubled and call.prefetch.get(key) is None
        ]

    def _assess(self, call: HookCall) -> tuple[BuiltContext, ServiceResult]:
        drafts = call.context.get("draftOrders") if self.scope == "orders" else None
        patient_id = call.context.get("patientId")
        built = build_context(
            call.prefetch,
            self.clock(),
            draft_orders=drafts if isinstance(drafts, Mapping) else None,
            options=self.context_options,
            # Another patient's resource never feeds a card or the model (the edge refuses such calls first).
            patient_id=patient_id if isinstance(patient_id, str) else None,
        )
        if built.context.demographics.deceased:
            return built, ServiceResult()  # a deceased patient's chart: no care to advise on
        findings = run_rules(RuleFacts.of(built.context), self.rules)
        unavailable = records_unavailable(self._unavailable_types(call))
        if unavailable is not None:
            findings = (*findings, unavailable)
        if self.scope == "orders":
            # Order hooks speak about the orders: order-select about the orders just selected,
            # order-sign about every draft being signed.
            selected = _selected(call.context) if call.hook == "order-select" else None
            # Records that could not be read leave every order's checks incomplete: always said.
            findings = tuple(
                f
                for f in findings
                if f.rule_id in (UNREADABLE_RULE_ID, UNAVAILABLE_RULE_ID)
                or (
                    f.proposed
                    and (selected is None or any(built.handles.resolve(h) in selected for h in f.proposed))
                )
            )
        described = describe(built.context)
        facts = facts_of(built.context)
        cards = tuple(
            finding_card(
                f,
                built.context,
                built.handles,
                self.knowledge,
                patient_id if isinstance(patient_id, str) else None,
                described,
                facts,
            )
            for f in findings
        )
        # run_rules already lists findings most severe first; sorting the cards keeps that a property of
        # the answer rather than of the engine.
        return built, ServiceResult(cards=by_severity(cards))


def shipped_registry(
    knowledge: KnowledgeBase | None = None,
    clock: Callable[[], datetime] = _utc_now,
    context_options: ContextOptions | None = None,
    ai: AiReview | None = None,
) -> ServiceRegistry:
    knowledge = knowledge or load_knowledge_base()
    options = context_options or ContextOptions()
    return ServiceRegistry(
        (
            RuleService(
                CHART_REVIEW, "chart", knowledge, (*MEDICATION_RULES, *CARE_GAP_RULES), clock, options, ai
            ),
            RuleService(ORDER_REVIEW, "orders", knowledge, MEDICATION_RULES, clock, options, ai),
            RuleService(DISCHARGE_REVIEW, "discharge", knowledge, MEDICATION_RULES, clock, options, ai),
        )
    )
