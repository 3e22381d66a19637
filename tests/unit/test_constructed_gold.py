"""The constructed-case gold set (bench/gold/constructed_cases.json) is well formed, covers every check with a
positive and a negative case, builds cleanly as hook calls, and its scorer runs end to end."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from bench.gold import constructed
from bench.gold.model import (
    CHECK_RULES_PATH,
    CONSTRUCTED_PATH,
    FAMILIES,
    HELDOUT_PATH,
    SEVERITIES,
    ConstructedSet,
    load_check_rules,
    load_constructed,
    load_full_review,
)

pytestmark = pytest.mark.unit


def test_the_file_validates() -> None:
    gold = load_constructed()
    assert gold.version >= 1
    assert set(gold.families) == set(FAMILIES)
    assert set(gold.severities) == set(SEVERITIES)
    assert len(gold.cases) >= 70
    assert sum(1 for c in gold.cases if not c.findings and not c.negative_for) >= 5  # plain quiet charts


def test_every_check_has_a_positive_and_a_negative_case() -> None:
    gold = load_constructed()
    positive = {f.check for c in gold.cases for f in c.findings}
    negative = {k for c in gold.cases for k in c.negative_for}
    assert set(gold.checks) - positive == set()
    assert set(gold.checks) - negative == set()


def test_the_full_review_extends_every_case_once_and_keeps_the_authors_negatives() -> None:
    review, constructed = load_full_review(), load_constructed()
    merged = review.merged(constructed)
    added = sum(len(c.add) for c in review.cases)
    assert added > 0
    assert (
        sum(len(c.findings) for c in merged.cases) == sum(len(c.findings) for c in constructed.cases) + added
    )
    negatives = {c.id: set(c.negative_for) for c in constructed.cases}
    assert all(f.check not in negatives[c.case] for c in review.cases for f in c.add)
    assert {(c.case, c.check) for c in review.negative_conflicts} <= {
        (case, check) for case, checks in negatives.items() for check in checks
    }
    with pytest.raises(ValueError, match="exactly once"):
        review.model_copy(update={"cases": review.cases[1:]}).merged(constructed)


def test_every_check_is_in_the_rule_map() -> None:
    heldout = sorted(HELDOUT_PATH.parent.glob("heldout*_cases.json"))
    declared = (
        set(load_constructed().checks)
        | set().union(*(load_constructed(path).checks for path in heldout))
        | set(load_full_review().checks)
    )
    mapping = load_check_rules()
    assert set(load_constructed().checks) <= set(mapping)
    assert set(mapping) <= declared, "check_rules.json names a check no gold set declares"


def test_every_case_builds_a_context_with_nothing_skipped() -> None:
    for case in load_constructed().cases:
        built = constructed.case_context(case)
        assert built.context.skipped == (), (case.id, built.context.skipped)
        assert built.context.demographics.age_years is not None, case.id
        assert len(built.context.draft_orders) == len(case.draft_orders), case.id


def test_the_scorer_runs_end_to_end_with_ratios_in_range() -> None:
    gold = load_constructed()
    report = constructed.evaluate(gold)
    assert report.overall.gold == sum(len(c.findings) for c in gold.cases)
    for row in (*report.hooks.values(), *report.families.values(), *report.checks.values(), report.overall):
        for ratio in (row.recall, row.precision):
            assert ratio is None or 0.0 <= ratio <= 1.0
    lines = constructed.render(report)
    assert lines[0].startswith("constructed-case gold set")


def test_a_mapped_rule_is_credited_only_through_its_check() -> None:
    # A synthetic mapping: every check mapped to every rule id the cards carry. Recall can then only rise.
    gold = load_constructed()
    baseline = constructed.evaluate(gold, {check: () for check in gold.checks})
    rule_ids = sorted({card.rule_id for result in baseline.cases for card in result.cards})
    generous = constructed.evaluate(gold, {check: rule_ids for check in gold.checks})
    assert baseline.overall.found == 0
    assert generous.overall.found >= baseline.overall.found
    assert generous.overall.cards == baseline.overall.cards


def test_the_loader_rejects_a_case_that_is_both_positive_and_negative_for_a_check() -> None:
    raw = orjson.loads(CONSTRUCTED_PATH.read_bytes())
    case = next(c for c in raw["cases"] if c["findings"])
    case["negative_for"] = [case["findings"][0]["check"]]
    with pytest.raises(ValidationError, match="both found and negative"):
        ConstructedSet.model_validate(raw)


def test_check_rules_file_is_a_plain_mapping() -> None:
    raw = orjson.loads(CHECK_RULES_PATH.read_bytes())
    assert isinstance(raw, dict)
    assert all(isinstance(v, list) and all(isinstance(r, str) for r in v) for v in raw.values())


def test_the_held_out_set_validates_builds_and_is_mapped() -> None:
    gold = load_constructed(HELDOUT_PATH)
    assert len(gold.cases) >= 40
    rules = load_check_rules()
    assert sorted(set(gold.checks) - set(rules)) == []
    for case in gold.cases:
        assert constructed.case_context(case).context.skipped == (), case.id
