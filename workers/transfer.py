"""Intermediate-task transfer as in Vu et al. (2020), always next to its no-transfer baseline.

Train on the source task(s), keep the encoder, discard the source heads, train a fresh head plus
the encoder on the target, score the target. Sources run ``sequential`` (one stage each, in order)
or ``multitask`` (one stage over all sources with shared encoder and per-task heads). Source stages
run once (with the first seed) and their encoder is reused for every target seed; the baseline
trains the target from the plain encoder with the same seeds. ``joint`` has no source stage: the
target trains together with its sources, per seed (``workers.strategies``).
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workers.data.schema import TaskData
from workers.encoder import pick_device
from workers.finetune import (
    MixingConfig,
    ProgressCallback,
    StageResult,
    TrainConfig,
    train_stage,
)
from workers.heads import TaskModel
from workers.strategies import strategy


@dataclass(frozen=True)
class TransferConfig:
    strategy: str = "sequential"  # a name in workers.strategies.STRATEGIES
    seeds: tuple[int, ...] = (0,)
    source_train: TrainConfig = field(default_factory=TrainConfig)
    target_train: TrainConfig = field(default_factory=TrainConfig)
    mixing: MixingConfig = field(default_factory=MixingConfig)


@dataclass
class Summary:
    mean: float
    std: float
    values: list[float]

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        values = [float(v) for v in values]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(mean=statistics.fmean(values), std=std, values=values)


@dataclass
class TransferResult:
    sources: list[str]
    target: str
    strategy: str
    metric: str
    source_stages: list[StageResult]
    baseline_stages: list[StageResult]  # one per seed
    transfer_stages: list[StageResult]  # one per seed
    baseline: Summary
    transfer: Summary
    gain: Summary  # transfer - baseline, paired by seed

    def to_dict(self) -> dict:
        return asdict(self)


def run_transfer(
    sources: Sequence[TaskData],
    target: TaskData,
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: TransferConfig = TransferConfig(),
    progress: ProgressCallback | None = None,
    target_for_seed: Callable[[int], TaskData] | None = None,
) -> TransferResult:
    """Source stage(s), then the target from that encoder and from the plain one, per seed.

    ``target_for_seed``: the target as each seed trains on it (``sample_target``: the sweep's
    protocol, each seed its own training sample); without it every seed trains on ``target``.
    """
    if not sources:
        raise ValueError("a transfer needs at least one source task")
    chosen = strategy(config.strategy)
    device = pick_device(config.target_train.device)
    plain = encoder.to(device)
    source_stages: list[StageResult] = []
    if chosen.source_stage:
        transferred, source_stages = train_sources(sources, plain, tokenizer, config, progress)
    baseline_stages, transfer_stages = [], []
    for seed in config.seeds:
        seen = target_for_seed(seed) if target_for_seed else target
        baseline_stages.append(
            train_target(seen, plain, tokenizer, config.target_train, seed, "baseline", progress)
        )
        if chosen.source_stage:
            transferred_stage = train_target(
                seen, transferred, tokenizer, config.target_train, seed, "target", progress
            )
        else:
            transferred_stage = train_joint(sources, seen, plain, tokenizer, config, seed, progress)
        transfer_stages.append(transferred_stage)
    baseline = [s.metrics[target.name]["score"] for s in baseline_stages]
    transfer = [s.metrics[target.name]["score"] for s in transfer_stages]
    return TransferResult(
        sources=[s.name for s in sources],
        target=target.name,
        strategy=config.strategy,
        metric=target.spec.metric.value,
        source_stages=source_stages,
        baseline_stages=baseline_stages,
        transfer_stages=transfer_stages,
        baseline=Summary.of(baseline),
        transfer=Summary.of(transfer),
        gain=Summary.of([t - b for t, b in zip(transfer, baseline, strict=True)]),
    )


def train_sources(
    sources: Sequence[TaskData],
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: TransferConfig,
    progress: ProgressCallback | None = None,
) -> tuple[PreTrainedModel, list[StageResult]]:
    """The intermediate stage(s) on a copy of ``encoder``; returns the trained encoder alone."""
    model = TaskModel(copy.deepcopy(encoder))
    seed = config.seeds[0]
    if config.strategy == "multitask":
        stages = [
            train_stage(
                model,
                sources,
                tokenizer,
                config.source_train,
                seed=seed,
                mixing=config.mixing,
                stage="source:multitask",
                progress=progress,
            )
        ]
    else:
        stages = []
        for source in sources:
            stages.append(
                train_stage(
                    model,
                    [source],
                    tokenizer,
                    config.source_train,
                    seed=seed,
                    stage=f"source:{source.name}",
                    progress=progress,
                )
            )
            model.drop_heads()  # only the encoder carries over
    return model.encoder, stages


def train_target(
    target: TaskData,
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: TrainConfig,
    seed: int,
    stage: str = "target",
    progress: ProgressCallback | None = None,
) -> StageResult:
    """Fine-tune a copy of ``encoder`` with a fresh head on ``target`` and score it."""
    model = TaskModel(copy.deepcopy(encoder))
    return train_stage(
        model,
        [target],
        tokenizer,
        config,
        seed=seed,
        stage=f"{stage}:{target.name}:seed{seed}",
        progress=progress,
    )


def train_joint(
    sources: Sequence[TaskData],
    target: TaskData,
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: TransferConfig,
    seed: int,
    progress: ProgressCallback | None = None,
) -> StageResult:
    """The target trained together with its sources on a copy of ``encoder`` (a head each,
    draws and loss weights by ``config.mixing``; the target's weight is 1 unless given), scored
    on the target alone."""
    model = TaskModel(copy.deepcopy(encoder))
    return train_stage(
        model,
        [target, *sources],
        tokenizer,
        config.target_train,
        seed=seed,
        mixing=config.mixing,
        scored=[target.name],
        stage=f"joint:{target.name}:seed{seed}",
        progress=progress,
    )
