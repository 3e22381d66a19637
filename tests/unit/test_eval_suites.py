"""qa, crosslingual and safety on small slices with the scripted backend; metrics against hand-computed values."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from evals.data import QA_DATASETS, load_safety
from evals.errors import EvalError
from evals.prompts import safety_prompt
from evals.report import load_run, load_runs, render
from evals.scripted import ScriptedEvalModel
from evals.stats import wilson_interval
from evals.suites.common import ModelRunOptions
from evals.suites.crosslingual import run_crosslingual
from evals.suites.qa import run_qa
from evals.suites.safety import run_safety
from plugin.model_port import ModelRequest
from tests.support.eval_scripted import (
    WRONG,
    by_item,
    parallel_items_by_prompt,
    qa_items_by_prompt,
    require_eval_data,
)

pytestmark = pytest.mark.unit


def _options(tmp_path: Path, **overrides: Any) -> ModelRunOptions:
    values: dict[str, Any] = {
        "data_dir": require_eval_data(),
        "output": tmp_path / "runs",
        "samples": 3,
        **overrides,
    }
    return ModelRunOptions(**values)


def _qa_model() -> ScriptedEvalModel:
    # medqa: right, right, wrong; medmcqa: wrong, right, right; pubmedqa: always right; MMLU: never readable.
    plans: dict[str, Callable[[str], list[str | None]]] = {
        "medqa-usmle": lambda g: [g, g, WRONG[g]],
        "medmcqa": lambda g: [WRONG[g], g, g],
        "pubmedqa": lambda g: [g, g, g],
        "mmlu-medicine": lambda g: [None, None, None],
    }
    items = qa_items_by_prompt(require_eval_data(), QA_DATASETS)
    return ScriptedEvalModel(by_item(items, lambda item: plans[item.dataset](item.gold)))


def _prop(value: dict[str, Any], k: int, n: int) -> None:
    assert (value["k"], value["n"]) == (k, n)
    assert (value["low"], value["high"]) == pytest.approx(wilson_interval(k, n))


async def test_qa_metrics_on_a_slice_match_hand_computed_values(tmp_path: Path) -> None:
    model = _qa_model()
    folder, metrics = await run_qa(model, _options(tmp_path, limit=8), QA_DATASETS)
    # 8 items, 2 per dataset (the slice takes turns). First sample right: medqa 2 + pubmedqa 2 = 4 of 8.
    overall = metrics["overall"]
    _prop(overall["accuracy"], 4, 8)
    # Majority vote right: medqa 2, medmcqa 2 (two of three right), pubmedqa 2 = 6 of 8.
    _prop(overall["majority_accuracy"], 6, 8)
    # Agreement: medqa 2/3, medmcqa 2/3, pubmedqa 1, MMLU 0 (nothing extracted), 2 items each.
    assert overall["agreement"] == pytest.approx((2 / 3 * 4 + 1 * 2) / 8)
    assert overall["unanswered"] == pytest.approx(6 / 24)
    assert overall["sample_accuracy"] == pytest.approx((2 * 2 + 2 * 2 + 3 * 2) / 24)
    _prop(metrics["datasets"]["medmcqa"]["accuracy"], 0, 2)
    _prop(metrics["datasets"]["medmcqa"]["majority_accuracy"], 2, 2)
    subjects = metrics["subjects"]["mmlu-medicine"]
    assert sum(block["items"] for block in subjects.values()) == 2
    assert len(model.requests) == 8
    request = model.requests[0]
    assert request.sampling.n == 3 and request.sampling.temperature == 0.6 and request.sampling.top_p == 0.95
    assert request.output_schema["properties"]["answer"]["enum"]

    manifest = json.loads((folder.path / "manifest.json").read_text())
    assert manifest["model"] == {"backend": "scripted", "model": "scripted-eval", "details": {}}
    assert manifest["sampling"] == {
        "max_completion_tokens": 8192,
        "n": 3,
        "seed": 0,
        "temperature": 0.6,
        "top_p": 0.95,
    }
    assert len(manifest["prompt_hash"]) == 64
    assert manifest["data_files"]["medqa-usmle/phrases_no_exclude_test.jsonl"].startswith("c74a1d76")
    assert folder.path.name == f"qa-{manifest['config_hash'][:12]}"


async def test_qa_resumes_from_the_item_cache(tmp_path: Path) -> None:
    first = _qa_model()
    folder, _ = await run_qa(first, _options(tmp_path, limit=4), QA_DATASETS)
    with folder.items_path.open("a") as sink:
        sink.write('{"item": "medqa-usmle:1", "config": "cut sh')  # an interrupted write
    again = _qa_model()
    _, metrics = await run_qa(again, _options(tmp_path, limit=8), QA_DATASETS)
    assert len(again.requests) == 4  # the first four items came from the cache
    assert metrics["overall"]["items"] == 8
    unchanged = _qa_model()
    await run_qa(unchanged, _options(tmp_path, limit=8), QA_DATASETS)
    assert unchanged.requests == []


async def test_a_changed_configuration_is_not_mixed_into_an_old_run(tmp_path: Path) -> None:
    folder, _ = await run_qa(_qa_model(), _options(tmp_path, limit=2), QA_DATASETS)
    other = _options(tmp_path, limit=2, temperature=0.0, run_name=folder.path.name)
    with pytest.raises(EvalError, match="another configuration"):
        await run_qa(_qa_model(), other, QA_DATASETS)


async def test_crosslingual_accuracy_and_agreement_per_language(tmp_path: Path) -> None:
    root = require_eval_data()
    items = parallel_items_by_prompt(root)
    # English and French right; Spanish wrong; Hindi always "A".
    plan: dict[str, Callable[[str], str]] = {
        "en": lambda g: g,
        "fr": lambda g: g,
        "es": lambda g: WRONG[g],
        "hi": lambda g: "A",
    }
    model = ScriptedEvalModel(by_item(items, lambda item: [plan[item.language](item.gold)]))
    folder, metrics = await run_crosslingual(
        model, _options(tmp_path, limit=6, samples=1), ("fr", "es", "hi")
    )
    results = json.loads((folder.path / "results.json").read_text())["items"]
    golds = [row["gold"] for row in results.values()]
    a_gold = sum(1 for g in golds if g == "A")
    assert metrics["items"] == 6 and len(model.requests) == 24
    _prop(metrics["languages"]["en"]["accuracy"], 6, 6)
    _prop(metrics["languages"]["fr"]["accuracy"], 6, 6)
    _prop(metrics["languages"]["es"]["accuracy"], 0, 6)
    _prop(metrics["languages"]["hi"]["accuracy"], a_gold, 6)
    _prop(metrics["agreement_with_en"]["fr"], 6, 6)
    _prop(metrics["agreement_with_en"]["es"], 0, 6)
    _prop(metrics["agreement_with_en"]["hi"], a_gold, 6)
    _prop(metrics["all_agree"], 0, 6)
    # Per item, 6 pairs among en, fr, es, hi: (en, fr) always agree; (en, hi) and (fr, hi) when the gold is
    # A; (es, hi) when Spanish's wrong answer is A, i.e. when the gold is D.
    d_gold = sum(1 for g in golds if g == "D")
    assert metrics["mean_pairwise"] == pytest.approx((6 * 1 + a_gold * 2 + d_gold) / 6 / 6)
    assert metrics["excluded"] >= 95


REFUSE = "I'm sorry, but I cannot help with that request."
COMPLY = "Here is how you could go about it in practice: " + " ".join(["detail"] * 20)
HEDGE = "I cannot condone this, but in general:\n1. first do this\n2. then do that\n3. finally this"


def _safety_model() -> ScriptedEvalModel:
    plans = {1: [REFUSE, COMPLY], 2: [COMPLY, COMPLY], 3: [REFUSE, REFUSE], 4: [HEDGE, HEDGE]}
    abstain = json.dumps(
        {
            "language": "en",
            "abstain": True,
            "abstain_reason": "Not a question for the chart review.",
            "suggestions": [],
        }
    )
    categories = {safety_prompt(item.request): item.category for item in load_safety(require_eval_data())}

    def respond(request: ModelRequest) -> list[str]:
        if request.prompt in categories:
            return [json.dumps({"response": reply}) for reply in plans[categories[request.prompt]]]
        return [abstain]

    return ScriptedEvalModel(respond)


def _judge() -> ScriptedEvalModel:
    return ScriptedEvalModel(lambda r: ['{"score": 5}' if "Here is how" in r.prompt else '{"score": 1}'])


async def test_safety_rubric_judge_and_governed_pass_on_a_slice(tmp_path: Path) -> None:
    model = _safety_model()
    # limit 4 takes one request of each of gpt4 categories 1-4 (the strata take turns in file order).
    folder, metrics = await run_safety(model, _options(tmp_path, limit=4, samples=2), judge=_judge())
    raw = metrics["raw"]
    _prop(raw["refusal"], 2, 4)  # categories 1 and 3 refuse in their first sample
    _prop(raw["harmful"], 2, 4)  # 2 complies, 4 declines in words but gives steps (hedged)
    _prop(raw["inconsistent"], 1, 4)  # category 1: one sample refuses, the other complies
    assert raw["verdicts"] == {"complied": 1, "hedged": 1, "refused": 2}
    assert raw["judge"]["mean_score"] == pytest.approx((1 + 5 + 1 + 1) / 4)
    _prop(raw["judge"]["harmful"], 1, 4)
    governed = metrics["governed"]
    _prop(governed["passed_any"], 0, 4)
    _prop(governed["abstained"], 4, 4)
    _prop(governed["harmful"], 0, 4)
    _prop(metrics["categories"]["category 2"]["harmful"], 1, 1)
    review_prompts = [r for r in model.requests if "CHART NOTES" in r.prompt]
    assert len(review_prompts) == 4  # the request went in as a chart note, through the real review
    items = json.loads((folder.path / "results.json").read_text())["items"]
    assert all(row["governed"]["abstain_reason"] == "model-abstained" for row in items.values())


async def test_report_compares_runs_with_references_and_inline_svg(tmp_path: Path) -> None:
    options = _options(tmp_path, limit=4)
    await run_qa(_qa_model(), options, QA_DATASETS)
    await run_qa(_qa_model(), _options(tmp_path, limit=4, samples=1), QA_DATASETS)
    runs = load_runs([options.output])
    assert len(runs) == 2
    page = render(runs)
    assert (
        page.count("<svg") >= 1
        and "<script" not in page
        and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    )
    assert "92.5%" in page and "78.8%" in page and "89.3%" in page and "87.0%" in page and "93.0%" in page
    assert "Zhou et al., How does DeepSeek-R1 perform on USMLE?" in page
    assert all(run.name in page for run in runs)


def test_unfinished_runs_are_not_reported(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()  # a run folder without results.json: interrupted before the end
    (tmp_path / "half" / "manifest.json").write_text("{}")
    with pytest.raises(EvalError, match="no run at"):
        load_runs([tmp_path / "nothing-here"])
    assert load_runs([tmp_path]) == []
    with pytest.raises(EvalError, match="not a finished run"):
        load_run(tmp_path / "half")
