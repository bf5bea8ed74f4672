"""The dashboard's own read queries (everything else it shows comes from the domains')."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import Embedding, Task


def library_encoder(session: Session, model: str, method: str) -> str | None:
    """The encoder id of ``model`` with the most library tasks embedded by ``method``."""
    query = (
        select(Embedding.encoder_id, func.count(func.distinct(Embedding.task_id)).label("n"))
        .join(Task, Task.id == Embedding.task_id)
        .where(Task.is_library.is_(True), Embedding.model == model, Embedding.method == method)
        .group_by(Embedding.encoder_id)
        .order_by(func.count(func.distinct(Embedding.task_id)).desc())
        .limit(1)
    )
    row = session.execute(query).first()
    return row[0] if row else None


def components(session: Session, encoder_id: str, method: str) -> list[str]:
    """The components ``method`` stores for this encoder, in name order."""
    query = (
        select(Embedding.component)
        .where(Embedding.encoder_id == encoder_id, Embedding.method == method)
        .distinct()
    )
    return sorted(session.scalars(query))
