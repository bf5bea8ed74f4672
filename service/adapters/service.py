"""The adapter library's adapters (``workers.adapter_library``): listed, deleted, and trained
ahead of use by a backfill job (``service.adapters.jobs``)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from service.adapters import repository
from service.adapters.exceptions import (
    AdapterBackfillInvalid,
    AdapterBusy,
    AdapterNotFound,
    NoAdaptersToTrain,
)
from service.adapters.schemas import AdapterBackfillConfig, AdapterRead
from service.context import AppContext
from service.errors import Problem
from service.jobs import service as jobs
from service.jobs.schemas import JobRead
from service.models import Job, JobKind, JobPriority, Owner, Task
from service.settings import Settings
from service.transfers.schemas import TransferSettings
from service.transfers.service import with_size_defaults
from workers.adapter_library import AdapterBusy as LibraryBusy
from workers.adapter_library import AdapterLibrary, StoredAdapter


def library(settings: Settings) -> AdapterLibrary:
    # Listing and deleting do not depend on an encoder: every encoder's adapters are shown
    return AdapterLibrary(settings.adapters_dir, encoder_id="")


def list_adapters(settings: Settings, task: str | None = None) -> list[AdapterRead]:
    """Every adapter in the library, newest first (``task``: of that task only)."""
    found = library(settings).entries()
    return [_read(a) for a in found if task is None or a.task == task]


def delete_adapter(settings: Settings, key: str) -> None:
    """Remove one adapter; the next transfer that needs it trains it again."""
    try:
        deleted = library(settings).delete(key)
    except LibraryBusy as error:
        raise AdapterBusy(str(error)) from None
    if not deleted:
        raise AdapterNotFound(f"no adapter {key!r}")


def backfill(
    session: Session, context: AppContext, admin: Owner, task_ids: list[int] | None = None
) -> JobRead:
    """Queue the training of library tasks' adapters (``task_ids``; default every library task
    a transfer can take as its source) as one backfill job, below owners' jobs."""
    if task_ids is None:
        tasks = [t for t in repository.library_tasks(session) if not _why_not_source(t)]
    else:
        tasks = _named_sources(session, task_ids)
    if not tasks:
        raise NoAdaptersToTrain("the library has no task with labels and validation rows")
    job = queue_backfill(session, context, admin.id, tasks, JobPriority.BACKFILL)
    return jobs.read_models(session, context.settings, [job])[0]


def entered_library(
    session: Session, context: AppContext, owner_id: int, tasks: list[Task]
) -> Job | None:
    """Queue the adapters of tasks that just entered the library, when the deployment trains
    them on entry (``adapter_backfill_on_register``): after the library's embeddings."""
    sources = [t for t in tasks if not _why_not_source(t)]
    if not context.settings.adapter_backfill_on_register or not sources:
        return None
    return queue_backfill(session, context, owner_id, sources, JobPriority.BACKFILL_ADAPTERS)


def queue_backfill(
    session: Session, context: AppContext, owner_id: int, tasks: list[Task], priority: int
) -> Job:
    """The backfill job training ``tasks``' adapters for the service's transfer model, each as
    the source stage of a default adapter transfer (``POST /v1/transfers``) trains it."""
    settings = context.settings
    default = with_size_defaults(TransferSettings(strategy="adapter"), settings)
    config = AdapterBackfillConfig(
        task_ids=[t.id for t in tasks],
        model=settings.model,
        device=settings.device,
        transfer=default,
    )
    return jobs.queue_job(
        session,
        context,
        owner_id,
        JobKind.ADAPTERS,
        config.model_dump(mode="json"),
        priority=priority,
        task_id=tasks[0].id if len(tasks) == 1 else None,  # its task's deletion cancels it
    )


def _named_sources(session: Session, task_ids: list[int]) -> list[Task]:
    """The library tasks ``task_ids`` names, in that order; 422 naming any that is not one
    or that a transfer could not take as its source."""
    found = {t.id: t for t in repository.library_tasks(session, task_ids)}
    problems = []
    for task_id in dict.fromkeys(task_ids):
        task = found.get(task_id)
        why = _why_not_source(task) if task else f"task {task_id} is not a library task"
        if why:
            problems.append(Problem(field="task_ids", message=why))
    if problems:
        message = "not every task named can have a library adapter"
        raise AdapterBackfillInvalid(message, problems=problems)
    return [found[task_id] for task_id in dict.fromkeys(task_ids)]


def _why_not_source(task: Task) -> str | None:
    """Why no transfer can take ``task`` as its source (so it needs no adapter), or None."""
    if not task.labelled:
        return f"task {task.name!r} has no labels to train an adapter on"
    if not (task.counts or {}).get("validation"):
        return f"task {task.name!r} has no validation rows (a transfer's sources need them)"
    return None


def _read(adapter: StoredAdapter) -> AdapterRead:
    stage = adapter.stage
    return AdapterRead.model_validate(
        {
            **adapter.to_dict(),  # its key, task, encoder, rows, epochs, seed and settings
            "seconds": round(float(stage["seconds"]), 2),
            "trainable_params": int(stage.get("trainable_params", 0)),
            "created_at": datetime.fromtimestamp(adapter.created_at, UTC),
        }
    )
