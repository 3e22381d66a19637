"""The HTML report: one or more runs side by side, inline SVG plots, published reference numbers beside ours.

The page is self-contained (no script, no external asset, inline CSS and SVG) so that it can be archived
with the run and opened anywhere. Each run is one column; rows are the suite's headline metrics. Proportions
print as "71.2% [65.1–76.6] 89/125": point estimate, Wilson 95% interval, k/n.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from evals.errors import EvalError
from evals.svg import Bar, grouped_bars

__all__ = ["Run", "load_run", "load_runs", "references", "render", "write_report"]

SUITE_ORDER = ("qa", "safety", "crosslingual", "cds", "injection")


@dataclass(frozen=True, slots=True)
class Run:
    name: str
    manifest: Mapping[str, Any]
    results: Mapping[str, Any]

    @property
    def suite(self) -> str:
        return str(self.manifest.get("suite", "?"))

    @property
    def metrics(self) -> Mapping[str, Any]:
        metrics = self.results.get("metrics", {})
        return metrics if isinstance(metrics, Mapping) else {}

    @property
    def label(self) -> str:
        model = self.manifest.get("model", {})
        return f"{self.name} ({model.get('backend', '?')}: {str(model.get('model', '?')).rsplit('/', 1)[-1]})"


def load_run(folder: Path) -> Run:
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EvalError(f"{folder} is not a finished run ({type(exc).__name__}: {exc})") from exc
    return Run(folder.name, manifest, results)


def load_runs(folders: Sequence[Path]) -> list[Run]:
    """Finished runs (with results.json) among the folders given, or among the sub-folders of a folder."""
    runs: list[Run] = []
    for folder in folders:
        if (folder / "results.json").is_file():
            runs.append(load_run(folder))
        elif folder.is_dir():
            runs += [load_run(sub) for sub in sorted(folder.iterdir()) if (sub / "results.json").is_file()]
        else:
            raise EvalError(f"no run at {folder}")
    return runs


@cache
def references() -> list[dict[str, Any]]:
    raw = json.loads(resources.files("evals").joinpath("references.json").read_text(encoding="utf-8"))
    return list(raw["references"])


# ---------------------------------------------------------------------------------------------- cells


def _e(text: object) -> str:
    return html.escape(str(text))


def pct(value: object) -> str:
    return f"{value * 100:.1f}%" if isinstance(value, int | float) else "–"


def prop_cell(value: object) -> str:
    if not isinstance(value, Mapping) or value.get("value") is None:
        return "–"
    return (
        f"{value['value'] * 100:.1f}% <span class=ci>[{value['low'] * 100:.1f}–{value['high'] * 100:.1f}]"
        f"</span> <span class=n>{value['k']}/{value['n']}</span>"
    )


def num_cell(value: object, digits: int = 2) -> str:
    if isinstance(value, bool) or value is None:
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


def _get(metrics: Mapping[str, Any], path: str) -> Any:
    node: Any = metrics
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _bar(value: Any) -> Bar:
    if isinstance(value, Mapping):
        return Bar(value.get("value"), value.get("low"), value.get("high"))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Bar(float(value))
    return Bar(None)


Row = tuple[str, Callable[[Mapping[str, Any]], str]]


def _prop(path: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda m: prop_cell(_get(m, path))


def _pct(path: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda m: pct(_get(m, path))


def _num(path: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda m: num_cell(_get(m, path))


def _table(runs: Sequence[Run], rows: Sequence[Row]) -> str:
    head = "".join(f"<th>{_e(run.label)}</th>" for run in runs)
    body = "".join(
        f"<tr><th scope=row>{_e(label)}</th>"
        + "".join(f"<td>{cell(run.metrics)}</td>" for run in runs)
        + "</tr>"
        for label, cell in rows
    )
    return f"<table><thead><tr><th>metric</th>{head}</tr></thead><tbody>{body}</tbody></table>"


def _keys(runs: Sequence[Run], path: str) -> list[str]:
    keys: dict[str, None] = {}
    for run in runs:
        node = _get(run.metrics, path)
        if isinstance(node, Mapping):
            keys.update(dict.fromkeys(str(k) for k in node))
    return list(keys)


def _chart(title: str, runs: Sequence[Run], path: str, leaf: str, **kwargs: Any) -> str:
    groups = _keys(runs, path)
    if not groups:
        return ""
    series = [
        (
            run.label,
            [
                _bar(_get(run.metrics, f"{path}.{group}.{leaf}" if leaf else f"{path}.{group}"))
                for group in groups
            ],
        )
        for run in runs
    ]
    return grouped_bars(title, groups, series, **kwargs)


# ---------------------------------------------------------------------------------------------- suites


def _qa(runs: Sequence[Run]) -> str:
    datasets = _keys(runs, "datasets")
    rows: list[Row] = [
        ("accuracy (first sample)", _prop("overall.accuracy")),
        ("majority-vote accuracy", _prop("overall.majority_accuracy")),
        ("agreement (self-consistency)", _pct("overall.agreement")),
        ("unanswered samples", _pct("overall.unanswered")),
        ("truncated samples", _pct("overall.truncated")),
        ("model errors (items)", _num("overall.errors")),
    ]
    for dataset in datasets:
        rows.append((f"{dataset}: accuracy", _prop(f"datasets.{dataset}.accuracy")))
        rows.append((f"{dataset}: majority vote", _prop(f"datasets.{dataset}.majority_accuracy")))
        rows.append((f"{dataset}: agreement", _pct(f"datasets.{dataset}.agreement")))
    ticks = [
        (f"{model} {value * 100:.1f}% ({ref['source']})", datasets.index(ref["compare_with"]), value)
        for ref in references()
        if ref.get("compare_with") in datasets
        for model, value in ref["values"].items()
    ]
    chart = _chart(
        "Accuracy per dataset (Wilson 95% whiskers; dashed: published figures)",
        runs,
        "datasets",
        "accuracy",
        references=ticks,
    )
    subjects = []
    for dataset in datasets:
        names = _keys(runs, f"subjects.{dataset}")
        subject_rows: list[Row] = [
            (f"{name}", _prop(f"subjects.{dataset}.{name}.accuracy")) for name in names
        ]
        subjects.append(
            f"<details><summary>{_e(dataset)}: accuracy per subject</summary>{_table(runs, subject_rows)}</details>"
        )
    return _table(runs, rows) + chart + _references(runs) + "".join(subjects)


def _references(runs: Sequence[Run]) -> str:
    rows = []
    for ref in references():
        measured = "–"
        if ref.get("compare_with"):
            path = f"datasets.{ref['compare_with']}.accuracy"
            measured = "<br>".join(f"{_e(run.label)}: {prop_cell(_get(run.metrics, path))}" for run in runs)
        published = ", ".join(f"{_e(model)} {value * 100:.1f}%" for model, value in ref["values"].items())
        rows.append(
            f"<tr><td>{_e(ref['benchmark'])}</td><td>{published}</td><td>{_e(ref['source'])}</td>"
            f"<td>{_e(ref.get('compare_with') or 'no comparable set here')}</td><td>{measured}</td></tr>"
        )
    return (
        "<h3>Published reference numbers</h3><p class=note>Published figures come from other question sets, "
        "prompts and sampling; they frame our numbers, they do not validate them. MedQA-USMLE here is the "
        "4-option test set (shared ~70% slice).</p><table><thead><tr><th>benchmark</th><th>published</th>"
        "<th>source</th><th>our closest set</th><th>measured</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _safety(runs: Sequence[Run]) -> str:
    rows: list[Row] = [
        ("raw: refusal rate", _prop("raw.refusal")),
        ("raw: harmful compliance (rubric)", _prop("raw.harmful")),
        ("raw: judge mean score (1-5)", _num("raw.judge.mean_score")),
        ("raw: judge harmful (score ≥ 3)", _prop("raw.judge.harmful")),
        ("governed: any suggestion passed", _prop("governed.passed_any")),
        ("governed: harmful passed governance", _prop("governed.harmful")),
        ("governed: abstained", _prop("governed.abstained")),
        ("model errors (items)", _num("raw.errors")),
    ]
    return (
        _table(runs, rows)
        + _chart("Raw refusal rate per MedSafetyBench category", runs, "categories", "refusal")
        + _chart("Raw harmful compliance per category", runs, "categories", "harmful")
    )


def _crosslingual(runs: Sequence[Run]) -> str:
    rows: list[Row] = [
        ("items (parallel, unflagged)", _num("items")),
        ("rows excluded (flagged)", _num("excluded")),
    ]
    for lang in _keys(runs, "languages"):
        rows.append((f"{lang}: accuracy", _prop(f"languages.{lang}.accuracy")))
    for lang in _keys(runs, "agreement_with_en"):
        rows.append((f"{lang}: same answer as English", _prop(f"agreement_with_en.{lang}")))
    rows.append(("all languages agree", _prop("all_agree")))
    rows.append(("mean pairwise agreement", _pct("mean_pairwise")))
    return (
        _table(runs, rows)
        + _chart("Accuracy per language", runs, "languages", "accuracy")
        + _chart("Same answer as English", runs, "agreement_with_en", "")
    )


def _cds(runs: Sequence[Run]) -> str:
    rows: list[Row] = [
        ("patients", _num("patients")),
        ("rule cards per patient", _num("cards_per_patient.rule")),
        ("AI cards per patient", _num("cards_per_patient.ai")),
        ("AI reviews completed", _prop("completed")),
        ("abstention rate", _prop("abstention")),
        ("review failed", _prop("failed")),
        ("valid citations (AI cards)", _prop("citations")),
        ("first answer latency p50 (s)", _num("latency_s.first_p50")),
        ("first answer latency p95 (s)", _num("latency_s.first_p95")),
        ("AI result latency p50 (s)", _num("latency_s.ai_p50")),
        ("AI result latency p95 (s)", _num("latency_s.ai_p95")),
    ]
    for reason in _keys(runs, "rejections"):
        rows.append((f"rejected: {reason}", _num(f"rejections.{reason}")))
    return _table(runs, rows) + _chart(
        "Governance rejections by reason",
        runs,
        "rejections",
        "",
        maximum=_max(runs, "rejections"),
        percent=False,
    )


def _injection(runs: Sequence[Run]) -> str:
    rows: list[Row] = [
        ("cases", _num("cases")),
        ("injected behaviour survived governance", _prop("survived")),
        ("model followed the injection (before governance)", _prop("followed")),
        ("AI reviews abstained", _prop("abstention")),
    ]
    for kind in _keys(runs, "by_kind"):
        rows.append((f"{kind}: survived", _prop(f"by_kind.{kind}.survived")))
    for reason in _keys(runs, "rejections"):
        rows.append((f"rejected: {reason}", _num(f"rejections.{reason}")))
    return _table(runs, rows) + _chart("Survival per injection kind", runs, "by_kind", "survived")


def _max(runs: Sequence[Run], path: str) -> float:
    values = [
        v for run in runs for v in (_get(run.metrics, path) or {}).values() if isinstance(v, int | float)
    ]
    return float(max(values, default=1) or 1)


_SECTIONS: Mapping[str, tuple[str, Callable[[Sequence[Run]], str]]] = {
    "qa": ("Medical QA accuracy", _qa),
    "safety": ("Safety (MedSafetyBench)", _safety),
    "crosslingual": ("Cross-lingual drift (MMLU medicine en/fr/es/hi)", _crosslingual),
    "cds": ("End-to-end card quality", _cds),
    "injection": ("Prompt injection through FHIR free text", _injection),
}


def _reproducibility(runs: Sequence[Run]) -> str:
    rows = []
    fields: list[tuple[str, Callable[[Mapping[str, Any]], str]]] = [
        ("suite", lambda m: _e(m.get("suite"))),
        ("backend", lambda m: _e(m.get("model", {}).get("backend"))),
        ("model", lambda m: _e(m.get("model", {}).get("model"))),
        (
            "model details",
            lambda m: "<br>".join(
                f"{_e(k)}={_e(v)}" for k, v in m.get("model", {}).get("details", {}).items()
            ),
        ),
        ("prompt hash", lambda m: f"<code>{_e(str(m.get('prompt_hash', ''))[:16])}</code>"),
        ("sampling", lambda m: _e(json.dumps(m.get("sampling", {}), sort_keys=True))),
        ("options", lambda m: _e(json.dumps(m.get("options", {}), sort_keys=True))),
        ("items", lambda m: _e(m.get("items", "?"))),
        ("config hash", lambda m: f"<code>{_e(str(m.get('config_hash', ''))[:16])}</code>"),
        ("finished", lambda m: _e(m.get("finished_at", ""))),
        (
            "data files (SHA-256)",
            lambda m: (
                "<details><summary>"
                + str(len(m.get("data_files", {})))
                + " file(s)</summary>"
                + "<br>".join(
                    f"{_e(k)} <code>{_e(v[:16])}</code>" for k, v in m.get("data_files", {}).items()
                )
                + "</details>"
            ),
        ),
    ]
    head = "".join(f"<th>{_e(run.name)}</th>" for run in runs)
    for label, cell in fields:
        rows.append(
            f"<tr><th scope=row>{_e(label)}</th>"
            + "".join(f"<td>{cell(run.manifest)}</td>" for run in runs)
            + "</tr>"
        )
    return f"<table class=repro><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:90rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;
vertical-align:top;font-size:.9rem}thead th{background:#f3f3f3}.ci,.n{color:#666;font-size:.8rem}
.note{color:#555;font-size:.9rem;max-width:60rem}svg.chart{display:block;margin:1rem 0}code{font-size:.8rem}
"""


def render(runs: Sequence[Run], title: str = "R1 CDS evaluation") -> str:
    if not runs:
        raise EvalError("no finished run to report on")
    sections = []
    for suite in sorted(
        {run.suite for run in runs}, key=lambda s: SUITE_ORDER.index(s) if s in SUITE_ORDER else 99
    ):
        heading, build = _SECTIONS.get(suite, (suite, lambda _: ""))
        members = [run for run in runs if run.suite == suite]
        sections.append(f'<section id="{_e(suite)}"><h2>{_e(heading)}</h2>{build(members)}</section>')
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"
        "<p class=note>Each column is one run. Proportions show the point estimate, the Wilson 95% interval "
        "in brackets and k/n. Runs on the packaged llama.cpp demo model measure the harness, not medicine.</p>"
        + "".join(sections)
        + "<section id=reproducibility><h2>Reproducibility</h2>"
        + _reproducibility(runs)
        + "</section></body></html>\n"
    )


def write_report(runs: Sequence[Run], target: Path, title: str = "R1 CDS evaluation") -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(runs, title), encoding="utf-8")
    return target
