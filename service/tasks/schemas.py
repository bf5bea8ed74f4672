from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.embeddings.schemas import EmbeddingStatus

TaskTypeName = Literal[
    "classification", "regression", "multiple_choice", "extractive_qa", "sequence_labeling"
]
TaskStatusName = Literal["embedding", "ready", "failed"]


class TaskRowsCreate(BaseModel):
    """A task submitted as JSON: the manifest fields plus the rows of each split."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    type: str | None = None
    labels: list[str] | str | None = Field(None, description="a list, or comma-separated")
    metric: str | None = None
    fields: dict[str, str] | None = Field(None, description="our field name -> your column name")
    train: list[Any]
    validation: list[Any] | None = None


class HfDatasetRef(BaseModel):
    """Where a Hugging Face dataset is and how its splits and columns map to a task's."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        min_length=1,
        max_length=500,
        description="a Hub dataset id (e.g. `glue`; loaded in a job), or the absolute path of a "
        "folder saved with `save_to_disk` under a library root on the server (loaded at once)",
    )
    config: str | None = Field(None, max_length=200, description="the configuration, e.g. `rte`")
    split_map: dict[Literal["train", "validation"], str] | None = Field(
        None, description="our split -> the dataset's (default: its train and validation splits)"
    )
    fields: dict[str, str] | None = Field(None, description="our field name -> dataset column")


class TaskHfCreate(BaseModel):
    """A task submitted as a reference to a Hugging Face dataset (``labels`` default to the
    names of the label column's ``ClassLabel``)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    type: str | None = None
    labels: list[str] | str | None = Field(None, description="a list, or comma-separated")
    metric: str | None = None
    hf: HfDatasetRef


class TaskFileRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    split: str
    filename: str
    format: str
    size_bytes: int
    rows: int
    sha256: str


class TaskRead(BaseModel):
    id: int
    name: str
    type: str
    metric: str
    labels: list[str]
    source: str
    is_library: bool
    status: str  # embedding | ready | failed
    # False: no row has a label; ranked by its text alone, never a transfer's target or source
    labelled: bool = True
    counts: dict[str, int]
    label_distribution: dict[str, Any]
    files: list[TaskFileRead]
    embedding: EmbeddingStatus
    created_at: datetime
    updated_at: datetime


class TaskPage(BaseModel):
    items: list[TaskRead]
    total: int
    limit: int
    offset: int
