"""Prompt prefix shared across the Synthea fixture patients of each service (DESIGN §9 target: >= 60%)."""

# For every fixture patient and every shipped service the prompt is built as the worker will build it:
# the service's prefetch answered by a FhirStore holding the patient's bundle (as tests/support/charts.py
# does), build_context at a fixed "now", render at the default budget, plugin.retrieval.retrieve
# over the packaged knowledge base at the review service's default limit, build_prompt. Order review adds
# one draft order (ibuprofen, RxNorm 197806).
#
# Per service the table shows the mean prompt size, the longest common prefix of all the prompts (the part
# a prefix cache could share with every patient), its share of the mean prompt, and the floor measured in
# the same run: the fixed block alone (instructions, schema, task, language), i.e. the share reached when
# no passage is common to all patients. "radix" is informative only: the mean share of each prompt that
# an earlier prompt of the same service already holds (what SGLang's radix cache reuses as patients
# arrive in file order); the verdict uses the common prefix, as DESIGN §9 states it.
#
#     python -m bench.prompt_prefix [--budget TOKENS] [--limit PASSAGES] [--json PATH]

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cds_hooks.prefetch import render_template
from inference.prompts import build_prompt, fixed_prefix
from plugin.catalog import CHART_REVIEW, DISCHARGE_REVIEW, ORDER_REVIEW
from plugin.context.build import build_context
from plugin.context.render import estimate_tokens, render
from plugin.fhir_search import FhirStore
from plugin.knowledge import KnowledgeBase, load_knowledge_base
from plugin.retrieval import DEFAULT_LIMIT, retrieve
from plugin.services import ServiceDeclaration

REPO_ROOT = Path(__file__).resolve().parents[1]
SYNTHEA = REPO_ROOT.parent / "shared" / "fixtures" / "synthea"
BASE_URL = "https://ehr.bench.invalid/fhir"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # the fixed "now" of tests/support/charts.py
TARGET_SHARE = 0.60
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# RxNorm 197806 is the 600 mg tablet; its display is kept true to the code (tests/support/charts.py agrees).
DRAFT_CODE, DRAFT_DISPLAY = "197806", "Ibuprofen 600 MG Oral Tablet"
# (service, hook) as the EHR would fire them.
SERVICES: tuple[tuple[ServiceDeclaration, str], ...] = (
    (CHART_REVIEW, "patient-view"),
    (ORDER_REVIEW, "order-select"),
    (DISCHARGE_REVIEW, "encounter-discharge"),
)


@dataclass(frozen=True)
class PatientPrompt:
    patient: str
    chars: int
    tokens: int
    passages: int
    passage_tokens: int
    summary_tokens: int


@dataclass(frozen=True)
class ServiceRow:
    service: str
    hook: str
    patients: int
    mean_tokens: float
    mean_passages: float
    mean_passage_tokens: float
    mean_summary_tokens: float
    prefix_chars: int
    prefix_tokens: int
    prefix_share: float
    floor_chars: int
    floor_tokens: int
    floor_share: float
    radix_share: float
    diverges_in: str
    summary_prefix_chars: int  # what the summaries alone have in common: the gain of putting them first
    min_share: float  # the common prefix over the longest patient's prompt: the target holds for every one
    passed: bool


def common_prefix(texts: Sequence[str]) -> str:
    """Longest common prefix, character by character (these are prompts, not paths)."""
    if not texts:
        return ""
    low, high = min(texts), max(texts)  # the lexicographic extremes bound every other text's prefix
    end = next((i for i, (a, b) in enumerate(zip(low, high, strict=False)) if a != b), len(low))
    return low[:end]


def draft_orders(patient_id: str) -> dict[str, Any]:
    order = {
        "resourceType": "MedicationRequest",
        "id": "bench-draft-ibuprofen",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient_id}"},
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": DRAFT_CODE, "display": DRAFT_DISPLAY}],
            "text": DRAFT_DISPLAY,
        },
        "authoredOn": NOW.date().isoformat(),
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            }
        ],
    }
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"{BASE_URL}/MedicationRequest/{order['id']}", "resource": order}],
    }


def prefetch_for(store: FhirStore, templates: Mapping[str, str], patient_id: str) -> dict[str, Any]:
    context = {"patientId": patient_id, "userId": "Practitioner/bench"}
    return {key: store.query(render_template(t, context), BASE_URL) for key, t in templates.items()}


def prompt_for(
    service: ServiceDeclaration,
    store: FhirStore,
    patient_id: str,
    knowledge: KnowledgeBase,
    budget: int,
    limit: int,
) -> tuple[str, str, int, int]:
    """(prompt text, summary text, passages, passage tokens) for one patient and one service."""
    prefetch = prefetch_for(store, service.prefetch, patient_id)
    drafts = draft_orders(patient_id) if service.id == ORDER_REVIEW.id else None
    context = build_context(prefetch, NOW, draft_orders=drafts).context
    summary = render(context, budget)
    passages = retrieve(context, knowledge, limit).entries
    prompt = build_prompt(service.id, summary.text, passages)
    passage_text = "\n\n".join(f"[{p.id}] {p.title}\n{p.statement}" for p in passages)
    tokens = estimate_tokens(passage_text) if passages else 0
    return prompt.text, summary.text, len(passages), tokens


def _section_at(text: str, index: int) -> str:
    """Name of the prompt section (## heading) that holds character `index`."""
    headings = [(m.start(), m.group(1)) for m in re.finditer(r"^## (.+)$", text, re.MULTILINE)]
    name = "instructions and schema"
    for start, title in headings:
        if start <= index:
            name = title
    return name


def measure(
    service: ServiceDeclaration,
    hook: str,
    charts: Sequence[tuple[str, FhirStore, str]],
    args: argparse.Namespace,
) -> tuple[ServiceRow, list[PatientPrompt]]:
    knowledge = load_knowledge_base()
    texts: list[str] = []
    summaries: list[str] = []
    rows: list[PatientPrompt] = []
    for label, store, patient_id in charts:
        text, summary, passages, passage_tokens = prompt_for(
            service, store, patient_id, knowledge, args.budget, args.limit
        )
        texts.append(text)
        summaries.append(summary)
        summary_tokens = estimate_tokens(summary)
        rows.append(
            PatientPrompt(label, len(text), estimate_tokens(text), passages, passage_tokens, summary_tokens)
        )
    prefix = common_prefix(texts)
    floor = fixed_prefix(service.id)
    mean_tokens = statistics.fmean(r.tokens for r in rows)
    reused = [
        estimate_tokens(max((common_prefix([text, earlier]) for earlier in texts[:i]), key=len, default=""))
        / rows[i].tokens
        for i, text in enumerate(texts)
        if i > 0
    ]
    prefix_tokens = estimate_tokens(prefix)
    share = prefix_tokens / mean_tokens
    min_share = min(prefix_tokens / r.tokens for r in rows)
    row = ServiceRow(
        service=service.id,
        hook=hook,
        patients=len(rows),
        mean_tokens=mean_tokens,
        mean_passages=statistics.fmean(r.passages for r in rows),
        mean_passage_tokens=statistics.fmean(r.passage_tokens for r in rows),
        mean_summary_tokens=statistics.fmean(r.summary_tokens for r in rows),
        prefix_chars=len(prefix),
        prefix_tokens=prefix_tokens,
        prefix_share=share,
        floor_chars=len(floor),
        floor_tokens=estimate_tokens(floor),
        floor_share=estimate_tokens(floor) / mean_tokens,
        radix_share=statistics.fmean(reused) if reused else 0.0,
        diverges_in=_section_at(texts[0], len(prefix)),
        summary_prefix_chars=len(common_prefix(summaries)),
        min_share=min_share,
        passed=share >= TARGET_SHARE and min_share >= TARGET_SHARE,
    )
    return row, rows


def explain(row: ServiceRow) -> list[str]:
    """Why a service misses the target, in numbers from this run, and what would change it."""
    variable = row.mean_tokens - row.prefix_tokens
    allowed = row.prefix_tokens * (1 - TARGET_SHARE) / TARGET_SHARE
    per_passage = row.mean_passage_tokens / row.mean_passages if row.mean_passages else 0.0
    room = allowed - row.mean_summary_tokens
    fits = max(0, int(room // per_passage)) if per_passage else 0
    return [
        f"why     {row.service}: the prompts first differ in the {row.diverges_in!r} section; the shared "
        f"{row.prefix_tokens} tokens face {variable:.0f} patient-specific ones (passages "
        f"{row.mean_passage_tokens:.0f}, summary {row.mean_summary_tokens:.0f}); 60% needs them at or below "
        f"{allowed:.0f}",
        f"options {row.service}: at {per_passage:.0f} tokens a passage and this summary, 60% leaves room for "
        f"{fits} passages (now {row.mean_passages:.1f}); summaries first would add only "
        f"{row.summary_prefix_chars} shared characters, since the summaries differ from their first lines",
    ]


def report(rows: list[ServiceRow], args: argparse.Namespace) -> list[str]:
    lines = [
        f"prompt prefix bench: {rows[0].patients} Synthea patients, now {NOW:%Y-%m-%d}, summary budget "
        f"{args.budget} tokens, at most {args.limit} passages; tokens are estimate_tokens (chars/4)",
        f"{'service':<20} {'hook':<19} {'mean tok':>8} {'pass':>5} {'pass tok':>8} {'sum tok':>7} "
        f"{'prefix ch':>9} {'prefix tok':>10} {'share':>6} {'floor ch':>8} {'floor tok':>9} {'floor':>6} {'radix':>6}",
    ]
    for r in rows:
        lines.append(
            f"{r.service:<20} {r.hook:<19} {r.mean_tokens:>8.0f} {r.mean_passages:>5.1f} "
            f"{r.mean_passage_tokens:>8.0f} {r.mean_summary_tokens:>7.0f} {r.prefix_chars:>9} "
            f"{r.prefix_tokens:>10} {r.prefix_share:>6.1%} {r.floor_chars:>8} {r.floor_tokens:>9} {r.floor_share:>6.1%} "
            f"{r.radix_share:>6.1%}"
        )
    lines.append(
        "(pass: passages per prompt; sum: patient summary; prefix: longest common prefix of all prompts; "
        "floor: the fixed block before the passages; radix: mean share an earlier prompt already holds)"
    )
    for r in rows:
        lines.append(
            f"{'PASS' if r.passed else 'FAIL'}  {r.service}: common prefix {r.prefix_share:.1%} of the mean "
            f"prompt, {r.min_share:.1%} of the longest patient's (target >= {TARGET_SHARE:.0%} for both; "
            f"floor {r.floor_share:.1%}; diverges in {r.diverges_in!r})"
        )
    for r in rows:
        if not r.passed:
            lines += explain(r)
    return lines


def load_charts() -> list[tuple[str, FhirStore, str]]:
    files = sorted(SYNTHEA.glob("*.json")) if SYNTHEA.is_dir() else []
    if not files:
        sys.exit(f"bench.prompt_prefix: no Synthea bundles in {SYNTHEA}; the shared fixtures are needed")
    charts = []
    for path in files:
        store = FhirStore.from_bundles([orjson.loads(path.read_bytes())])
        name = re.sub(r"_[0-9a-f-]{36}$", "", path.stem)
        patients = store.search("Patient", [])
        for patient in patients:
            label = name if len(patients) == 1 else f"{name}/{patient['id'][:8]}"
            charts.append((label, store, str(patient["id"])))
    return charts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prompt_prefix", description=__doc__)
    parser.add_argument("--budget", type=int, default=2000, help="render budget in tokens (default 2000)")
    parser.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"passages per prompt at most (default {DEFAULT_LIMIT})",
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.budget < 1 or args.limit < 0:
        parser.error("--budget must be at least 1 and --limit not negative")
    charts = load_charts()
    results = [measure(service, hook, charts, args) for service, hook in SERVICES]
    rows = [row for row, _ in results]
    print("\n".join(report(rows, args)))
    if args.json:
        document = {
            "now": NOW.isoformat(),
            "budget": args.budget,
            "limit": args.limit,
            "services": [
                {**asdict(row), "per_patient": [asdict(p) for p in patients]} for row, patients in results
            ],
        }
        args.json.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
