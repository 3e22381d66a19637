"""The rules and the knowledge base they cite agree: severities, thresholds, intervals, and no dead entries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin.knowledge import KnowledgeBase, load_knowledge_base
from plugin.rules import catalog, gaps, label_limits
from plugin.rules.cards import finding_card
from plugin.rules.catalog import Rule
from plugin.rules.freshness import lab_windows
from plugin.rules.model import SEVERITY_RANK, Finding, RuleFacts, Severity
from tests.support.rule_cases import Chart, med, problem
from tests.unit import test_monitoring_rules, test_rules

PLUGIN = Path(__file__).resolve().parents[2] / "plugin"
# Rules whose severity is graded below their primary entry's by design; each still reaches the entry's severity
# in some positive case (checked below), so the grading is a choice the cases show, not a drift.
GRADED: dict[str, str] = {
    "rule.egfr-recheck": "info while no stale value is alarming; warning when the old value already crossed",
    "rule.potassium-recheck": "info while no stale value is alarming; warning when the old value already crossed",
    "rule.epinephrine-autoinjector-weight": "info when the weight is unknown or stale; warning on a mismatch",
    "rule.metformin-egfr": "warning from 30 to 45 (review), critical below 30 (contraindicated), as the entry says",
    "rule.nsaid-pregnancy": "info while gestation is unknown; warning from 20 weeks, as the entry says",
    "rule.chc-migraine": "critical with aura (contraindicated), warning for migraine of unrecorded type",
    "rule.digoxin-level-recheck": "info while no old level is alarming; warning when the old level was high",
    "rule.inr-above-range": "warning above the target range, critical from 4.5 (hold doses), as the entry says",
    "rule.hypoglycaemia-glucose": "warning at level 1 (below 70 mg/dL), critical at level 2 (below 54)",
    "rule.methotrexate-daily-dosing": "warning on a recorded medication, critical on an order being placed",
    "rule.allergy-same-drug": "critical for a high-criticality or severe reaction, info for an intolerance, else "
    "warning",
    "rule.allergy-same-class": "info for a low-criticality intolerance without a severe reaction, else critical",
    "rule.clozapine-neutropenia": "warning at 1.0-1.49 (monitor closely), critical below 1.0 (interrupt), as the entry says",
    "rule.fumarate-lymphopenia": "info while the low count is under six months old, warning once it has persisted",
    "rule.af-anticoagulation-absent": "warning from a CHA2DS2-VASc of 2 in men or 3 in women, info one point below "
    "(anticoagulation reasonable), as the entry says",
    "rule.chc-postpartum": "critical before 21 days (MEC 4), warning from 21 to 42 days (MEC 3 with risk factors)",
    "rule.cough-cold-under-4": "critical under 2 (the FDA's advice), warning from 2 to 3 (the products' labels)",
}


@pytest.fixture(scope="module")
def knowledge() -> KnowledgeBase:
    return load_knowledge_base()


# Graded rules outside the two case tables, each with a chart that reaches its entry's severity.
OTHER_GRADED_CASES: tuple[tuple[str, Rule, Chart], ...] = (
    (
        "af-anticoagulation/score-3",
        gaps.af_anticoagulation_absent,
        Chart(age=80, gender="male", resources=(problem("atrial-fibrillation"), problem("hypertension"))),
    ),
    (
        "chc-postpartum/10-days",
        gaps.chc_postpartum,
        Chart(
            age=29,
            gender="female",
            resources=(
                problem("postpartum-state", onset_days_ago=10),
                med("levonorgestrel-ethinyl-estradiol"),
            ),
        ),
    ),
    (
        "cough-cold/20-months",
        label_limits.cough_cold_under_4,
        Chart(age=1, resources=(med("dextromethorphan-guaifenesin"),)),
    ),
    (
        "af-anticoagulation/score-1",
        gaps.af_anticoagulation_absent,
        Chart(age=64, gender="male", resources=(problem("atrial-fibrillation"), problem("hypertension"))),
    ),
)


def _positive_findings() -> Iterator[tuple[object, Finding]]:
    # The rule case tables: the catalog's and the monitoring module's (same shape: id, rule, chart, expected).
    for case in (*test_rules.CASES, *test_monitoring_rules.CASES):
        if case.expected:
            built = case.chart.build()
            for finding in case.rule(RuleFacts.of(built.context)):
                yield case, finding
    for case_id, rule, chart in OTHER_GRADED_CASES:
        built = chart.build()
        for finding in rule(RuleFacts.of(built.context)):
            yield case_id, finding


def _primary_severity(knowledge: KnowledgeBase, finding: Finding) -> Severity:
    entry = knowledge.get(finding.evidence[0])
    assert entry is not None, f"{finding.rule_id} cites unknown {finding.evidence[0]}"
    assert entry.severity_hint is not None, f"{entry.id} has no severity hint"
    return entry.severity_hint


def test_no_card_is_more_severe_than_the_entry_it_cites_first(knowledge: KnowledgeBase) -> None:
    louder = {
        (getattr(case, "id", "?"), finding.rule_id, finding.severity, finding.evidence[0])
        for case, finding in _positive_findings()
        if SEVERITY_RANK[finding.severity] > SEVERITY_RANK[_primary_severity(knowledge, finding)]
    }
    assert not louder, f"cards louder than their primary evidence: {sorted(louder)}"


def test_every_card_matches_its_primary_entry_unless_graded(knowledge: KnowledgeBase) -> None:
    quieter = {
        (finding.rule_id, finding.severity, finding.evidence[0], _primary_severity(knowledge, finding))
        for _, finding in _positive_findings()
        if finding.severity != _primary_severity(knowledge, finding) and finding.rule_id not in GRADED
    }
    assert not quieter, (
        f"cards quieter than their primary evidence (grade them on purpose or fix): {sorted(quieter)}"
    )


def test_graded_rules_reach_their_entrys_severity_in_some_case(knowledge: KnowledgeBase) -> None:
    loudest: dict[tuple[str, str], Severity] = {}
    for _, finding in _positive_findings():
        if finding.rule_id in GRADED:
            key = (finding.rule_id, finding.evidence[0])
            if SEVERITY_RANK[finding.severity] > SEVERITY_RANK.get(loudest.get(key, "info"), -1):
                loudest[key] = finding.severity
    unreached = sorted(
        (rule_id, kb, severity, knowledge.get(kb).severity_hint)  # type: ignore[union-attr]
        for (rule_id, kb), severity in loudest.items()
        if severity != knowledge.get(kb).severity_hint  # type: ignore[union-attr]
    )
    assert not unreached, f"graded rules never reaching their entry's severity: {unreached}"
    assert {rule_id for rule_id, _ in loudest} == set(GRADED), "a graded rule has no positive case"


def test_the_allergy_and_pregnancy_tables_copy_their_entries_severities(knowledge: KnowledgeBase) -> None:
    for allergy, (_, _, cross_kb, severity) in catalog._ALLERGY_GROUPS.items():
        assert knowledge.get(cross_kb).severity_hint == severity, allergy  # type: ignore[union-attr]
    for key, kb, severity in catalog._PREGNANCY_EVIDENCE:
        assert knowledge.get(kb).severity_hint == severity, key  # type: ignore[union-attr]


def _statement(knowledge: KnowledgeBase, entry_id: str) -> str:
    entry = knowledge.get(entry_id)
    assert entry is not None, entry_id
    return entry.statement


@pytest.mark.parametrize(
    ("what", "entry_id", "phrases"),
    [
        # Each number a rule decides on, and the words of the entry it cites for that number.
        ("metformin contraindicated below eGFR 30", "kb.metformin-egfr-thresholds", ("below 30", "30–45")),
        ("nitrofurantoin avoided below 30 (Beers)", "kb.beers-nitrofurantoin-crcl-30", ("below 30",)),
        ("INR due after 4 weeks", "kb.warfarin-inr-monitoring", ("every 1–4 weeks",)),
        ("HbA1c twice a year", "kb.ada-hba1c-testing-frequency", ("twice a year",)),
        ("simvastatin caps 10 and 20 mg", "kb.simvastatin-dose-limits", ("10 mg", "20 mg")),
        (
            "auto-injector 0.3 mg from 30 kg, 0.15 mg from 15 kg",
            "kb.epinephrine-autoinjector-weight-dose",
            ("30 kg", "15–30 kg", "7.5–15 kg"),
        ),
        ("no potassium-raising start at 5.0", "kb.potassium-raising-drug-start-threshold", ("5.0 mmol/L",)),
        ("hyperkalaemia at 5.5", "kb.hyperkalaemia-potassium-raising-drugs", ("5.5 mmol/L",)),
    ],
)
def test_entry_states_the_number_the_rule_uses(
    knowledge: KnowledgeBase, what: str, entry_id: str, phrases: tuple[str, ...]
) -> None:
    statement = _statement(knowledge, entry_id)
    missing = [p for p in phrases if p not in statement]
    assert not missing, f"{what}: {entry_id} no longer says {missing}"


def test_the_rule_constants_are_the_entries_numbers() -> None:
    # The other half of the check above: the code's numbers, read back.
    assert catalog.POTASSIUM_START_LIMIT == 5.0
    assert catalog.SIMVASTATIN_CAPS["amlodipine"] == 20 and catalog.SIMVASTATIN_CAPS["verapamil"] == 10
    assert catalog.labelled_autoinjector_mg(30) == 0.3 and catalog.labelled_autoinjector_mg(29.9) == 0.15
    assert catalog.labelled_autoinjector_mg(15) == 0.15 and catalog.labelled_autoinjector_mg(7.5) == 0.1
    windows = lab_windows()
    assert windows["inr"].max_age_days == 4 * 7
    assert windows["hba1c"].max_age_days == 183  # half a year


def test_lab_windows_cite_entries_that_exist(knowledge: KnowledgeBase) -> None:
    for analyte, window in lab_windows().items():
        assert window.basis in knowledge, f"{analyte}: window basis {window.basis} is not an entry"


# The data tables rules read their evidence ids from, besides the rule modules themselves, and the
# protected therapies governance's safety step vetoes removals with (plugin/governance/protected.py).
RULE_TABLES = (
    "renal_dosing.json",
    "dose_ranges.json",
    "opioid_mme.json",
    "protected_therapies.json",
    "drug_monitoring.json",
    "interaction_pairs.json",
    "paediatric_dose_bands.json",
)


def _cited_ids() -> set[str]:
    paths = [*(PLUGIN / "rules").rglob("*.py"), *(PLUGIN / "knowledge" / name for name in RULE_TABLES)]
    cited: set[str] = set()
    for path in paths:
        cited |= set(re.findall(r'"(kb\.[a-z0-9-]+)"', path.read_text(encoding="utf-8")))
    return cited


def test_every_cited_entry_exists(knowledge: KnowledgeBase) -> None:
    assert sorted(i for i in _cited_ids() if i not in knowledge) == []


def test_no_dead_drug_safety_entries(knowledge: KnowledgeBase) -> None:
    cited = _cited_ids()
    dead = sorted(e.id for e in knowledge.by_kind("drug-safety") if e.id not in cited)
    assert not dead, f"drug-safety entries no rule cites (write the rule or remove the entry): {dead}"


def test_rule_sources_are_not_search_pages(knowledge: KnowledgeBase) -> None:
    # Every entry a rule cites (in its code or its tables) names the exact document, not a search.
    cited = _cited_ids()
    searches = sorted(
        e.id
        for e in knowledge
        if e.id in cited and ("search.cfm" in e.source.url or "query=" in e.source.url)
    )
    assert not searches, f"entries cited by rules whose source is a search page: {searches}"


def test_the_withdrawn_list_is_the_entrys(knowledge: KnowledgeBase) -> None:
    entry = knowledge.get("kb.us-withdrawn-drug-products")
    assert entry is not None and frozenset(entry.applies_to.ingredients) == catalog.WITHDRAWN_FOR_SAFETY


def test_every_rule_card_links_its_first_evidence(knowledge: KnowledgeBase) -> None:
    # A clinician reaches the primary source in one click: the card's first link is the first evidence's URL.
    for case in (*test_rules.CASES, *test_monitoring_rules.CASES):
        if not case.expected:
            continue
        built = case.chart.build()
        for finding in case.rule(RuleFacts.of(built.context)):
            card = finding_card(finding, built.context, built.handles, knowledge, "rule-case")
            first = knowledge.get(finding.evidence[0])
            assert first is not None and card.links, finding.rule_id
            assert card.links[0].url == first.source.url, (case.id, finding.rule_id)
