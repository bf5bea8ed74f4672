from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, CreatedAt


class TaskFile(CreatedAt, Base):
    """One uploaded split of a task, as stored in the artefact directory."""

    __tablename__ = "task_files"
    __table_args__ = (UniqueConstraint("task_id", "split"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(255))  # as the client named it (display only)
    path: Mapped[str] = mapped_column(Text)  # relative to the artefact directory
    format: Mapped[str] = mapped_column(String(8))  # jsonl | csv | tsv
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int]
