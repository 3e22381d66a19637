"""Scripted answers for the evaluation harness's tests: responders that know each item's gold answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from evals.data import McqItem, load_parallel, load_qa
from evals.prompts import qa_prompt
from plugin.model_port import ModelRequest
from tests.support.fixtures_paths import REPO_ROOT

EVAL_DATA = REPO_ROOT.parent / "shared" / "eval-data"
WRONG = {"A": "B", "B": "C", "C": "D", "D": "A", "yes": "no", "no": "maybe", "maybe": "yes"}


def require_eval_data() -> Path:
    if not EVAL_DATA.is_dir():
        pytest.skip(f"../shared/eval-data is absent (looked for {EVAL_DATA}); these tests read public data")
    return EVAL_DATA


def answer(key: str | None) -> str:
    return json.dumps({"answer": key}) if key is not None else "I am not sure."


def qa_items_by_prompt(root: Path, datasets: Sequence[str]) -> dict[str, McqItem]:
    return {qa_prompt(item): item for dataset in datasets for item in load_qa(root, dataset)}


def parallel_items_by_prompt(root: Path) -> dict[str, McqItem]:
    items, _ = load_parallel(root)
    return {qa_prompt(version): version for item in items for version in item.versions.values()}


def by_item(
    items: Mapping[str, McqItem], decide: Callable[[McqItem], Sequence[str | None]]
) -> Callable[[ModelRequest], list[str]]:
    """A responder: finds the item its prompt was built from and answers the keys `decide` gives."""

    def respond(request: ModelRequest) -> list[str]:
        return [answer(key) for key in decide(items[request.prompt])]

    return respond
