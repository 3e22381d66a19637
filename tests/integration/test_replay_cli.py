"""`r1cds replay` as a subprocess over a Synthea bundle: the printed decision is what govern decides in process."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cds_hooks.fire import build_context, build_prefetch, load_bundle, pick_patient
from cds_hooks.protocol import HookResponse
from cds_hooks.recorded_replay import BASE_URL, USER, decision_json
from inference.parsing import parse_sample
from plugin.catalog import CHART_PREFETCH
from plugin.context.build import build_context as build_clinical_context
from plugin.context.model import BuiltContext
from plugin.fhir_search import FhirStore
from plugin.governance import GovernancePolicy, govern
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


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*R1CDS, "replay", *args], capture_output=True, text=True, timeout=120, check=False)


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
        for s, reason in ((1, "safety-veto"), (2, "unknown-patient-handle"), (3, "wrong-language"))
    ]
    assert "rule.vka-nsaid" in printed["decision"]["rejected"][0]["detail"]
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
