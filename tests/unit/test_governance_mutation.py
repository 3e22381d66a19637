"""Every governance step is load-bearing: with any single step made to pass everything, a corpus case fails."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from plugin.governance import GovernancePolicy, govern, steps
from plugin.governance.steps import Verdict
from tests.support import governance_corpus as corpus
from tests.unit.test_governance_intents import CASES as INTENT_CASES
from tests.unit.test_governance_intents import RETRIEVED as INTENT_RETRIEVED
from tests.unit.test_governance_intents import _sample

pytestmark = pytest.mark.unit

POLICY = GovernancePolicy()
PASS = Verdict(None, "mutated: passes everything")


def _outcomes() -> list[tuple[str, tuple[str, ...]]]:
    """Each corpus case's rejection reasons under the current steps."""
    found: list[tuple[str, tuple[str, ...]]] = []
    for case in corpus.all_cases():
        decision = govern(
            [corpus.parsed(s) for s in case.samples],
            corpus.context(),
            corpus.RETRIEVED,
            corpus.knowledge(),
            POLICY,
            corpus.PATIENT,
        )
        found.append((case.name, tuple(r.reason.value for r in decision.rejected)))
    for regimen in corpus.regimen_cases():
        decision = govern(
            [corpus.parsed(regimen.sample)],
            regimen.chart.context,
            corpus.REGIMEN_RETRIEVED,
            corpus.knowledge(),
            POLICY,
            corpus.REGIMEN_PATIENT,
        )
        found.append((regimen.name, tuple(r.reason.value for r in decision.rejected)))
    for intent in INTENT_CASES:
        decision = govern(
            [corpus.parsed(_sample(intent))],
            intent.built.context,
            INTENT_RETRIEVED,
            corpus.knowledge(),
            POLICY,
            corpus.REGIMEN_PATIENT,
        )
        found.append((intent.name, tuple(r.reason.value for r in decision.rejected)))
    return found


def _passing_actions(suggestion: Any, chart: Any, policy: Any, patient_reference: str | None) -> Any:
    return PASS, steps.build_resource(suggestion.action, patient_reference)


MUTANTS: dict[str, Callable[..., Any]] = {
    "check_grounding": lambda *args: PASS,
    "check_untrusted": lambda *args: PASS,
    "check_language": lambda *args: PASS,
    "check_phrasing": lambda *args: PASS,
    "check_intent": lambda *args: PASS,
    "check_support": lambda *args: PASS,
    "check_safety": lambda *args: PASS,
    "check_basis": lambda *args: PASS,
    "check_actions": _passing_actions,
}


def test_the_unmutated_steps_give_the_corpus_outcomes() -> None:
    outcomes = dict(_outcomes())
    assert outcomes["advice-to-stop-warfarin"] == ("undeclared-action",)
    assert outcomes["clean-outputs"] == ()


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_a_step_that_passes_everything_fails_a_corpus_case(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _outcomes()
    monkeypatch.setattr(steps, name, MUTANTS[name])
    mutated = _outcomes()
    changed = [case for (case, before), (_, after) in zip(expected, mutated, strict=True) if before != after]
    assert changed, f"no corpus case notices {name} passing everything"
