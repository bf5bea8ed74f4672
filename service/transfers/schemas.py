from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from service.dependencies import DbId
from service.recommendations.schemas import RankMethod
from workers.strategies import ADAPTER_TRANSFERS
from workers.strategies import STRATEGIES as TRANSFER_STRATEGIES

UNFREEZING = ("none", "gradual")


class TrainSettings(BaseModel):
    """One training stage's hyper-parameters (``workers.finetune.TrainConfig``)."""

    epochs: float = Field(3.0, gt=0, le=100)
    batch_size: int = Field(32, ge=1, le=1024)
    learning_rate: float = Field(5e-5, gt=0, le=1)
    max_steps: int | None = Field(None, ge=1)
    unfreezing: Literal[UNFREEZING] = Field(  # type: ignore[valid-type]
        "none",
        description="gradual: ULMFiT's gradual unfreezing (the top layer in the first epoch, one "
        "more each epoch, the embeddings last); none: every parameter from the first step",
    )
    layer_lr_decay: float = Field(
        1.0,
        gt=0,
        le=1,
        description="discriminative learning rates (ULMFiT; layer-wise learning-rate decay): the "
        "heads train at learning_rate, the top transformer layer at learning_rate × this, each "
        "lower layer this factor lower again, the embeddings lowest; 1: the same rate everywhere. "
        "Full-model stages only: adapter and fusion strategies refuse another value",
    )


STRATEGIES = tuple(TRANSFER_STRATEGIES)  # workers.strategies: the one registry
Strategy = Literal[STRATEGIES]  # type: ignore[valid-type]
REGIMES = ("limited", "full")


MIXINGS = ("proportional", "temperature", "weights")


class MixingSettings(BaseModel):
    """How multi-task training draws a task per step (``workers.finetune.MixingConfig``)."""

    strategy: Literal[MIXINGS] = "proportional"  # type: ignore[valid-type]
    cap: int = Field(2**16, ge=1)
    temperature: float = Field(2.0, gt=0)
    weights: dict[str, float] = {}


class AdapterSettings(BaseModel):
    """adapter and fusion strategies: the adapters' shape and steps (``workers.adapters``);
    the encoder stays frozen."""

    rank: int = Field(16, ge=1, le=256, description="LoRA rank of each layer's adapter")
    alpha: float = Field(32.0, gt=0, le=1024)
    dropout: float = Field(0.1, ge=0, lt=1)
    learning_rate: float = Field(1e-3, gt=0, le=1, description="adapter stages' learning rate")
    fusion_learning_rate: float = Field(1e-3, gt=0, le=1)
    transfer: Literal[ADAPTER_TRANSFERS] = Field(  # type: ignore[valid-type]
        "stack",
        description="adapter: stack (a fresh target adapter over the merged source adapter) or "
        "continue (the source adapter goes on training on the target)",
    )


class TransferSettings(BaseModel):
    """How a transfer runs, whatever its target and sources."""

    k: int = Field(1, ge=1, le=10, description="how many sources 'auto' picks")
    method: RankMethod | None = Field(
        None,
        description="the ranking 'auto' picks by; default: the one recommendations use (the "
        "run records the method that picked, with the run's model as the transfer model)",
    )
    strategy: Strategy = "sequential"
    mixing: MixingSettings = MixingSettings()
    adapter: AdapterSettings = AdapterSettings()
    regime: Literal[REGIMES] = "limited"  # type: ignore[valid-type]  # target training size
    train_n: int | None = Field(None, ge=1, description="target training rows (overrides regime)")
    eval_n: int | None = Field(None, ge=1, description="validation rows scored per task")
    source_max_examples: int | None = Field(None, ge=1, description="cap on source training rows")
    seeds: list[int] = Field([0], min_length=1, max_length=10)
    max_length: int | None = Field(
        None, ge=8, le=512, description="tokens per example (QA contexts excepted); default 128"
    )
    source_train: TrainSettings = TrainSettings()
    target_train: TrainSettings = TrainSettings()
    model: str | None = Field(None, description="encoder name or path; default: the service's")

    @model_validator(mode="after")
    def _frozen_encoder_takes_no_layer_schedule(self) -> TransferSettings:
        # Adapter strategies train no encoder layer: a layer schedule would be silently moot
        # (workers.transfer.TransferPlan refuses it too, but only once the job runs)
        if TRANSFER_STRATEGIES[self.strategy].kind != "adapter":
            return self
        for stage in ("source_train", "target_train"):
            train = getattr(self, stage)
            if train.unfreezing != "none" or train.layer_lr_decay != 1.0:
                raise ValueError(
                    f"{stage}: gradual unfreezing and layer_lr_decay apply to full-model "
                    f"stages, not the {self.strategy!r} strategy (its encoder stays frozen)"
                )
        return self


class TransferCreate(TransferSettings):
    target_task_id: DbId
    sources: list[DbId] | Literal["auto"] = Field(
        description="source task ids in stage order, or 'auto' for the top-k recommended"
    )


class TransferJobConfig(BaseModel):
    """The typed config a transfer job is stored with."""

    run_id: int
    target_task_id: int
    source_task_ids: list[int]
    strategy: str
    mixing: MixingSettings
    adapter: AdapterSettings = AdapterSettings()  # jobs queued before adapters: the default
    regime: str
    train_n: int | None
    eval_n: int | None
    source_max_examples: int | None
    seeds: list[int]
    max_length: int | None = None
    source_train: TrainSettings
    target_train: TrainSettings
    model: str
    device: str | None = None
    # How the target is sampled: "per_seed" (each seed its own training rows, one validation
    # sample: the sweep's protocol, since 2026-12-06), or "first_seed" (every seed on the first
    # seed's sample; jobs queued before)
    target_sampling: Literal["per_seed", "first_seed"] = "first_seed"


class TaskRef(BaseModel):
    id: int | None
    name: str


class Summary(BaseModel):
    mean: float
    std: float
    values: list[float]


class StageRead(BaseModel):
    kind: str  # source | baseline | target
    seed: int | None
    tasks: list[str]
    metrics: dict[str, dict[str, float]]
    train_examples: dict[str, int]
    steps: int
    seconds: float
    # None on runs stored before costs were recorded
    trainable_params: int | None = None
    total_params: int | None = None
    peak_memory_mb: float | None = Field(
        None, description="peak memory while the stage ran (CUDA allocated, or CPU resident set)"
    )
    cached: bool = Field(
        False,
        description="loaded from the adapter library, not trained by this run (its seconds are "
        "those of its original training)",
    )


class TransferCost(BaseModel):
    """What the transfer cost next to what it gained: the baseline's stages are not counted
    (the comparison costs them, the user's transfer does not)."""

    seconds: float  # source and transfer stages this run trained
    examples: int  # training examples those stages trained on (rows, not epochs)
    peak_memory_mb: float | None  # the largest stage's
    gain_per_hour: float | None  # mean gain (metric points) per hour of those stages
    cached_seconds: float = 0.0  # cached adapters' original training, not spent by this run
    gain_per_hour_with_cached: float | None = None  # counting that training too


class TransferResultRead(BaseModel):
    metric: str
    baseline: Summary
    transfer: Summary
    gain: Summary  # transfer - baseline, paired by seed
    stages: list[StageRead]
    protocol: int | None = Field(
        None,
        description="the transfer protocol (workers.transfer.TransferPlan): 2, each seed its own "
        "training sample of the target and one validation sample for all, as sweeps; 1, every "
        "seed the first seed's sample (jobs queued before 2026-12-06); null: stored before "
        "protocols were recorded",
    )
    cost: TransferCost | None = None


class TransferRead(BaseModel):
    id: int
    job_id: int | None
    state: str | None
    progress: float | None
    error: str | None
    target: TaskRef
    sources: list[TaskRef]
    auto: bool
    strategy: str
    regime: str
    seeds: list[int]
    config: dict[str, Any]
    result: TransferResultRead | None
    # An admin shared it: its result is evidence for every owner's recommendations (otherwise
    # for its owner's alone)
    shared: bool = False
    created_at: datetime


class TransferShare(BaseModel):
    shared: bool = True


class TransferPage(BaseModel):
    items: list[TransferRead]
    total: int
    limit: int
    offset: int
