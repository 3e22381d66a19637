"""The AI review of one context: retrieve, prompt, sample the model, parse, govern; every step recorded."""

# The review never raises for what a model or a chart does: a ModelError becomes an outcome with
# failed=True and the error class (the worker decides about retries), and bad output is governance's to
# reject. Collaborators outside the core arrive as ports (DESIGN §1): the prompt builder and the output
# parser live in `inference` (`inference.prompts.build_prompt` and `inference.parsing.parse_sample` fit these
# protocols as they are), the model behind plugin.model_port.LanguageModel.
#
# Token budget (inference.budget documents the defaults per model size): samples that finish with
# "length" before any answer are asked again once with the retry budget (`_retry_truncated`).
#
# Governance is given the ids of the passages the prompt actually carried, so a citation of anything the
# model was not shown is rejected as not retrieved.

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from plugin.context.model import BuiltContext
from plugin.context.render import render
from plugin.governance import Decision, GovernancePolicy, ParsedOutput, govern
from plugin.knowledge import KnowledgeBase, KnowledgeEntry
from plugin.model_port import (
    LanguageModel,
    ModelError,
    ModelIdentity,
    ModelRequest,
    ModelResponse,
    Sample,
    SamplingParameters,
    Usage,
)
from plugin.retrieval import DEFAULT_LIMIT, Retrieval, retrieve
from plugin.suggestions import MAX_RATIONALE, MAX_SUGGESTIONS, grounded_json_schema, suggestion_json_schema

__all__ = [
    "DEFAULT_MAX_COMPLETION_TOKENS",
    "DEFAULT_SUMMARY_TOKENS",
    "CompletionBudget",
    "OutputParser",
    "OutputShape",
    "PromptBuilder",
    "PromptRecord",
    "PromptText",
    "ReviewOutcome",
    "ReviewService",
    "ReviewStep",
    "SampleOutcome",
]

DEFAULT_SUMMARY_TOKENS: Final = 2000  # the de-identified summary's share of the prompt
DEFAULT_MAX_COMPLETION_TOKENS: Final = 8192  # inference.budget's budget for an unknown model
TRUNCATED: Final = "truncated_in_reasoning"  # the parser's outcome for a budget spent before the answer


def _added(first: Usage, second: Usage) -> Usage:
    def both(a: int | None, b: int | None) -> int | None:
        return None if a is None and b is None else (a or 0) + (b or 0)

    return Usage(
        prompt_tokens=first.prompt_tokens + second.prompt_tokens,
        completion_tokens=first.completion_tokens + second.completion_tokens,
        reasoning_tokens=both(first.reasoning_tokens, second.reasoning_tokens),
        cached_tokens=both(first.cached_tokens, second.cached_tokens),
    )


class PromptText(Protocol):
    """A built prompt; `inference.prompts.BuiltPrompt` satisfies it."""

    @property
    def text(self) -> str: ...

    @property
    def template_name(self) -> str: ...

    @property
    def template_version(self) -> str: ...

    @property
    def template_hash(self) -> str: ...

    @property
    def passage_ids(self) -> tuple[str, ...]: ...


class PromptBuilder(Protocol):
    """(service id, de-identified summary, passages, language) → the user turn; build_prompt fits."""

    def __call__(
        self, service_id: str, patient_summary: str, passages: Sequence[KnowledgeEntry], language: str, /
    ) -> PromptText: ...


class OutputParser(Protocol):
    """One sample → its parsed form for governance; inference.parsing.parse_sample fits."""

    def __call__(self, sample: Sample, /) -> ParsedOutput: ...


class CompletionBudget(Protocol):
    """The completion-token budget for reasoning and answer; inference.budget.TokenBudget fits.

    A sample truncated while still reasoning is asked again once with `retry_max_completion_tokens`;
    when that equals the first budget there is no retry.
    """

    @property
    def max_completion_tokens(self) -> int: ...

    @property
    def retry_max_completion_tokens(self) -> int: ...


@dataclass(frozen=True, slots=True)
class PromptRecord:
    template_name: str
    template_version: str
    template_hash: str
    passage_ids: tuple[str, ...]
    estimated_summary_tokens: int
    summary_omitted: tuple[tuple[str, int], ...]  # sections of the summary left out for the budget
    summary_over_budget: bool


@dataclass(frozen=True, slots=True)
class SampleOutcome:
    index: int
    finish_reason: str
    outcome: str  # the parser's outcome: ok, invalid_json, schema_violation, ...
    detail: str  # short and safe to log (the parser guarantees it)


@dataclass(frozen=True, slots=True)
class ReviewStep:
    """One stage of the review with its result, in the order run (for the audit and evidence page)."""

    name: str  # retrieval, prompt, model, parse, govern
    ok: bool
    detail: str
    seconds: float


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    """Everything one review did; `decision` is None exactly when it failed before governance."""

    service_id: str
    failed: bool
    decision: Decision | None
    retrieval: Retrieval
    prompt: PromptRecord | None
    model: ModelIdentity | None
    usage: Usage | None
    request_id: str | None
    samples: tuple[SampleOutcome, ...]
    steps: tuple[ReviewStep, ...]
    error: str | None = None  # the ModelError class name when failed
    transient: bool | None = None  # whether that error is worth a retry
    recorded: bool = False  # samples were replayed, not generated

    @property
    def timings(self) -> dict[str, float]:
        return {step.name: step.seconds for step in self.steps}


@dataclass(slots=True)
class _Trace:
    clock: Callable[[], float]
    steps: list[ReviewStep] = field(default_factory=list)
    started: float = 0.0

    def start(self) -> None:
        self.started = self.clock()

    def done(self, name: str, ok: bool, detail: str) -> None:
        now = self.clock()
        self.steps.append(ReviewStep(name, ok, detail, max(0.0, now - self.started)))
        self.started = now


@dataclass(frozen=True, slots=True)
class OutputShape:
    """The schema the model's answer is held to: the generic one, or one grounded in this review.

    Grounded (plugin.suggestions.grounded_json_schema): citations from this summary's handles and this
    prompt's passages, actions only in valid pairings, fewer suggestions and a shorter rationale. A large
    model rarely needs it; a small CPU model fails on form without it (the compact review profile,
    workers.settings).
    """

    grounded: bool = False
    max_suggestions: int = MAX_SUGGESTIONS
    max_rationale: int = MAX_RATIONALE
    max_citations: int | None = None  # citation lists as enumerated distinct lists (grounded_json_schema)


@dataclass(frozen=True, slots=True)
class _Prepared:
    retrieval: Retrieval
    prompt: PromptText
    record: PromptRecord
    handles: tuple[str, ...] = ()


class ReviewService:
    """One AI review per call; stateless between calls, safe to share across tasks."""

    def __init__(
        self,
        model: LanguageModel,
        prompts: PromptBuilder,
        parser: OutputParser,
        knowledge: KnowledgeBase,
        policy: GovernancePolicy,
        samples: int = 5,
        budget_tokens: int = DEFAULT_SUMMARY_TOKENS,
        *,
        completion: CompletionBudget | None = None,
        passages: int = DEFAULT_LIMIT,
        output: OutputShape | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if samples < 1:
            raise ValueError("samples must be at least 1")
        if budget_tokens < 1:
            raise ValueError("budget_tokens must be positive")
        self._model = model
        self._prompts = prompts
        self._parser = parser
        self._knowledge = knowledge
        self._policy = policy
        self._samples = samples
        self._budget_tokens = budget_tokens  # the de-identified summary's share of the prompt
        self._completion = completion
        self._passages = passages
        self._output = output or OutputShape()
        self._clock = clock

    def _prepare(self, service_id: str, built: BuiltContext, trace: _Trace) -> _Prepared:
        trace.start()
        found = retrieve(built.context, self._knowledge, self._passages)
        trace.done(
            "retrieval",
            bool(found.entries),
            f"{len(found.entries)} of {found.candidate_count} candidate passage(s)",
        )
        summary = render(built.context, self._budget_tokens)
        prompt = self._prompts(service_id, summary.text, found.entries, self._policy.language)
        record = PromptRecord(
            template_name=prompt.template_name,
            template_version=prompt.template_version,
            template_hash=prompt.template_hash,
            passage_ids=tuple(prompt.passage_ids),
            estimated_summary_tokens=summary.estimated_tokens,
            summary_omitted=summary.omitted,
            summary_over_budget=summary.over_budget,
        )
        trace.done("prompt", True, f"{prompt.template_version} #{prompt.template_hash}")
        return _Prepared(found, prompt, record, tuple(summary.handles))

    def _govern(
        self,
        service_id: str,
        built: BuiltContext,
        patient_reference: str | None,
        prepared: _Prepared,
        samples: Sequence[Sample],
        trace: _Trace,
    ) -> tuple[Decision, tuple[SampleOutcome, ...]]:
        parsed = [self._parser(sample) for sample in samples]
        outcomes = tuple(
            SampleOutcome(n, sample.finish_reason, p.outcome, p.detail)
            for n, (sample, p) in enumerate(zip(samples, parsed, strict=True))
        )
        usable = sum(1 for p in parsed if p.outcome == "ok")
        trace.done("parse", usable > 0, f"{usable}/{len(parsed)} sample(s) parsed")
        decision = govern(
            parsed,
            built.context,
            frozenset(prepared.record.passage_ids),
            self._knowledge,
            self._policy,
            patient_reference,
        )
        what = (
            f"abstained: {decision.abstain_reason}"
            if decision.abstained
            else f"{len(decision.accepted)} accepted"
        )
        trace.done("govern", not decision.abstained, f"{what}, {len(decision.rejected)} rejected")
        return decision, outcomes

    async def review(
        self, service_id: str, context: BuiltContext, patient_reference: str | None
    ) -> ReviewOutcome:
        """Ask the model for n samples and govern them; a ModelError gives a failed outcome."""
        trace = _Trace(self._clock)
        prepared = self._prepare(service_id, context, trace)
        budget = (
            self._completion.max_completion_tokens
            if self._completion is not None
            else DEFAULT_MAX_COMPLETION_TOKENS
        )
        request = ModelRequest(
            prompt=prepared.prompt.text,
            output_schema=self._output_schema(prepared),
            sampling=SamplingParameters(n=self._samples, max_completion_tokens=budget),
        )
        try:
            response = await self._model.generate(request)
        except ModelError as exc:
            # The message may quote the server; only the class travels into the outcome and the audit.
            trace.done("model", False, type(exc).__name__)
            return ReviewOutcome(
                service_id=service_id,
                failed=True,
                decision=None,
                retrieval=prepared.retrieval,
                prompt=prepared.record,
                model=None,
                usage=None,
                request_id=None,
                samples=(),
                steps=tuple(trace.steps),
                error=type(exc).__name__,
                transient=exc.transient,
            )
        trace.done(
            "model",
            True,
            f"{len(response.samples)} sample(s) from {response.identity.model} in {response.latency_s:.2f} s",
        )
        samples, usage = await self._retry_truncated(request, response, trace)
        decision, outcomes = self._govern(service_id, context, patient_reference, prepared, samples, trace)
        return ReviewOutcome(
            service_id=service_id,
            failed=False,
            decision=decision,
            retrieval=prepared.retrieval,
            prompt=prepared.record,
            model=response.identity,
            usage=usage,
            request_id=response.request_id,
            samples=outcomes,
            steps=tuple(trace.steps),
        )

    def _output_schema(self, prepared: _Prepared) -> dict[str, Any]:
        if not self._output.grounded:
            return suggestion_json_schema()
        return grounded_json_schema(
            prepared.handles,
            prepared.record.passage_ids,
            self._policy.language,
            max_suggestions=self._output.max_suggestions,
            max_rationale=self._output.max_rationale,
            max_citations=self._output.max_citations,
        )

    async def _retry_truncated(
        self, request: ModelRequest, response: ModelResponse, trace: _Trace
    ) -> tuple[tuple[Sample, ...], Usage]:
        """Asks once more, with the retry budget, for the samples that ran out of tokens while reasoning.

        The retried samples replace the truncated ones in place; a second truncation stands (the case is
        too hard for this model at this budget), and so does a failed retry: the samples that did answer
        are governed either way.
        """
        samples = list(response.samples)
        truncated = [n for n, sample in enumerate(samples) if self._parser(sample).outcome == TRUNCATED]
        retry_budget = self._completion.retry_max_completion_tokens if self._completion is not None else 0
        if not truncated or retry_budget <= request.sampling.max_completion_tokens:
            return response.samples, response.usage
        again = replace(
            request,
            sampling=replace(request.sampling, n=len(truncated), max_completion_tokens=retry_budget),
        )
        try:
            retried = await self._model.generate(again)
        except ModelError as exc:
            trace.done(
                "retry", False, f"{len(truncated)} truncated sample(s); retry failed: {type(exc).__name__}"
            )
            return response.samples, response.usage
        for n, sample in zip(truncated, retried.samples, strict=False):
            samples[n] = sample
        trace.done(
            "retry",
            True,
            f"{len(truncated)} sample(s) truncated in reasoning asked again with {retry_budget} tokens",
        )
        return tuple(samples), _added(response.usage, retried.usage)

    def review_recorded(
        self,
        service_id: str,
        context: BuiltContext,
        samples: Sequence[Sample],
        patient_reference: str | None = None,
        identity: ModelIdentity | None = None,
    ) -> ReviewOutcome:
        """Govern recorded samples without calling the model (replay); same retrieval and prompt."""
        trace = _Trace(self._clock)
        prepared = self._prepare(service_id, context, trace)
        trace.done("model", True, f"{len(samples)} recorded sample(s), model not called")
        decision, outcomes = self._govern(service_id, context, patient_reference, prepared, samples, trace)
        return ReviewOutcome(
            service_id=service_id,
            failed=False,
            decision=decision,
            retrieval=prepared.retrieval,
            prompt=prepared.record,
            model=identity,
            usage=None,
            request_id=None,
            samples=outcomes,
            steps=tuple(trace.steps),
            recorded=True,
        )
