"""Recorded model output as a LanguageModel (for replay), and the inference-side review ports."""

# A recorded sample file holds either the answer text exactly as the model gave it (after its reasoning),
# or a JSON object {"content": ..., "reasoning": ..., "finish_reason": ...} where only content is required.
# A file that is JSON but not of that shape (for instance a bare SuggestionSet) is the answer itself.
#
# The review ports need no adapter class: `build_prompt` and `parse_sample` already have the call shapes
# of plugin.review.PromptBuilder and OutputParser; PROMPTS and PARSER name them, checked by mypy.

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Final, get_args

from inference.parsing import parse_sample
from inference.prompts import build_prompt
from plugin.model_port import (
    FinishReason,
    ModelIdentity,
    ModelRequest,
    ModelResponse,
    Sample,
    Usage,
)
from plugin.review import OutputParser, PromptBuilder

__all__ = ["PARSER", "PROMPTS", "RecordedModel", "load_sample", "load_samples"]

PROMPTS: Final[PromptBuilder] = build_prompt
PARSER: Final[OutputParser] = parse_sample
_FINISH: Final = frozenset(get_args(FinishReason))
_KEYS: Final = frozenset({"content", "reasoning", "finish_reason"})


def load_sample(path: Path) -> Sample:
    """One recorded sample from a file (see the module notes); raises OSError or ValueError."""
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except ValueError:
        return Sample(text, None, "stop")
    if not (isinstance(document, dict) and "content" in document and set(document) <= _KEYS):
        return Sample(text, None, "stop")
    content, reasoning = document["content"], document.get("reasoning")
    finish = document.get("finish_reason", "stop")
    if not isinstance(content, str) or not (reasoning is None or isinstance(reasoning, str)):
        raise ValueError(f"{path}: content must be a string and reasoning a string or null")
    if finish not in _FINISH:
        raise ValueError(f"{path}: finish_reason must be one of {sorted(_FINISH)}")
    return Sample(content, reasoning, finish)


def load_samples(paths: Sequence[Path]) -> tuple[Sample, ...]:
    return tuple(load_sample(path) for path in paths)


class RecordedModel:
    """Answers every request with exactly the recorded samples, whatever n asks for.

    Replaying is not resampling: agreement k/n is computed over the samples that were recorded.
    """

    def __init__(self, samples: Sequence[Sample], model: str = "recorded") -> None:
        if not samples:
            raise ValueError("a recorded model needs at least one sample")
        self._samples = tuple(samples)
        self._identity = ModelIdentity("recorded", model)
        self.requests: list[ModelRequest] = []

    @classmethod
    def from_files(cls, paths: Sequence[Path], model: str = "recorded") -> RecordedModel:
        return cls(load_samples(paths), model)

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        return ModelResponse(self._samples, Usage(), self._identity, f"recorded-{len(self.requests)}", 0.0)

    async def identity(self) -> ModelIdentity:
        return self._identity

    async def ready(self) -> bool:
        return True
