"""Every query on embeddings (and on the embedding jobs of tasks)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sqlalchemy import Row, delete, func, select
from sqlalchemy.orm import Session

from service.models import Embedding, Job, JobKind, Task


def for_task(session: Session, task_id: int, model: str | None = None) -> list[Embedding]:
    query = select(Embedding).where(Embedding.task_id == task_id)
    if model is not None:
        query = query.where(Embedding.model == model)
    return list(session.scalars(query.order_by(Embedding.id)))


def vector_rows(session: Session, task_id: int, model: str) -> list[Row]:
    """(encoder_id, method, component, vector) of a task's embeddings, oldest first.

    Plain rows, not ORM objects: the recommendations path reads these on every request.
    """
    query = (
        select(Embedding.encoder_id, Embedding.method, Embedding.component, Embedding.vector)
        .where(Embedding.task_id == task_id, Embedding.model == model)
        .order_by(Embedding.id)
    )
    return list(session.execute(query))


def replace(session: Session, task_id: int, encoder_id: str, methods: Iterable[str]) -> None:
    """Drop the task's vectors by ``methods`` for this encoder (new ones are about to be added)."""
    session.execute(
        delete(Embedding).where(
            Embedding.task_id == task_id,
            Embedding.encoder_id == encoder_id,
            Embedding.method.in_(list(methods)),
        )
    )


def latest_jobs(session: Session, task_ids: list[int]) -> dict[int, Job]:
    if not task_ids:
        return {}
    newest = (
        select(func.max(Job.id))
        .where(Job.task_id.in_(task_ids), Job.kind == JobKind.EMBED)
        .group_by(Job.task_id)
    )
    return {job.task_id: job for job in session.scalars(select(Job).where(Job.id.in_(newest)))}


def stored_methods(
    session: Session, task_ids: list[int], model: str
) -> dict[int, tuple[str, list[str]]]:
    """Per task: the newest encoder id with vectors for ``model``, and its methods."""
    if not task_ids:
        return {}
    query = (
        select(Embedding.task_id, Embedding.encoder_id, Embedding.method, func.max(Embedding.id))
        .where(Embedding.task_id.in_(task_ids), Embedding.model == model)
        .group_by(Embedding.task_id, Embedding.encoder_id, Embedding.method)
    )
    newest: dict[int, tuple[int, str]] = {}
    methods: dict[tuple[int, str], list[str]] = {}
    for task_id, encoder_id, method, top in session.execute(query):
        methods.setdefault((task_id, encoder_id), []).append(method)
        if task_id not in newest or top > newest[task_id][0]:
            newest[task_id] = (top, encoder_id)
    return {
        task_id: (encoder_id, sorted(methods[(task_id, encoder_id)]))
        for task_id, (_, encoder_id) in newest.items()
    }


def task_vectors(
    session: Session, task_id: int, encoder_id: str
) -> dict[tuple[str, str], np.ndarray]:
    """(method, component) -> vector of one task by one encoder."""
    query = select(Embedding.method, Embedding.component, Embedding.vector).where(
        Embedding.task_id == task_id, Embedding.encoder_id == encoder_id
    )
    return {(m, c): to_array(v) for m, c, v in session.execute(query)}


def encoders_of(session: Session, task_id: int) -> list[str]:
    query = select(Embedding.encoder_id).where(Embedding.task_id == task_id).distinct()
    return list(session.scalars(query))


def library_vectors(
    session: Session, encoder_id: str, method: str, component: str
) -> tuple[list[int], list[np.ndarray], dict[int, tuple[str, str]]]:
    """Ids, vectors and (name, type) of every library task with this vector."""
    query = (
        select(Task.id, Task.name, Task.type, Embedding.vector)
        .join(Embedding, Embedding.task_id == Task.id)
        .where(
            Task.is_library.is_(True),
            Embedding.encoder_id == encoder_id,
            Embedding.method == method,
            Embedding.component == component,
        )
        .order_by(Task.id)
    )
    ids, vectors, tasks = [], [], {}
    for task_id, name, type_, vector in session.execute(query):
        ids.append(task_id)
        vectors.append(to_array(vector))
        tasks[task_id] = (name, type_)
    return ids, vectors, tasks


def labelled_library_textemb(session: Session, encoder_id: str) -> list[tuple[Task, np.ndarray]]:
    """Every labelled library task with a TextEmb of this encoder, and that vector: the
    candidates to train the head that labels an unlabelled task (``workers.selection.donor``)."""
    query = (
        select(Task, Embedding.vector)
        .join(Embedding, Embedding.task_id == Task.id)
        .where(
            Task.is_library.is_(True),
            Task.labelled.is_(True),
            Embedding.encoder_id == encoder_id,
            Embedding.method == "textemb",
            Embedding.component == "mean",
        )
        .order_by(Task.id)
    )
    return [(task, to_array(vector)) for task, vector in session.execute(query)]


def label_donor_of(session: Session, task_id: int, model: str) -> str | None:
    """The library task whose trained head labelled this task's newest TaskEmb (None: its own
    labels, or no TaskEmb)."""
    query = (
        select(Embedding.settings)
        .where(Embedding.task_id == task_id, Embedding.model == model)
        .where(Embedding.method == "taskemb")
        .order_by(Embedding.id.desc())
        .limit(1)
    )
    settings = session.scalar(query)
    return (settings or {}).get("label_donor")


def library_ready_count(session: Session, encoder_id: str, method: str) -> int:
    query = (
        select(func.count(func.distinct(Embedding.task_id)))
        .join(Task, Task.id == Embedding.task_id)
        .where(Task.is_library.is_(True), Embedding.encoder_id == encoder_id)
        .where(Embedding.method == method)
    )
    return session.scalar(query) or 0


def to_array(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()
