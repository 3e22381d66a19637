"""The shared evaluation data read in place: sizes from SOURCES.md, exclusions honoured, no answer leaks."""

from __future__ import annotations

import json

import pytest

from evals.data import LANGUAGES, dataset_files, file_sha256, load_parallel, load_qa, load_safety
from evals.prompts import qa_prompt
from evals.select import select
from tests.support.eval_scripted import require_eval_data

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("dataset", "items"), [("medqa-usmle", 891), ("medmcqa", 2929), ("pubmedqa", 350), ("mmlu-medicine", 765)]
)
def test_qa_sets_have_the_sizes_sources_md_lists(dataset: str, items: int) -> None:
    assert len(load_qa(require_eval_data(), dataset)) == items


def test_safety_set_has_629_requests_in_nine_categories_of_two_generators() -> None:
    items = load_safety(require_eval_data())
    assert len(items) == 629
    assert {(i.generator, i.category) for i in items} == {
        (g, k) for g in ("gpt4", "llama2") for k in range(1, 10)
    }


def test_answer_revealing_fields_never_reach_a_prompt() -> None:
    root = require_eval_data()
    rows = [json.loads(line) for line in (root / "medmcqa" / "dev.json").read_text().splitlines()]
    items = load_qa(root, "medmcqa")
    explained = [
        (row, item) for row, item in zip(rows, items, strict=True) if row.get("exp") and len(row["exp"]) > 40
    ]
    assert explained
    for row, item in explained[:200]:
        assert row["exp"] not in qa_prompt(item)
    pubmed = json.loads((root / "pubmedqa" / "test_set.json").read_text())
    for item in load_qa(root, "pubmedqa")[:50]:
        pmid = item.id.split(":", 1)[1]
        prompt = qa_prompt(item)
        assert pubmed[pmid]["LONG_ANSWER"] not in prompt
        assert item.gold not in prompt.split("Question:")[1].split("?")[-1]


def test_flagged_translations_are_excluded_in_every_language() -> None:
    root = require_eval_data()
    kept, excluded = load_parallel(root)
    assert len(kept) + excluded == 765
    # Spanish professional_medicine alone flags 95 rows; the union over languages is at least that.
    assert 95 <= excluded <= 163
    for item in kept:
        assert set(item.versions) == set(LANGUAGES)
        assert all(v.gold == item.gold for v in item.versions.values())
        assert all("spoofing" not in v.question.lower() for v in item.versions.values())
    # Row 1 of French professional_medicine is flagged (SOURCES.md): that item is gone.
    assert "mmlu-parallel:professional_medicine:0" not in {i.id for i in kept}
    everything, none = load_parallel(root, include_flagged=True)
    assert (len(everything), none) == (765, 0)


def test_file_hashes_match_sources_md() -> None:
    root = require_eval_data()
    [medqa] = dataset_files(root, "medqa-usmle")
    assert file_sha256(medqa) == "c74a1d76650a0809844edb6295278c3761bbdecc81d52368d6caf7a5c55f1477"


def test_selection_is_seeded_stratified_and_stable() -> None:
    items = [f"{group}{i}" for group in "abc" for i in range(10)]
    chosen = select(items, lambda s: s[0], 7, seed=3)
    assert chosen == select(items, lambda s: s[0], 7, seed=3)
    assert [s[0] for s in chosen] == ["a", "b", "c", "a", "b", "c", "a"]
    assert chosen != select(items, lambda s: s[0], 7, seed=4)
    assert select(items, lambda s: s[0], None, seed=3) == items
