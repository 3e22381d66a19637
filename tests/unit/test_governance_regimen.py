"""Issue 18, first slice: an update, delete or create is checked as the regimen it would produce."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from plugin.governance import GovernancePolicy, Reason, govern, steps
from plugin.governance.protected import (
    ProtectedTherapyError,
    parse_protected_therapies,
    protected_therapies,
)
from plugin.governance.steps import Chart
from plugin.rules.model import Exposure, Finding
from plugin.suggestions import AiSuggestion, ProposedAction
from plugin.terminology import value_set_names
from tests.support import governance_corpus as corpus

pytestmark = pytest.mark.unit

POLICY = GovernancePolicy()
CASES = corpus.regimen_cases()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_regimen_case_outcome(case: corpus.RegimenCase) -> None:
    decision = govern(
        [corpus.parsed(case.sample)],
        case.chart.context,
        corpus.REGIMEN_RETRIEVED,
        corpus.knowledge(),
        POLICY,
        corpus.REGIMEN_PATIENT,
    )
    # The step that decided: the one that failed, else safety (a passed case names what it checked). A
    # case rejected after safety passed (by basis) names what safety checked.
    failed = [r for r in decision.log if r.reason is not None]
    safety = [r for r in decision.log if r.step == "safety"]
    (decisive,) = failed or safety
    assert case.detail in decisive.detail or any(case.detail in r.detail and r.passed for r in safety)
    if case.reason:
        assert decision.accepted == ()
        assert [r.reason.value for r in decision.rejected] == [case.reason]
        assert decisive.reason == Reason(case.reason)
    else:
        assert decision.rejected == ()
        assert decisive.passed
        assert len(decision.accepted) == 1


def _case(name: str) -> corpus.RegimenCase:
    return next(c for c in CASES if c.name == name)


def _action(case: corpus.RegimenCase) -> ProposedAction:
    return AiSuggestion.model_validate(case.sample["suggestions"][0]).action


def _chart(case: corpus.RegimenCase) -> Chart:
    return Chart.of(case.chart.context, corpus.knowledge(), corpus.REGIMEN_RETRIEVED)


def test_regimen_is_memoised_per_action_and_the_baseline_runs_once() -> None:
    case = _case("delete-draft-warfarin-in-af")
    chart = _chart(case)
    action = _action(case)
    first = chart.regimen(action)
    baseline = chart._before
    assert chart.regimen(action) is first
    assert chart._before is baseline
    assert [t.id for t in first.removed] == ["anticoagulant-atrial-fibrillation"]
    # A create keeps the chart and adds the product: nothing protected is removed.
    create = ProposedAction.model_validate(corpus.medication(*corpus.APIXABAN))
    assert chart.regimen(create).removed == ()
    assert chart._before is baseline
    assert len(chart._regimens) == 2


def test_an_update_within_the_protected_class_keeps_it_and_one_outside_loses_it() -> None:
    case = _case("update-warfarin-to-apixaban-in-af")
    chart = _chart(case)
    target = _action(case).target
    assert chart.regimen(_action(case)).removed == ()
    to_ibuprofen = ProposedAction.model_validate(
        corpus.action("update", "MedicationRequest", "rxnorm", *corpus.IBUPROFEN, target)
    )
    change = chart.regimen(to_ibuprofen)
    assert [t.knowledge for t in change.removed] == ["kb.protected-anticoagulant-af"]


def test_safety_skips_advice_and_service_requests() -> None:
    chart = _chart(_case("delete-draft-warfarin-in-af"))
    advice = AiSuggestion.model_validate(
        corpus.suggestion("Consider checking the INR", "Warfarin needs INR checks.", corpus.action())
    )
    assert steps.check_safety(advice, chart, POLICY).detail == "no medication changed (none)"
    test = AiSuggestion.model_validate(corpus.clean_inr())
    assert steps.check_safety(test, chart, POLICY).passed
    assert chart._regimens == {}


def _finding(rule: str, severity: str, *inputs: str) -> Finding:
    return Finding(rule, severity, "s", "e", (), inputs)  # type: ignore[arg-type]


def test_new_findings_compares_rule_severity_and_inputs() -> None:
    before = (_finding("rule.a", "warning", "M1", "D1"), _finding("rule.b", "warning", "M2"))
    after = (
        _finding("rule.a", "warning", "M1"),  # narrowed by the removal: old
        _finding("rule.a", "critical", "M1"),  # escalated: new
        _finding("rule.b", "warning", "X1"),  # the updated target read as its replacement: old
        _finding("rule.b", "warning", "M2", "M3"),  # more inputs than before: new
        _finding("rule.c", "warning", "M1"),  # another rule: new
        _finding("rule.d", "info", "M1"),  # info never vetoes
    )
    added = steps.new_findings(before, after, {"M2": "X1"})
    assert added == (after[1], after[3], after[4])
    assert steps.new_findings(before, after, {}) == (after[1], after[2], after[3], after[4])
    assert steps.new_findings((), (_finding("rule.a", "warning", "M1", "C1"),), {}) != ()


# --- the data file and its loader -------------------------------------------------------------------------


def _document() -> dict[str, Any]:
    resource = resources.files("plugin") / "knowledge" / "protected_therapies.json"
    document: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return document


def test_packaged_therapies_cite_existing_entries_and_value_sets() -> None:
    loaded = protected_therapies()
    assert loaded is protected_therapies()
    assert loaded.version == _document()["version"]
    assert {t.id for t in loaded.therapies} >= {
        "anticoagulant-atrial-fibrillation",
        "inhaled-corticosteroid-asthma",
        "insulin-type-1-diabetes",
        "antiseizure-epilepsy",
        "immunosuppressant-transplant",
    }
    kb = corpus.knowledge()
    for therapy in loaded.therapies:
        entry = kb.get(therapy.knowledge)
        assert entry is not None and entry.kind == "drug-safety", therapy.id
        assert set(therapy.conditions) <= value_set_names()
        assert set(therapy.conditions) & set(entry.applies_to.value_sets), therapy.id


def test_covers_by_class_or_ingredient() -> None:
    transplant = next(t for t in protected_therapies().therapies if t.id == "immunosuppressant-transplant")
    tacrolimus = Exposure("M1", "tacrolimus", ("tacrolimus",), frozenset({"calcineurin-inhibitor"}), False)
    mycophenolate = Exposure("M2", "mycophenolate", ("mycophenolate",), frozenset({"teratogen"}), False)
    other = Exposure("M3", "adalimumab", ("adalimumab",), frozenset({"immunosuppressant"}), False)
    assert transplant.covers(tacrolimus)
    assert transplant.covers(mycophenolate)
    assert not transplant.covers(other)


def _broken(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(_document())
    place: Any = document
    for key in path[:-1]:
        place = place[key]
    if value is _DELETE:
        del place[path[-1]]
    else:
        place[path[-1]] = value
    return document


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("version",), _DELETE, "keys must be"),
        (("version",), " ", "version: expected a non-blank string"),
        (("sources",), "FDA", "sources: expected a list"),
        (("sources",), ["FDA", "FDA"], "sources: duplicate"),
        (("therapies",), [], "therapies: expected a non-empty list"),
        (("therapies", 0), "anticoagulant", "therapies[0]: expected a JSON object"),
        (("therapies", 0, "knowledge"), _DELETE, "therapies[0]: keys must be"),
        (("therapies", 0, "id"), "Anticoagulant", "is not a lower-case hyphenated id"),
        (("therapies", 0, "classes"), ["anticoagulants"], "unknown class key"),
        (("therapies", 0, "ingredients"), ["warfarine"], "unknown ingredient"),
        (("therapies", 0, "classes"), [], "needs at least one class or ingredient"),
        (("therapies", 0, "conditions"), [], "need known value-set names"),
        (("therapies", 0, "conditions"), ["afib"], "need known value-set names"),
        (("therapies", 0, "knowledge"), "af-anticoagulation", "is not a knowledge-base id"),
        (("therapies", 1, "id"), "anticoagulant-atrial-fibrillation", "therapies: duplicate ids"),
    ],
)
def test_loader_refuses_a_broken_file(path: tuple[Any, ...], value: Any, message: str) -> None:
    with pytest.raises(ProtectedTherapyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_protected_therapies(_broken(path, value))


def test_loader_refuses_a_non_object() -> None:
    with pytest.raises(ProtectedTherapyError, match="expected a JSON object"):
        parse_protected_therapies([])


def test_an_unresolved_replacement_fails_closed_before_the_regimen_is_compared() -> None:
    case = _case("update-warfarin-to-apixaban-in-af")
    chart = _chart(case)
    document = copy.deepcopy(case.sample["suggestions"][0])
    document["action"] = corpus.action(
        "update", "MedicationRequest", "rxnorm", "99999999", "Study drug XR-17", _action(case).target
    )
    verdict = steps.check_safety(AiSuggestion.model_validate(document), chart, POLICY)
    assert verdict.reason is Reason.SAFETY_VETO
    assert verdict.detail.startswith("rule.medication-unresolved")
    assert chart._regimens == {}


def test_an_updated_target_reads_as_its_replacement() -> None:
    # Warfarin and apixaban together: renewing the apixaban keeps the old duplicate-therapy finding, which is
    # not new because the target is read as its replacement (the proposal check vetoes it on its own).
    built = corpus.regimen_chart([corpus.WARFARIN, corpus.APIXABAN], [], ["af"])
    chart = Chart.of(built.context, corpus.knowledge(), corpus.REGIMEN_RETRIEVED)
    target = next(h for h, r in built.handles.references.items() if r == "MedicationRequest/med-1364445")
    renew = ProposedAction.model_validate(
        corpus.action("update", "MedicationRequest", "rxnorm", *corpus.APIXABAN, target)
    )
    assert "rule.duplicate-therapy" in {f.rule_id for f in chart.veto(renew)}
    assert chart.regimen(renew).added == ()
