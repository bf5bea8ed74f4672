from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from service.dependencies import DbId
from service.transfers.schemas import TransferSettings


class AdapterRead(BaseModel):
    """One trained source adapter (adapter and fusion strategies reuse it)."""

    key: str = Field(description="hash of what decides its weights")
    task: str
    encoder: str = Field(description="the frozen encoder it adapts, name@revision")
    rows: int = Field(description="training rows")
    epochs: float
    seed: int
    settings: dict[str, Any]
    seconds: float = Field(description="how long its training took")
    trainable_params: int
    created_at: datetime


class AdapterList(BaseModel):
    items: list[AdapterRead]
    total: int


class AdapterBackfill(BaseModel):
    """Which library tasks' adapters to train ahead of use."""

    task_ids: list[DbId] | None = Field(
        None, min_length=1, max_length=10_000, description="default: every library task"
    )


class AdapterBackfillConfig(BaseModel):
    """The typed config an adapter backfill job is stored with."""

    task_ids: list[int]
    model: str  # the encoder the adapters adapt: the service's default transfer model
    device: str | None = None
    # A default adapter transfer's settings, the deployment's sizes filled in: the source stage
    # is trained with these, so that transfer finds its adapter stored
    transfer: TransferSettings
