"""Ranking methods: for a target, an ordered list of candidate sources, best first.

* similarity: ``taskemb`` (reciprocal-rank fusion of its components), ``taskemb:<component>``
  (one component's cosine), ``textemb``, ``semb`` and ``fused`` — via :mod:`workers.similarity`;
* baselines from the literature: ``datasize`` (largest source first), ``oracle`` (the measured
  truth, an upper bound) and ``random`` (no ranking: evaluation uses its exact expectation);
* ``learned``: :class:`LearnedRanker`, a ridge model over (target, source) features that learns
  from measured transfers and leans on similarity where a source has little evidence.

A ranker only sees a :class:`Library` (specs, sizes, embeddings: what the tasks *are*) and the
transfer rows it is given; evaluation hands it every row except the held-out target's.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

from workers.data.schema import TaskData, TaskSpec
from workers.selection.methods import (
    COMPONENT_PREFIX,
    EMBEDDING_METHODS,
    METHODS,
    REGISTRY,
    reads,
)
from workers.selection.results import Outcome, Outcomes, TransferRow, outcomes, reliability
from workers.similarity import (
    RankedTask,
    component_similarities,
    cosine,
    rank_library,
    reciprocal_rank_fusion,
)

if TYPE_CHECKING:
    from workers.similarity import TaskEmbedding

K = TypeVar("K", str, int)  # a task's key: its name offline, its id in the API


class Ranker(Protocol):
    def rank(self, target: str, candidates: Sequence[str]) -> list[str]:
        """``candidates`` (never including ``target``) ordered best first."""
        ...


@dataclass
class Library:
    """What rankers may know about tasks: their specs, training sizes and embeddings.

    ``embeddings`` maps task -> method -> embedding; it may be empty for rankers that need none.
    Similarities are computed once per (target, source) pair and kept.
    """

    specs: dict[str, TaskSpec]
    sizes: dict[str, int]
    embeddings: dict[str, dict[str, TaskEmbedding]] = field(default_factory=dict)
    _similarity_cache: dict[tuple[str, str], dict[str, float]] = field(
        default_factory=dict, repr=False
    )
    _ranking_cache: dict[tuple, list[str]] = field(default_factory=dict, repr=False)

    def merged(self, other: Library) -> Library:
        """A library of both's tasks (``other``'s entries win); caches start empty."""
        return Library(
            specs={**self.specs, **other.specs},
            sizes={**self.sizes, **other.sizes},
            embeddings={**self.embeddings, **other.embeddings},
        )

    @classmethod
    def from_tasks(
        cls,
        tasks: Iterable[TaskData],
        embed: Callable[[TaskData], Mapping[str, TaskEmbedding]] | None = None,
    ) -> Library:
        """Specs and sizes of ``tasks``, plus their embeddings when ``embed`` is given."""
        tasks = list(tasks)
        return cls(
            specs={t.name: t.spec for t in tasks},
            sizes={t.name: len(t.train) for t in tasks},
            embeddings={t.name: dict(embed(t)) for t in tasks} if embed else {},
        )

    def require(self, names: Iterable[str], methods: Iterable[str] = ()) -> None:
        """Raise a ValueError naming every task the library lacks (or lacks embeddings for)."""
        names = sorted(set(names))
        unknown = [n for n in names if n not in self.specs]
        if unknown:
            raise ValueError(f"not in the task library: {', '.join(unknown)}")
        for method in methods:
            bare = [n for n in names if method not in self.embeddings.get(n, {})]
            if bare:
                raise ValueError(f"no {method} embedding for: {', '.join(bare)}")

    def similarities(self, target: str, source: str) -> dict[str, float]:
        """Cosine per method and component, keyed ``"<method>.<component>"``."""
        key = (target, source)
        if key not in self._similarity_cache:
            sims: dict[str, float] = {}
            mine, theirs = self.embeddings.get(target, {}), self.embeddings.get(source, {})
            for method in EMBEDDING_METHODS:
                if method in mine and method in theirs:
                    pairs = component_similarities(mine[method], theirs[method])
                    sims.update({f"{method}.{c}": v for c, v in pairs.items()})
            self._similarity_cache[key] = sims
        return self._similarity_cache[key]


# ---------------------------------------------------------------------------------------------
# Rankers that need no transfer results


@dataclass
class SimilarityRanker:
    """Cosine similarity of embeddings, fused over components (and methods) by RRF."""

    library: Library
    method: str = "fused"

    def rank(self, target: str, candidates: Sequence[str]) -> list[str]:
        # A pure function of the library: kept, as leave-one-out asks the same question often.
        key = (self.method, target, tuple(candidates))
        cache = self.library._ranking_cache
        if key not in cache:
            pool = {c: self.library.embeddings[c] for c in candidates}
            ranked = rank_library(self.library.embeddings[target], pool, self.method)
            cache[key] = [r.task for r in ranked]
        return list(cache[key])


@dataclass
class ComponentRanker:
    """One TaskEmb component's cosine similarity (``layer3.output``, ``cls``, ...)."""

    library: Library
    component: str

    def rank(self, target: str, candidates: Sequence[str]) -> list[str]:
        key = f"taskemb.{self.component}"
        sims = {c: self.library.similarities(target, c).get(key, -math.inf) for c in candidates}
        return sorted(candidates, key=lambda c: (-sims[c], c))


@dataclass
class CentredTaskEmbRanker:
    """TaskEmb per component as ``log1p(F / median F)``, centred on the mean over every task in
    the library, then cosine; components fused by RRF as ``taskemb`` fuses them.

    Raw Fisher diagonals share a few dominant dimensions, so raw cosines sit near 1 for every
    pair of tasks in the later layers; the log tames those outliers and the centring removes
    what all tasks have in common. Both use only the library's embeddings, never gains.
    """

    library: Library
    _vectors: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    def rank(self, target: str, candidates: Sequence[str]) -> list[str]:
        vectors = self._centred()
        rankings = []
        for by_task in vectors.values():
            if target not in by_task:
                continue
            sims = {c: cosine(by_task[target], by_task[c]) for c in candidates if c in by_task}
            rankings.append(sorted(sims, key=lambda c: (-sims[c], c)))
        fused = reciprocal_rank_fusion(rankings)
        return sorted(candidates, key=lambda c: (-fused.get(c, 0.0), c))

    def _centred(self) -> dict[str, dict[str, np.ndarray]]:
        if not self._vectors:
            raw: dict[str, dict[str, np.ndarray]] = defaultdict(dict)  # component -> task -> F
            for name, methods in self.library.embeddings.items():
                if "taskemb" in methods:
                    for component, vector in methods["taskemb"].components.items():
                        raw[component][name] = np.asarray(vector, dtype=float)
            for component, by_task in raw.items():
                stacked = np.vstack(list(by_task.values()))  # (tasks, dim)
                positive = stacked[stacked > 0]
                scale = float(np.median(positive)) if positive.size else 1.0
                logged = np.log1p(np.clip(stacked, 0, None) / scale)
                centred = logged - logged.mean(0)
                self._vectors[component] = dict(zip(by_task, centred, strict=True))
        return self._vectors


@dataclass
class DataSizeRanker:
    """The largest source (most training rows in the library) first."""

    library: Library

    def rank(self, target: str, candidates: Sequence[str]) -> list[str]:
        return sorted(candidates, key=lambda c: (-self.library.sizes[c], c))


@dataclass
class SizedRanker:
    """The largest-first ranking and the fused similarity ranking, fused by RRF with equal
    weight. For a transfer model without measured transfers: source size is the strongest
    single signal of the matrices we know, and similarity orders sources of like size."""

    library: Library

    def rank(self, target: str, candidates: Sequence[str]) -> list[str]:
        # Candidates by name, so equal similarities keep name order (as the API breaks ties)
        by_similarity = SimilarityRanker(self.library, "fused").rank(target, sorted(candidates))
        scores = sized_scores(by_similarity, self.library.sizes)
        return sorted(candidates, key=lambda c: (-scores[c], c))


def sized_scores(by_similarity: Sequence[K], sizes: Mapping[K, int]) -> dict[K, float]:
    """``sized``'s score of each task of ``by_similarity`` (best first): the RRF of that
    ranking and the same tasks largest first (tasks of one size in their similarity order).
    The API serves this rule too (tasks keyed by id there, by name here)."""
    by_size = sorted(by_similarity, key=lambda t: -sizes.get(t, 0))  # stable: ties keep order
    return reciprocal_rank_fusion([by_size, by_similarity])


def rank_sized(
    target: Mapping[str, TaskEmbedding],
    library: Mapping[str, Mapping[str, TaskEmbedding]],
    sizes: Mapping[str, int],
) -> list[RankedTask]:
    """``library`` ranked for ``target`` by ``sized`` (``sized_scores`` over the fused
    ranking), each task's similarities kept beside its training rows."""
    fused = sorted(rank_library(target, library, "fused"), key=lambda r: (-r.score, r.task))
    scores = sized_scores([r.task for r in fused], sizes)  # ties by name, as the API's
    ranked = [
        RankedTask(
            r.task, scores[r.task], {**r.components, "size.train_rows": float(sizes[r.task])}
        )
        for r in fused
    ]
    return sorted(ranked, key=lambda r: (-r.score, r.task))  # ties by name, as the API's


@dataclass
class OracleRanker:
    """The measured truth: highest mean gain first. An upper bound, never a recommendation."""

    truth: Outcomes

    def rank(self, target: str, candidates: Sequence[str]) -> list[str]:
        gains = self.truth[target]
        return sorted(candidates, key=lambda c: (-gains[c].gain, c))


# ---------------------------------------------------------------------------------------------
# The learned ranker


@dataclass(frozen=True)
class LearnedConfig:
    """Hyper-parameters of :class:`LearnedRanker` (stored with it)."""

    alpha: float = 10.0  # ridge penalty on standardised features
    # κ: a source measured as a donor on n other targets gets model weight n / (n + κ): one
    # measured target counts as much as the prior.
    shrinkage: float = 1.0
    # How much a source's record on targets of *another* type counts toward its n, next to
    # targets of the ranked target's type (1: all alike; 0: only the target's own type). What
    # helps a tagging target is rarely what helps the others, so a target of a type never
    # measured leans on the prior more. (Choosing κ and this share by an inner leave-one-target-
    # out over the 9 other targets was tried: on the 446-row matrix it chose noise, ρ 6.9
    # against 5.2 with these fixed values.)
    other_type_share: float = 0.3
    # Leaned on where evidence is thin: "datasize", a similarity method, or "auto" — fused,
    # unless another similarity method put the truly best source higher on the measured targets
    # by more than a standard error (DataSize only where there are no embeddings).
    prior: str = "auto"
    min_targets: int = 3  # fewer measured targets than this: the prior alone
    # A similarity feature per embedding component (TaskEmb's layers and CLS each), or else one
    # per method (the mean of its components' standardised cosines). The components are nearly
    # collinear: unconstrained, a few hundred pairs fitted them with alternating signs (noise);
    # kept ≥ 0, the fit picks the few that carry the signal.
    per_component: bool = True
    # Every feature is oriented so that more should mean a better donor; on a few hundred pairs
    # a negative weight is collinearity or noise (it once ranked the best, most similar source
    # last), so weights are kept ≥ 0.
    nonnegative: bool = True
    # Each measured target counts by its reliability (workers.selection.results.reliability):
    # in the fit, in the donor record and in choosing the prior. On a target whose sources
    # differ by no more than seed noise, which source "won" is a coin toss, and learning from it
    # is learning noise.
    weigh_by_reliability: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LearnedConfig:
        """A saved config; keys an older version wrote (or left unset: null) take the default."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and v is not None})


@dataclass
class _Model:
    """Ridge regression in closed form on standardised features: explainable, tiny to store."""

    features: list[str]
    mean: np.ndarray  # (features,)
    scale: np.ndarray  # (features,)
    coef: np.ndarray  # (features,)
    intercept: float

    @classmethod
    def fit(
        cls,
        names: list[str],
        x: np.ndarray,
        y: np.ndarray,
        alpha: float,
        nonnegative: bool,
        weights: np.ndarray | None = None,
    ) -> _Model:
        """Weighted ridge: min Σ wᵢ(zᵢ·β - (yᵢ - ȳ))² + α|β|², with weighted means and scales."""
        weights = np.ones(len(y)) if weights is None or weights.sum() <= 0 else weights
        p = weights / weights.sum()  # (pairs,)
        mean = p @ x
        scale = np.sqrt(p @ (x - mean) ** 2)
        scale[scale == 0] = 1.0
        root = np.sqrt(weights)[:, None]
        z = root * (x - mean) / scale  # (pairs, features)
        target = root[:, 0] * (y - p @ y)
        # z is centred (weighted), so the intercept is the weighted ȳ and is not penalised.
        if nonnegative:  # the same objective as least squares on [Z; √α I], under β ≥ 0
            from scipy.optimize import nnls

            stacked = np.vstack([z, math.sqrt(alpha) * np.eye(z.shape[1])])
            coef = nnls(stacked, np.concatenate([target, np.zeros(z.shape[1])]))[0]
        else:  # (ZᵀZ + αI) β = Zᵀy
            coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ target)
        return cls(names, mean, scale, coef, float(p @ y))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.scale * self.coef  # (pairs, features)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.contributions(x).sum(1) + self.intercept  # (pairs,)

    def to_dict(self) -> dict:
        return {
            "features": self.features,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, data: dict) -> _Model:
        arrays = {k: np.asarray(data[k], dtype=float) for k in ("mean", "scale", "coef")}
        return cls(list(data["features"]), **arrays, intercept=float(data["intercept"]))


class LearnedRanker:
    """Ranks sources by a ridge model of their normalised gain, shrunk toward similarity.

    For a (target t, source s) pair the features are: the cosine of every embedding component
    (standardised among t's candidates, since only the order within a target matters), the log
    of s's size, whether s has t's task type and family, and s's record as a donor on *other*
    targets — mean gain percentile, win rate (share of targets it improved) and mean percentile on
    targets of t's type. The label is the within-target percentile of the measured mean gain (1 =
    best source of that target). Donor features of a training pair never include that pair's own
    target, so the model cannot learn to copy its label.

    The model's percentile among the candidates is blended with a prior ranking's (similarity or
    size; with ``prior="auto"`` fused, unless another clearly did better on the measured
    targets): ``w = n / (n + κ)`` where ``n`` counts the targets the source was measured on as
    a donor, those of another type than the ranked target's counting a share of one, so an
    unmeasured source is placed by the prior alone. Weights are kept ≥ 0.

    Each measured target counts by its reliability (how far its sources' differences exceed
    seed noise): in the fit, in the donor record and in choosing the prior. Most of a small
    matrix's targets can be flat, and a flat target's "best source" is a coin toss.
    ``fit`` can be called again as new results arrive.
    """

    def __init__(self, library: Library, config: LearnedConfig = LearnedConfig()) -> None:
        self.library = library
        self.config = config
        self.evidence: Outcomes = {}
        self.target_weights: dict[str, float] = {}  # measured target -> its weight (reliability)
        self.model: _Model | None = None
        self.prior = config.prior if config.prior != "auto" else PRIOR_CHOICES[-1]
        self._donors = _DonorStats({}, library)

    def fit(self, rows: Iterable[TransferRow]) -> LearnedRanker:
        """(Re)train on every measured (target, source) pair in ``rows``."""
        return self.fit_outcomes(outcomes(rows))

    def update(self, rows: Iterable[TransferRow]) -> LearnedRanker:
        """Add new results to the evidence kept so far (newer pairs replace older) and refit."""
        merged = {t: dict(s) for t, s in self.evidence.items()}
        for target, sources in outcomes(rows).items():
            merged.setdefault(target, {}).update(sources)
        return self.fit_outcomes(merged)

    def fit_outcomes(self, evidence: Outcomes) -> LearnedRanker:
        self.evidence = {t: dict(s) for t, s in evidence.items() if len(s) >= 2}
        self.target_weights = _target_weights(self.evidence, self.config)
        self._donors = _DonorStats(self.evidence, self.library, self.target_weights)
        self.prior = self._choose_prior() if self.config.prior == "auto" else self.config.prior
        self.model = None
        if len(self.evidence) >= self.config.min_targets:
            x, y, weights = self._training_set()
            names, config = self._feature_names(), self.config
            self.model = _Model.fit(names, x, y, config.alpha, config.nonnegative, weights)
        return self

    def rank(self, target: str, candidates: Sequence[str]) -> list[str]:
        scores = self.scores(target, candidates)
        return sorted(candidates, key=lambda c: (-scores[c]["score"], c))

    def scores(self, target: str, candidates: Sequence[str]) -> dict[str, dict[str, float]]:
        """Per candidate: blended score, model and prior percentiles, model weight, features."""
        candidates = [c for c in candidates if c != target]
        prior_order = _prior_ranker(self.library, self.prior).rank(target, candidates)
        prior = _percentiles({c: -i for i, c in enumerate(prior_order)})
        donors = self._donors.without(target)
        if self.model is None:
            return {c: {"score": prior[c], "prior": prior[c], "weight": 0.0} for c in candidates}
        x = self._features(target, candidates, donors)
        model = _percentiles(dict(zip(candidates, self.model.predict(x), strict=True)))
        result = {}
        target_type = self.library.specs[target].type
        for c, row in zip(candidates, x, strict=True):
            scored = {
                "model": model[c],
                "prior": prior[c],
                "evidence": float(donors.count(c)),
                "evidence_same_type": float(donors.count(c, target_type)),
            }
            w = _model_weight(scored, self.config.shrinkage, self.config.other_type_share)
            result[c] = {
                "score": w * model[c] + (1 - w) * prior[c],
                "weight": w,
                **scored,
                **dict(zip(self.model.features, row.tolist(), strict=True)),
            }
        return result

    def with_library(self, library: Library) -> LearnedRanker:
        """This fitted ranker, ranking over ``library`` (which must hold the evidence's tasks).

        Fitting reads only the evidence's tasks, so a service fits once per evidence and ranks
        each request's target and candidates through a copy holding them.
        """
        ranker = LearnedRanker(library, self.config)
        ranker.evidence, ranker.model, ranker.prior = self.evidence, self.model, self.prior
        ranker.target_weights = self.target_weights
        ranker._donors = self._donors
        return ranker

    def coefficients(self) -> dict[str, float]:
        """The model's weight per standardised feature (empty before it is fitted)."""
        if self.model is None:
            return {}
        return dict(zip(self.model.features, self.model.coef.tolist(), strict=True))

    # --- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "prior": self.prior,
            "model": self.model.to_dict() if self.model else None,
            "evidence": [
                {"target": t, "source": s, **asdict(o), "gain_noise": _none_if_nan(o.gain_noise)}
                for t, sources in sorted(self.evidence.items())
                for s, o in sorted(sources.items())
            ],
        }

    def save(
        self,
        path: str | Path,
        evaluation: list[dict] | None = None,
        transfer_model: str | None = None,
    ) -> Path:
        """Write the ranker as JSON; ``evaluation`` (``Evaluation.summary()`` rows) is kept
        beside it so whoever serves the ranker can show how every method measured, and
        ``transfer_model`` names the model whose transfers it measured (its record says nothing
        of another's)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_dict() | ({"evaluation": evaluation} if evaluation is not None else {})
        data |= {"transfer_model": transfer_model} if transfer_model else {}
        path.write_text(json.dumps(data, indent=1))
        return path

    @dataclass(frozen=True)
    class Saved:
        config: LearnedConfig
        evidence: Outcomes

    @classmethod
    def load_evidence(cls, path: str | Path) -> LearnedRanker.Saved:
        """A saved ranker's config and evidence, without a library to check them against."""
        data = json.loads(Path(path).read_text())
        evidence: Outcomes = {}
        for item in data["evidence"]:
            noise = item.get("gain_noise")
            outcome = Outcome(item["score"], item["gain"], item["seeds"], _nan_if_none(noise))
            evidence.setdefault(item["target"], {})[item["source"]] = outcome
        return cls.Saved(LearnedConfig.from_dict(data["config"]), evidence)

    @staticmethod
    def load_evaluation(path: str | Path) -> list[dict]:
        """The per-method evaluation saved with a ranker (empty when there is none)."""
        return list(json.loads(Path(path).read_text()).get("evaluation") or [])

    @classmethod
    def load(cls, path: str | Path, library: Library) -> LearnedRanker:
        """A saved ranker; its features are recomputed from ``library`` at ranking time."""
        data = json.loads(Path(path).read_text())
        saved = cls.load_evidence(path)
        ranker = cls(library, saved.config)
        ranker.evidence = saved.evidence
        ranker.model = _Model.from_dict(data["model"]) if data["model"] else None
        ranker.prior = data.get("prior", ranker.prior)
        ranker.target_weights = _target_weights(ranker.evidence, ranker.config)
        ranker._donors = _DonorStats(ranker.evidence, library, ranker.target_weights)
        return ranker

    def _choose_prior(self) -> str:
        """The default prior (fused, or the last method the library can rank) unless another
        method put the measured targets' best sources higher by more than a standard error.

        A rival's advantage is the reliability-weighted mean, over targets, of how much higher
        it placed the best source (places run from 0 = first to 1 = last); ten-odd noisy
        targets cannot tell close methods apart, and a prior that flips on one more seed flips
        every thin-evidence ranking with it, so near-ties keep the default.
        """
        options = [m for m in PRIOR_CHOICES if self._can_rank(m)]
        if not options:
            return "datasize"
        default = options[-1]
        if not self.evidence or len(options) == 1:
            return default
        targets = list(self.evidence)
        weights = self._weights_of(targets)
        places = {m: self._best_source_places(m, targets) for m in options}
        clear = {}
        for method in options[:-1]:
            advantage = places[default] - places[method]
            mean = float(np.average(advantage, weights=weights))
            if mean - _standard_error(advantage, weights) > 0:
                clear[method] = mean
        return max(clear, key=lambda m: (clear[m], -options.index(m))) if clear else default

    def _best_source_places(self, method: str, targets: list[str]) -> np.ndarray:
        """Per target: where ``method`` ranked its best measured source, 0 (first) to 1 (last)."""
        ranker = _prior_ranker(self.library, method)
        places = []
        for target in targets:
            measured = self.evidence[target]
            ranking = ranker.rank(target, sorted(measured))
            best = max(measured, key=lambda s: measured[s].gain)
            places.append(ranking.index(best) / max(len(ranking) - 1, 1))
        return np.array(places)

    def _weights_of(self, targets: list[str]) -> np.ndarray:
        """Each target's weight (its reliability); equal weights if all weigh 0."""
        weights = np.array([self.target_weights.get(t, 1.0) for t in targets])
        return weights if weights.sum() > 0 else np.ones(len(targets))

    def _can_rank(self, method: str) -> bool:
        needed = reads(method)
        names = {n for t, measured in self.evidence.items() for n in (t, *measured)}
        names = names or set(self.library.specs)
        return all(m in self.library.embeddings.get(n, {}) for n in names for m in needed)

    # --- features --------------------------------------------------------------------------

    def _feature_names(self) -> list[str]:
        """Similarity components every measured pair has, then the pair features."""
        pairs = [(t, s) for t, measured in self.evidence.items() for s in measured]
        keys = [set(self.library.similarities(t, s)) for t, s in pairs]
        similarity = sorted(set.intersection(*keys)) if keys else []
        if not self.config.per_component:
            similarity = [f"{m}.*" for m in sorted({k.split(".")[0] for k in similarity})]
        return [*(f"sim:{k}" for k in similarity), *_PAIR_FEATURES]

    def _training_set(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features, labels (within-target gain percentiles) and weights, one row per pair."""
        xs, ys, weights = [], [], []
        names = self._feature_names()
        for target, measured in sorted(self.evidence.items()):
            candidates = sorted(measured)
            donors = self._donors.without(target)
            xs.append(self._features(target, candidates, donors, names))
            ys.append(list(_percentiles({c: measured[c].gain for c in candidates}).values()))
            weights.append(np.full(len(candidates), self.target_weights[target]))
        return np.vstack(xs), np.concatenate(ys), np.concatenate(weights)

    def _features(
        self,
        target: str,
        candidates: Sequence[str],
        donors: _DonorView,
        names: list[str] | None = None,
    ) -> np.ndarray:
        names = names or (self.model.features if self.model else self._feature_names())
        sims = [k.removeprefix("sim:") for k in names if k.startswith("sim:")]
        table = [self.library.similarities(target, c) for c in candidates]
        similarity = np.zeros((len(candidates), len(sims)))  # (candidates, similarity features)
        for column, key in enumerate(sims):
            parts = [key]
            if key.endswith(".*"):  # a method: the mean over its components
                parts = sorted({k for row in table for k in row if k.startswith(key[:-1])})
            block = np.array([[row.get(k, np.nan) for k in parts] for row in table])
            block = _standardise_columns(block.reshape(len(candidates), len(parts)))
            similarity[:, column] = block.mean(1) if parts else 0.0
        spec = self.library.specs[target]
        pair = np.array(
            [
                [
                    math.log1p(self.library.sizes[c]),
                    float(self.library.specs[c].type == spec.type),
                    float(spec.family is not None and self.library.specs[c].family == spec.family),
                    donors.mean_percentile(c),
                    donors.win_rate(c),
                    donors.mean_percentile(c, task_type=spec.type),
                ]
                for c in candidates
            ]
        ).reshape(len(candidates), len(_PAIR_FEATURES))
        return np.hstack([similarity, pair])  # (candidates, features)


# Where evidence is thin the ranker leans on similarity: size is already a feature of the model,
# and as the prior it sank the one same-type source of a regression target (sick_relatedness).
PRIOR_CHOICES = ("semb", "textemb", "taskemb", "fused")  # "auto" without evidence: the last


def _prior_ranker(library: Library, method: str) -> Ranker:
    if method == "datasize":
        return DataSizeRanker(library)
    return SimilarityRanker(library, method)


_PAIR_FEATURES = (
    "log_size",
    "type_match",
    "family_match",
    "donor_percentile",
    "donor_win_rate",
    "donor_percentile_same_type",
)


class _DonorStats:
    """Each source's record as a donor, summed over the targets in ``evidence``, each target
    counting by its weight (1 unless given).

    ``without(target)`` gives the record on the *other* targets by subtracting that target's
    share, so leave-one-out features cost no second pass over the evidence.
    """

    def __init__(
        self, evidence: Outcomes, library: Library, weights: Mapping[str, float] | None = None
    ) -> None:
        self.types = {t: library.specs[t].type for t in evidence}
        self.weights = {t: (weights or {}).get(t, 1.0) for t in evidence}
        self.pct = {t: _percentiles({s: o.gain for s, o in m.items()}) for t, m in evidence.items()}
        self.wins = {t: {s: float(o.gain > 0) for s, o in m.items()} for t, m in evidence.items()}
        # keyed (source, task type or None for all types); "pct": Σ weight × percentile,
        # "win": Σ weight × improved, "weight": Σ weight, "n": how many targets
        self.sums: dict[str, dict[tuple, float]] = {
            k: defaultdict(float) for k in ("pct", "win", "weight", "n")
        }
        self.parts = {t: self._parts(t) for t in self.pct}  # what each target adds, kept
        for target in self.pct:
            for source, part in self.parts[target].items():
                for key in ((source, None), (source, self.types[target])):
                    for name, value in part.items():
                        self.sums[name][key] += value

    def _parts(self, target: str) -> dict[str, dict[str, float]]:
        """Per source measured on ``target``: what that target adds to each sum."""
        w = self.weights[target]
        return {
            source: {"pct": w * pct, "win": w * self.wins[target][source], "weight": w, "n": 1.0}
            for source, pct in self.pct[target].items()
        }

    def without(self, target: str) -> _DonorView:
        return _DonorView(self, target)


@dataclass
class _DonorView:
    """A source's donor record on every target but ``excluded``."""

    stats: _DonorStats
    excluded: str

    def _sums(self, source: str, task_type=None) -> dict[str, float]:
        """The sums of ``source`` over the kept targets (of ``task_type``, if given)."""
        s, key = self.stats, (source, task_type)
        sums = {name: by_key.get(key, 0.0) for name, by_key in s.sums.items()}
        if self.excluded in s.pct and (task_type is None or s.types[self.excluded] == task_type):
            mine = s.parts[self.excluded].get(source, {})
            sums = {name: value - mine.get(name, 0.0) for name, value in sums.items()}
        return sums

    def count(self, source: str, task_type=None) -> int:
        """Kept targets ``source`` was measured on (of ``task_type``, if given)."""
        return round(self._sums(source, task_type)["n"])

    def mean_percentile(self, source: str, task_type=None) -> float:
        """Weighted mean within-target gain percentile (over all types if none of
        ``task_type`` was measured; 0.5 where nothing of weight was)."""
        sums = self._sums(source, task_type)
        if round(sums["n"]) == 0 and task_type is not None:
            return self.mean_percentile(source)
        return sums["pct"] / sums["weight"] if sums["weight"] > 1e-9 else 0.5

    def win_rate(self, source: str) -> float:
        """Weighted share of kept targets it improved (the rate over every kept pair where it
        has no record of weight)."""
        sums = self._sums(source)
        if sums["weight"] > 1e-9:
            return sums["win"] / sums["weight"]
        s = self.stats
        kept = [t for t in s.wins if t != self.excluded]
        win = sum(s.weights[t] * sum(s.wins[t].values()) for t in kept)
        weight = sum(s.weights[t] * len(s.wins[t]) for t in kept)
        return win / weight if weight > 1e-9 else 0.5


def _target_weights(evidence: Outcomes, config: LearnedConfig) -> dict[str, float]:
    """Per measured target, how much it counts: its reliability, or 1 when not weighing."""
    weigh = config.weigh_by_reliability
    return {t: reliability(m) if weigh else 1.0 for t, m in evidence.items()}


def _model_weight(scored: Mapping[str, float], shrinkage: float, other_type_share: float) -> float:
    """n / (n + κ), n = the source's measured targets of the ranked target's type plus
    ``other_type_share`` of its measured targets of other types."""
    same = scored["evidence_same_type"]
    n = same + other_type_share * (scored["evidence"] - same)
    return n / (n + shrinkage) if n > 0 else 0.0


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value  # JSON has no NaN


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _standard_error(values: np.ndarray, weights: np.ndarray) -> float:
    """Standard error of a weighted mean, over the weights' effective number of values."""
    mean = np.average(values, weights=weights)
    spread = np.average((values - mean) ** 2, weights=weights)
    effective = weights.sum() ** 2 / (weights**2).sum()
    return float(np.sqrt(spread / max(effective - 1, 1)))


def _percentiles(values: Mapping[str, float]) -> dict[str, float]:
    """Within-list rank percentile: 1 for the highest value, 0 for the lowest, ties averaged."""
    from scipy.stats import rankdata

    names = list(values)
    if len(names) == 1:
        return {names[0]: 1.0}
    ranks = rankdata([values[n] for n in names])  # 1 = lowest
    return {n: float((r - 1) / (len(names) - 1)) for n, r in zip(names, ranks, strict=True)}


def _standardise_columns(x: np.ndarray) -> np.ndarray:
    """Centre and scale each column among one target's candidates; missing values become 0."""
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(x, 0) if x.size else np.zeros(x.shape[1])
        std = np.nanstd(x, 0) if x.size else np.ones(x.shape[1])
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return np.nan_to_num((x - mean) / std)


# ---------------------------------------------------------------------------------------------
# Building a ranker by method name


def expand_methods(methods: Iterable[str], library: Library) -> list[str]:
    """Method names with ``taskemb:*`` replaced by one ``taskemb:<component>`` per component."""
    expanded: list[str] = []
    for method in methods:
        if method == f"{COMPONENT_PREFIX}*":
            embedded = [e["taskemb"] for e in library.embeddings.values() if "taskemb" in e]
            components = embedded[0].component_names() if embedded else []
            expanded += [f"{COMPONENT_PREFIX}{c}" for c in components]
        elif method in METHODS or method.startswith(COMPONENT_PREFIX):
            expanded.append(method)
        else:
            raise ValueError(
                f"unknown method {method!r}; choose from {', '.join(METHODS)}, "
                f"{COMPONENT_PREFIX}<component> or {COMPONENT_PREFIX}*"
            )
    return list(dict.fromkeys(expanded))


def embedding_methods_needed(methods: Iterable[str]) -> set[str]:
    """Which embedding methods the named ranking methods read."""
    return {needed for method in methods for needed in reads(method)}


def build_ranker(
    method: str,
    library: Library,
    evidence: Sequence[TransferRow] = (),
    learned: LearnedConfig = LearnedConfig(),
) -> Ranker:
    """The ranker for ``method``, trained on ``evidence`` where it learns (``learned`` only).

    ``random`` and ``oracle`` are not rankers here: evaluation scores random by its exact
    expectation and builds the oracle from the held-out truth itself.
    """
    if method.startswith(COMPONENT_PREFIX):
        return ComponentRanker(library, method.removeprefix(COMPONENT_PREFIX))
    kind = REGISTRY[method].kind if method in REGISTRY else None
    if kind == "similarity":
        return SimilarityRanker(library, method)
    if kind == "centred":
        return CentredTaskEmbRanker(library)
    if kind == "size":
        return DataSizeRanker(library)
    if kind == "sized":
        return SizedRanker(library)
    if kind == "learned":
        return LearnedRanker(library, learned).fit(evidence)
    raise ValueError(f"{method!r} has no ranker of its own (random and oracle are evaluation-only)")


def rank_learned(
    target: str,
    tasks: Iterable[TaskData],
    embeddings: Mapping[str, Mapping[str, TaskEmbedding]],
    ranker_file: str | Path,
) -> list[RankedTask] | None:
    """Every task but ``target``, best first by the learned ranker saved in ``ranker_file``
    (``taskrec evaluate --save-ranker``), refitted on its evidence among these tasks; ``None``
    without the file or with too little evidence among these tasks to fit (the caller ranks
    by an evidence-free method then, as the API does). Each result's components are the
    ranker's parts: model, prior and weight.
    """
    library = Library.from_tasks(tasks)
    library.embeddings = {name: dict(methods) for name, methods in embeddings.items()}
    ranker = saved_ranker(ranker_file, library)
    if ranker.model is None:
        return None
    candidates = [name for name in library.specs if name != target]
    scores = ranker.scores(target, candidates)
    parts = ("model", "prior", "weight")
    ranked = [
        RankedTask(c, s["score"], {p: s[p] for p in parts if p in s}) for c, s in scores.items()
    ]
    return sorted(ranked, key=lambda r: (-r.score, r.task))


def saved_ranker(
    ranker_file: str | Path, library: Library, rows: Iterable[TransferRow] = ()
) -> LearnedRanker:
    """A ranker with the saved file's config and its evidence among ``library``'s tasks, plus
    ``rows``, fitted; without the file, one fitted on ``rows`` alone."""
    ranker = LearnedRanker(library)
    if Path(ranker_file).is_file():
        saved = LearnedRanker.load_evidence(ranker_file)
        known = set(library.specs)
        ranker = LearnedRanker(library, saved.config)
        ranker.evidence = {
            t: {s: o for s, o in m.items() if s in known}
            for t, m in saved.evidence.items()
            if t in known
        }
    return ranker.update(rows)
