"""Every query on tasks and their files."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from service.models import Owner, Task, TaskFile


def get(session: Session, task_id: int) -> Task | None:
    return session.get(Task, task_id)


def visible(session: Session, owner: Owner, task_id: int) -> Task | None:
    """The task if the owner may see it: their own, a library task, or any for an admin."""
    task = session.get(Task, task_id)
    if task is None:
        return None
    if owner.is_admin or task.owner_id == owner.id or task.is_library:
        return task
    return None


def page(
    session: Session,
    owner: Owner,
    *,
    type: str | None,
    status: str | None,
    library: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[Task], int]:
    query = select(Task)
    if not owner.is_admin:
        query = query.where(or_(Task.owner_id == owner.id, Task.is_library.is_(True)))
    if type:
        query = query.where(Task.type == type)
    if status:
        query = query.where(Task.status == status)
    if library is not None:
        query = query.where(Task.is_library.is_(library))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Task.id).limit(limit).offset(offset))
    return list(rows), total


def files_of(session: Session, task_ids: list[int]) -> dict[int, list[TaskFile]]:
    found: dict[int, list[TaskFile]] = {task_id: [] for task_id in task_ids}
    if task_ids:
        query = select(TaskFile).where(TaskFile.task_id.in_(task_ids)).order_by(TaskFile.id)
        for file in session.scalars(query):
            found[file.task_id].append(file)
    return found


def name_taken(session: Session, owner_id: int, name: str) -> bool:
    """Whether the owner has a task of their own (not the library's) named ``name``."""
    query = select(Task.id).where(
        Task.owner_id == owner_id, Task.name == name, Task.is_library.is_(False)
    )
    return session.scalar(query) is not None


def library_name_taken(session: Session, name: str, except_id: int | None = None) -> bool:
    query = select(Task.id).where(Task.is_library.is_(True), Task.name == name)
    if except_id is not None:
        query = query.where(Task.id != except_id)
    return session.scalar(query) is not None


def library_by_folder(session: Session, folder: str) -> Task | None:
    return session.scalar(select(Task).where(Task.is_library.is_(True), Task.folder == folder))


def add(session: Session, task: Task, files: list[TaskFile]) -> Task:
    session.add(task)
    session.flush()
    for file in files:
        file.task_id = task.id
        session.add(file)
    session.flush()
    return task
