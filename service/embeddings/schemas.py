from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from service.settings import Settings
from workers.similarity import EMBEDDING_METHODS

Method = Literal[EMBEDDING_METHODS]  # type: ignore[valid-type]
ALL_METHODS: list[Method] = list(EMBEDDING_METHODS)


class EmbedConfig(BaseModel):
    """The typed config an embedding job is stored with; it decides the vectors' values."""

    model: str
    methods: list[Method] = Field(default_factory=lambda: list(ALL_METHODS))
    max_examples: int
    seed: int
    batch_size: int
    max_length: int
    qa_max_length: int
    head_training: str
    train_epochs: float
    labels: str = "data"  # TaskEmb's labels: "data" or "sampled" (older jobs lack it)
    precision: str = "fp32"  # "auto" is resolved by the worker that computes (older jobs: fp32)
    device: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, request: EmbedRequest | None = None) -> EmbedConfig:
        overrides = request.model_dump(exclude_none=True) if request else {}
        return cls(
            **{
                "model": settings.model,
                "max_examples": settings.max_examples,
                "seed": settings.embed_seed,
                "batch_size": settings.embed_batch_size,
                "max_length": settings.max_length,
                "qa_max_length": settings.qa_max_length,
                "head_training": settings.taskemb_head_training,
                "train_epochs": settings.taskemb_train_epochs,
                "labels": settings.taskemb_labels,
                "precision": settings.embed_precision,
                "device": settings.device,
                **overrides,
            }
        )


class EmbedRequest(BaseModel):
    """Recompute a task's embeddings, e.g. with another model or more examples."""

    model: str | None = Field(None, description="encoder name or path; default: the service's")
    methods: list[Method] | None = None
    max_examples: int | None = Field(None, ge=1, le=100_000)
    seed: int | None = None


class EmbeddingRead(BaseModel):
    """One stored embedding (the vectors themselves stay on the server)."""

    method: str
    model: str
    encoder_id: str
    model_revision: str
    components: dict[str, int]  # component -> dimension
    num_examples: int
    job_id: int | None
    created_at: datetime


class EmbeddingStatus(BaseModel):
    """A task's embeddings by one model: the latest job and the methods stored."""

    state: Literal["none", "queued", "running", "ready", "failed", "cancelled"]
    model: str
    encoder_id: str | None = None
    methods: list[str] = []
    job_id: int | None = None
    progress: float | None = None  # percent, while a job runs
    error: str | None = None
