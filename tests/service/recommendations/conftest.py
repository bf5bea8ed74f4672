"""Recommendation fixtures: a library of well-separated random vectors, stored directly."""

from __future__ import annotations

import numpy as np
import pytest

from service.db import unit_of_work
from service.embeddings.repository import to_blob
from service.models import Embedding, Task

COMPONENTS = {
    "taskemb": ["layer0.attention", "layer0.output", "layer1.attention", "layer1.output", "cls"],
    "textemb": ["mean"],
    "semb": ["mean"],
}


@pytest.fixture()
def synthetic(session_factory, keys, settings):
    """Twelve library tasks and a target with well-separated random vectors, stored directly.

    A tiny random BERT gives near-identical vectors (cosines within 1e-7 of each other), where
    float32 noise decides ranks; random vectors make the comparison with the engine exact.
    """
    from service.auth.repository import owner_by_name

    rng = np.random.default_rng(7)
    with unit_of_work(session_factory) as session:
        admin, alice = owner_by_name(session, "root"), owner_by_name(session, "alice")
        ids = {}
        for i in range(13):
            name = "target" if i == 12 else f"lib{i:02d}"
            task = Task(
                owner_id=alice.id if i == 12 else admin.id,
                name=name,
                type="regression" if i % 4 == 3 else "classification",
                metric="accuracy",
                source="rows",
                content_hash="x",
                is_library=i != 12,
                status="ready",
            )
            session.add(task)
            session.flush()
            ids[name] = task.id
            for method, components in COMPONENTS.items():
                for component in components:
                    session.add(
                        Embedding(
                            task_id=task.id,
                            model=settings.model,
                            encoder_id="tiny@1",
                            encoder_name="tiny",
                            model_revision="1",
                            method=method,
                            component=component,
                            dim=8,
                            vector=to_blob(rng.normal(size=8)),
                            num_examples=16,
                            settings={},
                        )
                    )
    return ids


def _summary_row(scope: str, method: str, rho: float, regret: float) -> dict:
    return {"scope": scope, "method": method, "targets": 9, "rho": rho, "ndcg": 0.8} | {
        "regret@1": regret,
        "regret@3": regret,
    }


@pytest.fixture()
def scoped_evaluation(settings) -> None:
    """A ranker file whose saved evaluation has learned best over all types and fused best
    within a type (it ties taskemb on ρ and wins on Regret@3); oracle is a yardstick only."""
    from workers.selection.rankers import LearnedRanker, Library

    summary = [
        _summary_row("all", "learned", 4.0, 1.0),
        _summary_row("all", "taskemb", 6.0, 4.0),
        _summary_row("all", "oracle", 1.0, 0.0),
        _summary_row("within", "learned", 3.3, 4.6),
        _summary_row("within", "taskemb", 3.1, 4.6),
        _summary_row("within", "fused", 3.1, 0.7),
    ]
    LearnedRanker(Library({}, {})).save(settings.ranker_file, evaluation=summary)
