from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, CreatedAt


class EvidenceOrigin:
    SWEEP = "sweep"  # a sweep CSV the deployment ships (TASKREC_EVIDENCE_FILES)
    IMPORT = "import"  # a file an admin imported
    CALIBRATION = "calibration"  # the service's calibration job (library tasks as donors)

    ALL = (SWEEP, IMPORT, CALIBRATION)


class EvidenceSet(CreatedAt, Base):
    """A named set of measured transfers: which model was fine-tuned, under what protocol, and
    where the numbers came from. Its rows are ``evidence_rows``."""

    __tablename__ = "evidence_sets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # The model that was fine-tuned, normalised (workers.selection.evidence.transfer_model_name)
    transfer_model: Mapped[str] = mapped_column(String(300), index=True)
    protocol: Mapped[dict[str, Any]] = mapped_column(default=dict)  # rows, epochs, regime, ...
    origin: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(2000))  # where it came from, in words
    # Ranks this transfer model's requests when none names a set (all defaults share a protocol)
    is_default: Mapped[bool] = mapped_column(default=False)
    # Of the imported bytes (a calibration's: of its rows); part of the evidence stamp
    file_hash: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)  # rows, targets, sources, ...
    created_by: Mapped[int | None] = mapped_column(ForeignKey("owners.id", ondelete="SET NULL"))
