"""Intermediate-task transfer as in Vu et al. (2020), always next to its no-transfer baseline.

Train on the source task(s), keep the encoder, discard the source heads, train a fresh head plus
the encoder on the target, score the target. Sources run ``sequential`` (one stage each, in order)
or ``multitask`` (one stage over all sources with shared encoder and per-task heads). Source stages
run once (with the first seed) and their encoder is reused for every target seed; the baseline
trains the target from the plain encoder with the same seeds. ``joint`` has no source stage: the
target trains together with its sources, per seed. ``adapter`` and ``fusion`` keep the encoder
frozen: their source stage is an adapter per source (from the adapter library when one is given),
and their baseline a fresh target adapter (``workers.adapters``). ``TRAINING`` says how each
strategy of ``workers.strategies`` trains.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workers.adapter_library import AdapterLibrary
from workers.adapters import AdapterConfig, fused_encoder, load_adapter, train_adapter
from workers.costs import transfer_cost
from workers.data.sampling import REGIMES, apply_regime, sample_target
from workers.data.schema import TaskData
from workers.encoder import pick_device
from workers.finetune import (
    MixingConfig,
    ProgressCallback,
    StageResult,
    TrainConfig,
    set_seed,
    train_stage,
)
from workers.heads import TaskModel
from workers.strategies import check_sources, strategy

# How the target is sampled per seed. 1: every seed trains on the first seed's sample (transfer
# jobs queued before 2026-12-06); 2: each seed its own training sample, all scored on one
# validation sample (the sweeps' protocol, and every transfer's since)
PROTOCOL_VERSION = 2
PROTOCOLS = (1, 2)


@dataclass(frozen=True)
class TransferPlan:
    """One transfer protocol: what a transfer's numbers depend on besides its data and encoder.

    ``taskrec transfer``, the transfer job and the sweeps run plans (``run_transfer``, or per
    stage ``TRAINING`` with ``SeedRun``), so they sample and train alike."""

    strategy: str = "sequential"  # a name in workers.strategies.STRATEGIES
    seeds: tuple[int, ...] = (0,)
    regime: str = "full"  # the target's size regime (workers.data.sampling.REGIMES)
    source_n: int | None = None  # source training rows (None: every row)
    target_n: int | None = None  # target training rows (None: the regime's)
    eval_n: int | None = None  # validation rows scored per task (None: every row)
    source_seed: int | None = None  # the source stages' sample and seed (None: the first seed)
    protocol: int = PROTOCOL_VERSION
    source_train: TrainConfig = field(default_factory=TrainConfig)
    target_train: TrainConfig = field(default_factory=TrainConfig)
    mixing: MixingConfig = field(default_factory=MixingConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)  # adapter and fusion

    def __post_init__(self) -> None:
        chosen = strategy(self.strategy)  # a ValueError naming the choices
        if not self.seeds:
            raise ValueError("a transfer needs at least one seed")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown transfer protocol {self.protocol} ({PROTOCOLS})")
        if self.regime not in REGIMES:
            raise ValueError(f"unknown regime {self.regime!r} ({', '.join(REGIMES)})")
        stages = (self.source_train, self.target_train)
        if chosen.kind == "adapter" and any(
            s.unfreezing != "none" or s.layer_lr_decay != 1.0 for s in stages
        ):
            raise ValueError(
                "gradual unfreezing and layer_lr_decay apply to full-model stages, not adapter "
                "strategies"
            )

    @property
    def first_seed(self) -> int:
        """The seed of the source stages (trained once, shared by every target seed)."""
        return self.seeds[0] if self.source_seed is None else self.source_seed

    def source_rows(self, task: TaskData) -> TaskData:
        """A source as its stage trains on it: ``source_n`` training rows sampled with the
        first seed, ``eval_n`` validation rows to score the stage on."""
        return apply_regime(
            task, "full", seed=self.first_seed, train_n=self.source_n, eval_n=self.eval_n
        )

    def target_rows(self, task: TaskData, seed: int) -> TaskData:
        """The target as ``seed`` trains and is scored on it (``protocol``)."""
        if self.protocol == 1:
            return apply_regime(
                task, self.regime, seed=self.seeds[0], train_n=self.target_n, eval_n=self.eval_n
            )
        return sample_target(task, self.regime, seed, self.target_n, self.eval_n)

    def to_dict(self) -> dict:
        return asdict(self)


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
    protocol: int = PROTOCOL_VERSION  # TransferPlan.protocol: how the target was sampled

    def to_dict(self) -> dict:
        return asdict(self)

    def cost(self) -> dict | None:
        """``workers.costs.transfer_cost`` of the source and transfer stages."""
        return transfer_cost([*self.source_stages, *self.transfer_stages], self.gain.mean)


def run_transfer(
    plan: TransferPlan,
    sources: Sequence[TaskData],
    target: TaskData,
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    progress: ProgressCallback | None = None,
    adapters: AdapterLibrary | None = None,
    on_plan: Callable[[list[float]], None] | None = None,
) -> TransferResult:
    """Run ``plan`` on whole tasks: the source stage(s) on the plan's sample of each source,
    then per seed the target from that start and the baseline, on the seed's sample.

    ``adapters``: where adapter strategies find and keep source adapters; without it they are
    trained into a temporary library that ends with this call. ``on_plan`` hears the stages
    about to run before the first starts (``planned_stages``), so progress can be weighted.
    """
    if not sources:
        raise ValueError("a transfer needs at least one source task")
    check_sources(plan.strategy, len(sources))
    training = TRAINING[plan.strategy]
    plain = encoder.to(pick_device(plan.target_train.device))
    sources = [plan.source_rows(s) for s in sources]
    with tempfile.TemporaryDirectory(prefix="taskrec-adapters-") as scratch:
        library = adapters or AdapterLibrary(Path(scratch), "unnamed")
        if on_plan is not None:
            on_plan(planned_stages(plan, sources, target, library))
        start, source_stages = training.sources(sources, plain, tokenizer, plan, progress, library)
        baseline_stages, transfer_stages = [], []
        for seed in plan.seeds:
            seen = plan.target_rows(target, seed)
            run = SeedRun(sources, seen, plain, tokenizer, plan, seed, progress)
            baseline_stages.append(training.baseline(run))
            transfer_stages.append(training.transfer(start, run))
    baseline = [s.metrics[target.name]["score"] for s in baseline_stages]
    transfer = [s.metrics[target.name]["score"] for s in transfer_stages]
    return TransferResult(
        sources=[s.name for s in sources],
        target=target.name,
        strategy=plan.strategy,
        metric=target.spec.metric.value,
        source_stages=source_stages,
        baseline_stages=baseline_stages,
        transfer_stages=transfer_stages,
        baseline=Summary.of(baseline),
        transfer=Summary.of(transfer),
        gain=Summary.of([t - b for t, b in zip(transfer, baseline, strict=True)]),
        protocol=plan.protocol,
    )


def planned_stages(
    plan: TransferPlan, sources: Sequence[TaskData], target: TaskData, library: AdapterLibrary
) -> list[float]:
    """The stages ``run_transfer`` runs, in order, each weighed by its training examples (rows
    × epochs): the source stage(s), then per seed the baseline and the transfer (a joint
    strategy's transfer trains the target and its sources together). ``sources`` are the
    plan's samples. A source adapter the library already holds is loaded, not trained: it
    has no stage."""
    chosen = strategy(plan.strategy)
    source_rows = [len(s.train) * plan.source_train.epochs for s in sources]
    if chosen.kind == "adapter":
        keys = [library.key(s, plan.source_train, plan.adapter, plan.first_seed) for s in sources]
        source_rows = [
            rows for rows, key in zip(source_rows, keys, strict=True) if library.get(key) is None
        ]
    if plan.strategy == "multitask":
        source_rows = [sum(source_rows)]
    target_rows = len(plan.target_rows(target, plan.seeds[0]).train) * plan.target_train.epochs
    transfer_rows = target_rows
    if not chosen.source_stage:
        source_rows = []
        transfer_rows += sum(len(s.train) for s in sources) * plan.target_train.epochs
    weights = [*source_rows, *([target_rows, transfer_rows] * len(plan.seeds))]
    return [max(w, 1.0) for w in weights]


def train_sources(
    sources: Sequence[TaskData],
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: TransferPlan,
    progress: ProgressCallback | None = None,
    _library: AdapterLibrary | None = None,
) -> tuple[PreTrainedModel, list[StageResult]]:
    """The intermediate stage(s) on a copy of ``encoder``; returns the trained encoder alone."""
    model = TaskModel(copy.deepcopy(encoder))
    seed = config.first_seed
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
    config: TransferPlan,
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


def source_adapters(
    sources: Sequence[TaskData],
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: TransferPlan,
    progress: ProgressCallback | None,
    library: AdapterLibrary,
) -> tuple[list[Path], list[StageResult]]:
    """Each source's adapter from ``library``, trained there first where it has none."""
    found = [
        library.get_or_train(
            source,
            encoder,
            tokenizer,
            config.source_train,
            config.adapter,
            config.first_seed,
            progress,
        )
        for source in sources
    ]
    return [path for path, _ in found], [stage for _, stage in found]


@dataclass(frozen=True)
class SeedRun:
    """What one seed's baseline and transfer train with."""

    sources: Sequence[TaskData]
    target: TaskData  # as this seed samples it
    plain: PreTrainedModel  # the encoder before any stage
    tokenizer: PreTrainedTokenizerBase
    config: TransferPlan
    seed: int
    progress: ProgressCallback | None
    transfer_stage: str = "target"  # the transfer's stage name in progress reports

    def label(self, stage: str) -> str:
        return f"{stage}:{self.target.name}:seed{self.seed}"


def full_baseline(run: SeedRun) -> StageResult:
    """The target fine-tuned from the plain encoder."""
    config = run.config.target_train
    return train_target(
        run.target, run.plain, run.tokenizer, config, run.seed, "baseline", run.progress
    )


def adapter_baseline(run: SeedRun) -> StageResult:
    """A fresh adapter and head on the target over the frozen plain encoder."""
    return _train_target_adapter(run, copy.deepcopy(run.plain), "baseline")


def transfer_from_encoder(encoder: PreTrainedModel, run: SeedRun) -> StageResult:
    """The target fine-tuned from the source-trained encoder."""
    config = run.config.target_train
    return train_target(
        run.target, encoder, run.tokenizer, config, run.seed, run.transfer_stage, run.progress
    )


def transfer_joint(_start: None, run: SeedRun) -> StageResult:
    """The target trained together with its sources (``train_joint``)."""
    return train_joint(
        run.sources, run.target, run.plain, run.tokenizer, run.config, run.seed, run.progress
    )


def transfer_adapter(paths: list[Path], run: SeedRun) -> StageResult:
    """The target's adapter over the source's: stacked (the source adapter merged into the
    frozen encoder, a fresh one on top) or continuing the source adapter itself."""
    if run.config.adapter.transfer == "continue":
        start = load_adapter(copy.deepcopy(run.plain), paths[0], trainable=True)
    else:
        start = load_adapter(copy.deepcopy(run.plain), paths[0]).merge_and_unload()
    return _train_target_adapter(run, start, run.transfer_stage)


def transfer_fusion(paths: list[Path], run: SeedRun) -> StageResult:
    """AdapterFusion over the sources' frozen adapters, trained with a fresh target head."""
    set_seed(run.seed)  # the fusion layers' initial weights are the seed's
    model = TaskModel(fused_encoder(copy.deepcopy(run.plain), paths))
    config = run.config
    train = dataclasses.replace(
        config.target_train, learning_rate=config.adapter.fusion_learning_rate
    )
    return train_stage(
        model,
        [run.target],
        run.tokenizer,
        train,
        seed=run.seed,
        stage=run.label("fusion"),
        progress=run.progress,
    )


def _train_target_adapter(run: SeedRun, encoder, stage: str) -> StageResult:
    config = run.config
    _, result = train_adapter(
        run.target,
        encoder,
        run.tokenizer,
        config.target_train,
        config.adapter,
        run.seed,
        run.label(stage),
        run.progress,
    )
    return result


def _no_source_stage(*_args) -> tuple[None, list[StageResult]]:
    return None, []


@dataclass(frozen=True)
class StrategyTraining:
    """How one strategy trains: its source stage (once per transfer: returns what the transfers
    start from, and its stages), its no-transfer baseline and its transfer (once per seed)."""

    sources: Callable[..., tuple[Any, list[StageResult]]]
    baseline: Callable[[SeedRun], StageResult]
    transfer: Callable[[Any, SeedRun], StageResult]


# One entry per name in workers.strategies.STRATEGIES
TRAINING: dict[str, StrategyTraining] = {
    "sequential": StrategyTraining(train_sources, full_baseline, transfer_from_encoder),
    "multitask": StrategyTraining(train_sources, full_baseline, transfer_from_encoder),
    "joint": StrategyTraining(_no_source_stage, full_baseline, transfer_joint),
    "adapter": StrategyTraining(source_adapters, adapter_baseline, transfer_adapter),
    "fusion": StrategyTraining(source_adapters, adapter_baseline, transfer_fusion),
}
