"""The ranking methods on offer, the default, and each one's measured record.

The numbers are the leave-one-target-out evaluation that ``taskrec evaluate --save-ranker``
stores in the ranker file next to the learned ranker it fitted, so the method a client relies on
comes with the evidence for it: mean ρ of the truly best source, NDCG and Regret@k.
"""

from __future__ import annotations

import math
from typing import get_args

from service.recommendations.schemas import MethodEvidence, Methods, RankMethod
from service.settings import Settings

METRICS = ("targets", "rho", "ndcg")  # plus every "regret@k" the evaluation has


def method_evidence(settings: Settings) -> Methods:
    """Every served method, then each yardstick the evaluation scored (random, oracle, ...)."""
    from workers.selection.rankers import LearnedRanker

    ranker_file = settings.ranker_file
    rows = LearnedRanker.load_evaluation(ranker_file) if ranker_file.is_file() else []
    served = list(get_args(RankMethod))
    by_method: dict[str, dict[str, dict[str, float | None]]] = {}
    for row in rows:
        # Saved by Evaluation.to_dict(): an undefined metric is already null, never NaN.
        metrics = {k: v for k, v in row.items() if k in METRICS or k.startswith("regret@")}
        by_method.setdefault(row["method"], {})[row["scope"]] = metrics
    names = [*served, *(m for m in by_method if m not in served)]
    methods = [
        MethodEvidence(
            method=name,
            served=name in served,
            default=name == settings.default_method,
            evaluation=by_method.get(name, {}),
        )
        for name in names
    ]
    return Methods(
        default=settings.default_method,
        best=_best(methods),
        evaluated_on=str(ranker_file.name) if rows else None,
        methods=methods,
    )


def _best(methods: list[MethodEvidence]) -> str | None:
    scored = [m for m in methods if m.served and m.evaluation.get("all", {}).get("rho") is not None]
    if not scored:
        return None

    def key(m: MethodEvidence) -> tuple[float, float]:
        regret = m.evaluation["all"].get("regret@3")
        return (m.evaluation["all"]["rho"], math.inf if regret is None else regret)

    return min(scored, key=key).method
