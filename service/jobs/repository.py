"""Every query on the jobs table. State changes are conditional updates, so two workers (or a
worker and the reaper) can never both own a job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from service.models import Job, JobPriority, JobState, Owner


def get(session: Session, job_id: int) -> Job | None:
    return session.get(Job, job_id)


def visible(session: Session, owner: Owner, job_id: int) -> Job | None:
    job = session.get(Job, job_id)
    if job is None or (job.owner_id != owner.id and not owner.is_admin):
        return None
    return job


def page(
    session: Session,
    owner: Owner,
    *,
    state: str | None,
    kind: str | None,
    task_id: int | None,
    limit: int,
    offset: int,
) -> tuple[list[Job], int]:
    query = select(Job)
    if not owner.is_admin:
        query = query.where(Job.owner_id == owner.id)
    if state:
        query = query.where(Job.state == state)
    if kind:
        query = query.where(Job.kind == kind)
    if task_id is not None:
        query = query.where(Job.task_id == task_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Job.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def latest_for_task(session: Session, task_id: int, kind: str) -> Job | None:
    query = select(Job).where(Job.task_id == task_id, Job.kind == kind).order_by(Job.id.desc())
    return session.scalar(query.limit(1))


def active_for_task(session: Session, task_id: int) -> list[Job]:
    query = select(Job).where(Job.task_id == task_id, Job.state.in_(JobState.ACTIVE))
    return list(session.scalars(query))


def next_runnable(
    session: Session, now: datetime, queues: Sequence[str] | None = None
) -> int | None:
    """The next job to claim: the highest priority, then the oldest. Backfill (priority below
    owners') runs one job at a time, so owners' jobs always find a worker free or freeing."""
    query = select(Job.id).where(Job.state == JobState.QUEUED, Job.run_after <= now)
    if queues is not None:
        query = query.where(Job.queue.in_(queues))
    backfill = Job.priority < JobPriority.OWNER
    if session.scalar(select(func.count(Job.id)).where(Job.state == JobState.RUNNING, backfill)):
        query = query.where(~backfill)
    return session.scalar(query.order_by(Job.priority.desc(), Job.id).limit(1))


def claim(session: Session, job_id: int, token: str, worker: str, now: datetime) -> bool:
    """queued → running for this attempt; False if someone else got there first."""
    # Backfill runs one job at a time: a backfill job is claimed only while none runs (checked
    # in the same statement, so two worker threads cannot both start one)
    running = aliased(Job)
    one_backfill = or_(
        Job.priority >= JobPriority.OWNER,
        ~exists().where(running.state == JobState.RUNNING, running.priority < JobPriority.OWNER),
    )
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.QUEUED, Job.run_after <= now, one_backfill)
        .values(
            state=JobState.RUNNING,
            attempts=Job.attempts + 1,
            claim_token=token,
            worker=worker,
            started_at=func.coalesce(Job.started_at, now),
            heartbeat_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def update_owned(session: Session, job_id: int, token: str, **values: Any) -> bool:
    """Update the job only while ``token``'s attempt still owns it."""
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.claim_token == token, Job.state == JobState.RUNNING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def active(session: Session, owner: Owner, states: list[str], kind: str | None) -> list[Job]:
    """Active jobs in ``states`` (of ``kind``) the owner may act on: their own, or any for an
    admin."""
    query = select(Job).where(Job.state.in_([s for s in states if s in JobState.ACTIVE]))
    if kind:
        query = query.where(Job.kind == kind)
    if not owner.is_admin:
        query = query.where(Job.owner_id == owner.id)
    return list(session.scalars(query.order_by(Job.id)))


def cancel_requested(session: Session, job_id: int) -> bool:
    return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def cancel_if_queued(session: Session, job_id: int, now: datetime) -> bool:
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.QUEUED)
        .values(state=JobState.CANCELLED, cancel_requested=True, finished_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def stale_running(session: Session, cutoff: datetime) -> list[Job]:
    query = select(Job).where(Job.state == JobState.RUNNING, Job.heartbeat_at < cutoff)
    return list(session.scalars(query))


def waiting_since(session: Session, cutoff: datetime) -> list[Job]:
    """Queued jobs untouched since ``cutoff`` (their message may never have reached a broker)."""
    query = select(Job).where(
        Job.state == JobState.QUEUED, Job.updated_at < cutoff, Job.run_after < cutoff
    )
    return list(session.scalars(query))


def release_stale(session: Session, job: Job, cutoff: datetime, values: dict[str, Any]) -> bool:
    """Take a silent job back from its (presumed dead) worker, if it is still silent."""
    result = session.execute(
        update(Job)
        .where(
            Job.id == job.id,
            Job.state == JobState.RUNNING,
            Job.claim_token == job.claim_token,
            Job.heartbeat_at < cutoff,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def counts_by_state(session: Session) -> dict[tuple[str, str], int]:
    rows = session.execute(select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state))
    return {(kind, state): count for kind, state, count in rows}


def queued_by_queue(session: Session) -> dict[str, int]:
    query = select(Job.queue, func.count()).where(Job.state == JobState.QUEUED).group_by(Job.queue)
    return dict(session.execute(query).tuples().all())


def durations(session: Session, since: datetime) -> list[tuple[str, datetime, datetime]]:
    query = select(Job.kind, Job.started_at, Job.finished_at).where(
        Job.state == JobState.SUCCEEDED, Job.finished_at >= since, Job.started_at.is_not(None)
    )
    return list(session.execute(query).tuples())


def queue_positions(session: Session, jobs: Sequence[Job], per_queue: bool) -> dict[int, int]:
    """Each queued job's place among the queued jobs its workers take first (1 = next): by
    priority, then age; across queues for embedded workers (they take any), else per queue."""
    waiting = [j for j in jobs if j.state == JobState.QUEUED]
    if not waiting:
        return {}
    query = select(Job.id, Job.queue).where(Job.state == JobState.QUEUED)
    order = session.execute(query.order_by(Job.priority.desc(), Job.id)).all()
    places: dict[int, int] = {}
    seen: dict[str, int] = {}
    for job_id, queue in order:
        key = queue if per_queue else ""
        seen[key] = seen.get(key, 0) + 1
        places[job_id] = seen[key]
    return {j.id: places[j.id] for j in waiting if j.id in places}
