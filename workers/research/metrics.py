"""How good one predicted ranking of sources is for one target, and what a random ranking scores.

Three metrics, as in the papers, for a target whose sources were all measured:

* ``best_source_rank`` — the 1-based place of the truly best source in the predicted ranking; its
  mean over targets is the average rank ρ of Vu et al. (2020). Lower is better; 1 is perfect.
* ``ndcg`` — normalised discounted cumulative gain over the whole ranking (Vu et al. 2020), with
  the transfer gains as relevance (see :func:`relevance` for negative gains). Higher is better.
* ``regret_at_k`` — Poth et al. (2021): the relative gap, in %, between the best target score
  overall and the best target score among the top-k picks. These are target scores *with*
  transfer, not gains. Lower is better; 0 means the best source was among the k picks.

Each has an ``expected_random_*`` twin giving its exact expectation over the n! equally likely
rankings (no simulation), so "random" is a row of the evaluation table without noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

RELEVANCE_MODES = ("shift", "clip")


def best_source_rank(ranking: Sequence[str], values: Mapping[str, float]) -> int:
    """1-based position in ``ranking`` of the source with the highest value (first if tied)."""
    _check(ranking, values)
    best = max(values.values())
    return next(i for i, source in enumerate(ranking, 1) if values[source] == best)


def relevance(gains: Mapping[str, float], mode: str = "shift") -> dict[str, float]:
    """Non-negative NDCG relevance from transfer gains (which may be negative).

    ``shift`` (default): ``gain - min(gains)``: the worst source has relevance 0 and every other
    keeps its margin over it. As the baseline is shared by all sources of a target this equals
    ``score - min(score)``, so harmful sources are still ordered among themselves, and NDCG is
    defined whenever the sources differ at all.
    ``clip``: ``max(gain, 0)``: only sources that beat the baseline count as relevant; every
    harmful source is equally irrelevant.

    Vu et al. (2020) write DCG with (2^rel - 1) and take rel from target performance; we could not
    check the paper's exact definition here, and on our 0-100 scores the exponential would make
    NDCG the top source alone, so gains enter linearly (DCG = sum rel_i / log2(i + 1)).
    """
    if mode not in RELEVANCE_MODES:
        raise ValueError(f"unknown relevance mode {mode!r} (expected one of {RELEVANCE_MODES})")
    if mode == "clip":
        return {s: max(g, 0.0) for s, g in gains.items()}
    floor = min(gains.values())
    return {s: g - floor for s, g in gains.items()}


def ndcg(ranking: Sequence[str], gains: Mapping[str, float], mode: str = "shift") -> float:
    """DCG of ``ranking`` over the ideal DCG; 1.0 when no source is more relevant than another."""
    _check(ranking, gains)
    rel = relevance(gains, mode)
    ideal = _dcg(sorted(rel.values(), reverse=True))
    if ideal == 0.0:
        return 1.0  # every ranking is ideal: nothing to find
    return _dcg([rel[s] for s in ranking]) / ideal


def regret_at_k(ranking: Sequence[str], scores: Mapping[str, float], k: int) -> float:
    """``100 * (best - best among the top k) / |best|`` over target scores with transfer."""
    _check(ranking, scores)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return _relative_gap(max(scores.values()), max(scores[s] for s in ranking[:k]))


def expected_random_rank(values: Mapping[str, float]) -> float:
    """E[best_source_rank] of a uniformly random ranking: (n + 1) / (m + 1), m tied for best.

    The first of m marked items among n shuffled ones sits at (n + 1) / (m + 1) on average;
    with one best source this is the familiar (n + 1) / 2.
    """
    best = max(values.values())
    tied = sum(v == best for v in values.values())
    return (len(values) + 1) / (tied + 1)


def expected_random_ndcg(gains: Mapping[str, float], mode: str = "shift") -> float:
    """E[NDCG] of a uniformly random ranking: mean relevance * sum of discounts / ideal DCG.

    Each position holds each source with probability 1/n, so by linearity
    E[DCG] = sum_i (1/n) sum_s rel_s / log2(i + 1) = mean(rel) * sum_i 1 / log2(i + 1); the ideal
    DCG does not depend on the ranking, so dividing by it keeps the expectation exact.
    """
    rel = relevance(gains, mode)
    ideal = _dcg(sorted(rel.values(), reverse=True))
    if ideal == 0.0:
        return 1.0
    mean = sum(rel.values()) / len(rel)
    return mean * sum(_discount(i) for i in range(1, len(rel) + 1)) / ideal


def expected_random_regret(scores: Mapping[str, float], k: int) -> float:
    """E[Regret@k] of a uniformly random ranking, by counting k-subsets.

    With scores sorted best first, s_(1) >= ... >= s_(n), the best of a random k-subset is
    s_(j) exactly when the subset holds the j-th source and k - 1 of the n - j worse ones:
    P(j) = C(n - j, k - 1) / C(n, k). Regret is linear in that best score, so
    E[Regret@k] = regret of E[best picked] = sum_j P(j) * regret(s_(j)). (Ties need no care:
    tied sources have equal scores, whichever of them is "j-th".)
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ordered = sorted(scores.values(), reverse=True)
    n, k = len(ordered), min(k, len(ordered))
    subsets = math.comb(n, k)
    expected_best = sum(
        s * math.comb(n - j, k - 1) / subsets for j, s in enumerate(ordered, 1) if n - j >= k - 1
    )
    return _relative_gap(ordered[0], expected_best)


def _relative_gap(best: float, picked: float) -> float:
    """Gap in % of |best|; 0 when nothing is lost, NaN when best is 0 but something is."""
    gap = best - picked
    if gap <= 1e-12:
        return 0.0
    return 100.0 * gap / abs(best) if best != 0 else math.nan


def _discount(position: int) -> float:
    return 1.0 / math.log2(position + 1)


def _dcg(relevances: Sequence[float]) -> float:
    return sum(r * _discount(i) for i, r in enumerate(relevances, 1))


def _check(ranking: Sequence[str], values: Mapping[str, float]) -> None:
    """A ranking must order exactly the measured sources, each once."""
    if not values:
        raise ValueError("no measured sources to rank")
    if len(ranking) != len(values) or set(ranking) != set(values):
        missing = sorted(set(values) - set(ranking))
        extra = sorted(set(ranking) - set(values))
        raise ValueError(
            f"ranking must hold each measured source once (missing {missing}, unmeasured {extra},"
            f" {len(ranking)} entries for {len(values)} sources)"
        )


def nanmean(values: Sequence[float]) -> float:
    """Mean over the values that are not NaN (a metric undefined for a target); NaN if none."""
    kept = [v for v in values if not math.isnan(v)]
    return math.fsum(kept) / len(kept) if kept else math.nan
