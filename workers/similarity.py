"""Ranking library tasks against a target: cosine per component, reciprocal-rank fusion on top.

A method's score is the reciprocal-rank fusion (Cormack et al. 2009) of its components' rankings;
``fused`` fuses the methods' rankings in turn. Per-component cosines travel with each result as
the evidence behind its place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from workers.encoder import EncoderRef

RRF_K = 60  # the constant of Cormack et al.; damps the weight of the very top ranks
EMBEDDING_METHODS = ("taskemb", "textemb", "semb")  # what an embedding job can compute
FUSED_METHODS = ("taskemb", "textemb")
METHOD_CHOICES = ("taskemb", "textemb", "semb", "fused")


@dataclass
class TaskEmbedding:
    """One task's embedding by one method: a vector per component.

    Defined here, not beside the code that computes it, so that torch-free processes (the API)
    can rank with stored embeddings.
    """

    task: str
    method: str
    encoder: EncoderRef
    components: dict[str, np.ndarray]
    num_examples: int
    settings: dict

    def component_names(self) -> list[str]:
        return list(self.components)


@dataclass
class RankedTask:
    task: str
    score: float
    components: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"task": self.task, "score": self.score, "components": self.components}


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity; 0 when either vector is all zeros."""
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norm) if norm > 0 else 0.0


def component_similarities(target: TaskEmbedding, source: TaskEmbedding) -> dict[str, float]:
    """Cosine per shared component; refuses vectors from different encoders."""
    if target.encoder.id != source.encoder.id:
        raise ValueError(
            f"cannot compare {target.task} ({target.encoder.id}) with {source.task} "
            f"({source.encoder.id}): embeddings come from different encoders"
        )
    shared = [c for c in target.components if c in source.components]
    return {c: cosine(target.components[c], source.components[c]) for c in shared}


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """RRF score per item: the sum over rankings of 1 / (k + rank), ranks from 1."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return scores


def rank_library(
    target: Mapping[str, TaskEmbedding],
    library: Mapping[str, Mapping[str, TaskEmbedding]],
    method: str = "fused",
) -> list[RankedTask]:
    """Library tasks best first. ``target`` and each library entry map method -> embedding."""
    if method not in METHOD_CHOICES:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHOD_CHOICES)}")
    candidates = {name: embs for name, embs in library.items() if name != _target_name(target)}
    methods = FUSED_METHODS if method == "fused" else (method,)
    evidence: dict[str, dict[str, float]] = {name: {} for name in candidates}
    per_method: dict[str, dict[str, float]] = {}
    for m in methods:
        sims = {
            name: component_similarities(target[m], embs[m]) for name, embs in candidates.items()
        }
        rankings = [
            sorted(sims, key=lambda n, c=c: -sims[n].get(c, -1.0)) for c in target[m].components
        ]
        per_method[m] = reciprocal_rank_fusion(rankings)
        prefix = f"{m}." if len(methods) > 1 else ""
        for name in candidates:
            evidence[name].update({f"{prefix}{c}": s for c, s in sims[name].items()})
    if len(methods) == 1:
        scores = per_method[method]
    else:
        scores = reciprocal_rank_fusion(
            [sorted(s, key=lambda n, s=s: -s[n]) for s in per_method.values()]
        )
        for name in candidates:
            evidence[name].update({f"{m}.rrf": per_method[m][name] for m in methods})
    order = sorted(candidates, key=lambda n: (-scores[n], n))
    return [RankedTask(task=n, score=scores[n], components=evidence[n]) for n in order]


def _target_name(target: Mapping[str, TaskEmbedding]) -> str:
    return next(iter(target.values())).task
