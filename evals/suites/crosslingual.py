"""The `crosslingual` suite: the same MMLU medicine items in English, French, Spanish and Hindi.

Rows SOURCES.md flags as unfaithful translations (and any "IP spoofing" row) are excluded in every language
for that item, so each language answers the same item set and differences are drift, not data defects.
Per item, each language gets the same English instructions with the item in that language, n samples.
The item's answer in a language is the majority vote of its samples (the first sample when n = 1).
Metrics:
  languages.<l>.accuracy        first-sample accuracy in language l, Wilson 95%
  languages.<l>.majority_accuracy
  agreement_with_en.<l>         items whose answer in l equals the English answer (both extracted), Wilson
  all_agree                     items where every language gave the same extracted answer, Wilson
  mean_pairwise                 mean over items of the share of language pairs that agree
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from evals.data import Language, ParallelItem, dataset_files, load_parallel
from evals.extract import extract_choice
from evals.prompts import MCQ_TEMPLATE, answer_schema, prompt_hash, qa_prompt
from evals.runner import RunFolder, RunSpec, run_items
from evals.select import select
from evals.stats import majority, pairwise_agreement, proportion
from evals.suites.common import ModelRunOptions, model_error, model_identity
from plugin.model_port import LanguageModel, ModelError, ModelRequest

__all__ = ["CROSSLINGUAL_PROMPT_HASH", "crosslingual_metrics", "run_crosslingual"]

CROSSLINGUAL_PROMPT_HASH = prompt_hash({"mcq": MCQ_TEMPLATE}, {"mcq": answer_schema(("A", "B", "C", "D"))})


async def ask_all(model: LanguageModel, item: ParallelItem, options: ModelRunOptions) -> dict[str, Any]:
    answers: dict[str, list[str | None]] = {}
    finish: dict[str, list[str]] = {}
    for language, version in item.versions.items():
        request = ModelRequest(
            prompt=qa_prompt(version),
            output_schema=answer_schema(version.keys),
            schema_name="answer",
            sampling=options.sampling(),
        )
        try:
            response = await model.generate(request)
        except ModelError as exc:
            return {"subject": item.subject, "gold": item.gold, **model_error(exc)}
        answers[language] = [extract_choice(s.content, version.options) for s in response.samples]
        finish[language] = [s.finish_reason for s in response.samples]
    return {"subject": item.subject, "gold": item.gold, "answers": answers, "finish": finish}


def crosslingual_metrics(results: Iterable[Mapping[str, Any]], excluded: int = 0) -> dict[str, Any]:
    every = list(results)
    rows = [r for r in every if "answers" in r]
    languages: list[str] = []
    for row in rows:
        for language in row["answers"]:
            if language not in languages:
                languages.append(language)
    n = len(rows)
    voted = [{lang: majority(row["answers"].get(lang, [])) for lang in languages} for row in rows]
    per_language = {}
    for lang in languages:
        first = sum(1 for row in rows if (row["answers"].get(lang) or [None])[0] == row["gold"])
        vote = sum(1 for row, v in zip(rows, voted, strict=True) if v[lang] == row["gold"])
        per_language[lang] = {
            "accuracy": proportion(first, n).as_json(),
            "majority_accuracy": proportion(vote, n).as_json(),
        }
    with_en = {
        lang: proportion(sum(1 for v in voted if v["en"] is not None and v[lang] == v["en"]), n).as_json()
        for lang in languages
        if lang != "en" and "en" in languages
    }
    all_agree = sum(1 for v in voted if None not in v.values() and len(set(v.values())) == 1)
    pairwise = [p for v in voted if (p := pairwise_agreement(v[lang] for lang in languages)) is not None]
    return {
        "items": n,
        "errors": len(every) - n,
        "excluded": excluded,
        "languages": per_language,
        "agreement_with_en": with_en,
        "all_agree": proportion(all_agree, n).as_json(),
        "mean_pairwise": sum(pairwise) / len(pairwise) if pairwise else None,
    }


async def run_crosslingual(
    model: LanguageModel,
    options: ModelRunOptions,
    languages: Sequence[Language],
    *,
    include_flagged: bool = False,
) -> tuple[RunFolder, dict[str, Any]]:
    items, excluded = load_parallel(options.data_dir, languages, include_flagged=include_flagged)
    chosen = select(items, lambda item: item.subject, options.limit, options.seed)
    wanted = sorted(set(("en", *languages)))
    files = [
        f
        for f in dataset_files(options.data_dir, "mmlu-medicine-translated")
        if _language_of(f.name) in wanted
    ]
    spec = RunSpec(
        suite="crosslingual",
        options={"languages": wanted, "include_flagged": include_flagged},
        model=await model_identity(model),
        prompt_hash=CROSSLINGUAL_PROMPT_HASH,
        sampling=options.sampling_json(),
        data_files=RunSpec.hash_files(options.data_dir, files),
    )
    folder = RunFolder.open(options.output, spec, options.run_name)

    async def evaluate(item: ParallelItem) -> dict[str, Any]:
        return await ask_all(model, item, options)

    results = await run_items(
        folder, chosen, lambda item: item.id, evaluate, concurrency=options.concurrency, label="crosslingual"
    )
    metrics = crosslingual_metrics(results.values(), excluded)
    folder.write_manifest({"items": len(chosen), "limit": options.limit, "excluded_flagged_rows": excluded})
    folder.write_results({"metrics": metrics, "items": results})
    return folder, metrics


def _language_of(file_name: str) -> str:
    for code, name in (("fr", "French"), ("es", "Spanish"), ("hi", "Hindi")):
        if f"_{name}_" in file_name:
            return code
    return "en"
