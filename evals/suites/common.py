"""What the model-level suites share: run options, sampling, the model's identity as the manifest records it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugin.model_port import LanguageModel, ModelError, ModelIdentity, SamplingParameters

__all__ = ["ModelRunOptions", "identity_json", "model_error", "model_identity"]


@dataclass(frozen=True, slots=True)
class ModelRunOptions:
    """How a model-level suite runs. R1 defaults: temperature 0.6, top_p 0.95, a budget for reasoning."""

    data_dir: Path
    output: Path
    limit: int | None = None
    samples: int = 1
    seed: int = 0
    temperature: float = 0.6
    top_p: float = 0.95
    max_completion_tokens: int = 8192
    concurrency: int = 4
    run_name: str | None = None

    def __post_init__(self) -> None:
        if self.samples < 1 or self.concurrency < 1 or self.max_completion_tokens < 1:
            raise ValueError("samples, concurrency and max_completion_tokens must be positive")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be positive")

    def sampling(self, n: int | None = None) -> SamplingParameters:
        return SamplingParameters(
            temperature=self.temperature,
            top_p=self.top_p,
            max_completion_tokens=self.max_completion_tokens,
            n=self.samples if n is None else n,
            seed=self.seed,
        )

    def sampling_json(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_completion_tokens": self.max_completion_tokens,
            "n": self.samples,
            "seed": self.seed,
        }


def identity_json(identity: ModelIdentity) -> dict[str, Any]:
    return {"backend": identity.backend, "model": identity.model, "details": dict(identity.details)}


async def model_identity(model: LanguageModel) -> dict[str, Any]:
    return identity_json(await model.identity())


def model_error(exc: ModelError) -> dict[str, Any]:
    """An item the model failed on: the error class only (its message may quote the server)."""
    return {"error": type(exc).__name__}
