"""The evaluation report renders in headless chromium: tables, inline SVG charts, references, two runs side by side."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from evals.data import QA_DATASETS
from evals.report import load_runs, write_report
from evals.scripted import ScriptedEvalModel
from evals.suites.common import ModelRunOptions
from evals.suites.crosslingual import run_crosslingual
from evals.suites.qa import run_qa
from tests.support.browser import screenshot
from tests.support.eval_scripted import (
    WRONG,
    by_item,
    parallel_items_by_prompt,
    qa_items_by_prompt,
    require_eval_data,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]


async def _runs(tmp_path: Path) -> Path:
    root = require_eval_data()
    output = tmp_path / "runs"
    items = qa_items_by_prompt(root, QA_DATASETS)
    right = ScriptedEvalModel(by_item(items, lambda item: [item.gold]), model="always-right")
    half = ScriptedEvalModel(
        by_item(items, lambda item: [item.gold if item.id[-1] in "02468" else WRONG[item.gold]]), model="half"
    )
    await run_qa(right, ModelRunOptions(data_dir=root, output=output, limit=8), QA_DATASETS)
    await run_qa(half, ModelRunOptions(data_dir=root, output=output, limit=8), QA_DATASETS)
    parallel = parallel_items_by_prompt(root)
    await run_crosslingual(
        ScriptedEvalModel(by_item(parallel, lambda item: [item.gold])),
        ModelRunOptions(data_dir=root, output=output, limit=4),
        ("fr", "es", "hi"),
    )
    return output


def test_report_renders_in_headless_chromium(tmp_path: Path, chromium: Browser) -> None:
    # The runs are made on a thread of their own: Playwright's sync API owns this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        output = pool.submit(asyncio.run, _runs(tmp_path)).result()
    report = write_report(load_runs([output]), output / "index.html")
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.goto(report.as_uri())
        assert page.title() == "R1 CDS evaluation"
        assert page.locator("section#qa h2").inner_text() == "Medical QA accuracy"
        assert page.locator("section#crosslingual svg.chart").count() == 2
        assert page.locator("section#qa svg.chart rect").count() >= 8  # bars for 4 datasets x 2 runs
        header = page.locator("section#qa table").first.locator("thead th")
        assert header.count() == 3  # the metric column and one per run
        assert "always-right" in header.nth(1).inner_text() + header.nth(2).inner_text()
        assert "100.0%" in page.locator("section#qa table").first.inner_text()
        references = page.locator(
            "section#qa table", has_text="How does DeepSeek-R1 perform on USMLE?"
        ).inner_text()
        assert "92.5%" in references and "87.0%" in references and "Paediatric ophthalmology" in references
        assert page.locator("section#reproducibility td code").count() >= 6
        box = page.locator("section#qa svg.chart").first.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 100
        screenshot(page, "eval-report")
    finally:
        context.close()
