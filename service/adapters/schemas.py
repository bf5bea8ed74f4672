from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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
