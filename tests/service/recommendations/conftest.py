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
