"""Rule-specific override reasons: the packaged table, its validation, and that every rule has its own."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest

from plugin.rules.cards import OVERRIDE_REASONS, OVERRIDE_SYSTEM
from plugin.rules.catalog import INTERACTIONS, Interaction
from plugin.rules.override_reasons import (
    CHART_INCORRECT,
    OverrideReasonError,
    override_reasons,
    parse_override_reasons,
)

pytestmark = pytest.mark.unit

GENERIC_CODES = frozenset(c.code for c in OVERRIDE_REASONS)


def raw_table() -> dict[str, Any]:
    text = resources.files("plugin").joinpath("knowledge/override_reasons.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def producible_rule_ids() -> frozenset[str]:
    """Every rule id the live catalog can emit, found as tests/unit/test_rules.py finds them."""
    from tests.unit.test_rules import ALL_RULES, cited

    pairs = {r.rule_id for r in ALL_RULES if isinstance(r, Interaction)}
    return frozenset(pairs | {i.rule_id for i in INTERACTIONS}) | cited(
        [r for r in ALL_RULES if not isinstance(r, Interaction)], "rule."
    )


def test_every_rule_id_the_catalog_can_produce_has_its_own_reasons() -> None:
    table = override_reasons()
    produced = producible_rule_ids()
    assert len(produced) > 30, "the scan found the catalog's rules"
    uncovered = sorted(r for r in produced if table.specific(r) is None)
    assert uncovered == [], f"add entries (or a family prefix/suffix) to override_reasons.json: {uncovered}"
    for rule_id in produced:
        reasons = table.for_rule(rule_id)
        specific = [r.code for r in reasons if r.code not in GENERIC_CODES]
        assert len(specific) >= 2, rule_id
        assert reasons[-1] == CHART_INCORRECT, rule_id
        assert all(r.system == OVERRIDE_SYSTEM and r.display for r in reasons), rule_id


def test_the_most_specific_entry_wins() -> None:
    table = override_reasons()

    def codes(rule_id: str) -> list[str]:
        return [r.code for r in table.for_rule(rule_id)]

    assert codes("rule.allergy-unresolved") == [
        "reviewed-by-hand",
        "allergy-record-update",
        "chart-incorrect",
    ]
    assert "tolerated-before" in codes("rule.allergy-same-class")  # the rule.allergy- family
    assert "lab-pending" in codes("rule.some-future-recheck")  # the -recheck family covers new rechecks
    assert "monitoring-in-place" in codes("rule.vka-some-new-partner")
    # No entry: the generic reasons, exactly as before.
    assert table.for_rule("rule.unheard-of") == OVERRIDE_REASONS
    assert table.version


def test_every_defined_reason_is_used_and_displays_are_short() -> None:
    raw = raw_table()
    assert raw["version"] == override_reasons().version and raw["about"]
    used = {code for entry in raw["rules"] for code in entry["reasons"]}
    assert used == {r["code"] for r in raw["reasons"]}


def mutated(change: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw_table())
    change(raw)
    return raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.pop("version"), "exactly version"),
        (lambda t: t["reasons"].append(dict(t["reasons"][0])), "defined twice"),
        (
            lambda t: t["reasons"].append({"code": "chart-incorrect", "display": "x"}),
            "reuses a generic code",
        ),
        (lambda t: t["reasons"].append({"code": "Bad Code", "display": "x"}), "lower-case"),
        (lambda t: t["reasons"][0].update(display="x" * 81), "display of 1-80"),
        (lambda t: t["rules"][0].update(reasons=["lab-pending"]), "2-4 distinct reasons"),
        (lambda t: t["rules"][0].update(reasons=["lab-pending", "lab-pending"]), "2-4 distinct reasons"),
        (lambda t: t["rules"][0].update(reasons=["lab-pending", "nonexistent"]), "undefined reason codes"),
        (lambda t: t["rules"].append({"rule": "rule.x", "prefix": "rule.", "reasons": []}), "one of rule"),
        (
            lambda t: t["rules"].append({"prefix": "vka-", "reasons": ["lab-pending", "lab-scheduled"]}),
            "start",
        ),
        (lambda t: t["rules"].append(dict(t["rules"][0])), "two entries"),
        (lambda t: t["reasons"].append({"code": "orphan", "display": "Nobody uses this"}), "no entry uses"),
    ],
)
def test_a_malformed_table_is_refused(change: Any, message: str) -> None:
    with pytest.raises(OverrideReasonError, match=message):
        parse_override_reasons(mutated(change))


def test_the_packaged_table_parses_as_loaded() -> None:
    assert parse_override_reasons(raw_table()) == override_reasons()
