"""Rule cards against the pharmacist-review gold set: recall per gold family, precision per card family.

Each gold patient's chart is prefetched as an EHR would (CHART_PREFETCH answered by its bundle's FhirStore,
as tests/support/charts.py does) and built with `now` at the end of its as_of day (UTC; no fixture resource
is dated later), then `run_rules(RuleFacts.of(context), MEDICATION_RULES + CARE_GAP_RULES)` runs.

Matching, by rule id and basis: a card matches a gold finding of the same patient when its rule id is in the
finding's `rule_ids` and the handles it cites (inputs and proposed) resolve, through the context, to at least
one of the finding's basis items: a medication whose RxNorm product code or canonical ingredient is in the
basis, a lab series whose analyte is a basis lab's, or a problem whose SNOMED code is a basis condition. A
finding with an empty basis, or a card citing no medication, lab or problem (a vaccine-due card cites
immunisations at most), matches by rule id alone. A gold finding is found when any card
matches it; a card counts towards precision when it matches any gold finding. Output names patients only by
the first 8 hex digits of the bundle's UUID, never by the file name (which holds the patient's name).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path

import orjson

from bench.gold.model import FAMILIES, Basis, GoldFinding, GoldPatient, GoldSet, load_gold
from cds_hooks.prefetch import render_template
from plugin import terminology
from plugin.catalog import CHART_PREFETCH
from plugin.context.build import build_context
from plugin.context.codes import analyte_for_loinc
from plugin.context.model import ClinicalContext, DraftOrder, Medication
from plugin.fhir_search import FhirStore
from plugin.rules.engine import run_rules
from plugin.rules.model import Finding, RuleFacts
from plugin.rules.registry import CARE_GAP_RULES, MEDICATION_RULES

SYNTHEA = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "synthea"
FHIR_BASE = "https://ehr.bench.invalid/fhir/r4"
RULES = (*MEDICATION_RULES, *CARE_GAP_RULES)
UNMAPPED = "unmapped"


def chart_context(bundle_path: Path, as_of: datetime) -> ClinicalContext:
    """The context a patient-view call would build for this chart at `as_of`."""
    store = FhirStore.from_bundles([orjson.loads(bundle_path.read_bytes())])
    (patient,) = store.search("Patient", [])
    hook = {"patientId": str(patient["id"]), "userId": "Practitioner/bench"}
    prefetch = {k: store.query(render_template(t, hook), FHIR_BASE) for k, t in CHART_PREFETCH.items()}
    return build_context(prefetch, as_of).context


def as_of_time(patient: GoldPatient) -> datetime:
    return datetime.combine(patient.as_of, time(23, 59, 59), UTC)


def handle_tokens(context: ClinicalContext) -> dict[str, frozenset[str]]:
    """Each fact's handle → the basis tokens it stands for (rx:CODE, ing:NAME, lab:ANALYTE, sct:CODE)."""
    tokens: dict[str, frozenset[str]] = {}
    meds: list[Medication | DraftOrder] = [*context.medications, *context.draft_orders]
    for med in meds:
        rxnorm = med.code.code if med.code.system == "rxnorm" else None
        names = {*med.ingredients, *terminology.ingredients_of(rxnorm, med.code.display)}
        tokens[med.handle] = frozenset({f"rx:{med.code.code}", *(f"ing:{n}" for n in names)})
    for series in context.labs:
        for measurement in series.measurements:
            tokens[measurement.handle] = frozenset({f"lab:{series.analyte}"})
    for problem in context.problems:
        tokens[problem.handle] = frozenset({f"sct:{problem.code.code}"})
    return tokens


def basis_tokens(finding: GoldFinding) -> frozenset[str]:
    return tokens_of_basis(finding.basis)


def tokens_of_basis(basis: Basis) -> frozenset[str]:
    """A gold basis as tokens: rx:PRODUCT and ing:NAME per ingredient, lab:ANALYTE, sct:CODE."""
    out: set[str] = set()
    for ingredient in basis.ingredients:
        # As written, and as the terminology spells it ("estrogens, conjugated (USP)" is conjugated estrogens).
        out.add(f"ing:{ingredient.name}")
        out.add(f"ing:{terminology.canonical_ingredient(ingredient.name)}")
        if ingredient.product_rxnorm:
            out.add(f"rx:{ingredient.product_rxnorm}")
    for lab in basis.labs:
        analyte = analyte_for_loinc(lab.loinc)
        out.add(f"lab:{analyte.key if analyte is not None else lab.name}")
    out.update(f"sct:{c.snomed}" for c in basis.conditions)
    return frozenset(out)


def card_tokens(card: Finding, tokens: dict[str, frozenset[str]]) -> frozenset[str]:
    return frozenset().union(*(tokens.get(h, frozenset()) for h in (*card.inputs, *card.proposed)))


def matches(card: Finding, cited: frozenset[str], finding: GoldFinding) -> bool:
    return matches_basis(card, cited, finding.rule_ids, finding.basis)


def matches_basis(card: Finding, cited: frozenset[str], rule_ids: Iterable[str], basis: Basis) -> bool:
    """The matching rule shared by both gold sets: rule id among `rule_ids`, cited handles meet the basis."""
    if card.rule_id not in rule_ids:
        return False
    return basis.empty or not cited or not cited.isdisjoint(tokens_of_basis(basis))


@dataclass
class PatientResult:
    key: str
    gold: tuple[GoldFinding, ...]
    cards: tuple[Finding, ...]
    found: dict[str, bool] = field(default_factory=dict)  # gold finding id → found
    card_match: list[GoldFinding | None] = field(default_factory=list)  # per card: first gold it matches
    cited: list[frozenset[str]] = field(default_factory=list)


def score_patient(patient: GoldPatient, context: ClinicalContext) -> PatientResult:
    cards = run_rules(RuleFacts.of(context), RULES)
    tokens = handle_tokens(context)
    result = PatientResult(patient.key, patient.findings, cards)
    result.found = {f.id: False for f in patient.findings}
    for card in cards:
        cited = card_tokens(card, tokens)
        hit = [f for f in patient.findings if matches(card, cited, f)]
        for finding in hit:
            result.found[finding.id] = True
        result.card_match.append(hit[0] if hit else None)
        result.cited.append(cited)
    return result


@dataclass
class Row:
    gold: int = 0
    found: int = 0
    cards: int = 0
    matched: int = 0

    @property
    def recall(self) -> float | None:
        return self.found / self.gold if self.gold else None

    @property
    def precision(self) -> float | None:
        return self.matched / self.cards if self.cards else None


@dataclass
class Report:
    hook: str
    patients: list[PatientResult]
    families: dict[str, Row]
    overall: Row


def tabulate(gold: GoldSet, results: Sequence[PatientResult]) -> Report:
    families: dict[str, Row] = {name: Row() for name in (*FAMILIES, UNMAPPED)}
    overall = Row()
    for result in results:
        for finding in result.gold:
            for row in (families[finding.family], overall):
                row.gold += 1
                row.found += result.found[finding.id]
        for card, matched in zip(result.cards, result.card_match, strict=True):
            family = matched.family if matched else gold.rule_families.get(card.rule_id, UNMAPPED)
            for row in (families[family], overall):
                row.cards += 1
                row.matched += matched is not None
    return Report(gold.hook, list(results), families, overall)


def evaluate(gold: GoldSet | None = None, fixtures: Path = SYNTHEA) -> Report:
    gold = gold or load_gold()
    results = [
        score_patient(p, chart_context(fixtures / f"{p.file}.json", as_of_time(p))) for p in gold.patients
    ]
    return tabulate(gold, results)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cited_names(cited: Iterable[str]) -> str:
    names = sorted(
        t.split(":", 1)[1] if t[:4] != "sct:" else f"SNOMED {t[4:]}" for t in cited if t[:3] != "rx:"
    )
    return ", ".join(names) or "-"


def table_rows(rows: dict[str, Row], overall: Row, width: int = 12) -> list[str]:
    """One line per non-empty row, then `all`: gold, found, recall, cards, matched, precision."""
    lines = []
    for name, row in (*rows.items(), ("all", overall)):
        if name != "all" and not (row.gold or row.cards):
            continue
        lines.append(
            f"{name:<{width}} {row.gold:>5} {row.found:>6} {_ratio(row.recall):>7} {row.cards:>6} "
            f"{row.matched:>6} {_ratio(row.precision):>10}"
        )
    return lines


def render(report: Report) -> list[str]:
    lines = [
        f"gold set accuracy, hook {report.hook}: {len(report.patients)} charts at their last encounter",
        f"{'family':<12} {'gold':>5} {'found':>6} {'recall':>7} {'cards':>6} {'match':>6} {'precision':>10}",
    ]
    lines.extend(table_rows(report.families, report.overall))
    quiet = [r for r in report.patients if not r.gold]
    lines.append(
        f"nothing-to-say charts with no card: {sum(not r.cards for r in quiet)}/{len(quiet)}; "
        f"matching by rule id and cited basis (bench/gold/accuracy.py)"
    )
    for result in report.patients:
        missed = [f for f in result.gold if not result.found[f.id]]
        extra = [
            (c, t) for c, m, t in zip(result.cards, result.card_match, result.cited, strict=True) if m is None
        ]
        if not (missed or extra):
            continue
        lines.append(f"chart {result.key}:")
        lines.extend(f"  missed   {f.id[9:]} [{f.family}/{f.severity}]" for f in missed)
        lines.extend(f"  unmatched {c.rule_id} ({c.severity}) citing {_cited_names(t)}" for c, t in extra)
    return lines


def main() -> int:
    print("\n".join(render(evaluate())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
