"""Queueing embedding jobs, storing their vectors (rows + artefacts), reporting their status."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session

from service.artifacts import atomic_write, slug
from service.context import AppContext
from service.embeddings import repository
from service.embeddings.schemas import EmbedConfig, EmbeddingRead, EmbeddingStatus, EmbedRequest
from service.encoders import allowed_encoder
from service.jobs import service as jobs
from service.models import Embedding, Job, JobKind, JobPriority, JobState, Task, TaskStatus
from service.recommendations import service as recommendations
from service.settings import Settings
from service.tasks import repository as task_repository
from service.tasks.storage import StoredTask
from workers.data.schema import Metric, TaskSpec, TaskType
from workers.selection.donor import choose_label_donor

if TYPE_CHECKING:
    from workers.embeddings import TaskEmbedding
    from workers.encoder import EncoderRef


def queue_embedding(
    session: Session,
    context: AppContext,
    task: Task,
    owner_id: int,
    request: EmbedRequest | None = None,
    batch_id: int | None = None,
    priority: int = JobPriority.OWNER,
) -> Job:
    """Queue a job computing ``task``'s embeddings (defaults from the settings); the library's
    own embedding is backfill (``JobPriority.BACKFILL``), below owners' jobs. An encoder off the
    allow-list is a 422."""
    if request is not None and request.model is not None:
        allowed_encoder(context.settings, request.model)
    # An unlabelled task keeps TaskEmb: the job trains its head on a label donor, or skips it
    # where no labelled library task shares the label space (the job's result says which)
    config = EmbedConfig.from_settings(context.settings, request)
    # Only the service model's embeddings decide whether a task can be ranked: recomputing with
    # another model leaves a ready task ready.
    if config.model == context.settings.model or task.status != TaskStatus.READY:
        task.status = TaskStatus.EMBEDDING
    return jobs.queue_job(
        session,
        context,
        owner_id,
        JobKind.EMBED,
        config.model_dump(),
        task_id=task.id,
        batch_id=batch_id,
        priority=priority,
    )


def label_donor_for(
    session: Session, spec: TaskSpec, textemb: np.ndarray, encoder_id: str
) -> StoredTask | None:
    """The labelled library task nearest to an unlabelled one (TextEmb) whose head predicts its
    labels, detached for the job to load; None where none shares its label space."""
    candidates = repository.labelled_library_textemb(session, encoder_id)
    by_name = {task.name: task for task, _ in candidates}
    specs = {
        task.name: (
            TaskSpec(task.name, TaskType(task.type), Metric(task.metric), tuple(task.labels)),
            v,
        )
        for task, v in candidates
    }
    name = choose_label_donor(spec, textemb, specs)
    if name is None:
        return None
    donor = by_name[name]
    return StoredTask.of(donor, task_repository.files_of(session, [donor.id])[donor.id])


def artifact_folder(settings: Settings, task_id: int) -> Path:
    return settings.artifacts_dir / "embeddings" / str(task_id)


def store(
    session: Session,
    context: AppContext,
    *,
    task_id: int,
    job_id: int,
    config: EmbedConfig,
    ref: EncoderRef,
    embeddings: dict[str, TaskEmbedding],
    dropped: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Replace the task's vectors by these methods for this encoder, and remove its vectors by
    ``dropped`` (an unlabelled task's TaskEmb when no donor fits any more); returns the job
    result."""
    task = session.get(Task, task_id)
    if task is None:
        return {"stored": False, "reason": f"task {task_id} was deleted while embedding"}
    repository.replace(session, task_id, ref.id, [*embeddings, *dropped])
    folder = artifact_folder(context.settings, task_id) / slug(ref.id)
    for method, embedding in embeddings.items():
        path = folder / f"{method}.npz"
        atomic_write(path, lambda handle, e=embedding: _savez(handle, e.components))
        for component, vector in embedding.components.items():
            session.add(
                Embedding(
                    task_id=task_id,
                    job_id=job_id,
                    model=config.model,
                    encoder_id=ref.id,
                    encoder_name=ref.name,
                    model_revision=ref.revision,
                    method=method,
                    component=component,
                    dim=int(vector.shape[0]),
                    vector=repository.to_blob(vector),
                    num_examples=embedding.num_examples,
                    settings=_jsonable(embedding.settings),
                    artifact=str(path.relative_to(context.settings.artifacts_dir)),
                )
            )
    task.status = TaskStatus.READY
    session.flush()
    if task.is_library:
        recommendations.library_changed(session, context, task_id, encoder_ids=[ref.id])
    return {
        "stored": True,
        "model": config.model,
        "encoder_id": ref.id,
        "methods": {
            method: {
                "components": len(e.components),
                "dim": int(next(iter(e.components.values())).shape[0]),
                "num_examples": e.num_examples,
            }
            for method, e in embeddings.items()
        },
    }


def _savez(handle, components: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **components)
    handle.write(buffer.getvalue())


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def statuses(session: Session, model: str, task_ids: list[int]) -> dict[int, EmbeddingStatus]:
    """Per task: its embeddings by ``model`` and the state of its latest embedding job."""
    latest = repository.latest_jobs(session, task_ids)
    stored = repository.stored_methods(session, task_ids, model)
    return {
        task_id: _status(model, latest.get(task_id), stored.get(task_id)) for task_id in task_ids
    }


def _status(model: str, job: Job | None, stored: tuple[str, list[str]] | None) -> EmbeddingStatus:
    encoder_id, methods = stored or (None, [])
    status = EmbeddingStatus(state="none", model=model, encoder_id=encoder_id, methods=methods)
    if job is not None:
        status.job_id = job.id
        status.error = job.error if job.state in (JobState.FAILED, JobState.CANCELLED) else None
    if job is not None and job.state in JobState.ACTIVE:
        status.state = job.state
        status.progress = round(100.0 * job.progress, 1)
    elif methods:
        status.state = "ready"
    elif job is not None:
        status.state = job.state if job.state != JobState.SUCCEEDED else "none"
    return status


def list_for_task(session: Session, task: Task) -> list[EmbeddingRead]:
    grouped: dict[tuple[str, str], list[Embedding]] = {}
    for row in repository.for_task(session, task.id):
        grouped.setdefault((row.encoder_id, row.method), []).append(row)
    return [
        EmbeddingRead(
            method=method,
            model=rows[0].model,
            encoder_id=encoder_id,
            model_revision=rows[0].model_revision,
            components={r.component: r.dim for r in rows},
            num_examples=rows[0].num_examples,
            job_id=rows[0].job_id,
            created_at=rows[0].created_at,
        )
        for (encoder_id, method), rows in grouped.items()
    ]


def settle_task_status(session: Session, task: Task) -> None:
    """After an embedding job ends without storing: ready if vectors exist, else failed."""
    task.status = (
        TaskStatus.READY if repository.encoders_of(session, task.id) else TaskStatus.FAILED
    )
