from __future__ import annotations

from typing import Any

from sqlalchemy import Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, CreatedAt


class TransferResult(CreatedAt, Base):
    """What a transfer run measured: per-stage metrics, baseline, transfer and the gain."""

    __tablename__ = "transfer_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("transfer_runs.id", ondelete="CASCADE"), unique=True
    )
    metric: Mapped[str] = mapped_column(String(32))
    baseline_mean: Mapped[float] = mapped_column(Float)
    baseline_std: Mapped[float] = mapped_column(Float)
    transfer_mean: Mapped[float] = mapped_column(Float)
    transfer_std: Mapped[float] = mapped_column(Float)
    gain_mean: Mapped[float] = mapped_column(Float)
    gain_std: Mapped[float] = mapped_column(Float)
    per_seed: Mapped[dict[str, Any]] = mapped_column(default=dict)  # baseline/transfer/gain lists
    stages: Mapped[list[Any]] = mapped_column(default=list)  # one entry per training stage
