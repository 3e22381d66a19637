"""Runs every governance step over n parsed samples and decides which AI suggestions reach a card."""

# Decision rules (DESIGN §5):
#
# - Each sample first passes the schema step (the parser's outcome must be "ok"); each suggestion of an ok,
#   non-abstaining sample then runs grounding, untrusted-text, language, phrasing, intent, support, safety,
#   basis and actions (steps.py) and stops at the first failure, which becomes its Rejection. Every step run
#   is logged. Basis (a cited assertion of the suggestion's own intent) comes after safety on purpose: a
#   harmful proposal is rejected for the harm, whatever it cites.
# - With an empty retrieval set nothing is grounded: every suggestion is rejected with empty-retrieval.
# - Consistency: suggestions that passed are clustered by normalised action, (intent, type, resource type,
#   code system, code, target, dose), or for advice without an order by its intent and its summary's key
#   terms. Agreement k/n counts
#   the samples holding the cluster over all n samples given (failed and abstaining samples included, so
#   they count against agreement). k/n below `min_agreement` rejects every member with below-agreement;
#   otherwise the member of the lowest (sample, index) represents the cluster.
# - Severity: info, raised to warning only when a rule already firing on this chart (warning or critical)
#   rests wholly on what the suggestion itself cites: the finding's inputs are patient handles the suggestion
#   cites and its evidence is knowledge ids the suggestion cites (both non-empty, both subsets). A finding
#   that merely shares a passage or a handle with the suggestion lends it nothing. The model's text never
#   sets severity, critical is never given (that level is the rule cards'), and a suggestion a rule objects
#   to was already dropped by the safety step.
# - Abstention: nothing accepted. The reason is empty-retrieval, no-valid-output (no sample parsed),
#   model-abstained (no parsed sample offered a suggestion) or nothing-passed, in that order.
# Deterministic: no clock, no randomness, iteration only in input or sorted order.

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from plugin.context.model import ClinicalContext
from plugin.governance import steps, text
from plugin.governance.model import (
    AbstainReason,
    Decision,
    GovernancePolicy,
    GovernedSuggestion,
    ParsedOutput,
    Reason,
    Rejection,
    Severity,
    Step,
    StepRecord,
)
from plugin.governance.steps import Chart, Verdict
from plugin.knowledge import KnowledgeBase
from plugin.rules.model import Finding
from plugin.suggestions import AiSuggestion

__all__ = ["cluster_key", "govern"]

ClusterKey = tuple[str, ...]
# The verdicts of the steps a suggestion ran, in order, and its draft resource when every step passed.
_Judgement = tuple[tuple[tuple[Step, Verdict], ...], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class _Candidate:
    sample: int
    index: int
    suggestion: AiSuggestion
    resource: dict[str, Any] | None


def cluster_key(suggestion: AiSuggestion) -> ClusterKey:
    """The normalised action two samples must share to agree."""
    action = suggestion.action
    if action.type == "none":
        return ("advice", action.intent, *sorted(text.key_terms((suggestion.summary,))))
    coded = ("", "") if action.code is None else (action.code.system, action.code.code)
    dose = () if action.dose is None else tuple(str(v) for v in action.dose.model_dump().values())
    return (
        "order",
        action.intent,
        action.type,
        action.resource_type or "",
        *coded,
        action.target or "",
        *dose,
    )


class _Run:
    """Mutable state of one govern call: the log and the rejections, appended in order."""

    def __init__(self, chart: Chart, policy: GovernancePolicy, patient_reference: str | None) -> None:
        self.chart = chart
        self.policy = policy
        self.patient_reference = patient_reference
        self.log: list[StepRecord] = []
        self.rejected: list[Rejection] = []
        # Samples that agree repeat the same suggestion word for word; its verdicts depend only on the
        # suggestion, the declared language and this run's chart and policy, so they are judged once.
        self._judged: dict[str, _Judgement] = {}

    def record(self, step: Step, sample: int, index: int | None, verdict: Verdict) -> bool:
        self.log.append(StepRecord(step, sample, index, verdict.passed, verdict.reason, verdict.detail))
        if verdict.reason is not None:
            self.rejected.append(Rejection(sample, index, verdict.reason, verdict.detail))
        return verdict.passed

    def suggestion(
        self, sample: int, index: int, suggestion: AiSuggestion, declared: str
    ) -> _Candidate | None:
        key = f"{declared}\n{suggestion.model_dump_json()}"
        judgement = self._judged.get(key)
        if judgement is None:
            judgement = self._judged[key] = self._judge(suggestion, declared)
        verdicts, resource = judgement
        for step, verdict in verdicts:
            if not self.record(step, sample, index, verdict):
                return None
        return _Candidate(sample, index, suggestion, resource)

    def _judge(self, suggestion: AiSuggestion, declared: str) -> _Judgement:
        """Every step's verdict up to the first failure (the costlier checks come last), and the draft
        resource when all pass."""
        chart, policy = self.chart, self.policy
        checks: tuple[tuple[Step, Callable[[], Verdict]], ...] = (
            ("grounding", lambda: steps.check_grounding(suggestion, chart, policy)),
            ("untrusted-text", lambda: steps.check_untrusted(suggestion, chart, policy)),
            ("language", lambda: steps.check_language(suggestion, declared, policy)),
            ("phrasing", lambda: steps.check_phrasing(suggestion, policy)),
            ("intent", lambda: steps.check_intent(suggestion, chart)),
            ("support", lambda: steps.check_support(suggestion, chart, policy)),
            ("safety", lambda: steps.check_safety(suggestion, chart, policy)),
            ("basis", lambda: steps.check_basis(suggestion, chart)),
        )
        verdicts: list[tuple[Step, Verdict]] = []
        for step, check in checks:
            verdict = check()
            verdicts.append((step, verdict))
            if not verdict.passed:
                return tuple(verdicts), None
        verdict, resource = steps.check_actions(suggestion, chart, policy, self.patient_reference)
        verdicts.append(("actions", verdict))
        return tuple(verdicts), resource


def _severity(suggestion: AiSuggestion, findings: tuple[Finding, ...]) -> tuple[Severity, tuple[str, ...]]:
    cited_knowledge = set(suggestion.citations.knowledge)
    cited_patient = set(suggestion.citations.patient)
    backing = tuple(
        dict.fromkeys(
            f.rule_id
            for f in findings
            if f.severity != "info"
            and f.evidence
            and f.inputs
            and cited_knowledge.issuperset(f.evidence)
            and cited_patient.issuperset(f.inputs)
        )
    )
    return ("warning" if backing else "info"), backing


def govern(
    outputs: Sequence[ParsedOutput],
    context: ClinicalContext,
    retrieved_ids: frozenset[str],
    knowledge: KnowledgeBase,
    policy: GovernancePolicy,
    patient_reference: str | None = None,
) -> Decision:
    """Govern n parsed samples of one request; pure and deterministic (see the module notes)."""
    run = _Run(Chart.of(context, knowledge, retrieved_ids), policy, patient_reference)
    n = len(outputs)
    empty = not retrieved_ids
    run.log.append(
        StepRecord(
            "retrieval",
            None,
            None,
            not empty,
            Reason.EMPTY_RETRIEVAL if empty else None,
            f"{len(retrieved_ids)} passage(s) retrieved",
        )
    )
    parsed = offered = 0
    candidates: list[_Candidate] = []
    for sample, output in enumerate(outputs):
        value = output.value
        if output.outcome != "ok" or value is None:
            run.record(
                "schema", sample, None, Verdict(Reason.NOT_OK_OUTPUT, f"{output.outcome}: {output.detail}")
            )
            continue
        parsed += 1
        what = "abstained" if value.abstain else f"{len(value.suggestions)} suggestion(s)"
        run.record("schema", sample, None, Verdict(None, what))
        for index, suggestion in enumerate(value.suggestions):
            offered += 1
            if empty:
                run.record(
                    "retrieval", sample, index, Verdict(Reason.EMPTY_RETRIEVAL, "no passage to ground on")
                )
                continue
            candidate = run.suggestion(sample, index, suggestion, value.language)
            if candidate is not None:
                candidates.append(candidate)

    clusters: dict[ClusterKey, list[_Candidate]] = {}
    for candidate in candidates:
        clusters.setdefault(cluster_key(candidate.suggestion), []).append(candidate)
    findings: tuple[Finding, ...] | None = None
    accepted: list[GovernedSuggestion] = []
    for members in clusters.values():
        k = len({m.sample for m in members})
        agreed = k >= policy.min_agreement * n - 1e-9
        detail = f"{k}/{n} samples agree (threshold {policy.min_agreement:g})"
        for member in members:
            outcome = Verdict(None if agreed else Reason.BELOW_AGREEMENT, detail)
            run.record("consistency", member.sample, member.index, outcome)
        if not agreed:
            continue
        first = members[0]
        if findings is None:
            findings = run.chart.findings()  # once per call, and only when something is accepted
        severity, backing = _severity(first.suggestion, findings)
        accepted.append(
            GovernedSuggestion(
                suggestion=first.suggestion,
                agreement=(k, n),
                severity=severity,
                patient_handles=tuple(first.suggestion.citations.patient),
                knowledge_ids=tuple(first.suggestion.citations.knowledge),
                sample=first.sample,
                index=first.index,
                members=tuple((m.sample, m.index) for m in members),
                backing_rules=backing,
                resource=first.resource,
                support=tuple(
                    f"{entry_id}: {assertion.describe()}"
                    for entry_id, assertion in steps.cited_assertions(first.suggestion, run.chart).supporting
                ),
            )
        )
    accepted.sort(key=lambda g: (-g.agreement[0], g.sample, g.index))

    abstain: AbstainReason | None = None
    if not accepted:
        if empty:
            abstain = "empty-retrieval"
        elif parsed == 0:
            abstain = "no-valid-output"
        elif offered == 0:
            abstain = "model-abstained"
        else:
            abstain = "nothing-passed"
    return Decision(tuple(accepted), tuple(run.rejected), not accepted, abstain, tuple(run.log))
