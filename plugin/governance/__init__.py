"""Governance of AI output (DESIGN §5): only suggestions that pass every check reach a card."""

from plugin.governance.govern import cluster_key, govern
from plugin.governance.model import (
    STEPS,
    AbstainReason,
    Decision,
    GovernancePolicy,
    GovernancePolicyError,
    GovernedSuggestion,
    ParsedOutput,
    Reason,
    Rejection,
    Severity,
    Step,
    StepRecord,
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
    "cluster_key",
    "govern",
]
