"""The model port: what the review asks of a language model, what comes back, and a scripted fake.

ModelError                  raised by adapters; the review records it and degrades
├── ModelUnavailable        connect errors, 408, 429, 5xx after the retries ran out (transient)
├── ModelTimeout            no answer (or no stream chunk) within the configured time (transient)
└── ModelRejected           any other 4xx: our request is wrong, retrying cannot help
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from plugin.errors import PluginError

FinishReason = Literal["stop", "length", "abort", "error", "unknown"]


class ModelError(PluginError):
    transient: bool = False


class ModelUnavailable(ModelError):
    transient = True


class ModelTimeout(ModelError):
    transient = True


class ModelRejected(ModelError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"model server refused the request ({status}): {message}")
        self.status = status


@dataclass(frozen=True, slots=True)
class SamplingParameters:
    """DeepSeek-R1 practice: temperature 0.6, top_p 0.95; the budget covers reasoning and answer."""

    temperature: float = 0.6
    top_p: float = 0.95
    max_completion_tokens: int = 8192
    n: int = 1
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class ModelRequest:
    prompt: str  # the whole user turn: R1 takes no system prompt
    output_schema: Mapping[str, Any]  # JSON schema the answer (after the reasoning) must follow
    schema_name: str = "suggestions"
    sampling: SamplingParameters = field(default_factory=SamplingParameters)
    stream: bool = False


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Sample:
    content: str  # the answer, without the reasoning
    reasoning: str | None
    finish_reason: FinishReason


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    """Which model answered, as the audit trail records it (from /model_info and /server_info)."""

    backend: str  # sglang, openai, llamacpp, scripted
    model: str
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelResponse:
    samples: tuple[Sample, ...]
    usage: Usage
    identity: ModelIdentity
    request_id: str
    latency_s: float


class LanguageModel(Protocol):
    async def generate(self, request: ModelRequest) -> ModelResponse: ...

    async def identity(self) -> ModelIdentity: ...

    async def ready(self) -> bool: ...


class ScriptedModel:
    """A fake beside the port: answers from a script, records every request. For unit tests only."""

    def __init__(
        self, script: list[ModelResponse | ModelError] | None = None, model: str = "scripted"
    ) -> None:
        self._script: deque[ModelResponse | ModelError] = deque(script or ())
        self._identity = ModelIdentity("scripted", model)
        self.requests: list[ModelRequest] = []

    def push(self, item: ModelResponse | ModelError) -> None:
        self._script.append(item)

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        if not self._script:
            raise ModelUnavailable("the scripted model has no answer left")
        item = self._script.popleft()
        if isinstance(item, ModelError):
            raise item
        return item

    async def identity(self) -> ModelIdentity:
        return self._identity

    async def ready(self) -> bool:
        return True

    @staticmethod
    def answer(*contents: str, reasoning: str | None = "", finish: FinishReason = "stop") -> ModelResponse:
        """A response with one sample per content string, as a test script entry."""
        samples = tuple(Sample(content, reasoning, finish) for content in contents)
        usage = Usage(
            prompt_tokens=100, completion_tokens=50 * len(samples), reasoning_tokens=0, cached_tokens=0
        )
        return ModelResponse(samples, usage, ModelIdentity("scripted", "scripted"), "scripted-1", 0.0)
