"""Selection metrics on a hand-worked 4-source toy, and exact random expectations vs brute force.

The toy target: baseline 82; with transfer a=80, b=90, c=70, d=85, so gains a=-2, b=+8, c=-12,
d=+3. The predicted ranking is d, a, b, c.
"""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from workers.research.metrics import (
    best_source_rank,
    expected_random_ndcg,
    expected_random_rank,
    expected_random_regret,
    ndcg,
    regret_at_k,
    relevance,
)

SCORES = {"a": 80.0, "b": 90.0, "c": 70.0, "d": 85.0}
GAINS = {s: v - 82.0 for s, v in SCORES.items()}
RANKING = ["d", "a", "b", "c"]
L3 = math.log2(3)  # the discount of position 2 is 1 / log2(3); of 3 it is 1/2, of 4 1/log2(5)


def test_best_source_rank_is_the_place_of_b() -> None:
    assert best_source_rank(RANKING, GAINS) == 3  # b is truly best and sits third


def test_best_source_rank_takes_the_first_of_tied_best() -> None:
    assert best_source_rank(["a", "b", "c"], {"a": 1.0, "b": 5.0, "c": 5.0}) == 2


def test_regret_at_k_by_hand() -> None:
    # top-1 is d (85): (90 - 85) / 90 = 5.56 %; top-3 holds b: no regret
    assert regret_at_k(RANKING, SCORES, 1) == pytest.approx(100 * 5 / 90)
    assert regret_at_k(RANKING, SCORES, 2) == pytest.approx(100 * 5 / 90)
    assert regret_at_k(RANKING, SCORES, 3) == 0.0
    assert regret_at_k(RANKING, SCORES, 10) == 0.0  # k beyond n: every source is picked


def test_ndcg_shift_by_hand() -> None:
    # relevance = gain + 12: a=10, b=20, c=0, d=15
    assert relevance(GAINS) == {"a": 10.0, "b": 20.0, "c": 0.0, "d": 15.0}
    dcg = 15 + 10 / L3 + 20 / 2 + 0
    ideal = 20 + 15 / L3 + 10 / 2 + 0
    assert ndcg(RANKING, GAINS) == pytest.approx(dcg / ideal)
    assert ndcg(RANKING, GAINS) == pytest.approx(0.908465, abs=1e-6)


def test_ndcg_clip_by_hand() -> None:
    # relevance = max(gain, 0): a=0, b=8, c=0, d=3
    dcg = 3 + 0 + 8 / 2 + 0
    ideal = 8 + 3 / L3
    assert ndcg(RANKING, GAINS, "clip") == pytest.approx(dcg / ideal)


def test_ndcg_is_one_for_the_ideal_ranking_and_when_nothing_differs() -> None:
    assert ndcg(["b", "d", "a", "c"], GAINS) == pytest.approx(1.0)
    assert ndcg(["a", "b"], {"a": -1.0, "b": -3.0}, "clip") == 1.0  # nothing beats the baseline


def test_random_expectations_by_hand() -> None:
    assert expected_random_rank(GAINS) == 2.5  # (4 + 1) / 2
    # top-1 uniformly: regrets 10, 0, 20, 5 points of 90 → mean 8.75 / 90
    assert expected_random_regret(SCORES, 1) == pytest.approx(100 * 8.75 / 90)
    # pairs: 3 with b (90), {d,a} {d,c} (85), {a,c} (80) → E[best] = 520 / 6
    assert expected_random_regret(SCORES, 2) == pytest.approx(100 * (90 - 520 / 6) / 90)
    # mean relevance 45/4 times the sum of the 4 discounts, over the ideal DCG
    discounts = 1 + 1 / L3 + 1 / 2 + 1 / math.log2(5)
    ideal = 20 + 15 / L3 + 10 / 2
    assert expected_random_ndcg(GAINS) == pytest.approx(45 / 4 * discounts / ideal)


@pytest.mark.parametrize(
    "values",
    [
        SCORES,
        {"a": 50.0, "b": 50.0, "c": 20.0, "d": 10.0},  # tie for best
        {"a": -5.0, "b": 3.0, "c": 3.0, "d": 3.0},  # three tied
        {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0},  # nothing to choose
    ],
)
def test_exact_expectations_equal_brute_force_over_all_permutations(values) -> None:
    perms = [list(p) for p in itertools.permutations(values)]
    assert len(perms) == 24
    assert expected_random_rank(values) == pytest.approx(
        statistics.fmean(best_source_rank(p, values) for p in perms)
    )
    for mode in ("shift", "clip"):
        assert expected_random_ndcg(values, mode) == pytest.approx(
            statistics.fmean(ndcg(p, values, mode) for p in perms)
        )
    for k in (1, 2, 3, 4):
        assert expected_random_regret(values, k) == pytest.approx(
            statistics.fmean(regret_at_k(p, values, k) for p in perms)
        )


def test_rankings_must_cover_exactly_the_measured_sources() -> None:
    with pytest.raises(ValueError, match="missing"):
        ndcg(["a", "b"], GAINS)
    with pytest.raises(ValueError, match="unmeasured"):
        regret_at_k([*RANKING, "zz"], SCORES, 1)


def test_regret_relative_to_a_negative_or_zero_best() -> None:
    assert regret_at_k(["a", "b"], {"a": -20.0, "b": -10.0}, 1) == pytest.approx(100.0)
    assert regret_at_k(["a", "b"], {"a": 0.0, "b": 0.0}, 1) == 0.0
    assert math.isnan(regret_at_k(["a", "b"], {"a": -1.0, "b": 0.0}, 1))
