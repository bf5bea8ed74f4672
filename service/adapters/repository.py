"""The library tasks whose adapters the backfill trains."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import Task


def library_tasks(session: Session, task_ids: list[int] | None = None) -> list[Task]:
    """Library tasks by id (``task_ids``: of those only, whichever are in the library)."""
    query = select(Task).where(Task.is_library.is_(True)).order_by(Task.id)
    if task_ids is not None:
        query = query.where(Task.id.in_(task_ids))
    return list(session.scalars(query))
