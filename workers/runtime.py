"""What one review task does in a worker process: load the context, hold a model slot, review, store, notify."""

# The task (workers.tasks) stays thin; this is the body, built once per worker process (after the fork).
# Idempotent: a stored result ends a rerun at once, so a task redelivered after a worker died, or sent
# twice, costs no second model request. The worker never sees a FHIR reference or a patient id: it reviews
# the de-identified context with patient_reference=None, and the API binds its own patient when it renders.
#
# A failed review (model down, timeouts, server errors) is retried with backoff while the error is
# transient and retries remain; the last failure is stored with a short TTL, so hooks show "AI review
# unavailable" for a minute and then try again: recovery needs no restart. A model timeout also marks the
# server silent to us for one slot lease (workers.semaphore.mark_stalled): /readyz reads a hung server's
# silence as busy between the attempts and after the last one, not as down (workers.wiring).
#
# Every stored review (accepted, abstained or failed for good) appends one ai-run record to the audit
# chain (plugin.audit.ai_run_record), after the result is stored and published: the hook waiting on it
# never waits on the audit database. A write that fails is logged (its exception class only) and the task
# goes on: the review is stored, and the chain misses that run. A cached result or a retried attempt runs
# no review of its own, so it writes none.

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, Protocol

import httpx
import redis

from inference.budget import TokenBudget, budget_for
from inference.llamacpp import LlamaCppModel
from inference.openai_compat import AdapterConfig, OpenAICompatibleModel
from inference.parsing import parse_sample
from inference.prompts import build_prompt
from inference.scripted import ScriptedDemoModel
from inference.sglang import SGLangModel
from plugin import codec
from plugin.audit import AuditRecord, ai_run_record
from plugin.context.model import BuiltContext, ClinicalContext, HandleMap
from plugin.governance import GovernancePolicy
from plugin.governance.text import warm_up as warm_up_language_model
from plugin.knowledge import KnowledgeBase, load_knowledge_base
from plugin.model_port import LanguageModel, ModelIdentity, ModelTimeout, SamplingParameters
from plugin.retrieval import DEFAULT_LIMIT
from plugin.review import DEFAULT_SUMMARY_TOKENS, OutputShape, ReviewOutcome, ReviewService
from workers import keys, metrics
from workers.errors import ContextMissing, SlotTimeout
from workers.semaphore import ModelSlots, mark_stalled
from workers.settings import RETRY_BACKOFF_MAX_S, ReviewSettings

log = logging.getLogger(__name__)

FAILED_RESULT_TTL_S: Final = 60  # how long "AI review unavailable" stands before hooks try again
# The compact review profile (workers.settings.ReviewProfile), sized for a small model on CPU.
COMPACT_BUDGET: Final = TokenBudget(768, 1024)
COMPACT_SUMMARY_TOKENS: Final = 1200
COMPACT_PASSAGES: Final = 3
COMPACT_OUTPUT: Final = OutputShape(grounded=True, max_suggestions=2, max_rationale=400, max_citations=3)
ModelFactory = Callable[[], AbstractAsyncContextManager[LanguageModel]]


class AuditWriter(Protocol):
    """Appends one record to the audit chain, synchronously (workers.audit_store.AuditStore)."""

    def write(self, record: AuditRecord) -> object: ...


@dataclass(frozen=True, slots=True)
class _Run:
    """One review as run: its outcome, and what the audit record says it was asked with."""

    outcome: ReviewOutcome
    sampling: SamplingParameters
    identity: ModelIdentity


@dataclass(frozen=True, slots=True)
class TaskResult:
    state: Literal["stored", "cached", "expired", "retry"]
    retry_in_s: float | None = None


def model_factory(settings: ReviewSettings) -> ModelFactory:
    """An adapter with its own HTTP client, open for as long as the context lasts."""
    if settings.model_backend == "scripted":

        @asynccontextmanager
        async def open_scripted() -> AsyncIterator[LanguageModel]:
            yield ScriptedDemoModel()

        return open_scripted
    if settings.model_url is None:
        raise ValueError("the worker needs R1CDS_MODEL_URL (r1cds up sets it for the llama.cpp backend)")
    adapters: dict[str, type[OpenAICompatibleModel]] = {
        "sglang": SGLangModel,
        "openai": OpenAICompatibleModel,
        "llamacpp": LlamaCppModel,
    }
    model_cls = adapters[settings.model_backend]
    config = AdapterConfig(
        base_url=settings.model_url,
        model=settings.model_name,
        api_key=settings.model_api_key,
        read_timeout_s=settings.model_timeout_s,
        total_timeout_s=settings.task_soft_limit_s * 0.9,
    )

    @asynccontextmanager
    async def open_model() -> AsyncIterator[LanguageModel]:
        async with httpx.AsyncClient() as client:
            yield model_cls(client, config)

    return open_model


def review_service(
    settings: ReviewSettings,
    model: LanguageModel,
    knowledge: KnowledgeBase,
    policy: GovernancePolicy,
    model_name: str,
) -> tuple[ReviewService, SamplingParameters]:
    """The review as the settings' profile sizes it, and the sampling it asks for (as the audit records it:
    a truncated sample's one retry with a larger budget aside)."""
    compact = settings.compact_review
    samples = 1 if compact else settings.review_samples
    completion = COMPACT_BUDGET if compact else budget_for(model_name)
    service = ReviewService(
        model,
        build_prompt,
        parse_sample,
        knowledge,
        policy,
        samples=samples,
        budget_tokens=COMPACT_SUMMARY_TOKENS if compact else DEFAULT_SUMMARY_TOKENS,
        completion=completion,
        passages=COMPACT_PASSAGES if compact else DEFAULT_LIMIT,
        output=COMPACT_OUTPUT if compact else None,
    )
    return service, SamplingParameters(n=samples, max_completion_tokens=completion.max_completion_tokens)


class ReviewRuntime:
    def __init__(
        self,
        settings: ReviewSettings,
        client: redis.Redis,
        models: ModelFactory,
        knowledge: KnowledgeBase | None = None,
        audit: AuditWriter | None = None,
    ) -> None:
        self.settings = settings
        self._redis = client
        self._models = models
        self._audit = audit
        self._knowledge = knowledge or load_knowledge_base()
        self._slots = ModelSlots(client, settings.model_slots)
        self._policy = GovernancePolicy(
            min_agreement=settings.review_min_agreement, language=settings.card_language
        )
        self._holder_prefix = f"{socket.gethostname()}:{os.getpid()}"
        self._threads = threading.local()
        # Loaded now, once, rather than by the first reviews of several threads at the same moment.
        warm_up_language_model()

    def _thread_model(self) -> tuple[asyncio.Runner, LanguageModel]:
        """This thread's event loop and model adapter, kept for the thread's life.

        A task runs synchronously in a pool thread (or a prefork child), so each thread keeps one loop and
        one adapter: its HTTP connections, TLS context and the server identity it read stay warm between
        reviews instead of being rebuilt for every task.
        """
        local = self._threads
        if getattr(local, "runner", None) is None:
            runner = asyncio.Runner()
            stack = contextlib.AsyncExitStack()
            model = runner.run(stack.enter_async_context(self._models()))
            local.runner, local.stack, local.model = runner, stack, model
        return local.runner, local.model

    def run(self, fingerprint: str, service_id: str, task_id: str, attempt: int) -> TaskResult:
        if self._cached(fingerprint):
            # A hook may be waiting on this fingerprint (it enqueued just as the result landed): tell it.
            self._redis.delete(keys.lock_key(fingerprint))
            self._redis.publish(keys.READY_CHANNEL, fingerprint)
            return TaskResult("cached")
        try:
            context = self._context(fingerprint)
        except ContextMissing:
            log.warning("review context expired before the task ran; dropping it")
            self._redis.delete(keys.lock_key(fingerprint))
            return TaskResult("expired")
        try:
            with self._slots.hold(
                f"{self._holder_prefix}:{task_id}",
                lease_s=self.settings.model_lease_s,
                wait_s=self.settings.task_soft_limit_s / 2,
                max_hold_s=self.settings.task_hard_limit_s,
            ):
                runner, model = self._thread_model()
                run = runner.run(self._review(model, service_id, context))
        except SlotTimeout:
            if attempt < self.settings.task_max_retries:
                return TaskResult("retry", _backoff(attempt))
            raise
        outcome = run.outcome
        if outcome.failed and outcome.error == ModelTimeout.__name__:
            self._stalled()
        if outcome.failed and outcome.transient and attempt < self.settings.task_max_retries:
            log.warning("review failed (%s), retry %d", outcome.error, attempt + 1)
            return TaskResult("retry", _backoff(attempt))
        self._store(fingerprint, outcome, context.context)
        metrics.record_review(outcome)
        self._record(fingerprint, run)
        return TaskResult("stored")

    def _stalled(self) -> None:
        """Mark the server silent to us for one lease: /readyz reads its silence as busy, not down, between
        the attempts and after the last one (workers.wiring)."""
        try:
            mark_stalled(self._redis, self.settings.model_lease_s)
        except (redis.RedisError, OSError) as exc:
            log.warning("could not record a model timeout (%s)", type(exc).__name__)

    def _cached(self, fingerprint: str) -> bool:
        """A readable stored result ends the task; an unreadable one (another codec version) is replaced."""
        raw = self._redis.hget(keys.result_key(fingerprint), "outcome")
        if not isinstance(raw, bytes):
            return False
        try:
            codec.decode_outcome(raw)
        except codec.CodecError:
            log.warning("unreadable stored review result; reviewing again")
            self._redis.delete(keys.result_key(fingerprint))
            return False
        return True

    def release(self, fingerprint: str) -> None:
        self._redis.delete(keys.lock_key(fingerprint))

    def _context(self, fingerprint: str) -> BuiltContext:
        raw = self._redis.get(keys.context_key(fingerprint))
        if not isinstance(raw, bytes):
            raise ContextMissing(fingerprint)
        # Handles stay handles: the HandleMap (handle → FHIR reference) never leaves the API.
        return BuiltContext(codec.decode_context(raw), HandleMap())

    async def _review(self, model: LanguageModel, service_id: str, built: BuiltContext) -> _Run:
        # Backends whose identity carries details the cards repeat (the demo model's, the scripted one's).
        local = self.settings.model_backend in ("llamacpp", "scripted")
        identity = await model.identity() if local else None
        name = identity.model if identity is not None else self.settings.model_name
        service, sampling = review_service(self.settings, model, self._knowledge, self._policy, name)
        outcome = await service.review(service_id, built, None)
        return _Run(outcome, sampling, identity or ModelIdentity(self.settings.model_backend, name))

    def _record(self, fingerprint: str, run: _Run) -> None:
        """The run's audit record; a failure to write it is logged and never fails the task."""
        if self._audit is None:
            return
        try:
            record = ai_run_record(
                run.outcome,
                fingerprint=fingerprint,
                knowledge_base_version=self._knowledge.version,
                sampling=run.sampling,
                at=datetime.now(UTC),
                identity=run.identity,
            )
            self._audit.write(record)
        except Exception as exc:
            log.warning("review stored, but its audit record was not written (%s)", type(exc).__name__)

    def _store(self, fingerprint: str, outcome: ReviewOutcome, context: ClinicalContext) -> None:
        review_id = self._redis.get(keys.lock_key(fingerprint)) or b""
        ttl = FAILED_RESULT_TTL_S if outcome.failed else self.settings.result_ttl_s
        pipe = self._redis.pipeline(transaction=True)
        # The de-identified facts stay beside the result: the evidence page shows the values it was run on.
        pipe.hset(
            keys.result_key(fingerprint),
            mapping={
                "outcome": codec.encode_outcome(outcome),
                "context": codec.encode_context(context),
                "review_id": review_id,
            },
        )
        pipe.expire(keys.result_key(fingerprint), ttl)
        pipe.delete(keys.lock_key(fingerprint))
        pipe.delete(keys.context_key(fingerprint))
        pipe.publish(keys.READY_CHANNEL, fingerprint)
        pipe.execute()


def _backoff(attempt: int) -> float:
    return float(min(2**attempt, RETRY_BACKOFF_MAX_S))
