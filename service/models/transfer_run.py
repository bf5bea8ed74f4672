from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, CreatedAt


class TransferRun(CreatedAt, Base):
    """A requested transfer: target, sources, strategy, regime and seeds (run by a job)."""

    __tablename__ = "transfer_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    target_task_id: Mapped[int | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="SET NULL"), index=True
    )
    target_name: Mapped[str] = mapped_column(String(200))
    sources: Mapped[list[Any]] = mapped_column(default=list)  # [{"id", "name"}] in stage order
    auto: Mapped[bool] = mapped_column(default=False)  # sources picked by recommendation
    strategy: Mapped[str] = mapped_column(String(16))
    regime: Mapped[str] = mapped_column(String(16))
    seeds: Mapped[list[Any]] = mapped_column(default=list)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # An admin shared its result as evidence for every owner (otherwise: its owner's alone)
    shared: Mapped[bool] = mapped_column(default=False)
