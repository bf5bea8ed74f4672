from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, CreatedAt, utcnow


class TaskStatus:
    EMBEDDING = "embedding"  # its embedding job is queued or running
    READY = "ready"  # embeddings computed: it can be ranked and recommended for
    FAILED = "failed"  # its last embedding job failed

    ALL = (EMBEDDING, READY, FAILED)


class TaskSource:
    UPLOAD = "upload"  # multipart files
    ROWS = "rows"  # a JSON body with rows
    FOLDER = "folder"  # a task folder on the server, registered by an admin
    HF = "hf"  # a Hugging Face dataset (Hub or save_to_disk folder), stored as JSONL files

    ALL = (UPLOAD, ROWS, FOLDER, HF)


class Task(CreatedAt, Base):
    """A task's manifest and summary; its rows live in files (``task_files`` or a folder)."""

    __tablename__ = "tasks"
    __table_args__ = (
        # An owner's own tasks have unique names, and so have the library's: the admin who
        # registered the library may still submit a task named as a library task.
        UniqueConstraint("owner_id", "name", "is_library"),
        # Recommendations count the library (of one type) on every request: a covering index.
        Index("ix_tasks_library_type", "is_library", "type"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(32), index=True)
    metric: Mapped[str] = mapped_column(String(32))
    labels: Mapped[list[Any]] = mapped_column(default=list)
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)  # what load_files was given
    source: Mapped[str] = mapped_column(String(16))
    folder: Mapped[str | None] = mapped_column(Text)  # the task folder (source "folder")
    storage: Mapped[str | None] = mapped_column(Text)  # artefact folder, relative to artifacts
    content_hash: Mapped[str] = mapped_column(String(64))
    data_hash: Mapped[str | None] = mapped_column(String(64), index=True)  # rows only: no name
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # rows per split
    label_distribution: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.EMBEDDING, index=True)
    is_library: Mapped[bool] = mapped_column(default=False, index=True)
    # False: no row has a label (a new task's data before anyone labelled it): it is embedded
    # by TextEmb and SEmb alone (TaskEmb's Fisher needs labels) and cannot be a transfer target
    labelled: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
