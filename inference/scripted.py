"""The scripted demonstration backend: answers written by hand for the demo patients, clearly not a model.

`R1CDS_MODEL_BACKEND=scripted` lets a tester see governed AI cards and their evidence pages in seconds,
without a GPU or the one-time llama.cpp build. It is a LanguageModel like any other, so everything after
the model (parsing, governance, cards, audit) runs exactly as it does for SGLang: a scripted answer that
governance rejects is rejected.

How an answer is chosen (data: `inference/scripted/demo.json`, versioned with the project):

- the prompt's task line ("## Task: chart review", "... order review", "... discharge review") picks the
  scripts written for that task;
- each script cites patient facts as `{{fact:TEXT}}` placeholders instead of handles: TEXT is resolved to
  the handle on the first line of the de-identified summary that contains it ("[rxnorm 855332]" finds the
  warfarin line's M2, "INR:" the INR line's O1). A script applies only when every placeholder resolves,
  so a script written for warfarin with naproxen never answers for a chart without both;
- the first script that applies answers; when none does, the answer is an abstention saying that no
  scripted output was written for this chart (which the cards show as "found nothing it could stand
  behind").

Every answer is one sample: agreement is 1 of 1, and the identity's `clinical_use` detail says
"scripted demonstration output, not a model", which every card and the evidence page repeat.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from plugin.model_port import ModelIdentity, ModelRequest, ModelResponse, Sample, Usage

__all__ = [
    "BACKEND",
    "MODEL_NAME",
    "NOT_A_MODEL",
    "Script",
    "ScriptBook",
    "ScriptedDemoModel",
    "load_script_book",
]

BACKEND: Final = "scripted"
MODEL_NAME: Final = "r1cds-scripted-demo"
NOT_A_MODEL: Final = "scripted demonstration output, not a model"
ANSWERED_KEPT: Final = 64
NO_SCRIPT_REASON: Final = "No scripted demonstration output was written for this chart."
_TASK: Final = re.compile(r"^## Task: (.+)$", re.MULTILINE)
_LANGUAGE: Final = re.compile(r"^Answer language: (\S+)$", re.MULTILINE)
_SUMMARY_HEADING: Final = "## Patient summary (de-identified)\n"
_PLACEHOLDER: Final = re.compile(r"^\{\{fact:(.+)\}\}$")
_HANDLE: Final = re.compile(r"\b([A-Z][0-9]{1,3})\b")


class Script(BaseModel):
    """One hand-written answer for one demo situation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    task: str = Field(description="the prompt's task line after '## Task: ', e.g. 'chart review'")
    written_for: str = Field(description="the demo patient (and order) this answer was written for")
    answer: dict[str, Any] = Field(description="a SuggestionSet with {{fact:TEXT}} in place of handles")


class ScriptBook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    scripts: tuple[Script, ...]


@functools.cache
def load_script_book() -> ScriptBook:
    """The shipped scripts (`inference/scripted/demo.json`), validated once per process."""
    raw = resources.files("inference").joinpath("scripted/demo.json").read_bytes()
    return ScriptBook.model_validate_json(raw)


def _summary(prompt: str) -> str:
    _, found, summary = prompt.partition(_SUMMARY_HEADING)
    return summary if found else ""


def _handle_for(text: str, summary_lines: list[str]) -> str | None:
    for line in summary_lines:
        if text in line:
            match = _HANDLE.search(line)
            return match.group(1) if match else None
    return None


class _Unresolved(Exception):
    """A placeholder names a fact this chart does not have: the script does not apply."""


def _resolve(node: Any, summary_lines: list[str]) -> Any:
    if isinstance(node, str):
        placeholder = _PLACEHOLDER.match(node)
        if placeholder is None:
            return node
        handle = _handle_for(placeholder.group(1), summary_lines)
        if handle is None:
            raise _Unresolved(placeholder.group(1))
        return handle
    if isinstance(node, list):
        return [_resolve(item, summary_lines) for item in node]
    if isinstance(node, Mapping):
        return {key: _resolve(value, summary_lines) for key, value in node.items()}
    return node


def scripted_answer(prompt: str, book: ScriptBook) -> tuple[str | None, dict[str, Any]]:
    """The id of the script that answers this prompt (None: none applies) and its resolved answer."""
    task = _TASK.search(prompt)
    language = _LANGUAGE.search(prompt)
    lines = _summary(prompt).splitlines()
    if task is not None and lines:
        for script in book.scripts:
            if script.task != task.group(1).strip():
                continue
            try:
                return script.id, _resolve(script.answer, lines)
            except _Unresolved:
                continue
    abstention: dict[str, Any] = {
        "language": language.group(1) if language else "en",
        "abstain": True,
        "abstain_reason": NO_SCRIPT_REASON,
        "suggestions": [],
    }
    return None, abstention


class ScriptedDemoModel:
    """plugin.model_port.LanguageModel over the script book; records which script answered each request."""

    def __init__(self, book: ScriptBook | None = None) -> None:
        self._book = book or load_script_book()
        self._identity = ModelIdentity(
            BACKEND, MODEL_NAME, {"clinical_use": NOT_A_MODEL, "script_version": self._book.version}
        )
        # The latest answers' script ids (None: none applied), for tests and debugging; bounded, since a
        # worker thread keeps its model for its whole life.
        self.answered: deque[str | None] = deque(maxlen=ANSWERED_KEPT)

    async def generate(self, request: ModelRequest) -> ModelResponse:
        started = time.perf_counter()
        script_id, answer = scripted_answer(request.prompt, self._book)
        self.answered.append(script_id)
        content = json.dumps(answer, ensure_ascii=False)
        return ModelResponse(
            (Sample(content, None, "stop"),),
            Usage(),
            self._identity,
            f"scripted-{uuid.uuid4().hex}",
            time.perf_counter() - started,
        )

    async def identity(self) -> ModelIdentity:
        return self._identity

    async def ready(self) -> bool:
        return True
