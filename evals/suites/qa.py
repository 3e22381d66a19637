"""The `qa` suite: MedQA-USMLE, MedMCQA, PubMedQA and MMLU medicine; accuracy, majority vote, agreement."""

# Per item the model is asked once for n samples (one request, `n` in the sampling parameters). Each
# sample's answer is extracted (evals.extract). Metrics, overall, per dataset and per dataset subject:
#   accuracy           the first sample's answer is the gold key; k of N items with a Wilson 95% interval
#   majority_accuracy  the majority vote of the n samples (evals.stats.majority) is the gold key; Wilson
#   sample_accuracy    correct samples / all samples (no interval: samples of one item are not independent)
#   agreement          mean over items of the modal answer's share of the n samples (self-consistency)
#   unanswered         samples from which no answer could be extracted / all samples
#   truncated          samples that ran out of tokens (finish "length") / all samples
# Items the model failed on (ModelError after the adapter's retries) are counted apart as `errors` and left
# out of every rate; a resumed run asks for them again.

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from evals.data import McqItem, dataset_files, load_qa
from evals.extract import extract_choice
from evals.prompts import MCQ_TEMPLATE, PUBMEDQA_TEMPLATE, answer_schema, prompt_hash, qa_prompt
from evals.runner import RunFolder, RunSpec, run_items
from evals.select import select
from evals.stats import agreement, majority, proportion
from evals.suites.common import ModelRunOptions, model_error, model_identity
from plugin.model_port import LanguageModel, ModelError, ModelRequest

__all__ = ["QA_PROMPT_HASH", "qa_metrics", "run_qa"]

QA_PROMPT_HASH = prompt_hash(
    {"mcq": MCQ_TEMPLATE, "pubmedqa": PUBMEDQA_TEMPLATE},
    {"mcq": answer_schema(("A", "B", "C", "D")), "pubmedqa": answer_schema(("yes", "no", "maybe"))},
)


async def ask(model: LanguageModel, item: McqItem, options: ModelRunOptions) -> dict[str, Any]:
    """One item's result: the extracted answer of each sample, how each finished, the cost."""
    request = ModelRequest(
        prompt=qa_prompt(item),
        output_schema=answer_schema(item.keys),
        schema_name="answer",
        sampling=options.sampling(),
    )
    base = {"dataset": item.dataset, "subject": item.subject, "gold": item.gold, "language": item.language}
    try:
        response = await model.generate(request)
    except ModelError as exc:
        return {**base, **model_error(exc)}
    return {
        **base,
        "answers": [extract_choice(sample.content, item.options) for sample in response.samples],
        "finish": [sample.finish_reason for sample in response.samples],
        "latency_s": round(response.latency_s, 3),
        "completion_tokens": response.usage.completion_tokens,
        "reasoning_tokens": response.usage.reasoning_tokens,
    }


def _block(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    answered = [r for r in results if "answers" in r]
    first = sum(1 for r in answered if r["answers"] and r["answers"][0] == r["gold"])
    voted = sum(1 for r in answered if majority(r["answers"]) == r["gold"])
    samples = [a for r in answered for a in r["answers"]]
    finishes = [f for r in answered for f in r["finish"]]
    correct_samples = sum(1 for r in answered for a in r["answers"] if a == r["gold"])
    n = len(answered)
    return {
        "items": n,
        "errors": len(results) - n,
        "accuracy": proportion(first, n).as_json(),
        "majority_accuracy": proportion(voted, n).as_json(),
        "sample_accuracy": correct_samples / len(samples) if samples else None,
        "agreement": sum(agreement(r["answers"]) for r in answered) / n if n else None,
        "unanswered": sum(1 for a in samples if a is None) / len(samples) if samples else None,
        "truncated": sum(1 for f in finishes if f == "length") / len(finishes) if finishes else None,
    }


def qa_metrics(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Overall, per dataset and per dataset subject (see the module notes)."""
    rows = list(results)
    by_dataset: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    by_subject: dict[str, dict[str, list[Mapping[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_dataset[row["dataset"]].append(row)
        by_subject[row["dataset"]][row["subject"]].append(row)
    return {
        "overall": _block(rows),
        "datasets": {name: _block(members) for name, members in sorted(by_dataset.items())},
        "subjects": {
            name: {subject: _block(members) for subject, members in sorted(subjects.items())}
            for name, subjects in sorted(by_subject.items())
        },
    }


async def run_qa(
    model: LanguageModel, options: ModelRunOptions, datasets: Sequence[str]
) -> tuple[RunFolder, dict[str, Any]]:
    items: list[McqItem] = []
    files = []
    for dataset in datasets:
        items += load_qa(options.data_dir, dataset)
        files += dataset_files(options.data_dir, dataset)
    chosen = select(items, lambda item: item.dataset, options.limit, options.seed)
    spec = RunSpec(
        suite="qa",
        options={"datasets": sorted(datasets)},
        model=await model_identity(model),
        prompt_hash=QA_PROMPT_HASH,
        sampling=options.sampling_json(),
        data_files=RunSpec.hash_files(options.data_dir, files),
    )
    folder = RunFolder.open(options.output, spec, options.run_name)

    async def evaluate(item: McqItem) -> dict[str, Any]:
        return await ask(model, item, options)

    results = await run_items(
        folder, chosen, lambda item: item.id, evaluate, concurrency=options.concurrency, label="qa"
    )
    metrics = qa_metrics(results.values())
    folder.write_manifest({"items": len(chosen), "limit": options.limit})
    folder.write_results({"metrics": metrics, "items": results})
    return folder, metrics
