from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, CreatedAt


class Embedding(CreatedAt, Base):
    """One component vector (float32 bytes) of one task's embedding by one method and encoder."""

    __tablename__ = "embeddings"
    __table_args__ = (
        UniqueConstraint("task_id", "encoder_id", "method", "component"),
        Index("ix_embeddings_encoder_method_component", "encoder_id", "method", "component"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    model: Mapped[str] = mapped_column(String(500))  # the model name the job was asked for
    encoder_id: Mapped[str] = mapped_column(String(300))  # name@revision: never mix across these
    encoder_name: Mapped[str] = mapped_column(String(300))
    model_revision: Mapped[str] = mapped_column(String(100))
    method: Mapped[str] = mapped_column(String(16))  # taskemb | textemb | semb
    component: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int]
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian, `dim` values
    num_examples: Mapped[int]
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifact: Mapped[str | None] = mapped_column(Text)  # the method's .npz, relative to artifacts
