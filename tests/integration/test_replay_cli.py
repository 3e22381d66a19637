"""`r1cds replay` as a subprocess: the printed decision is what govern decides in process.

Over a Synthea bundle, and over every case of the governance corpus (tests/support/governance_corpus.py):
the corpus chart is written as a FHIR Bundle, each case's samples as recorded output files, and a case with
draft orders is replayed as order-sign with a `--context` file carrying them. The corpus chart includes
its chart note, so these runs set R1CDS_CONTEXT_INCLUDE_FREE_TEXT as the service would be configured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pytest

from cds_hooks.fire import build_context, build_prefetch, load_bundle, pick_patient
from cds_hooks.protocol import HookResponse
from cds_hooks.recorded_replay import BASE_URL, USER, decision_json
from inference.parsing import parse_sample
from plugin.catalog import CHART_PREFETCH
from plugin.context.build import build_context as build_clinical_context
from plugin.context.model import BuiltContext
from plugin.fhir_search import FhirStore
from plugin.governance import Decision, GovernancePolicy, govern
from plugin.knowledge import load_knowledge_base
from plugin.model_port import Sample
from plugin.retrieval import retrieve
from tests.support import governance_corpus as corpus
from tests.support.fixtures_paths import synthea_bundle_paths

pytestmark = pytest.mark.integration

R1CDS = [sys.executable, "-m", "cds_hooks.cli"]
AS_OF = "2026-01-15"


@pytest.fixture
def bundle() -> Path:
    return next(p for p in synthea_bundle_paths() if p.name.startswith("Derek_Becker"))


def chart(bundle: Path) -> tuple[BuiltContext, str]:
    store = FhirStore.from_bundles([load_bundle(bundle)])
    patient = pick_patient(store, None)
    context = build_context("patient-view", store, patient, USER)
    prefetch = build_prefetch(CHART_PREFETCH, context, store, BASE_URL)
    return build_clinical_context(prefetch, datetime.fromisoformat(AS_OF).replace(tzinfo=UTC)), patient


def handle(built: BuiltContext, ingredient: str) -> str:
    return next(m.handle for m in built.context.medications if ingredient in m.ingredients)


def answer(built: BuiltContext) -> dict[str, Any]:
    warfarin, naproxen = handle(built, "warfarin"), handle(built, "naproxen")
    clean = corpus.suggestion(
        "Consider reviewing naproxen use with warfarin for bleeding risk",
        "Naproxen is an NSAID and with warfarin it raises the bleeding risk; the passage advises against "
        "the combination.",
        corpus.action(),
        [warfarin, naproxen],
        ["kb.warfarin-nsaid-bleeding"],
    )
    vetoed = corpus.suggestion(
        "Consider ibuprofen for the knee pain",
        "Ibuprofen is an NSAID that relieves pain; warfarin bleeding risk applies.",
        corpus.medication("197805", "Ibuprofen 400 MG Oral Tablet"),
        [warfarin],
        ["kb.warfarin-nsaid-bleeding"],
    )
    hallucinated = {**clean, "citations": {"patient": ["M99"], "knowledge": ["kb.warfarin-nsaid-bleeding"]}}
    french = {
        **clean,
        "summary": "Envisager de revoir le naproxène avec la warfarine pour le risque de saignement",
        "rationale": "Le naproxène est un AINS et, avec la warfarine, il augmente le risque de saignement; "
        "le passage déconseille cette association.",
    }
    return corpus.answer(clean, vetoed, hallucinated, french)


def replay(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """Run `r1cds replay` with no R1CDS_* setting from this environment but `settings` (name: value)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("R1CDS_")}
    env.update({f"R1CDS_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run(
        [*R1CDS, "replay", *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def test_replay_prints_governed_cards_and_the_decision_govern_gives(bundle: Path, tmp_path: Path) -> None:
    built, patient = chart(bundle)
    document = answer(built)
    raw = tmp_path / "sample-0.json"
    raw.write_text(json.dumps(document))
    wrapped = tmp_path / "sample-1.json"
    wrapped.write_text(json.dumps({"content": json.dumps(document), "reasoning": "The patient takes..."}))

    result = replay(
        "--bundle", str(bundle), "--hook", "patient-view", "--as-of", AS_OF,
        "--model-output", str(raw), "--model-output", str(wrapped), "--model", "deepseek-r1-test",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)

    knowledge = load_knowledge_base()
    retrieved = retrieve(built.context, knowledge)
    samples = [parse_sample(Sample(json.dumps(document), None, "stop"))] * 2
    expected = govern(
        samples, built.context, frozenset(retrieved.ids), knowledge, GovernancePolicy(), f"Patient/{patient}"
    )
    assert printed["decision"] == decision_json(expected)
    assert printed["retrieval"]["ids"] == list(retrieved.ids)
    assert printed["service"] == "r1-chart-review"
    assert [(r["suggestion"], r["reason"]) for r in printed["decision"]["rejected"]] == [
        (s, reason)
        for _ in range(2)
        for s, reason in (
            (1, "contradicted-by-citation"),
            (2, "unknown-patient-handle"),
            (3, "wrong-language"),
        )
    ]
    # The cited warfarin-NSAID passage itself opposes starting an NSAID beside an anticoagulant.
    assert "opposes start of nsaid with anticoagulant" in printed["decision"]["rejected"][0]["detail"]
    [accepted] = printed["decision"]["accepted"]
    assert accepted["agreement"] == [2, 2]

    cards = HookResponse.model_validate({"cards": printed["cards"]}).cards
    [card] = cards
    assert card.summary == accepted["summary"]
    assert card.indicator in ("info", "warning")
    assert "deepseek-r1-test" in card.source.label


def test_replay_reports_bad_input(bundle: Path, tmp_path: Path) -> None:
    missing = replay("--bundle", str(bundle), "--hook", "patient-view", "--model-output", str(tmp_path / "x"))
    assert missing.returncode == 2
    assert "r1cds:" in missing.stderr
    sample = tmp_path / "sample.json"
    sample.write_text(json.dumps(corpus.abstention()))
    wrong = replay(
        "--bundle", str(bundle), "--hook", "order-sign", "--service", "r1-chart-review",
        "--model-output", str(sample),
    )  # fmt: skip
    assert wrong.returncode == 2
    assert "does not answer order-sign" in wrong.stderr


def test_replay_refuses_invalid_settings(tmp_path: Path) -> None:
    bundle, sample = tmp_path / "bundle.json", tmp_path / "sample.json"
    bundle.write_text(json.dumps(corpus.bundle()))
    sample.write_text(json.dumps(corpus.abstention()))
    result = replay(
        "--bundle", str(bundle), "--hook", "patient-view", "--model-output", str(sample),
        context_include_free_text="perhaps",
    )  # fmt: skip
    assert result.returncode == 2
    assert "r1cds: error: invalid R1CDS_* settings: R1CDS_CONTEXT_INCLUDE_FREE_TEXT" in result.stderr


# The corpus through the command line: one subprocess per case, started from one fixture and run side by
# side (one per core, at least two), so the corpus costs a fraction of running them one after another.
CASES: Final = corpus.all_cases()
MODEL: Final = "deepseek-r1-corpus"


def _case_args(case: corpus.Case, bundle: Path, folder: Path) -> list[str]:
    folder.mkdir()
    args = ["--bundle", str(bundle), "--as-of", corpus.NOW.isoformat(), "--model", MODEL]
    for n, sample in enumerate(case.samples):
        path = folder / f"sample-{n}.json"
        path.write_text(json.dumps(sample))
        args += ["--model-output", str(path)]
    if not case.drafts:
        return [*args, "--hook", "patient-view"]
    hook_context = {
        "userId": USER,
        "patientId": corpus.PATIENT.removeprefix("Patient/"),
        "draftOrders": corpus.drafts_bundle(case.drafts),
    }
    path = folder / "context.json"
    path.write_text(json.dumps(hook_context))
    return [*args, "--hook", "order-sign", "--context", str(path)]


@pytest.fixture(scope="module")
def corpus_replays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("corpus-replay")
    bundle = root / "bundle.json"
    bundle.write_text(json.dumps(corpus.bundle()))
    runs = {case.name: _case_args(case, bundle, root / case.name) for case in CASES}
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        done = pool.map(lambda args: replay(*args, context_include_free_text="true"), runs.values())
        return dict(zip(runs, done, strict=True))


def _outcome(decision: dict[str, Any]) -> tuple[str | None, list[str], list[list[int]]]:
    """What a case promises: the abstention, each rejection's reason and each acceptance's agreement."""
    return (
        decision["abstain_reason"],
        [r["reason"] for r in decision["rejected"]],
        [g["agreement"] for g in decision["accepted"]],
    )


def _in_process(case: corpus.Case) -> tuple[Decision, tuple[str, ...]]:
    """What govern decides in process for the call the command line makes, and the ids retrieval gave."""
    built = corpus.build(case.drafts)
    knowledge = corpus.knowledge()
    retrieved = retrieve(built.context, knowledge).ids
    samples = [corpus.parsed(s) for s in case.samples]
    decision = govern(
        samples, built.context, frozenset(retrieved), knowledge, GovernancePolicy(), corpus.PATIENT
    )
    return decision, retrieved


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_replay_reproduces_the_corpus_decision(
    case: corpus.Case, corpus_replays: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = corpus_replays[case.name]
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["service"] == ("r1-order-review" if case.drafts else "r1-chart-review")
    assert printed["patient"] == corpus.PATIENT

    expected, retrieved = _in_process(case)
    assert printed["retrieval"]["ids"] == list(retrieved)
    assert printed["decision"] == decision_json(expected)

    promised = (case.abstain_reason, case.rejected_reasons_with_drafts, [list(a) for a in case.agreements])
    assert _outcome(printed["decision"]) == promised
    # The decision the unit tests check: the chart without draft orders and the fixed retrieved set.
    unit = govern(
        [corpus.parsed(s) for s in case.samples],
        corpus.context(),
        corpus.RETRIEVED,
        corpus.knowledge(),
        GovernancePolicy(),
        corpus.PATIENT,
    )
    assert _outcome(decision_json(unit)) == (
        case.abstain_reason,
        case.rejected_reasons,
        [list(a) for a in case.agreements],
    )

    # Each rejection names its failed step last in the log, and an AI card is printed per acceptance.
    failed = {
        (s["sample"], s["suggestion"]): s["reason"] for s in printed["decision"]["steps"] if not s["passed"]
    }
    for rejection in printed["decision"]["rejected"]:
        assert failed[(rejection["sample"], rejection["suggestion"])] == rejection["reason"]
    cards = HookResponse.model_validate({"cards": printed["cards"]}).cards
    assert [c.summary for c in cards] == [g["summary"] for g in printed["decision"]["accepted"]]
    assert all(MODEL in c.source.label for c in cards)
