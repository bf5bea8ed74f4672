"""The task map: library tasks (and the caller's own) in 2-D, by TaskEmb, TextEmb or SEmb.

Each task's vector is its components L2-normalised and concatenated (as the results page's map
does), projected on the library's first two principal axes. The projection is computed once per
encoder, library version and method and kept; the caller's tasks are placed on the same axes
per request, so the library never moves under them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from service.dashboard import repository
from service.dashboard.dependencies import DashboardState
from service.embeddings import repository as embeddings
from service.models import Owner, Task
from service.recommendations import repository as library
from service.settings import Settings
from service.tasks import service as tasks

METHODS = ("taskemb", "textemb", "semb")
OWN_LIMIT = 200  # the caller's newest tasks placed on the map
NEIGHBOURS = 5


@dataclass(frozen=True)
class Projection:
    """The library in one method's space: unit vectors, their principal axes, 2-D points."""

    encoder_id: str
    version: int
    components: tuple[str, ...]
    ids: list[int]
    names: list[str]
    types: list[str]
    unit: np.ndarray  # (tasks, dims): concatenated normalised components, rows L2-normalised
    mean: np.ndarray  # (dims,)
    axes: np.ndarray  # (2, dims)
    points: np.ndarray  # (tasks, 2)

    def place(self, vectors: np.ndarray) -> np.ndarray:
        """(n, dims) -> (n, 2) on the library's axes."""
        return (vectors - self.mean) @ self.axes.T


def projection(
    state: DashboardState, session: Session, settings: Settings, method: str
) -> Projection | None:
    """The library's projection by ``method`` (None with fewer than 3 tasks embedded)."""
    encoder_id = repository.library_encoder(session, settings.model, method)
    if encoder_id is None:
        return None
    key = (encoder_id, library.version(session, encoder_id), method)
    found = state.maps.get(key)
    if found is None:
        with state.map_lock:  # two first visits at once compute it once (seconds at 10,000)
            found = state.maps.get(key)
            if found is None:
                found = _project(session, encoder_id, key[1], method)
                state.maps.put(key, found)
    return found or None


def _project(session: Session, encoder_id: str, version: int, method: str) -> Projection | bool:
    components = tuple(repository.components(session, encoder_id, method))
    parts: dict[str, dict[int, np.ndarray]] = {}
    tasks_by_id: dict[int, tuple[str, str]] = {}
    for component in components:
        ids, vectors, found = embeddings.library_vectors(session, encoder_id, method, component)
        parts[component] = dict(zip(ids, vectors, strict=True))
        tasks_by_id.update(found)
    ids = sorted(set.intersection(*(set(p) for p in parts.values()))) if parts else []
    if len(ids) < 3:
        return False  # cached too: nothing to draw until the library version moves
    unit = np.vstack([_flat([parts[c][i] for c in components]) for i in ids])
    mean = unit.mean(0)
    axes = _principal_axes(unit - mean)
    return Projection(
        encoder_id,
        version,
        components,
        ids,
        [tasks_by_id[i][0] for i in ids],
        [tasks_by_id[i][1] for i in ids],
        unit,
        mean,
        axes,
        (unit - mean) @ axes.T,
    )


def _flat(vectors: list[np.ndarray]) -> np.ndarray:
    """One unit vector: each component L2-normalised, concatenated, normalised again."""
    parts = [v / (np.linalg.norm(v) or 1.0) for v in vectors]
    flat = np.concatenate(parts).astype(np.float32)  # 10,000 TaskEmb rows: ~200 MB, not 400
    return flat / (np.linalg.norm(flat) or 1.0)


def _principal_axes(centred: np.ndarray) -> np.ndarray:
    """The first two principal axes, (2, dims); randomised for large libraries."""
    if centred.shape[0] > 2000:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, svd_solver="randomized", random_state=0).fit(centred).components_
    _, _, vt = np.linalg.svd(centred, full_matrices=False)  # rows of vt: principal axes
    return vt[:2]


def _own(session: Session, owner: Owner, found: Projection, method: str) -> list[tuple[Task, Any]]:
    """The caller's own embedded tasks (not the library's) with their unit vectors."""
    items, _ = tasks.page(
        session, owner, type=None, status=None, library=False, limit=OWN_LIMIT, offset=0
    )
    placed = []
    for task in items:
        vectors = embeddings.task_vectors(session, task.id, found.encoder_id)
        if all((method, c) in vectors for c in found.components):
            placed.append((task, _flat([vectors[(method, c)] for c in found.components])))
    return placed


def points(session: Session, owner: Owner, found: Projection, method: str) -> list[dict]:
    """Every point of the map: the library's, then the caller's own tasks."""
    out = [
        {"id": i, "name": n, "type": t, "x": float(x), "y": float(y), "own": False}
        for i, n, t, (x, y) in zip(found.ids, found.names, found.types, found.points, strict=True)
    ]
    own = _own(session, owner, found, method)
    if own:
        xy = found.place(np.vstack([v for _, v in own]))
        out += [
            {"id": t.id, "name": t.name, "type": t.type, "x": float(x), "y": float(y), "own": True}
            for (t, _), (x, y) in zip(own, xy, strict=True)
        ]
    return out


def neighbours(session: Session, found: Projection, task: Task, method: str) -> list[dict]:
    """The library tasks nearest to ``task`` in the method's full space (cosine), not in 2-D."""
    if task.id in found.ids:
        query = found.unit[found.ids.index(task.id)]
    else:
        vectors = embeddings.task_vectors(session, task.id, found.encoder_id)
        if not all((method, c) in vectors for c in found.components):
            return []
        query = _flat([vectors[(method, c)] for c in found.components])
    similarity = found.unit @ query  # (tasks,)
    order = [i for i in np.argsort(-similarity) if found.ids[i] != task.id][:NEIGHBOURS]
    return [
        {
            "id": found.ids[i],
            "name": found.names[i],
            "similarity": round(float(similarity[i]), 4),
            "x": float(found.points[i][0]),
            "y": float(found.points[i][1]),
        }
        for i in order
    ]
