"""Every query on batches and their child jobs."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import Batch, Job, Owner, TransferRun


def visible(session: Session, owner: Owner, batch_id: int) -> Batch | None:
    batch = session.get(Batch, batch_id)
    if batch is None or (batch.owner_id != owner.id and not owner.is_admin):
        return None
    return batch


def page(session: Session, owner: Owner, limit: int, offset: int) -> tuple[list[Batch], int]:
    query = select(Batch)
    if not owner.is_admin:
        query = query.where(Batch.owner_id == owner.id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Batch.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def jobs_of(session: Session, batch_ids: list[int]) -> dict[int, list[Job]]:
    found: dict[int, list[Job]] = {i: [] for i in batch_ids}
    if batch_ids:
        query = select(Job).where(Job.batch_id.in_(batch_ids)).order_by(Job.id)
        for job in session.scalars(query):
            found[job.batch_id].append(job)
    return found


def transfer_ids(session: Session, job_ids: list[int]) -> dict[int, list[int]]:
    """job id -> its transfer run ids (one for a transfer job, one per pair for a sweep job)."""
    found: dict[int, list[int]] = {}
    if not job_ids:
        return found
    query = (
        select(TransferRun.job_id, TransferRun.id)
        .where(TransferRun.job_id.in_(job_ids))
        .order_by(TransferRun.id)
    )
    for job_id, run_id in session.execute(query).tuples():
        found.setdefault(job_id, []).append(run_id)
    return found
