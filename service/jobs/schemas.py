from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from service.models import Job, JobKind, JobState, utcnow

JobStateName = Literal[JobState.ALL]  # type: ignore[valid-type]
JobKindName = Literal[tuple(JobKind.QUEUES)]  # type: ignore[valid-type]
ActiveStateName = Literal[JobState.ACTIVE]  # type: ignore[valid-type]


class JobTimings(BaseModel):
    queued_s: float | None  # from submission to the start of the first attempt
    run_s: float | None  # from that start to the end (or to now, while running)
    stages: dict[str, float]  # seconds per engine stage of the latest attempt
    # While running: the seconds left if the rest goes as fast as the part done (from 2% on)
    eta_s: float | None = None


class JobRead(BaseModel):
    id: int
    kind: str
    state: str
    queue: str = ""  # embed | finetune | backfill (the service's own work: library embedding, ...)
    priority: int = 0  # owners' jobs 0, backfill -10: workers take higher priorities first
    # While queued: 1 when it is next; jobs ahead of it are the queued ones its workers take first
    queue_position: int | None = None
    task_id: int | None
    batch_id: int | None
    progress: float  # percent, 0-100
    stage: str | None
    step: int
    total: int
    attempts: int
    max_attempts: int
    worker: str | None  # host:pid/name of the worker running (or that ran) the latest attempt
    cancel_requested: bool
    error: str | None
    result: dict[str, Any] | None
    config: dict[str, Any]
    timings: JobTimings
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None

    @classmethod
    def of(cls, job: Job, queue_position: int | None = None) -> JobRead:
        return cls(
            id=job.id,
            kind=job.kind,
            state=job.state,
            queue=job.queue,
            priority=job.priority,
            queue_position=queue_position if job.state == JobState.QUEUED else None,
            task_id=job.task_id,
            batch_id=job.batch_id,
            progress=round(100.0 * job.progress, 1),
            stage=job.stage,
            step=job.step,
            total=job.total,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            worker=job.worker,
            cancel_requested=job.cancel_requested,
            error=job.error,
            result=job.result,
            config=job.config,
            timings=_timings(job),
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            heartbeat_at=job.heartbeat_at,
        )


def _timings(job: Job) -> JobTimings:
    queued = run = None
    if job.started_at:
        queued = (job.started_at - job.created_at).total_seconds()
        run = ((job.finished_at or utcnow()) - job.started_at).total_seconds()
    stages = (job.timings or {}).get("stages", {})
    eta = None
    if job.state == JobState.RUNNING and run is not None and job.progress >= 0.02:
        eta = round(run * (1 - job.progress) / job.progress, 1)
    return JobTimings(queued_s=queued, run_s=run, stages=stages, eta_s=eta)


class JobPage(BaseModel):
    items: list[JobRead]
    total: int
    limit: int
    offset: int
