"""Runs the rules over a context (or a context plus a proposed order) and orders what they find."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from plugin.context.model import ClinicalContext, Code
from plugin.rules.model import SEVERITY_RANK, Finding, RuleFacts
from plugin.rules.registry import CARE_GAP_RULES, MEDICATION_RULES, Rule
from plugin.rules.resolution import RESOLUTION_CARE_GAP_RULES, RESOLUTION_RULES

ALL_RULES: tuple[Rule, ...] = (*MEDICATION_RULES, *CARE_GAP_RULES)
# A proposal is always checked for resolution (MEDICATION_RULES includes it; kept explicit so that a change of
# the registry cannot drop it): a drug no rule can see must veto, never pass as "no interaction found".
PROPOSAL_RULES: tuple[Rule, ...] = (
    *MEDICATION_RULES,
    *(rule for rule in RESOLUTION_RULES if rule not in MEDICATION_RULES),
)
PROPOSAL_HANDLE = "X1"


def _listing_order(finding: Finding) -> tuple[int, str, tuple[str, ...]]:
    # Most severe first, then stable by rule and inputs, so the same chart always lists cards alike.
    return (-SEVERITY_RANK[finding.severity], finding.rule_id, finding.inputs)


# Guidance written to exclude hospice, palliative and end-of-life care: the AGS Beers criteria ("not applicable
# ... in hospice and palliative care") and the CDC 2022 opioid guideline (its scope leaves out palliative and
# end-of-life care). With such care on record, a card resting on nothing but them is not shown.
OUT_OF_SCOPE_AT_END_OF_LIFE: Final = ("beers-", "cdc-opioid-")  # knowledge-base id stems


# Care gaps are therapy or prevention to add (a statin, a vaccine, anticoagulation, a lab recheck): with comfort
# as the goal of care they are deprescribed, not added. What the chart itself gets wrong (an allergy filed under
# the wrong category) is still said.
_QUIET_AT_END_OF_LIFE: Final = frozenset(map(id, CARE_GAP_RULES)) - frozenset(
    map(id, RESOLUTION_CARE_GAP_RULES)
)


def _in_scope(finding: Finding) -> bool:
    return not all(kb.removeprefix("kb.").startswith(OUT_OF_SCOPE_AT_END_OF_LIFE) for kb in finding.evidence)


def run_rules(facts: RuleFacts, rules: Iterable[Rule] = ALL_RULES) -> tuple[Finding, ...]:
    if facts.value_sets.get("end-of-life-care"):
        found = (
            finding
            for rule in rules
            if id(rule) not in _QUIET_AT_END_OF_LIFE
            for finding in rule(facts)
            if _in_scope(finding)
        )
    else:
        found = (finding for rule in rules for finding in rule(facts))
    return tuple(sorted(found, key=_listing_order))


def merge_findings(*runs: tuple[Finding, ...]) -> tuple[Finding, ...]:
    """Findings of runs over disjoint rule sets, listed as one run over all of them would list them."""
    return tuple(sorted((finding for run in runs for finding in run), key=_listing_order))


def evaluate(context: ClinicalContext, rules: Iterable[Rule] = ALL_RULES) -> tuple[Finding, ...]:
    return run_rules(RuleFacts.of(context), rules)


def check_proposal(context: ClinicalContext, medication: Code) -> tuple[Finding, ...]:
    """Findings a proposed medication would cause: the veto the governance layer applies to AI output."""
    facts = RuleFacts.of(context, proposed=((PROPOSAL_HANDLE, medication),))
    return tuple(f for f in run_rules(facts, PROPOSAL_RULES) if PROPOSAL_HANDLE in f.proposed)
