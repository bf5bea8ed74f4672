"""Every query on transfer runs and results."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import Job, Owner, TransferResult, TransferRun


def visible(session: Session, owner: Owner, run_id: int) -> TransferRun | None:
    run = session.get(TransferRun, run_id)
    if run is None or (run.owner_id != owner.id and not owner.is_admin):
        return None
    return run


def page(session: Session, owner: Owner, limit: int, offset: int) -> tuple[list[TransferRun], int]:
    query = select(TransferRun)
    if not owner.is_admin:
        query = query.where(TransferRun.owner_id == owner.id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(TransferRun.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def results(session: Session, run_ids: list[int]) -> dict[int, TransferResult]:
    if not run_ids:
        return {}
    query = select(TransferResult).where(TransferResult.run_id.in_(run_ids))
    return {r.run_id: r for r in session.scalars(query)}


def jobs(session: Session, job_ids: list[int]) -> dict[int, Job]:
    if not job_ids:
        return {}
    return {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(job_ids)))}


def result_for(session: Session, run_id: int) -> TransferResult | None:
    return session.scalar(select(TransferResult).where(TransferResult.run_id == run_id))
