"""The documented token-budget policy: defaults by model size and the single retry after truncation."""

from __future__ import annotations

import pytest

from inference.budget import TokenBudget, budget_for, parameters_in_billions

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("model_id", "billions", "budget"),
    [
        ("deepseek-ai/DeepSeek-R1", 671.0, TokenBudget(16384, 32768)),
        ("deepseek-ai/DeepSeek-R1-0528", 671.0, TokenBudget(16384, 32768)),
        ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", 70.0, TokenBudget(12288, 24576)),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", 32.0, TokenBudget(12288, 24576)),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-14B", 14.0, TokenBudget(8192, 16384)),
        ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 1.5, TokenBudget(1024, 2048)),
        ("gemma3-270m-q4_k_m.gguf", 0.27, TokenBudget(1024, 2048)),
        ("my-local-model", None, TokenBudget(8192, 16384)),
    ],
)
def test_default_budget_by_model_size(model_id: str, billions: float | None, budget: TokenBudget) -> None:
    assert parameters_in_billions(model_id) == billions
    assert budget_for(model_id) == budget


def test_budgets_must_be_coherent() -> None:
    with pytest.raises(ValueError, match="budgets"):
        TokenBudget(4096, 2048)
    with pytest.raises(ValueError, match="budgets"):
        TokenBudget(0, 2048)
