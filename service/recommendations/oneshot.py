"""The one-shot form: submit task data, get recommendations once its embeddings are ready.

Each step is its own unit of work (the task must commit before a worker can embed it), and the
wait in between holds no transaction.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from service.context import AppContext
from service.db import unit_of_work
from service.deadline import remaining_s
from service.jobs import repository as jobs
from service.jobs.schemas import JobRead
from service.models import JobState, Owner
from service.recommendations import service
from service.recommendations.schemas import Recommendations
from service.tasks import service as tasks
from service.tasks.schemas import TaskRead
from service.tasks.uploads import StagedUpload


class OneShot(BaseModel):
    task: TaskRead
    job: JobRead
    recommendations: Recommendations | None  # None while the job runs: poll the job, then GET


ANSWER_MARGIN_S = 10.0  # kept from the request deadline for ranking and answering


async def submit_and_recommend(
    context: AppContext,
    owner_id: int,
    staged: StagedUpload,
    *,
    k: int,
    method: str,
    task_type: str | None,
    wait_s: float,
) -> OneShot:
    task_id, job_id = await run_in_threadpool(_submit, context, owner_id, staged)
    # The task is committed now: the wait ends in time to answer 202 with it (the job to poll)
    # rather than let the request deadline turn the answer into a 503
    wait_s = min(wait_s, remaining_s() - ANSWER_MARGIN_S)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        state = await run_in_threadpool(_job_state, context, job_id)
        if state in JobState.FINAL:
            break
        await asyncio.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    return await run_in_threadpool(
        _result, context, owner_id, task_id, job_id, k, method, task_type
    )


def _submit(context: AppContext, owner_id: int, staged: StagedUpload) -> tuple[int, int]:
    with unit_of_work(context.session_factory) as session:
        owner = session.get(Owner, owner_id)
        task = tasks.create_task(session, context, owner, staged)
        job = jobs.latest_for_task(session, task.id, "embed")
        return task.id, job.id


def _job_state(context: AppContext, job_id: int) -> str | None:
    with unit_of_work(context.session_factory) as session:
        job = jobs.get(session, job_id)
        return job.state if job else None


def _result(context, owner_id, task_id, job_id, k, method, task_type) -> OneShot:
    with unit_of_work(context.session_factory) as session:
        owner = session.get(Owner, owner_id)
        task = tasks.visible(session, owner, task_id)
        job = jobs.get(session, job_id)
        ranked = None
        if job.state == JobState.SUCCEEDED:
            ranked = service.recommend(
                session, context, task, k=k, method=method, task_type=task_type, owner_id=owner.id
            )
        return OneShot(
            task=tasks.read_model(session, context.settings, task),
            job=JobRead.of(job),
            recommendations=ranked,
        )
