"""`r1cds replay`: govern recorded model output for a hook built from a FHIR Bundle and print cards and log."""

# The hook call is built exactly as `r1cds fire` builds it (hook context from the bundle, prefetch from the
# service's own templates run against the bundle), then the clinical context as the service builds it, then
# plugin.review.ReviewService.review_recorded runs retrieval, the prompt and governance over the recorded
# samples without calling a model. Cards go through cds_hooks.render, so they are the wire cards an EHR
# would receive. The prompt builder and output parser are injected: this edge does not import `inference`.
# Chart notes enter the context as the service's own setting says (R1CDS_CONTEXT_INCLUDE_FREE_TEXT, off by
# default), so a replay governs the context the service would have built, injected note text included.
# (The module is not called replay.py: that name is the JWT jti replay store.)

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from cds_hooks import render
from cds_hooks.fire import FireError, build_context, build_prefetch, load_bundle, pick_patient
from cds_hooks.settings import load_settings
from plugin.ai_cards import ai_cards
from plugin.cards import ServiceResult
from plugin.catalog import CHART_REVIEW, DISCHARGE_REVIEW, ORDER_REVIEW
from plugin.context.build import ContextOptions
from plugin.context.build import build_context as build_clinical_context
from plugin.fhir_search import FhirStore
from plugin.governance import Decision, GovernancePolicy
from plugin.knowledge import KnowledgeBase, load_knowledge_base
from plugin.model_port import LanguageModel, ModelIdentity, Sample
from plugin.review import OutputParser, PromptBuilder, ReviewOutcome, ReviewService
from plugin.services import ServiceDeclaration

__all__ = ["BASE_URL", "DEFAULT_SERVICES", "decision_json", "outcome_json", "replay"]

BASE_URL: Final = "https://bundle.r1cds-replay.invalid/fhir"
USER: Final = "Practitioner/r1cds-replay"
DEFAULT_SERVICES: Final[dict[str, str]] = {
    "patient-view": CHART_REVIEW.id,
    "encounter-start": CHART_REVIEW.id,
    "order-select": ORDER_REVIEW.id,
    "order-sign": ORDER_REVIEW.id,
    "encounter-discharge": DISCHARGE_REVIEW.id,
}
_DECLARATIONS: Final[dict[str, ServiceDeclaration]] = {
    d.id: d for d in (CHART_REVIEW, ORDER_REVIEW, DISCHARGE_REVIEW)
}


def decision_json(decision: Decision) -> dict[str, Any]:
    """The decision as plain JSON: accepted (with agreement), rejected with reasons, abstention, steps."""
    return {
        "abstained": decision.abstained,
        "abstain_reason": decision.abstain_reason,
        "accepted": [
            {
                "summary": g.suggestion.summary,
                "agreement": list(g.agreement),
                "severity": g.severity,
                "patient_handles": list(g.patient_handles),
                "knowledge_ids": list(g.knowledge_ids),
                "sample": g.sample,
                "index": g.index,
                "members": [list(m) for m in g.members],
                "backing_rules": list(g.backing_rules),
                "action": g.suggestion.action.type,
            }
            for g in decision.accepted
        ],
        "rejected": [
            {"sample": r.sample, "suggestion": r.suggestion, "reason": r.reason.value, "detail": r.detail}
            for r in decision.rejected
        ],
        "steps": [
            {
                "step": s.step,
                "sample": s.sample,
                "suggestion": s.suggestion,
                "passed": s.passed,
                "reason": s.reason.value if s.reason is not None else None,
                "detail": s.detail,
            }
            for s in decision.log
        ],
    }


def outcome_json(outcome: ReviewOutcome) -> dict[str, Any]:
    """What the review did around governance: retrieval, prompt, samples, its own steps (no timings)."""
    return {
        "retrieval": {
            "ids": list(outcome.retrieval.ids),
            "query_terms": list(outcome.retrieval.query_terms),
            "candidate_count": outcome.retrieval.candidate_count,
        },
        "prompt": asdict(outcome.prompt) if outcome.prompt is not None else None,
        "samples": [asdict(s) for s in outcome.samples],
        # Durations vary run to run; they are left out so that a replay's output is reproducible.
        "review_steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in outcome.steps],
    }


def replay(
    bundle: Path,
    hook: str,
    samples: Sequence[Sample],
    model: LanguageModel,
    prompts: PromptBuilder,
    parser: OutputParser,
    now: datetime,
    *,
    model_id: str = "recorded",
    service_id: str | None = None,
    hook_context: Mapping[str, Any] | None = None,
    patient_id: str | None = None,
    draft_orders: Mapping[str, Any] | None = None,
    knowledge: KnowledgeBase | None = None,
    policy: GovernancePolicy | None = None,
    context_options: ContextOptions | None = None,
) -> dict[str, Any]:
    """Govern `samples` for `hook` on the patient in `bundle`; returns the printable JSON document.

    Without `context_options`, the context is built with the options the service reads from its settings.
    """
    service_id = service_id or DEFAULT_SERVICES.get(hook)
    if service_id is None:
        raise FireError(f"no AI review for hook {hook!r}; known: {sorted(DEFAULT_SERVICES)}")
    declaration = _DECLARATIONS.get(service_id)
    if declaration is None:
        raise FireError(f"no AI review service {service_id!r}; known: {sorted(_DECLARATIONS)}")
    if hook not in declaration.hooks:
        raise FireError(f"service {service_id} does not answer {hook}; it answers {list(declaration.hooks)}")
    store = FhirStore.from_bundles([load_bundle(bundle)])
    if hook_context is None:
        patient = pick_patient(store, patient_id)
        context = build_context(hook, store, patient, USER, None, draft_orders)
    else:
        context = dict(hook_context)
        given = context.get("patientId")
        if not isinstance(given, str):
            raise FireError("the --context file must be a JSON object with a patientId")
        patient = pick_patient(store, given)
    prefetch = build_prefetch(declaration.prefetch, context, store, BASE_URL)
    drafts = context.get("draftOrders") if service_id == ORDER_REVIEW.id else None
    if context_options is None:
        try:
            settings = load_settings()
        except ValidationError as exc:
            raise FireError(f"invalid R1CDS_* settings: {exc}") from exc
        context_options = ContextOptions(include_free_text=settings.context_include_free_text)
    built = build_clinical_context(
        prefetch,
        now,
        draft_orders=drafts if isinstance(drafts, Mapping) else None,
        options=context_options,
    )
    knowledge = knowledge or load_knowledge_base()
    policy = policy or GovernancePolicy()
    service = ReviewService(model, prompts, parser, knowledge, policy, samples=max(1, len(samples)))
    patient_reference = f"Patient/{patient}"
    outcome = service.review_recorded(
        service_id, built, samples, patient_reference, ModelIdentity("recorded", model_id)
    )
    assert outcome.decision is not None  # review_recorded always governs
    cards = ai_cards(
        outcome.decision.accepted,
        service_id,
        built.context,
        built.handles,
        knowledge,
        model_id,
        patient_reference,
    )
    wire = render.response(ServiceResult(cards=cards))
    return {
        "service": service_id,
        "hook": hook,
        "patient": patient_reference,
        "model": model_id,
        "knowledge_base": knowledge.version,
        "cards": wire.model_dump(mode="json", by_alias=True, exclude_none=True)["cards"],
        "decision": decision_json(outcome.decision),
        **outcome_json(outcome),
    }
