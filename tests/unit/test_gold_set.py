"""The pharmacist-review gold set (bench/gold/) is well formed, covers every fixture chart, names only real
rule ids, and the accuracy bench computes ratios from it. The recall/precision targets are not asserted."""

from __future__ import annotations

import re
from datetime import date

import orjson
import pytest
from pydantic import ValidationError

from bench.gold import accuracy
from bench.gold.model import FAMILIES, GOLD_PATH, SEVERITIES, GoldSet, load_gold
from plugin.rules.interactions import interaction_table
from plugin.rules.model import Finding
from tests.support.fixtures_paths import REPO_ROOT, synthea_bundle_paths

pytestmark = pytest.mark.unit

CATALOG = REPO_ROOT / "plugin" / "rules"


def product_rule_ids() -> set[str]:
    """Every rule id a rule module spells out (the modules plugin.rules.registry assembles), and the pairs
    of the interaction table."""
    return {
        rule_id
        for path in CATALOG.glob("*.py")
        for rule_id in re.findall(r'"(rule\.[a-z0-9-]+)"', path.read_text(encoding="utf-8"))
    } | {pair.rule_id for pair in interaction_table()}


def test_the_gold_file_validates() -> None:
    gold = load_gold()
    assert gold.version >= 1
    assert gold.hook == "patient-view"
    assert set(gold.families) == set(FAMILIES)
    assert set(gold.severities) == set(SEVERITIES)


def test_it_covers_every_fixture_bundle_exactly_once() -> None:
    stems = sorted(path.stem for path in synthea_bundle_paths())
    files = [p.file for p in load_gold().patients]
    assert len(stems) == 20
    assert sorted(files) == stems


def test_as_of_is_each_charts_last_encounter() -> None:
    paths = {path.stem: path for path in synthea_bundle_paths()}
    for patient in load_gold().patients:
        bundle = orjson.loads(paths[patient.file].read_bytes())
        starts = [
            e["resource"]["period"]["start"][:10]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Encounter"
        ]
        assert patient.as_of == date.fromisoformat(max(starts)), patient.key


def test_ids_are_unique_and_vocabularies_are_closed() -> None:
    gold = load_gold()
    ids = [f.id for p in gold.patients for f in p.findings]
    assert len(ids) == len(set(ids))
    for patient in gold.patients:
        assert patient.nothing_to_say == (not patient.findings)
        for finding in patient.findings:
            assert finding.family in FAMILIES
            assert finding.severity in SEVERITIES
            assert finding.id.startswith(patient.key)
    assert set(gold.rule_families.values()) <= set(FAMILIES)


def test_every_rule_id_named_exists_in_the_product() -> None:
    known = product_rule_ids()
    assert known, f"no rule ids found in {CATALOG}"
    gold = load_gold()
    named = {r for p in gold.patients for f in p.findings for r in f.rule_ids}
    assert named <= known, sorted(named - known)
    assert set(gold.rule_families) <= known, sorted(set(gold.rule_families) - known)


def test_the_loader_rejects_a_duplicated_finding_id() -> None:
    raw = orjson.loads(GOLD_PATH.read_bytes())
    patient = next(p for p in raw["patients"] if len(p["findings"]) >= 2)
    patient["findings"][1]["id"] = patient["findings"][0]["id"]
    with pytest.raises(ValidationError, match="not unique"):
        GoldSet.model_validate(raw)


def test_a_card_matches_by_rule_id_and_cited_basis() -> None:
    gold = load_gold()
    finding = next(f for p in gold.patients for f in p.findings if f.id.endswith("verapamil-digoxin"))
    card = Finding("rule.digoxin-interacting", "warning", "s", "e", (), ("M1", "M2"))
    assert accuracy.matches(card, frozenset({"ing:digoxin", "rx:897718"}), finding)
    assert not accuracy.matches(card, frozenset({"ing:metformin"}), finding)
    other_rule = Finding("rule.vka-nsaid", "warning", "s", "e", (), ("M1",))
    assert not accuracy.matches(other_rule, frozenset({"ing:digoxin"}), finding)


def test_the_accuracy_computation_reports_ratios() -> None:
    synthea_bundle_paths()  # skips when the shared fixtures are absent
    report = accuracy.evaluate(fixtures=synthea_bundle_paths()[0].parent)
    total = sum(len(p.findings) for p in load_gold().patients)
    assert report.overall.gold == total
    assert len(report.patients) == 20
    for row in (*report.families.values(), report.overall):
        assert 0 <= row.found <= row.gold
        assert 0 <= row.matched <= row.cards
        for ratio in (row.recall, row.precision):
            assert ratio is None or 0.0 <= ratio <= 1.0
    lines = accuracy.render(report)
    text = "\n".join(lines)
    assert "recall" in lines[1] and "precision" in lines[1]
    for patient in load_gold().patients:  # bundle file names hold patients' names: never printed
        assert patient.file.rsplit("_", 1)[0] not in text
