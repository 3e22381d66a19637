"""Wilson intervals against hand-computed values, majority votes and agreement."""

from __future__ import annotations

import math

import pytest

from evals.stats import agreement, majority, pairwise_agreement, proportion, wilson_interval

pytestmark = pytest.mark.unit

Z = 1.959963984540054  # the 97.5% standard normal quantile


def _by_hand(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z / (1 + Z**2 / n) * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Worked by hand with z = 1.96: 8/10 -> centre 0.7167, half 0.2265
        (8, 10, 0.4902, 0.9433),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (1, 3, 0.0615, 0.7923),
        (45, 100, 0.3561, 0.5475),
    ],
)
def test_wilson_interval_matches_hand_computed_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=1e-4)
    assert got == pytest.approx(_by_hand(k, n) if 0 < k < n else got, abs=1e-12)


def test_wilson_interval_edges_and_confidence() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low90, high90 = wilson_interval(8, 10, confidence=0.90)
    low95, high95 = wilson_interval(8, 10)
    assert low95 < low90 < 0.8 < high90 < high95
    with pytest.raises(ValueError, match="successes <= trials"):
        wilson_interval(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(1, 10, confidence=1.0)


def test_proportion_carries_point_estimate_and_interval() -> None:
    p = proportion(3, 4)
    assert (p.k, p.n, p.value) == (3, 4, 0.75)
    assert (p.low, p.high) == pytest.approx(wilson_interval(3, 4))
    assert proportion(0, 0).value is None


def test_majority_ignores_unanswered_and_breaks_ties_by_first_seen() -> None:
    assert majority(["B", "A", "A"]) == "A"
    assert majority([None, None, "C"]) == "C"
    assert majority(["B", "A", "A", "B"]) == "B"
    assert majority([None, None]) is None
    assert majority([]) is None


def test_agreement_is_the_modal_share_of_all_samples() -> None:
    assert agreement(["A", "A", "B"]) == pytest.approx(2 / 3)
    assert agreement(["A", None, None, None]) == pytest.approx(1 / 4)
    assert agreement([None]) == 0.0
    assert agreement([]) == 0.0


def test_pairwise_agreement_counts_matching_pairs() -> None:
    # en, fr, es, hi answered A, A, B, None: 6 pairs, only (en, fr) agree
    assert pairwise_agreement(["A", "A", "B", None]) == pytest.approx(1 / 6)
    assert pairwise_agreement(["A"]) is None
