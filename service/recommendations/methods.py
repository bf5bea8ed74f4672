"""The ranking methods on offer, the default, and each one's measured record.

The numbers are the leave-one-target-out evaluation that ``taskrec evaluate --save-ranker``
stores in the ranker file next to the learned ranker it fitted, so the method a client relies on
comes with the evidence for it: mean ρ of the truly best source, NDCG and Regret@k.
"""

from __future__ import annotations

import functools
import math
from typing import get_args

from service.recommendations.schemas import MethodEvidence, Methods, RankMethod
from service.settings import Settings

METRICS = ("targets", "rho", "ndcg")  # plus every "regret@k" the evaluation has


Record = dict[str, dict[str, float | None]]  # scope -> {"targets", "rho", "regret@3", ...}


def method_evidence(settings: Settings) -> Methods:
    """Every served method, then each yardstick the evaluation scored (random, oracle, ...)."""
    from workers.selection.methods import REGISTRY, reads

    records = saved_records(settings)
    served = list(get_args(RankMethod))
    default = resolve_method(settings)
    methods = [
        MethodEvidence(
            method=name,
            served=name in served,
            default=name == default,
            description=REGISTRY[name].description if name in REGISTRY else "",
            reads=list(reads(name)),
            learns=REGISTRY[name].learns if name in REGISTRY else False,
            evaluation=records.get(name, {}),
        )
        for name in [*served, *(m for m in records if m not in served)]
    ]
    return Methods(
        default=settings.default_method,
        best=_best(records, "all"),
        best_within_type=_best(records, "within"),
        evaluated_on=str(settings.ranker_file.name) if records else None,
        evaluated_for=evaluated_transfer_model(settings) if records else None,
        methods=methods,
    )


def resolve_method(settings: Settings, task_type: str | None = None) -> str:
    """The method a request that names none gets: the ``default_method`` setting, or for
    ``best`` the served method that ranked best in the saved evaluation, within the task's type
    when the request keeps to one type. Without an evaluation, ``learned`` (which ranks by the
    ``evidence_free_method`` setting's until it has evidence)."""
    if settings.default_method != "best":
        return settings.default_method
    return _best(saved_records(settings), "within" if task_type else "all") or "learned"


def method_record(
    settings: Settings, method: str, task_type: str | None, transfer_model: str | None = None
) -> dict:
    """``method``'s saved record in the scope a request with ``task_type`` ranks in; empty when
    the request's ``transfer_model`` is not the one the saved evaluation measured (another
    model's record says nothing about this one)."""
    if transfer_model is not None and not _evaluated_for(settings, transfer_model):
        return {}
    record = saved_records(settings).get(method, {}).get("within" if task_type else "all", {})
    return dict(record)  # the caller's own copy: the saved records are shared


def best_evidence_free(
    settings: Settings, task_type: str | None, transfer_model: str | None = None
) -> tuple[str, str]:
    """How a request ranks without (enough) measured transfers of ``transfer_model``, and why
    in words: the served evidence-free method that ranked best in the saved evaluation (within
    the type when a request keeps to one), when that evaluation measured this transfer model and
    scored one; otherwise the ``evidence_free_method`` setting's (another model's record says
    nothing about this one)."""
    from workers.selection.methods import EVIDENCE_FREE_SERVED

    if transfer_model is None or _evaluated_for(settings, transfer_model):
        records = saved_records(settings)
        free = {m: r for m, r in records.items() if m in EVIDENCE_FREE_SERVED}
        best = _best(free, "within" if task_type else "all")
        if best is not None:
            return best, "the best evidence-free method in the saved evaluation"
    method = settings.evidence_free_method
    if method == "sized":
        why = (
            "the evidence_free_method setting's: of the evidence-free methods, the one that beat "
            "largest-first on ρ and Regret@3 on both full transfer matrices (docs/results.md)"
        )
    else:
        why = "the evidence_free_method setting's"
    return method, why


def best_without_taskemb(settings: Settings, task_type: str | None) -> str:
    """For a task without labels (so without TaskEmb): the served method that reads neither
    TaskEmb nor measured transfers and ranked best in the saved evaluation; ``semb`` without
    one."""
    from workers.selection.methods import EVIDENCE_FREE_SERVED, reads

    usable = [m for m in EVIDENCE_FREE_SERVED if "taskemb" not in reads(m)]
    records = {m: r for m, r in saved_records(settings).items() if m in usable}
    return _best(records, "within" if task_type else "all") or "semb"


def evaluated_transfer_model(settings: Settings) -> str:
    """The transfer model whose transfers the saved evaluation measured (normalised): the
    ranker file's ``transfer_model``, or the service's default for a file without one."""
    from workers.selection.evidence import transfer_model_name

    path = settings.ranker_file
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return transfer_model_name(settings.default_transfer_model)
    saved = _transfer_model_at(str(path), stamp)
    return transfer_model_name(saved or settings.default_transfer_model)


def _evaluated_for(settings: Settings, transfer_model: str) -> bool:
    from workers.selection.evidence import same_transfer_model, transfer_model_name

    asked = transfer_model_name(transfer_model)
    recorded = evaluated_transfer_model(settings)
    return same_transfer_model(asked, recorded) or same_transfer_model(recorded, asked)


@functools.lru_cache(maxsize=4)
def _transfer_model_at(path: str, stamp: int) -> str | None:
    import json
    from pathlib import Path

    return json.loads(Path(path).read_text()).get("transfer_model")


def saved_records(settings: Settings) -> dict[str, Record]:
    """Per method and scope, the metrics of the evaluation saved in the ranker file (empty
    without one); read again only when the file changes."""
    path = settings.ranker_file
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    return _records_at(str(path), stamp)


@functools.lru_cache(maxsize=4)
def _records_at(path: str, stamp: int) -> dict[str, Record]:
    from workers.selection.rankers import LearnedRanker

    records: dict[str, Record] = {}
    for row in LearnedRanker.load_evaluation(path):
        # Saved by Evaluation.to_dict(): an undefined metric is already null, never NaN.
        metrics = {k: v for k, v in row.items() if k in METRICS or k.startswith("regret@")}
        records.setdefault(row["method"], {})[row["scope"]] = metrics
    return records


def _best(records: dict[str, Record], scope: str) -> str | None:
    """The served method with the lowest mean ρ in ``scope`` (Regret@3 breaks ties)."""
    scored = {
        method: record[scope]
        for method, record in records.items()
        if method in get_args(RankMethod) and record.get(scope, {}).get("rho") is not None
    }
    if not scored:
        return None

    def key(method: str) -> tuple[float, float]:
        regret = scored[method].get("regret@3")
        return (scored[method]["rho"], math.inf if regret is None else regret)  # type: ignore[arg-type]

    return min(scored, key=key)
