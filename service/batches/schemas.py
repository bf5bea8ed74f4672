from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from service.dependencies import DbId
from service.jobs.schemas import JobRead
from service.tasks.schemas import TaskRowsCreate
from service.transfers.schemas import MixingSettings, TransferSettings


class TasksBatch(BaseModel):
    """Many tasks as JSON rows: accepted all together (one embedding job each) or not at all."""

    kind: Literal["tasks"]
    description: str | None = Field(None, max_length=500)
    tasks: list[TaskRowsCreate] = Field(min_length=1, max_length=100)


class SweepBatch(BaseModel):
    """One transfer run per (source, target) pair, source ≠ target, measured by one sweep job:
    each source trained once, each target × seed's baseline once (``workers.sweep``). A
    ``fusion`` sweep makes one run per target instead, fusing every source but the target."""

    kind: Literal["sweep"]
    description: str | None = Field(None, max_length=500)
    sources: list[DbId] = Field(min_length=1, max_length=100)
    targets: list[DbId] = Field(min_length=1, max_length=100)
    transfer: TransferSettings = TransferSettings()

    @model_validator(mode="after")
    def _one_set_of_stage_settings(self) -> SweepBatch:
        # A sweep trains its sources with the target stage's batch size, learning rate and step
        # cap (they are part of what its results file pins): refuse others rather than drop them.
        source, target = self.transfer.source_train, self.transfer.target_train
        for name in ("batch_size", "learning_rate", "max_steps"):
            if getattr(source, name) != getattr(target, name):
                raise ValueError(
                    f"transfer.source_train.{name} must equal transfer.target_train.{name} in a "
                    "sweep: both stages train with one batch size, learning rate and max_steps "
                    "(only epochs may differ)"
                )
        # Nor does a sweep take what its pinned settings do not hold (it would drop them)
        if self.transfer.mixing != MixingSettings():
            raise ValueError("transfer.mixing: a sweep trains one source per run, unmixed")
        for stage in (source, target):
            if stage.unfreezing != "none" or stage.layer_lr_decay != 1.0:
                raise ValueError(
                    "transfer.source_train/target_train: a sweep trains every layer at one "
                    "rate (no unfreezing or layer_lr_decay)"
                )
        return self


BatchCreate = Annotated[TasksBatch | SweepBatch, Field(discriminator="kind")]


class BatchRead(BaseModel):
    id: int
    kind: str
    description: str | None
    state: str  # queued | running | succeeded | failed | cancelled, over the child jobs
    progress: float  # percent, mean over the child jobs
    counts: dict[str, int]  # child jobs per state
    task_ids: list[int]  # tasks created by a "tasks" batch
    transfer_ids: list[int]  # runs created by a "sweep" batch
    jobs: list[JobRead]
    created_at: datetime


class BatchPage(BaseModel):
    items: list[BatchRead]
    total: int
    limit: int
    offset: int


class SweepPair(BaseModel):
    """A source and target of the run ``run_id`` (a fusion run has one pair per source)."""

    source_task_id: int
    target_task_id: int
    run_id: int


class SweepJobConfig(BaseModel):
    """The typed config a sweep job is stored with."""

    batch_id: int
    pairs: list[SweepPair]
    transfer: TransferSettings
    model: str
    device: str | None = None
