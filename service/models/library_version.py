from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, utcnow


class LibraryVersion(Base):
    """Bumped in every transaction that changes the library's vectors for one encoder.

    Each FAISS index file records the version it reflects; a mismatch means stale.
    """

    __tablename__ = "library_versions"

    encoder_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    version: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
