"""The embedding job: load the task's rows, embed them with the engine, store the vectors.

The engine (torch) is imported here, inside the job, never when the API starts.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy.orm import Session

from service.embeddings import service
from service.embeddings.schemas import EmbedConfig
from service.jobs import repository as job_repository
from service.jobs.runner import RunningJob, limit_torch_threads
from service.models import Job, Task
from service.tasks import repository as task_repository
from service.tasks.storage import StoredTask, load_task_data


class TaskGone(Exception):
    """The job's task was deleted before the job ran."""


def run(job: RunningJob) -> None:
    from workers.cache import EmbeddingCache
    from workers.embedder import Embedder
    from workers.embeddings import EmbeddingConfig, resolve_precision
    from workers.encoder import resolve_encoder
    from workers.features import FeatureConfig

    limit_torch_threads(job.settings)
    config = EmbedConfig.model_validate(job.config)
    data = load_task_data(_stored_task(job), job.settings)
    job.check()
    ref = resolve_encoder(config.model)
    engine_config = EmbeddingConfig(
        max_examples=config.max_examples,
        seed=config.seed,
        batch_size=config.batch_size,
        features=FeatureConfig(max_length=config.max_length, qa_max_length=config.qa_max_length),
        head_training=config.head_training,
        train_epochs=config.train_epochs,
        labels=config.labels,
        device=config.device,
        precision=resolve_precision(config.precision, config.device),
    )
    job.expect_stages(*_stages(config))
    embedder = Embedder(
        ref,
        engine_config,
        EmbeddingCache(job.settings.cache_dir, job.settings.embedding_seed_paths),
    )
    embeddings = embedder.embed(data, config.methods, progress=job.progress)
    store = partial(
        service.store,
        context=job.context,
        task_id=job.task_id,
        job_id=job.id,
        config=config,
        ref=ref,
        embeddings=embeddings,
    )
    job.complete(lambda session: store(session))


def on_final(session: Session, row: Job) -> None:
    """A failed or cancelled embedding job settles its task's status (if it was the latest)."""
    task = session.get(Task, row.task_id) if row.task_id else None
    if task is None:
        return
    latest = job_repository.latest_for_task(session, task.id, row.kind)
    if latest is None or latest.id == row.id:
        service.settle_task_status(session, task)


def _stored_task(job: RunningJob) -> StoredTask:
    with job.session() as session:
        task = task_repository.get(session, job.task_id) if job.task_id else None
        if task is None:
            raise TaskGone(f"task {job.task_id} was deleted")
        files = task_repository.files_of(session, [task.id])[task.id]
        return StoredTask.of(task, files)


def _stages(config: EmbedConfig) -> tuple[int, list[float]]:
    """Engine stages reported, in order, each weighed by its cost in forward passes over the
    sample: textemb (one pass for TextEmb and SEmb), head training (forward and backward, about
    3 passes an epoch), the Fisher pass (forward and backward: about 3)."""
    weights = [1.0] if {"textemb", "semb"} & set(config.methods) else []
    if "taskemb" in config.methods:
        weights += [3.0 * config.train_epochs] if config.train_epochs > 0 else []
        weights.append(3.0)
    return len(weights), weights
