from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.models.base import Base, CreatedAt, utcnow


class JobState:
    """queued → running → succeeded | failed | cancelled (running → queued again on retry)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    ALL = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
    ACTIVE = (QUEUED, RUNNING)
    FINAL = (SUCCEEDED, FAILED, CANCELLED)


class JobKind:
    EMBED = "embed"
    TRANSFER = "transfer"
    IMPORT = "import"  # load a Hub dataset and create its task (light: the embed queue)
    SWEEP = "sweep"  # a batch's source × target sweep: each source trained once, resumable
    # Library tasks measured as donors on a fixed probe set: backfill, below owners' jobs
    CALIBRATE = "calibrate"
    # Library tasks' source adapters trained ahead of their first adapter transfer: backfill
    ADAPTERS = "adapters"

    QUEUES: ClassVar[dict[str, str]] = {
        EMBED: "embed",
        TRANSFER: "finetune",
        IMPORT: "embed",
        SWEEP: "finetune",
        CALIBRATE: "backfill",
        ADAPTERS: "backfill",
    }


class JobPriority:
    """Workers take the highest priority first (then the oldest): owners' jobs go ahead of the
    service's own backfill, so an owner waits behind at most the backfill jobs already running."""

    OWNER = 0
    BACKFILL = -10
    BACKFILL_SLOW = -11  # backfill expected to take long (a library task with nothing cached)
    # Adapters of newly registered library tasks: after the library's embeddings, which
    # recommendations need (a transfer without a stored adapter trains its own)
    BACKFILL_ADAPTERS = -12


class Job(CreatedAt, Base):
    """The source of truth for a background job: state, progress, attempts and its result."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_run_after", "state", "run_after"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    queue: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED)
    priority: Mapped[int] = mapped_column(default=JobPriority.OWNER)
    task_id: Mapped[int | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="SET NULL"), index=True
    )
    batch_id: Mapped[int | None] = mapped_column(
        ForeignKey("batches.id", ondelete="SET NULL"), index=True
    )
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the typed job config, dumped
    result: Mapped[dict[str, Any] | None] = mapped_column()
    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    stage: Mapped[str | None] = mapped_column(String(200))
    step: Mapped[int] = mapped_column(default=0)
    total: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    claim_token: Mapped[str | None] = mapped_column(String(32))  # the attempt that owns the row
    worker: Mapped[str | None] = mapped_column(String(200))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # seconds per stage
    run_after: Mapped[datetime] = mapped_column(default=utcnow)  # retry back-off
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
