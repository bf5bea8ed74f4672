"""Leave-one-target-out evaluation of ranking methods against measured transfers.

For each target: the rows whose target it is are set aside; every ranker is built (and the
learned one trained) from the remaining rows alone, ranks the sources measured on the target, and
only then are the set-aside rows used, to score those rankings (ρ, NDCG, Regret@k; see
:mod:`workers.research.metrics`). With ``pool="library"`` each ranker ranks the whole library (but
the target), as the API does, and the measured sources are scored in the order it gave them:
rankings that standardise or fuse over their candidates (learned, fused, sized) order the
measured sources by where the service would put them. ``random`` is scored by its exact
expectation and ``oracle`` ranks by the set-aside truth itself (the ceiling). Scopes: ``all``
(every measured source) and ``within`` (sources of the target's task type only).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workers.research.metrics import (
    best_source_rank,
    expected_random_ndcg,
    expected_random_rank,
    expected_random_regret,
    nanmean,
    ndcg,
    regret_at_k,
)
from workers.selection.methods import EVALUATION_ONLY, METHODS
from workers.selection.rankers import (
    LearnedConfig,
    Library,
    OracleRanker,
    build_ranker,
)
from workers.selection.results import Outcome, Outcomes, TransferRow, outcomes

DEFAULT_METHODS = METHODS  # every method in the registry
SCOPES = ("all", "within")
POOLS = ("measured", "library")


@dataclass(frozen=True)
class EvalConfig:
    methods: tuple[str, ...] = DEFAULT_METHODS
    ks: tuple[int, ...] = (1, 3)
    scopes: tuple[str, ...] = ("all",)
    relevance: str = "shift"  # NDCG relevance from negative gains: "shift" or "clip"
    learned: LearnedConfig = field(default_factory=LearnedConfig)
    # What a ranker ranks: "measured", the target's measured sources; "library", every library
    # task but the target (of its type, in the within scope), as the API ranks
    pool: str = "measured"


@dataclass
class TargetResult:
    """One method's ranking for one held-out target, and how good it was."""

    target: str
    scope: str
    method: str
    sources: int
    rank: float  # of the truly best source (ρ for this target)
    ndcg: float
    regret: dict[int, float]  # k -> Regret@k in %
    ranking: list[str]  # empty for random (an expectation, not a ranking)


@dataclass
class Evaluation:
    config: EvalConfig
    results: list[TargetResult]
    skipped: list[dict[str, str]]  # {"target", "scope", "reason"}

    def summary(self) -> list[dict]:
        """Per scope and method: targets, mean ρ, mean NDCG and mean Regret@k over targets."""
        rows = []
        for scope in self.config.scopes:
            for method in self.methods():
                mine = [r for r in self.results if r.scope == scope and r.method == method]
                if not mine:
                    continue
                row = {"scope": scope, "method": method, "targets": len(mine)}
                row["rho"] = statistics.fmean(r.rank for r in mine)
                row["ndcg"] = statistics.fmean(r.ndcg for r in mine)
                for k in self.config.ks:
                    row[f"regret@{k}"] = nanmean([r.regret[k] for r in mine])
                rows.append(row)
        return rows

    def methods(self) -> list[str]:
        return list(dict.fromkeys(r.method for r in self.results))

    def to_dict(self) -> dict:
        """Everything, JSON-ready (an undefined regret, NaN, becomes null)."""
        return _no_nan(
            {
                "config": asdict(self.config),
                "summary": self.summary(),
                "per_target": [asdict(r) for r in self.results],
                "skipped": self.skipped,
            }
        )

    def table(self) -> str:
        """The summary as a Markdown table (reads in a terminal, pastes into docs)."""
        ks = [f"regret@{k}" for k in self.config.ks]
        head = ["scope", "method", "targets", "ρ ↓", "NDCG ↑"]
        head += [f"Regret@{k} % ↓" for k in self.config.ks]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.summary():
            cells = [row["scope"], row["method"], str(row["targets"])]
            cells += [f"{row['rho']:.2f}", f"{row['ndcg']:.3f}", *(f"{row[k]:.2f}" for k in ks)]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def evaluate(
    rows: Sequence[TransferRow],
    library: Library,
    config: EvalConfig = EvalConfig(),
    progress: Callable[[str, int, int], None] | None = None,
    train: Sequence[TransferRow] | None = None,
) -> Evaluation:
    """Leave-one-target-out: each target's rankings come from the other targets' rows only.

    With ``train`` (another evidence set: another protocol or transfer model), the rankers learn
    from ``train``'s rows instead, still without any row of the target being ranked, and
    ``rows`` only score them: how well one set's evidence predicts the other's measurements.
    """
    unknown = [s for s in config.scopes if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r} (expected one of {', '.join(SCOPES)})")
    if config.pool not in POOLS:
        raise ValueError(f"unknown pool {config.pool!r} (expected one of {', '.join(POOLS)})")
    truth = outcomes(rows)
    learn_from = rows if train is None else train
    named = {n for r in [*rows, *learn_from] for n in (r.source, r.target)}
    library.require(named)
    results: list[TargetResult] = []
    skipped: list[dict[str, str]] = []
    for step, target in enumerate(sorted(truth), 1):
        evidence = [r for r in learn_from if r.target != target]  # the target's rows stay out
        rankers = _rankers(target, library, evidence, config)
        for scope in config.scopes:
            measured = _in_scope(truth[target], target, scope, library)
            if len(measured) < 2:
                reason = f"{len(measured)} measured source(s) in scope: nothing to rank"
                skipped.append({"target": target, "scope": scope, "reason": reason})
                continue
            pool = _pool(target, scope, measured, library, config)
            for method in config.methods:
                results.append(
                    _score(
                        target, scope, method, measured, pool, rankers, config, {target: measured}
                    )
                )
        if progress:
            progress("evaluate", step, len(truth))
    return Evaluation(config, results, skipped)


def rank_held_out(
    target: str,
    candidates: Sequence[str],
    library: Library,
    evidence: Sequence[TransferRow],
    config: EvalConfig = EvalConfig(),
) -> dict[str, list[str]]:
    """Each evidence-based method's ranking of ``candidates`` for ``target`` (none of its rows)."""
    rankers = _rankers(target, library, evidence, config)
    return {method: ranker(sorted(candidates)) for method, ranker in rankers.items()}


def _rankers(
    target: str, library: Library, evidence: Sequence[TransferRow], config: EvalConfig
) -> dict[str, Callable[[list[str]], list[str]]]:
    """Per method, a function ranking candidates for ``target``, built from ``evidence`` alone."""
    if any(r.target == target for r in evidence):
        raise ValueError(f"evidence for ranking {target!r} holds its own rows: that would leak")
    rankers = {}
    for method in config.methods:
        if method not in EVALUATION_ONLY:
            ranker = build_ranker(method, library, evidence, config.learned)
            rankers[method] = lambda candidates, ranker=ranker: ranker.rank(target, candidates)
    return rankers


def _pool(
    target: str, scope: str, measured: dict[str, Outcome], library: Library, config: EvalConfig
) -> list[str]:
    """What the rankers rank for ``target``: its measured sources, or the library's tasks (of
    the target's type, in the within scope) but the target."""
    if config.pool == "measured":
        return sorted(measured)
    target_type = library.specs[target].type
    return sorted(
        name
        for name, spec in library.specs.items()
        if name != target and (scope == "all" or spec.type == target_type)
    )


def _in_scope(measured: dict[str, Outcome], target: str, scope: str, library: Library) -> dict:
    if scope == "all":
        return dict(measured)
    target_type = library.specs[target].type
    return {s: o for s, o in measured.items() if library.specs[s].type == target_type}


def _score(
    target: str,
    scope: str,
    method: str,
    measured: dict[str, Outcome],
    pool: list[str],
    rankers: dict[str, Callable[[list[str]], list[str]]],
    config: EvalConfig,
    truth: Outcomes,
) -> TargetResult:
    gains = {s: o.gain for s, o in measured.items()}
    scores = {s: o.score for s, o in measured.items()}
    candidates = sorted(measured)
    if method == "random":
        return TargetResult(
            target,
            scope,
            method,
            len(candidates),
            rank=expected_random_rank(gains),
            ndcg=expected_random_ndcg(gains, config.relevance),
            regret={k: expected_random_regret(scores, k) for k in config.ks},
            ranking=[],
        )
    if method == "oracle":
        ranking = OracleRanker(truth).rank(target, candidates)
    else:  # the pool's order, the measured sources kept
        ranking = [s for s in rankers[method](pool) if s in measured]
    return TargetResult(
        target,
        scope,
        method,
        len(candidates),
        rank=float(best_source_rank(ranking, gains)),
        ndcg=ndcg(ranking, gains, config.relevance),
        regret={k: regret_at_k(ranking, scores, k) for k in config.ks},
        ranking=ranking,
    )


def _no_nan(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


def plot(evaluation: Evaluation, path: str | Path) -> Path:
    """Per scope, three panels (ρ, NDCG, Regret@largest k): a bar per method, a dot per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    k = max(evaluation.config.ks)
    panels = [("rank", "ρ (rank of best source) ↓"), ("ndcg", "NDCG ↑")]
    panels.append(("regret", f"Regret@{k} % ↓"))
    scopes = [s for s in evaluation.config.scopes if any(r.scope == s for r in evaluation.results)]
    methods = evaluation.methods()
    fig, axes = plt.subplots(
        len(scopes), 3, figsize=(4 + 1.1 * len(methods) * 1.5, 3.6 * len(scopes)), squeeze=False
    )
    jitter = np.random.default_rng(0)
    for row, scope in enumerate(scopes):
        for col, (name, title) in enumerate(panels):
            ax = axes[row][col]
            for i, method in enumerate(methods):
                mine = [r for r in evaluation.results if r.scope == scope and r.method == method]
                values = [r.regret[k] if name == "regret" else getattr(r, name) for r in mine]
                values = [v for v in values if not math.isnan(v)]
                ax.bar(i, statistics.fmean(values) if values else 0, color="#9ecae1")
                xs = i + jitter.uniform(-0.25, 0.25, len(values))
                ax.scatter(xs, values, s=10, color="#08519c", zorder=3)
            ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right")
            ax.set_title(f"{title} — {scope}-type" if len(scopes) > 1 else title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
