"""The token-budget policy: how many completion tokens a model gets, and what a truncated answer costs.

R1-family models spend most of their completion budget thinking before they answer; the budget
`max_completion_tokens` covers reasoning and answer together. Too small and the answer never arrives
(finish_reason "length" with empty content: `truncated_in_reasoning`); too large and one request holds a
GPU slot for minutes. Defaults by model size, measured in parameters named in the model id:

    model                                   budget   retry budget on truncation
    DeepSeek-R1 / V3 (671B, 685B)           16384    32768
    R1 distills of 32B-70B                  12288    24576
    R1 distills up to 14B, other 7-14B      8192     16384
    small local models (< 4B, e.g. 270m)    1024     2048
    unknown                                 8192     16384

On truncation (plugin.review.ReviewService) the samples cut off while reasoning are asked again once with
the retry budget, never more; a second truncation means the case is too hard for this model at this
budget, and governance sees fewer usable samples (fewer agreeing samples lower the confidence, and the
review abstains below the threshold). tests/unit/test_review.py pins this policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIZE = re.compile(r"(?<![0-9.])(\d+(?:\.\d+)?)\s*([bm])(?![a-z])", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TokenBudget:
    max_completion_tokens: int
    retry_max_completion_tokens: int

    def __post_init__(self) -> None:
        if not 0 < self.max_completion_tokens <= self.retry_max_completion_tokens:
            raise ValueError("budgets must be positive and the retry budget at least the first")


def parameters_in_billions(model_id: str) -> float | None:
    """The parameter count a model id names ("DeepSeek-R1-Distill-Qwen-32B" → 32.0, "gemma3-270m" → 0.27)."""
    lowered = model_id.lower()
    if ("deepseek-r1" in lowered and "distill" not in lowered) or "deepseek-v3" in lowered:
        return 671.0
    sizes = [float(n) / (1000 if unit.lower() == "m" else 1) for n, unit in _SIZE.findall(model_id)]
    return max(sizes) if sizes else None


def budget_for(model_id: str) -> TokenBudget:
    size = parameters_in_billions(model_id)
    if size is None:
        return TokenBudget(8192, 16384)
    if size >= 600:
        return TokenBudget(16384, 32768)
    if size >= 30:
        return TokenBudget(12288, 24576)
    if size >= 4:
        return TokenBudget(8192, 16384)
    return TokenBudget(1024, 2048)
