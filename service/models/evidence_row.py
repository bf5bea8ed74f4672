from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base


class EvidenceRow(Base):
    """One measured transfer of an evidence set: source → target with a seed, and its baseline."""

    __tablename__ = "evidence_rows"
    __table_args__ = (UniqueConstraint("set_id", "source", "target", "seed"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    set_id: Mapped[int] = mapped_column(
        ForeignKey("evidence_sets.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    baseline: Mapped[float] = mapped_column(Float)
    gain: Mapped[float] = mapped_column(Float)
    metric: Mapped[str] = mapped_column(String(200), default="")
