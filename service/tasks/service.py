"""Accepting a task whole or rejecting it whole, reading it back, deleting it."""

from __future__ import annotations

from functools import partial

from sqlalchemy.orm import Session

from service.artifacts import move_into_place, remove_tree
from service.context import AppContext
from service.db import on_commit, on_rollback
from service.embeddings import service as embeddings
from service.errors import Problem
from service.jobs import service as jobs
from service.models import Job, JobKind, Owner, Task, TaskFile, TaskStatus
from service.recommendations import service as recommendations
from service.settings import Settings
from service.tasks import hf, repository, storage
from service.tasks.exceptions import (
    LibraryTaskReadOnly,
    TaskInvalid,
    TaskNameTaken,
    TaskNotFound,
    UploadTooLarge,
)
from service.tasks.schemas import TaskFileRead, TaskRead
from service.tasks.uploads import StagedUpload
from workers.data.loaders import load_files
from workers.data.schema import TaskData, TaskType, has_label
from workers.data.validation import TaskValidationError


def submit(session: Session, context: AppContext, owner: Owner, staged: StagedUpload) -> Task | Job:
    """``POST /v1/tasks``: the task, or for a Hub dataset the job that loads it and creates it."""
    if staged.hf is not None and hf.is_hub(staged.hf.hf.path):
        return queue_import(session, context, owner, staged)
    return create_task(session, context, owner, staged)


def create_task(
    session: Session,
    context: AppContext,
    owner: Owner,
    staged: StagedUpload,
    batch_id: int | None = None,
) -> Task:
    """Validate the staged files with the engine; store the task and queue its embedding.

    A dataset reference must name a ``save_to_disk`` folder on the server: it is loaded first.
    """
    if staged.hf is not None:
        staged = hf.load(staged, context.settings)
    manifest = staged.manifest()
    data = validate_upload(staged, manifest, context.settings.max_text_chars)
    check_row_limit(data, context.settings)
    _check_name_free(session, owner, data.name)
    counts, distribution = storage.summarise(data)
    task = Task(
        owner_id=owner.id,
        name=data.name,
        type=data.spec.type.value,
        metric=data.spec.metric.value,
        labels=list(data.spec.labels),
        manifest=manifest,
        source=staged.source,
        content_hash=data.content_hash(),
        data_hash=data.data_hash(),
        counts=counts,
        label_distribution=distribution,
        status=TaskStatus.EMBEDDING,
        labelled=is_labelled(data),
    )
    repository.add(session, task, [])
    _store_files(session, context.settings, task, staged, counts)
    embeddings.queue_embedding(session, context, task, owner.id, batch_id=batch_id)
    return task


def queue_import(session: Session, context: AppContext, owner: Owner, staged: StagedUpload) -> Job:
    """Check a Hub dataset reference as far as can be done offline; queue the job loading it."""
    hf.check_hub_id(staged.hf.hf.path)
    manifest = staged.manifest()
    hf.check_manifest(manifest)
    _check_name_free(session, owner, manifest["name"])
    config = staged.hf.model_dump(mode="json")
    return jobs.queue_job(session, context, owner.id, JobKind.IMPORT, config)


LABEL_FIELDS = ("label", "labels", "tags", "answers")


def _only_labels(error: TaskValidationError) -> bool:
    return all(p.field in LABEL_FIELDS and p.message.startswith("missing") for p in error.problems)


def _unlabelled(manifest: dict, files: dict, max_text_chars: int) -> TaskData | None:
    """The task read without labels, if no training row has one (else None)."""
    try:
        data = load_files(manifest, files, allow_unlabelled=True, max_text_chars=max_text_chars)
    except TaskValidationError:
        return None
    if data.spec.type is TaskType.EXTRACTIVE_QA or any(has_label(ex) for ex in data.train):
        return None  # QA rows without answers are unanswerable questions, not unlabelled ones
    return data


def is_labelled(data: TaskData) -> bool:
    return any(has_label(ex) for ex in data.train)


def _check_name_free(session: Session, owner: Owner, name: str) -> None:
    if repository.name_taken(session, owner.id, name):
        raise TaskNameTaken(f"you already have a task named {name!r}; delete it or rename")


def validate_upload(staged: StagedUpload, manifest: dict, max_text_chars: int) -> TaskData:
    """The staged rows, validated; a task none of whose rows carries a label is accepted as
    unlabelled (rows with and without labels are a 422 naming each unlabelled row)."""
    files = {split: staged_file.path for split, staged_file in staged.files.items()}
    try:
        return load_files(manifest, files, max_text_chars=max_text_chars)
    except TaskValidationError as exc:
        unlabelled = _unlabelled(manifest, files, max_text_chars) if _only_labels(exc) else None
        if unlabelled is not None:
            return unlabelled
        problems = [
            Problem(file=staged.display_name(p.file), row=p.row, field=p.field, message=p.message)
            for p in exc.problems
        ]
        count = len(problems)
        message = f"the task was rejected: {count} problem{'s' if count != 1 else ''} found"
        raise TaskInvalid(message, problems=problems) from None


def check_row_limit(data: TaskData, settings: Settings) -> None:
    rows = sum(len(split) for split in data.splits.values())
    if rows > settings.max_upload_rows:
        raise UploadTooLarge(f"{rows} rows exceed the limit of {settings.max_upload_rows} per task")


def _store_files(
    session: Session, settings: Settings, task: Task, staged: StagedUpload, counts: dict
) -> None:
    folder = storage.task_folder(settings, task.id)
    on_rollback(session, partial(remove_tree, folder))  # the rows go, so do the files
    for split, staged_file in staged.files.items():
        destination = folder / staged_file.path.name
        move_into_place(staged_file.path, destination)
        session.add(
            TaskFile(
                task_id=task.id,
                split=split,
                filename=staged_file.filename,
                path=str(destination.relative_to(settings.artifacts_dir)),
                format=staged_file.format,
                size_bytes=staged_file.size,
                sha256=staged_file.sha256,
                rows=counts.get(split, 0),
            )
        )
    task.storage = str(folder.relative_to(settings.artifacts_dir))
    session.flush()


def visible(session: Session, owner: Owner, task_id: int) -> Task:
    task = repository.visible(session, owner, task_id)
    if task is None:
        raise TaskNotFound(f"no task {task_id}")
    return task


def owned(task: Task, owner: Owner) -> Task:
    """A task the owner may change: their own (admins: any); library tasks via the library."""
    if task.owner_id != owner.id and not owner.is_admin:
        if task.is_library:
            raise LibraryTaskReadOnly("library tasks are changed by admins through /v1/library")
        raise TaskNotFound(f"no task {task.id}")
    return task


def page(session: Session, owner: Owner, **filters) -> tuple[list[Task], int]:
    return repository.page(session, owner, **filters)


def delete_task(session: Session, context: AppContext, task: Task) -> None:
    """Delete a task, its files, embeddings and index entries; its active jobs are cancelled."""
    jobs.cancel_for_task(session, task.id)
    if task.is_library:
        recommendations.library_changed(session, context, task.id, removed=True)
    folders = [storage.task_folder(context.settings, task.id)]
    folders.append(embeddings.artifact_folder(context.settings, task.id))
    session.delete(task)
    session.flush()
    for folder in folders:
        on_commit(session, partial(remove_tree, folder))


def read_models(session: Session, settings: Settings, tasks: list[Task]) -> list[TaskRead]:
    """API views of ``tasks``: files and embedding status fetched for all of them at once."""
    ids = [t.id for t in tasks]
    files = repository.files_of(session, ids)
    statuses = embeddings.statuses(session, settings.model, ids)
    return [
        TaskRead(
            id=t.id,
            name=t.name,
            type=t.type,
            metric=t.metric,
            labels=list(t.labels),
            source=t.source,
            is_library=t.is_library,
            status=t.status,
            labelled=t.labelled,
            counts=t.counts,
            label_distribution=t.label_distribution,
            files=[TaskFileRead.model_validate(f) for f in files[t.id]],
            embedding=statuses[t.id],
            created_at=t.created_at,
            updated_at=t.updated_at,
        )
        for t in tasks
    ]


def read_model(session: Session, settings: Settings, task: Task) -> TaskRead:
    return read_models(session, settings, [task])[0]
