"""Submitting, reading and cancelling jobs. Jobs reach a worker only after their row commits."""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy.orm import Session

from service.context import AppContext
from service.db import on_commit
from service.jobs import repository
from service.jobs.dispatch import Dispatcher
from service.jobs.exceptions import JobFinished, JobNotFound
from service.jobs.runner import run_final_hook
from service.jobs.schemas import JobRead
from service.models import Job, JobKind, JobPriority, JobState, Owner, utcnow
from service.settings import Settings


def submit(
    session: Session,
    dispatcher: Dispatcher,
    *,
    owner_id: int,
    kind: str,
    config: dict[str, Any],
    max_attempts: int,
    task_id: int | None = None,
    batch_id: int | None = None,
    priority: int = JobPriority.OWNER,
) -> Job:
    """Add a queued job; it is handed to a worker once the transaction commits."""
    job = Job(
        owner_id=owner_id,
        kind=kind,
        # Backfill has its own broker queue, so owners' workers are never taken by it
        queue=JobKind.QUEUES[kind] if priority >= JobPriority.OWNER else "backfill",
        state=JobState.QUEUED,
        priority=priority,
        config=config,
        task_id=task_id,
        batch_id=batch_id,
        max_attempts=max_attempts,
    )
    session.add(job)
    session.flush()
    on_commit(session, partial(dispatcher.enqueue, job.id, job.queue, 0.0))
    return job


def queue_job(
    session: Session, context: AppContext, owner_id: int, kind: str, config: dict[str, Any], **ids
) -> Job:
    """``submit`` with the context's dispatcher and retry budget; ``ids``: task_id, batch_id
    (and ``priority``)."""
    return submit(
        session,
        context.dispatcher,
        owner_id=owner_id,
        kind=kind,
        config=config,
        max_attempts=context.settings.job_max_attempts,
        **ids,
    )


def read_models(session: Session, settings: Settings, jobs: list[Job]) -> list[JobRead]:
    """The jobs as the API shows them, each queued one with its place in the queue (per broker
    queue with Celery; embedded workers take every queue)."""
    places = repository.queue_positions(session, jobs, per_queue=settings.broker_url is not None)
    return [JobRead.of(job, places.get(job.id)) for job in jobs]


def visible(session: Session, owner: Owner, job_id: int) -> Job:
    job = repository.visible(session, owner, job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id}")
    return job


def page(session: Session, owner: Owner, **filters: Any) -> tuple[list[Job], int]:
    return repository.page(session, owner, **filters)


def cancel(session: Session, job: Job) -> Job:
    """A queued job is cancelled at once; a running one stops at its next step."""
    if job.state in JobState.FINAL:
        raise JobFinished(f"job {job.id} has already {job.state}")
    if repository.cancel_if_queued(session, job.id, utcnow()):
        run_final_hook(session, job.id)
    else:
        job.cancel_requested = True
    session.flush()
    session.refresh(job)
    return job


def cancel_many(session: Session, owner: Owner, state: str | None, kind: str | None) -> list[Job]:
    """Cancel every active job the owner can see (an admin: any) in ``state`` and of
    ``kind``; returns those asked to stop."""
    states = [state] if state else list(JobState.ACTIVE)
    found = repository.active(session, owner, states, kind)
    return [cancel(session, job) for job in found]


def cancel_for_task(session: Session, task_id: int) -> None:
    """Ask every active job of a task to stop (the task is going away)."""
    for job in repository.active_for_task(session, task_id):
        if not repository.cancel_if_queued(session, job.id, utcnow()):
            job.cancel_requested = True
