"""Cosine per component, reciprocal-rank fusion and library ranking."""

from __future__ import annotations

import numpy as np
import pytest

from workers.embeddings import TaskEmbedding
from workers.encoder import EncoderRef
from workers.similarity import cosine, rank_library, reciprocal_rank_fusion

REF = EncoderRef("enc", "r1", "/enc")


def _emb(task: str, method: str, **components: list[float]) -> TaskEmbedding:
    vectors = {k: np.array(v, dtype=np.float32) for k, v in components.items()}
    return TaskEmbedding(task, method, REF, vectors, 10, {})


def _task(name: str, a: list[float], b: list[float], text: list[float]) -> dict:
    return {"taskemb": _emb(name, "taskemb", a=a, b=b), "textemb": _emb(name, "textemb", mean=text)}


def test_cosine():
    assert cosine(np.array([1.0, 0]), np.array([2.0, 0])) == pytest.approx(1.0)
    assert cosine(np.array([1.0, 0]), np.array([0, 3.0])) == pytest.approx(0.0)
    assert cosine(np.zeros(2), np.ones(2)) == 0.0


def test_reciprocal_rank_fusion_by_hand():
    scores = reciprocal_rank_fusion([["x", "y"], ["y", "x"], ["x", "y"]], k=1)
    assert scores["x"] == pytest.approx(1 / 2 + 1 / 3 + 1 / 2)
    assert scores["y"] == pytest.approx(1 / 3 + 1 / 2 + 1 / 3)


def test_rank_library_orders_by_similarity_and_never_ranks_the_target():
    target = _task("t", [1, 0], [1, 0], [1, 0])
    library = {
        "t": target,
        "near": _task("near", [1, 0.1], [1, 0.1], [1, 0.2]),
        "far": _task("far", [0, 1], [0, 1], [0, 1]),
    }
    for method in ("taskemb", "textemb", "fused"):
        ranking = rank_library(target, library, method)
        assert [r.task for r in ranking] == ["near", "far"]
    fused = rank_library(target, library, "fused")[0]
    assert {"taskemb.a", "taskemb.b", "textemb.mean", "taskemb.rrf"} <= set(fused.components)


def test_embeddings_from_different_encoders_are_never_compared():
    target = _task("t", [1, 0], [1, 0], [1, 0])
    other = TaskEmbedding(
        "o", "textemb", EncoderRef("other", "r9", "/o"), {"mean": np.ones(2)}, 1, {}
    )
    library = {"o": {"textemb": other}}
    with pytest.raises(ValueError, match="different encoders"):
        rank_library(target, library, "textemb")


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown method"):
        rank_library(_task("t", [1], [1], [1]), {}, "magic")
