"""What governance takes (parsed samples, a policy) and what it returns (a decision with its full log)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Literal, Protocol, get_args

from plugin.errors import PluginError
from plugin.suggestions import (
    ACTION_TYPES,
    MAX_SUMMARY,
    RESOURCE_TYPES,
    ActionType,
    AiSuggestion,
    ResourceType,
    SuggestionSet,
)

__all__ = [
    "STEPS",
    "AbstainReason",
    "Decision",
    "GovernancePolicy",
    "GovernancePolicyError",
    "GovernedSuggestion",
    "ParsedOutput",
    "Reason",
    "Rejection",
    "Severity",
    "Step",
    "StepRecord",
]

Severity = Literal["info", "warning"]  # never "critical": that level belongs to the deterministic rules
Step = Literal[
    "retrieval",
    "schema",
    "grounding",
    "untrusted-text",
    "language",
    "phrasing",
    "intent",
    "support",
    "safety",
    "basis",
    "actions",
    "consistency",
]
# The order each suggestion goes through: cheap textual screens before the term and number checks, the
# rule engine and FHIR validation (the costly ones) last, and agreement across samples at the very end.
STEPS: Final[tuple[Step, ...]] = get_args(Step)
AbstainReason = Literal["empty-retrieval", "no-valid-output", "model-abstained", "nothing-passed"]


class Reason(StrEnum):
    """Why a sample or a suggestion was dropped: one code per check."""

    NOT_OK_OUTPUT = "not-ok-output"
    EMPTY_RETRIEVAL = "empty-retrieval"
    UNKNOWN_PATIENT_HANDLE = "unknown-patient-handle"
    UNKNOWN_KNOWLEDGE_ID = "unknown-knowledge-id"
    KNOWLEDGE_NOT_RETRIEVED = "knowledge-not-retrieved"
    URL_IN_OUTPUT = "url-in-output"
    INJECTION_ECHO = "injection-echo"
    IDENTIFIER_ECHO = "identifier-echo"
    WRONG_LANGUAGE = "wrong-language"
    SUMMARY_TOO_LONG = "summary-too-long"
    DIRECTIVE_PHRASING = "directive-phrasing"
    UNSUPPORTED_CLAIM = "unsupported-claim"
    NUMBER_MISMATCH = "number-mismatch"
    SAFETY_VETO = "safety-veto"
    PROTECTED_THERAPY_REMOVED = "protected-therapy-removed"
    UNDECLARED_ACTION = "undeclared-action"
    CONTRADICTED_BY_CITATION = "contradicted-by-citation"
    INTENT_MISMATCH = "intent-mismatch"
    DOSE_OUT_OF_RANGE = "dose-out-of-range"
    DOSE_UNCHECKED = "dose-unchecked"
    ACTION_NOT_ALLOWED = "action-not-allowed"
    INVALID_RESOURCE = "invalid-resource"
    BELOW_AGREEMENT = "below-agreement"


class ParsedOutput(Protocol):
    """One parsed model sample; `inference.parsing.ParsedSample` satisfies it structurally."""

    @property
    def outcome(self) -> str: ...  # "ok" or a failure outcome of the parser

    @property
    def value(self) -> SuggestionSet | None: ...  # set exactly when outcome is "ok"

    @property
    def detail(self) -> str: ...  # short, safe to log


class GovernancePolicyError(PluginError, ValueError):
    """A policy that could never be applied (a programming or configuration error, never per request)."""


@dataclass(frozen=True, slots=True)
class GovernancePolicy:
    """The tunable limits; the defaults are the ones DESIGN §5 states."""

    min_agreement: float = 0.6  # fraction of the n samples that must contain a suggestion's cluster
    language: str = "en"  # primary BCP 47 subtag the card text must be written in
    allowed_resource_types: frozenset[ResourceType] = frozenset(RESOURCE_TYPES)
    allowed_action_types: frozenset[ActionType] = frozenset(ACTION_TYPES)
    max_summary: int = MAX_SUMMARY  # longest summary accepted, in characters (DESIGN §5.9: < 140)
    min_shared_terms: int = 2  # key terms the claim must share with its cited passages and facts
    number_tolerance: float = 0.01  # relative tolerance of a quoted measurement (±1%)
    injection_run_words: int = 3  # a run of this many tokens shared with a chart note counts as an echo

    def __post_init__(self) -> None:
        if not 0.0 < self.min_agreement <= 1.0:
            raise GovernancePolicyError("min_agreement must be in (0, 1]")
        if self.max_summary < 1 or self.min_shared_terms < 1 or self.injection_run_words < 2:
            raise GovernancePolicyError("max_summary, min_shared_terms and injection_run_words are too small")
        if self.number_tolerance < 0.0:
            raise GovernancePolicyError("number_tolerance must not be negative")


@dataclass(frozen=True, slots=True)
class Rejection:
    """A dropped sample (suggestion is None) or suggestion, by 0-based index, with the first failed check."""

    sample: int
    suggestion: int | None
    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One check run on one sample or suggestion; sample is None for a decision-wide step."""

    step: Step
    sample: int | None
    suggestion: int | None
    passed: bool
    reason: Reason | None
    detail: str


@dataclass(frozen=True, slots=True)
class GovernedSuggestion:
    """An accepted suggestion: one representative of its cluster, with agreement k of n samples.

    `resource` is the FHIR R4B resource the action would create (validated; None for delete and none
    actions); its subject is the `patient_reference` govern was given. `backing_rules` names the rule
    findings that justify a warning severity (empty for info).
    """

    suggestion: AiSuggestion
    agreement: tuple[int, int]
    severity: Severity
    patient_handles: tuple[str, ...]
    knowledge_ids: tuple[str, ...]
    sample: int
    index: int
    members: tuple[tuple[int, int], ...]
    backing_rules: tuple[str, ...] = ()
    resource: dict[str, Any] | None = field(default=None, hash=False)
    # The cited passages' assertions that support the suggestion's intent ("kb.x: supports stop of nsaid
    # with methotrexate"); empty when its support is lexical only.
    support: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """What governance lets through; abstained exactly when nothing is accepted."""

    accepted: tuple[GovernedSuggestion, ...]
    rejected: tuple[Rejection, ...]
    abstained: bool
    abstain_reason: AbstainReason | None
    log: tuple[StepRecord, ...]
