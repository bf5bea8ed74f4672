"""A synthetic transfer world: 12 tasks with fake embeddings and gains that follow known rules.

Gains = 2·quality(source) + 3·cos(latent target, latent source) + 1·(same type) + noise, so a
ranker that learns from other targets' results has something real to find, while size (random
here) is worthless. Embeddings are noisy views of each task's latent vector; no model is loaded.
"""

from __future__ import annotations

import numpy as np
import pytest

from workers.data.schema import Metric, TaskSpec, TaskType
from workers.embeddings import TaskEmbedding
from workers.encoder import EncoderRef
from workers.selection.rankers import Library
from workers.selection.results import TransferRow

FAKE_ENCODER = EncoderRef(name="fake", revision="0", path="fake")
TYPES = (TaskType.CLASSIFICATION, TaskType.MULTIPLE_CHOICE, TaskType.SEQUENCE_LABELING)
METRICS = {t: Metric.ACCURACY for t in TYPES} | {TaskType.SEQUENCE_LABELING: Metric.SEQEVAL_F1}


def _embedding(task: str, method: str, components: dict[str, np.ndarray]) -> TaskEmbedding:
    vectors = {k: v.astype(np.float32) for k, v in components.items()}
    return TaskEmbedding(task, method, FAKE_ENCODER, vectors, 100, {})


def make_world(n_tasks: int = 12, seeds: int = 2, seed: int = 0):
    """(library, rows): every task is both a target and a source of the others."""
    rng = np.random.default_rng(seed)
    names = [f"t{i:02d}" for i in range(n_tasks)]
    latent = {n: rng.normal(size=8) for n in names}
    types = {n: TYPES[i % 3] for i, n in enumerate(names)}
    quality = {n: rng.normal() for n in names}
    specs = {
        n: TaskSpec(n, types[n], METRICS[types[n]], ("a", "b"), family=f"fam{i % 4}")
        for i, n in enumerate(names)
    }
    sizes = {n: int(rng.integers(200, 20000)) for n in names}

    def view(n: str, noise: float) -> np.ndarray:
        return latent[n] + noise * rng.normal(size=8)

    embeddings = {
        n: {
            "taskemb": _embedding(
                n, "taskemb", {"layer0.output": view(n, 0.5), "cls": rng.normal(size=8)}
            ),
            "textemb": _embedding(n, "textemb", {"mean": view(n, 0.3)}),
            "semb": _embedding(n, "semb", {"mean": view(n, 0.3)}),
        }
        for n in names
    }
    rows = []
    for target in names:
        for source in names:
            if source == target:
                continue
            a, b = latent[target], latent[source]
            cos = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
            gain = 2 * quality[source] + 3 * cos + (types[source] == types[target])
            for s in range(seeds):
                noisy = gain + 0.3 * rng.normal()
                baseline = 60.0 + s
                rows.append(
                    TransferRow(source, target, s, baseline + noisy, baseline, noisy, "accuracy")
                )
    return Library(specs, sizes, embeddings), rows


@pytest.fixture()
def world():
    return make_world()
