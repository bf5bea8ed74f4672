from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from service.auth.dependencies import CurrentOwner
from service.auth.exceptions import NotAuthenticated
from service.context import AppContext
from service.db import unit_of_work
from service.dependencies import ContextDep, SessionDep
from service.errors import responses
from service.jobs import repository, service
from service.jobs.dependencies import VisibleJob
from service.jobs.exceptions import JobFinished, JobNotFound
from service.jobs.schemas import JobPage, JobRead
from service.models import JobState

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=responses(NotAuthenticated))


@router.get("", response_model=JobPage)
def list_jobs(
    owner: CurrentOwner,
    session: SessionDep,
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
    kind: str | None = None,
    task_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobPage:
    """The caller's jobs, newest first."""
    filters = {"state": state, "kind": kind, "task_id": task_id, "limit": limit, "offset": offset}
    items, total = service.page(session, owner, **filters)
    return JobPage(items=[JobRead.of(j) for j in items], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobRead, responses=responses(JobNotFound))
def read_job(job: VisibleJob) -> JobRead:
    """State, progress, stage, timings and error of one job."""
    return JobRead.of(job)


@router.post(
    "/{job_id}/cancel", response_model=JobRead, responses=responses(JobNotFound, JobFinished)
)
def cancel_job(job: VisibleJob, session: SessionDep) -> JobRead:
    """Cancel a job: at once if queued, at its next step if running."""
    return JobRead.of(service.cancel(session, job))


@router.get(
    "/{job_id}/events",
    responses={
        **responses(JobNotFound),
        200: {"content": {"text/event-stream": {}}, "description": "progress events"},
    },
)
def job_events(job: VisibleJob, context: ContextDep) -> EventSourceResponse:
    """Server-Sent Events: ``progress`` whenever the job changes, then one ``end``."""
    return EventSourceResponse(_events(context, job.id), ping=15)


async def _events(context: AppContext, job_id: int) -> AsyncIterator[dict]:
    last = None
    while True:
        job = await run_in_threadpool(_read, context, job_id)
        if job is None:
            return
        data = job.model_dump_json()
        if data != last:
            last = data
            yield {"event": "progress", "data": data}
        if job.state in JobState.FINAL:
            yield {"event": "end", "data": json.dumps({"id": job.id, "state": job.state})}
            return
        await asyncio.sleep(context.settings.sse_poll_interval_s)


def _read(context: AppContext, job_id: int) -> JobRead | None:
    with unit_of_work(context.session_factory) as session:
        job = repository.get(session, job_id)
        return JobRead.of(job) if job else None
