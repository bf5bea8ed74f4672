from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query
from sse_starlette import EventSourceResponse

from service.auth.dependencies import CurrentOwner
from service.auth.exceptions import NotAuthenticated
from service.context import AppContext
from service.db import unit_of_work
from service.dependencies import MAX_DB_INT, ContextDep, Offset, SessionDep, SettingsDep
from service.errors import responses
from service.events import EVENT_STREAM, event_stream
from service.jobs import repository, service
from service.jobs.dependencies import VisibleJob
from service.jobs.exceptions import JobFinished, JobNotFound
from service.jobs.schemas import ActiveStateName, JobKindName, JobPage, JobRead, JobStateName

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=responses(NotAuthenticated))


@router.get("", response_model=JobPage)
def list_jobs(
    owner: CurrentOwner,
    session: SessionDep,
    settings: SettingsDep,
    state: JobStateName | None = None,
    kind: JobKindName | None = None,
    task_id: Annotated[int | None, Query(ge=1, le=MAX_DB_INT)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> JobPage:
    """The caller's jobs, newest first."""
    filters = {"state": state, "kind": kind, "task_id": task_id, "limit": limit, "offset": offset}
    items, total = service.page(session, owner, **filters)
    return JobPage(
        items=service.read_models(session, settings, items),
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post("/cancel", response_model=JobPage)
def cancel_jobs(
    owner: CurrentOwner,
    session: SessionDep,
    settings: SettingsDep,
    state: ActiveStateName | None = None,
    kind: JobKindName | None = None,
) -> JobPage:
    """Cancel your queued and running jobs at once (of one state or kind, if given); an admin's
    key cancels anyone's (a library backfill, say)."""
    cancelled = service.cancel_many(session, owner, state, kind)
    items = service.read_models(session, settings, cancelled)
    return JobPage(items=items, total=len(items), limit=len(items), offset=0)


@router.get("/{job_id}", response_model=JobRead, responses=responses(JobNotFound))
def read_job(job: VisibleJob, session: SessionDep, settings: SettingsDep) -> JobRead:
    """State, progress, stage, place in the queue, timings (and ETA) and error of one job."""
    return service.read_models(session, settings, [job])[0]


@router.post(
    "/{job_id}/cancel", response_model=JobRead, responses=responses(JobNotFound, JobFinished)
)
def cancel_job(job: VisibleJob, session: SessionDep) -> JobRead:
    """Cancel a job: at once if queued, at its next step if running."""
    return JobRead.of(service.cancel(session, job))


@router.get(
    "/{job_id}/events",
    responses={**responses(JobNotFound), **EVENT_STREAM},
)
def job_events(job: VisibleJob, context: ContextDep) -> EventSourceResponse:
    """Server-Sent Events: ``progress`` whenever the job changes, then one ``end``."""
    return event_stream(partial(_read, context, job.id), context.settings.sse_poll_interval_s)


def _read(context: AppContext, job_id: int) -> JobRead | None:
    with unit_of_work(context.session_factory) as session:
        job = repository.get(session, job_id)
        return service.read_models(session, context.settings, [job])[0] if job else None
