"""Library versions (what the FAISS files are compared with) and library counts."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.models import LibraryVersion, Task, utcnow


def version(session: Session, encoder_id: str) -> int:
    query = select(LibraryVersion.version).where(LibraryVersion.encoder_id == encoder_id)
    return session.scalar(query) or 0


def bump(session: Session, encoder_id: str) -> tuple[int, int]:
    """Increment the encoder's library version in this transaction; returns (old, new)."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    statement = (
        insert(LibraryVersion)
        .values(encoder_id=encoder_id, version=1, updated_at=now)
        .on_conflict_do_update(
            index_elements=["encoder_id"],
            set_={"version": LibraryVersion.version + 1, "updated_at": now},
        )
    )
    session.execute(statement)
    new = version(session, encoder_id)
    return new - 1, new


def library_total(session: Session, task_type: str | None = None) -> int:
    query = select(func.count()).select_from(Task).where(Task.is_library.is_(True))
    if task_type:
        query = query.where(Task.type == task_type)
    return session.scalar(query) or 0


def same_data(session: Session, task: Task) -> list[tuple[int, str]]:
    """(id, name) of the library tasks other than ``task`` that hold exactly its rows."""
    if not task.data_hash:
        return []
    query = select(Task.id, Task.name).where(
        Task.is_library.is_(True), Task.data_hash == task.data_hash, Task.id != task.id
    )
    return [(task_id, name) for task_id, name in session.execute(query.order_by(Task.id))]


def library_count_of(session: Session, ids: set[int], task_type: str | None = None) -> int:
    """How many of ``ids`` are library tasks (of ``task_type``)."""
    query = (
        select(func.count()).select_from(Task).where(Task.is_library.is_(True), Task.id.in_(ids))
    )
    if task_type:
        query = query.where(Task.type == task_type)
    return session.scalar(query) or 0


def library_train_sizes(session: Session) -> dict[int, int]:
    """Training rows of every library task (0 when unknown)."""
    query = select(Task.id, Task.counts).where(Task.is_library.is_(True))
    return {i: int((counts or {}).get("train", 0)) for i, counts in session.execute(query)}
