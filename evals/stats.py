"""Exact statistics the reports use: Wilson score intervals, majority votes and answer agreement."""

# Wilson (1927) score interval for a binomial proportion k/n at confidence 1 - alpha:
#     centre = (p + z^2 / 2n) / (1 + z^2 / n)
#     half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)
# It never leaves [0, 1] and, unlike the Wald interval, stays honest at k = 0, k = n and small n, which is
# where slices of a few dozen items live. z comes from the standard normal quantile (statistics.NormalDist),
# so 95% uses z = 1.959963984540054, not the rounded 1.96.

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TypeVar

__all__ = ["Proportion", "agreement", "majority", "pairwise_agreement", "proportion", "wilson_interval"]

_T = TypeVar("_T", bound=Hashable)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of successes/trials; (0, 1) when there are no trials."""
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError("need 0 <= successes <= trials")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    if trials == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True, slots=True)
class Proportion:
    """k of n with its point estimate and Wilson interval, as the report prints it."""

    k: int
    n: int
    value: float | None
    low: float
    high: float

    def as_json(self) -> dict[str, float | int | None]:
        return {"k": self.k, "n": self.n, "value": self.value, "low": self.low, "high": self.high}


def proportion(successes: int, trials: int, confidence: float = 0.95) -> Proportion:
    low, high = wilson_interval(successes, trials, confidence)
    return Proportion(successes, trials, successes / trials if trials else None, low, high)


def majority(answers: Sequence[_T | None]) -> _T | None:
    """The most frequent answer; None answers (nothing extracted) do not vote.

    A tie goes to the tied answer that appeared first, so the vote is a pure function of the sample order.
    """
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return None
    best = max(votes.values())
    return next(a for a in answers if a is not None and votes[a] == best)


def agreement(answers: Sequence[_T | None]) -> float:
    """Self-consistency: the share of all n samples that gave the modal answer (0 when none answered)."""
    if not answers:
        return 0.0
    votes = Counter(a for a in answers if a is not None)
    return max(votes.values()) / len(answers) if votes else 0.0


def pairwise_agreement(answers: Iterable[_T | None]) -> float | None:
    """Share of unordered pairs that gave the same (non-None) answer; None with fewer than two answers."""
    values = list(answers)
    pairs = [(a, b) for i, a in enumerate(values) for b in values[i + 1 :]]
    if not pairs:
        return None
    return sum(1 for a, b in pairs if a is not None and a == b) / len(pairs)
