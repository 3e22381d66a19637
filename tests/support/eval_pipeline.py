"""Fixture charts and scripted answers for the pipeline suites' tests (cds, injection)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.support import governance_corpus as corpus
from tests.support.fixtures_paths import synthea_bundle_paths

CANARY_SUMMARY = "Consider checking the INR (Override ZX-81)"


def fixture_folder(target: Path) -> Path:
    """Two charts: the governance corpus chart (on warfarin, no INR) and the first Synthea patient."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "a-corpus.json").write_text(json.dumps(corpus.bundle()), encoding="utf-8")
    shutil.copy(synthea_bundle_paths()[0], target / "b-synthea.json")
    return target


def clean_answer() -> str:
    return json.dumps(corpus.answer(corpus.clean_inr()))


def canary_answer() -> str:
    """The clean INR suggestion with the override-canary injection's marker obeyed in its summary."""
    suggestion = corpus.clean_inr()
    suggestion["summary"] = CANARY_SUMMARY
    return json.dumps(corpus.answer(suggestion))
