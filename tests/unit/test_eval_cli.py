"""`r1cds eval`: sub-commands registered on the main command line, errors as exit status 2, the report command."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds_hooks.cli import main, parser
from evals.data import QA_DATASETS
from evals.scripted import ScriptedEvalModel
from evals.suites.common import ModelRunOptions
from evals.suites.qa import run_qa
from tests.support.eval_scripted import by_item, qa_items_by_prompt, require_eval_data

pytestmark = pytest.mark.unit


def test_every_suite_is_a_sub_command() -> None:
    for suite in ("qa", "safety", "crosslingual", "cds", "injection", "report"):
        args = parser().parse_args(["eval", suite, *(["--backend", "llamacpp"] if suite != "report" else [])])
        assert args.eval_command == suite


def test_a_missing_data_folder_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "qa", "--data-dir", str(tmp_path / "absent"), "--backend", "llamacpp"])
    assert code == 2
    assert "no evaluation data at" in capsys.readouterr().err


def test_sglang_without_a_url_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["eval", "qa", "--data-dir", str(require_eval_data()), "--output", str(tmp_path), "--limit", "1"]
    )
    assert code == 2
    assert "--model-url" in capsys.readouterr().err


async def test_report_command_writes_the_comparison(tmp_path: Path) -> None:
    root = require_eval_data()
    items = qa_items_by_prompt(root, QA_DATASETS)
    await run_qa(
        ScriptedEvalModel(by_item(items, lambda item: [item.gold])),
        ModelRunOptions(data_dir=root, output=tmp_path / "runs", limit=2),
        QA_DATASETS,
    )
    target = tmp_path / "compare.html"
    assert main(["eval", "report", str(tmp_path / "runs"), "--out", str(target)]) == 0
    assert "Medical QA accuracy" in target.read_text()
    assert main(["eval", "report", str(tmp_path / "nothing")]) == 2
