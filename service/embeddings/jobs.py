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
    stored = _stored_task(job)
    data = load_task_data(stored, job.settings)
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
    methods, donor = list(config.methods), None
    if not stored.labelled and "taskemb" in methods:
        donor = _label_donor(job, embedder, data, methods)
        if donor is None:
            methods.remove("taskemb")
    embeddings = embedder.embed(data, methods, progress=job.progress, label_donor=donor)
    store = partial(
        service.store,
        context=job.context,
        task_id=job.task_id,
        job_id=job.id,
        config=config,
        ref=ref,
        embeddings=embeddings,
        dropped=tuple(m for m in config.methods if m not in methods),  # an older TaskEmb goes
    )
    job.complete(lambda session: _with_donor_words(store(session), config, donor))


def _label_donor(job: RunningJob, embedder, data, methods: list[str]):
    """The library task whose trained head labels this unlabelled task's TaskEmb (loaded), by
    TextEmb nearness among those of its label space; None where none fits."""
    text = [m for m in methods if m != "taskemb"]
    wanted = list(dict.fromkeys([*text, "textemb"]))
    textemb = embedder.embed(data, wanted, progress=job.progress)["textemb"]
    with job.session() as session:
        donor = service.label_donor_for(
            session, data.spec, textemb.components["mean"], embedder.ref.id
        )
    job.check()
    return None if donor is None else load_task_data(donor, job.settings)


def _with_donor_words(result: dict, config: EmbedConfig, donor) -> dict:
    """The job's result says how an unlabelled task's TaskEmb got labels, or why it has none."""
    if donor is not None:
        return {**result, "label_donor": donor.name}
    if result.get("stored") and "taskemb" in config.methods and "taskemb" not in result["methods"]:
        why = "no labelled library task shares its label space, so no TaskEmb: it ranks by text"
        return {**result, "taskemb_skipped": why}
    return result


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
