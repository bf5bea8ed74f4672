from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, CreatedAt


class Batch(CreatedAt, Base):
    """A group of child jobs submitted together (many tasks, or a source × target sweep)."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # tasks | sweep
    description: Mapped[str | None] = mapped_column(String(500))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
