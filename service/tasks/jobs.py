"""The import job: load a Hub dataset (network, so never inside a request) and create its task.

The job's config is the request (``TaskHfCreate``). The task is created in the transaction that
marks the job succeeded, with ``task_id`` and ``result.task_id`` naming it; a dataset that fails
to load or validate fails the job with the problems in its error and leaves no task or file.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.errors import Problem, ServiceError
from service.jobs import repository as job_repository
from service.jobs.runner import RunningJob
from service.models import Owner
from service.tasks import hf, service
from service.tasks.schemas import TaskHfCreate
from service.tasks.uploads import StagedUpload, stage_hf

MAX_PROBLEMS_SHOWN = 10  # the error holds at most 2,000 characters


class DatasetRejected(Exception):
    """The dataset is not a valid task; the message says why."""


class OwnerGone(Exception):
    """The job's owner was deleted before its task could be stored."""


def run(job: RunningJob) -> None:
    request = TaskHfCreate.model_validate(job.config)
    staged = stage_hf(request, job.settings.staging_dir)
    try:
        loaded = _rejecting(lambda: hf.load(staged, job.settings, hub=True))
        job.check()
        job.complete(lambda session: _create(session, job, loaded))
    finally:
        staged.discard()


def _create(session: Session, job: RunningJob, loaded: StagedUpload) -> dict:
    owner = session.get(Owner, job.owner_id)
    if owner is None:
        raise OwnerGone(f"owner {job.owner_id} was deleted")
    task = _rejecting(lambda: service.create_task(session, job.context, owner, loaded))
    job_repository.get(session, job.id).task_id = task.id
    session.flush()
    return {"task_id": task.id, "task": task.name, "counts": task.counts}


def _rejecting(step):
    """``step()``, with a rejection (invalid rows, name taken, too large) as the job's error."""
    try:
        return step()
    except ServiceError as exc:
        raise DatasetRejected(_message(exc.message, exc.problems or [])) from None


def _message(message: str, problems: list[Problem]) -> str:
    shown = [_describe(p) for p in problems[:MAX_PROBLEMS_SHOWN]]
    more = len(problems) - len(shown)
    details = "; ".join(shown + ([f"{more} more"] if more > 0 else []))
    return f"{message}: {details}" if details else message


def _describe(problem: Problem) -> str:
    where = [problem.file, f"row {problem.row}" if problem.row else None, problem.field]
    place = ", ".join(w for w in where if w)
    return f"{place}: {problem.message}" if place else problem.message
