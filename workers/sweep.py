"""Transfer sweeps: every source × target × seed, measured next to its baseline, resumably.

Recipe: (1) every target × seed is trained from the plain encoder once — the baseline shared by
all sources; (2) every source is trained once (with ``source_seed``, whatever the seeds) and its
encoder cached on disk as a checkpoint; (3) every target × seed is trained from each source's
encoder. Each finished run is appended to the results CSV (``source,target,seed,score,baseline,
gain,metric``) and fsynced before the next starts; baselines go to a sidecar CSV the same way.

Resuming is reading those files: anything recorded is skipped, a checkpoint found on disk is
loaded instead of trained, and a crash or ``kill -9`` loses at most the run in flight.
A sidecar ``.sweep.json`` pins the settings that decide the numbers, and ``.tasks.json`` each
task's data hash, so a CSV never mixes runs made under different settings or on different data.

Any strategy of ``workers.strategies`` sweeps through the same training as a transfer
(``workers.transfer.TRAINING``): the source stage of ``adapter`` and ``fusion`` is the source's
adapter, kept in an adapter library under the checkpoints folder (so sweeps of either strategy
with the same settings share them), and their baseline a fresh target adapter, so a strategy's
baselines and rows go to a results file of its own (the strategy is pinned; a ``sequential``
sweep's pinned settings are what they were before). Every strategy measures one source per run
but ``fusion``, which is several sources by nature: its one run per target × seed fuses the
adapters of all the sweep's sources but the target, in the order given, and its ``source`` is
their names joined by "+" (``snli+qnli+sick``; ``workers.selection.results.FUSED``).
"""

from __future__ import annotations

import copy
import csv
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol, TypeVar

from workers.adapter_library import AdapterLibrary
from workers.adapters import AdapterConfig
from workers.data.sampling import REGIMES
from workers.data.schema import TaskData
from workers.encoder import EncoderRef, load_encoder, load_tokenizer, pick_device
from workers.features import FeatureConfig
from workers.finetune import StageResult, TrainConfig, save_checkpoint, train_stage
from workers.heads import TaskModel
from workers.selection.results import (
    FUSED,
    ResultsWriter,
    TransferRow,
    read_results,
    repair_tail,
)
from workers.strategies import strategy
from workers.transfer import TRAINING, SeedRun, TransferPlan

# What each regime means when a size is not given: (source rows, target rows, eval rows, features)
REGIME_DEFAULTS: dict[str, dict] = {
    "limited": {
        "source_n": REGIMES["limited"],  # 1,000
        "target_n": 200,
        "eval_n": 500,
        "features": FeatureConfig(max_length=128, qa_max_length=256, doc_stride=64),
    },
    "full": {"source_n": None, "target_n": None, "eval_n": None, "features": FeatureConfig()},
}


@dataclass(frozen=True)
class SweepConfig:
    """What decides a sweep's numbers (pinned in its ``.sweep.json``), plus seeds and device."""

    regime: str = "limited"
    source_n: int | None = None  # None: the regime's default (limited: 1,000; full: all rows)
    target_n: int | None = None  # None: limited 200, full all
    eval_n: int | None = None  # None: limited 500, full all
    seeds: tuple[int, ...] = (0, 1, 2)
    source_seed: int = 0
    source_epochs: float = 2.0
    target_epochs: float = 5.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_length: int | None = None  # None: the regime's (limited: 128)
    max_steps: int | None = None  # caps every stage (smoke runs)
    device: str | None = None
    strategy: str = "sequential"  # a name in workers.strategies.STRATEGIES
    adapter: AdapterConfig = field(default_factory=AdapterConfig)  # adapter and fusion

    def __post_init__(self) -> None:
        if self.regime not in REGIME_DEFAULTS:
            raise ValueError(f"unknown regime {self.regime!r} (limited or full)")
        strategy(self.strategy)  # a ValueError naming the choices
        if not self.seeds:
            raise ValueError("a sweep needs at least one seed")

    def sizes(self) -> tuple[int | None, int | None, int | None]:
        """(source rows, target rows, eval rows) after regime defaults."""
        d = REGIME_DEFAULTS[self.regime]
        pick = lambda given, key: d[key] if given is None else given  # noqa: E731
        return (
            pick(self.source_n, "source_n"),
            pick(self.target_n, "target_n"),
            pick(self.eval_n, "eval_n"),
        )

    def features(self) -> FeatureConfig:
        base: FeatureConfig = REGIME_DEFAULTS[self.regime]["features"]
        if self.max_length is None:
            return base
        return FeatureConfig(self.max_length, base.qa_max_length, base.doc_stride)

    def train_config(self, stage: str) -> TrainConfig:
        epochs = self.source_epochs if stage == "source" else self.target_epochs
        return TrainConfig(
            epochs=epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            max_steps=self.max_steps,
            features=self.features(),
            device=self.device,
        )

    def plan(self) -> TransferPlan:
        """The transfer protocol of every run (``workers.transfer.TransferPlan``): the sweep
        samples and trains as a transfer does."""
        source_n, target_n, eval_n = self.sizes()
        return TransferPlan(
            strategy=self.strategy,
            seeds=self.seeds,
            regime=self.regime,
            source_n=source_n,
            target_n=target_n,
            eval_n=eval_n,
            source_seed=self.source_seed,
            source_train=self.train_config("source"),
            target_train=self.train_config("target"),
            adapter=self.adapter,
        )

    def pinned(self, encoder: EncoderRef) -> dict:
        """The settings a results file must keep: all but seeds and device (and, for
        full-model strategies, the adapter settings they do not use)."""
        data = asdict(self)
        for key in ("seeds", "device"):
            data.pop(key)
        if strategy(self.strategy).kind != "adapter":
            data.pop("adapter")
        if self.strategy == "sequential":  # files begun before strategies pinned none
            data.pop("strategy")
        source_n, target_n, eval_n = self.sizes()
        data.update(source_n=source_n, target_n=target_n, eval_n=eval_n)
        data.update(features=asdict(self.features()), encoder=encoder.id)
        return data


@dataclass
class SweepPaths:
    """The results CSV and, next to it, its baselines and pinned settings; checkpoints anywhere."""

    results: Path
    checkpoints: Path

    @property
    def baselines(self) -> Path:
        return self.results.with_suffix(".baselines.csv")

    @property
    def settings(self) -> Path:
        return self.results.with_suffix(".sweep.json")

    @property
    def tasks(self) -> Path:
        return self.results.with_suffix(".tasks.json")


@dataclass(frozen=True)
class SweepEvent:
    """Progress: ``kind`` is "plan", "step", "source", "baseline" or "transfer"."""

    kind: str
    label: str
    done: int = 0
    total: int = 0
    row: TransferRow | None = None
    # "plan" only: the relative size of every training stage this call will run, in order
    # (baselines, then per source its training, if not checkpointed, and its transfers; for
    # fusion, per target each fused adapter not yet stored, once, and the fused runs)
    stage_weights: tuple[float, ...] = ()


SweepCallback = Callable[[SweepEvent], None]


@dataclass
class SweepReport:
    """What this call did; runs found already finished count as ``skipped``."""

    sources_trained: int = 0
    sources_loaded: int = 0
    baselines_run: int = 0
    transfers_run: int = 0
    skipped: int = 0
    rows: list[TransferRow] = field(default_factory=list)


class SweepSettingsError(ValueError):
    """The results file was made under other settings than this sweep's."""


class _Named(Protocol):
    @property
    def name(self) -> str: ...


Named = TypeVar("Named", bound=_Named)  # a TaskData, or a TaskSize for a cost estimate


def fused_sources(sources: Sequence[Named], target: str) -> list[Named]:
    """What a fusion sweep fuses for ``target``: every source but the target, in order; a
    ValueError when that leaves fewer than two (over one adapter fusion's attention has
    nothing to choose among, and its row would pass for a single-source one)."""
    fused = [source for source in sources if source.name != target]
    if len(fused) < strategy("fusion").min_sources:
        raise ValueError(
            f"fusion fuses at least two sources' adapters: target {target} has "
            f"{len(fused)} source(s) besides itself"
        )
    return fused


def source_label(sources: Sequence[Named]) -> str:
    """A run's ``source`` column: its source's name, or the fused sources' joined by "+"."""
    return FUSED.join(source.name for source in sources)


@dataclass
class _Route:
    """Runs that start from the same source stage(s): one source's (its targets but itself),
    or the adapters of the sources a fusion run fuses (its one target)."""

    sources: list[TaskData]
    targets: list[TaskData]

    @property
    def label(self) -> str:
        return source_label(self.sources)


def run_sweep(
    sources: Sequence[TaskData],
    targets: Sequence[TaskData],
    encoder: EncoderRef,
    paths: SweepPaths,
    config: SweepConfig = SweepConfig(),
    on_event: SweepCallback | None = None,
) -> SweepReport:
    """Run (or resume) the sweep; returns what this call did."""
    sweep = _Sweep(sources, targets, encoder, paths, config, on_event or (lambda e: None))
    return sweep.run()


class _Sweep:
    def __init__(self, sources, targets, encoder, paths, config, emit) -> None:
        self.sources, self.targets = list(sources), list(targets)
        self.ref, self.paths, self.config, self.emit = encoder, paths, config, emit
        self.report = SweepReport()
        self.routes = self._routes()  # a fusion it cannot make is refused before any file
        _pin_settings(paths.settings, config.pinned(encoder))
        # Hashed once: pinned beside the results and part of each source checkpoint's name.
        self.hashes = {t.name: t.content_hash() for t in [*self.sources, *self.targets]}
        _pin_tasks(paths.tasks, self.hashes)
        found = read_results(paths.results) if paths.results.exists() else []
        self.done = {r.key for r in found}
        self.baselines = read_baselines(paths.baselines)
        self._plain = None
        self._finished = 0
        self._sampled: dict[str, TaskData] = {}
        self._source_seconds: dict[str, float | None] = {}
        self._adapter_paths: dict[str, Path] = {}

    def run(self) -> SweepReport:
        seeds = self.config.seeds
        baselines = [(t, s) for t in self.targets for s in seeds]
        baselines = [(t, s) for t, s in baselines if (t.name, s) not in self.baselines]
        routes = self.routes
        todo = [(route, self._pending(route)) for route in routes]
        self._total = len(baselines) + sum(len(pending) for _, pending in todo)
        planned = len(self.targets) * len(seeds) + len(seeds) * sum(len(r.targets) for r in routes)
        self.report.skipped = planned - self._total
        weights = self._stage_weights(baselines, todo)
        self.emit(SweepEvent("plan", "sweep", 0, self._total, stage_weights=weights))
        for target, seed in baselines:
            self._baseline(target, seed)
        with ResultsWriter(self.paths.results) as writer:
            for route, pending in todo:
                if pending:
                    start = self._route_start(route)
                    for target, seed in pending:
                        self._transfer(route, start, target, seed, writer)
        return self.report

    def _routes(self) -> list[_Route]:
        """The sweep's runs, grouped by the source stage(s) they start from, in the order
        they run: each source's targets, or (fusion) per target, all the other sources."""
        if self.config.strategy == "fusion":
            return [_Route(fused_sources(self.sources, t.name), [t]) for t in self.targets]
        return [
            _Route([source], [t for t in self.targets if t.name != source.name])
            for source in self.sources
        ]

    def _stage_weights(self, baselines, todo) -> tuple[float, ...]:
        """Each training stage's cost in the order ``run`` runs them (``estimate_cost``'s
        units), so progress can be step-weighted: a 10,000-row source outweighs a target run."""
        target = lambda task: target_run_cost(len(task.train), task.spec.type, self.config)  # noqa: E731
        weights = [target(t) for t, _ in baselines]
        weighed: set[str] = set()  # a source fused for several targets is trained once
        for route, pending in todo:
            if not pending:
                continue
            for source in route.sources:
                if source.name not in weighed and not self._source_ready(source):
                    weights.append(source_cost(len(source.train), source.spec.type, self.config))
                weighed.add(source.name)
            weights += [target(t) for t, _ in pending]
        return tuple(weights)

    def _pending(self, route: _Route) -> list[tuple[TaskData, int]]:
        return [
            (t, s)
            for t in route.targets
            for s in self.config.seeds
            if (route.label, t.name, s) not in self.done
        ]

    # --- stages ----------------------------------------------------------------------------

    def _baseline(self, target: TaskData, seed: int) -> float:
        run = self._seed_run(None, target, seed)
        score = _score(TRAINING[self.config.strategy].baseline(run), target)
        self.baselines[(target.name, seed)] = score
        _append_baseline(self.paths.baselines, target, seed, score)
        self.report.baselines_run += 1
        self._finish("baseline", f"baseline {target.name} seed {seed}")
        return score

    def _transfer(self, route: _Route, start, target, seed, writer: ResultsWriter) -> None:
        label = f"{route.label}->{target.name}"
        stage = TRAINING[self.config.strategy].transfer(start, self._seed_run(route, target, seed))
        score = _score(stage, target)
        baseline = self.baselines.get((target.name, seed))
        if baseline is None:  # the sidecar was lost: measure it again rather than guess
            baseline = self._baseline(target, seed)
        row = TransferRow(
            route.label,
            target.name,
            seed,
            score,
            baseline,
            score - baseline,
            target.spec.metric.value,
            seconds=round(stage.seconds, 2),
            trainable_params=stage.trainable_params,
            total_params=stage.total_params,
            peak_memory_mb=None if stage.peak_memory_mb is None else round(stage.peak_memory_mb),
            source_seconds=self._route_source_seconds(route),
        )
        writer.write(row)
        self.done.add(row.key)
        self.report.transfers_run += 1
        self.report.rows.append(row)
        self._finish("transfer", f"{label} seed {seed}", row)

    def _route_source_seconds(self, route: _Route) -> float | None:
        """What the route's source stages cost (fusion: every fused adapter's training)."""
        seconds = [self._source_seconds.get(source.name) for source in route.sources]
        return None if None in seconds else round(sum(seconds), 2)

    def _seed_run(self, route: _Route | None, target: TaskData, seed: int) -> SeedRun:
        """One seed's target sample (and, for a joint strategy, the source's rows)."""
        sources = [self._source_data(s) for s in route.sources] if route is not None else []
        return SeedRun(
            sources,
            self._plan.target_rows(target, seed),
            self._plain_encoder(),
            self._tokenizer,
            self._plan,
            seed,
            self._step_progress,
            f"transfer:{route.label}" if route is not None else "target",
        )

    @cached_property
    def _plan(self) -> TransferPlan:
        return self.config.plan()

    def _route_start(self, route: _Route):
        """What the route's transfers start from: its source's start, or (fusion) the fused
        sources' adapter folders, in order."""
        if self.config.strategy == "fusion":
            return [self._adapter_path(source) for source in route.sources]
        (source,) = route.sources
        return self._source_start(source)

    def _source_start(self, source: TaskData):
        """What the source's transfers start from: its trained encoder (loaded from its
        checkpoint, or trained and saved first), its adapter's folder (from the adapter
        library, trained there first), or nothing (a joint strategy trains it per run)."""
        chosen = strategy(self.config.strategy)
        if not chosen.source_stage:
            return None
        if chosen.kind == "adapter":
            return [self._adapter_path(source)]
        path = self._checkpoint_path(source)
        if not (path / "checkpoint.json").is_file():
            seconds = self._train_source(source, path)
            self._count_source(False, source, seconds)
        else:
            meta = json.loads((path / "checkpoint.json").read_text())
            self._count_source(True, source, meta.get("seconds"))
        encoder, _ = load_encoder(EncoderRef(source.name, path.name, str(path / "encoder")))
        return _fresh_config(encoder).to(pick_device(self.config.device))

    def _adapter_path(self, source: TaskData) -> Path:
        """The source's adapter folder, from the adapter library (trained there first); asked
        of the library once per sweep, however many fusions use it."""
        if source.name not in self._adapter_paths:
            path, stage = self._adapters.get_or_train(
                self._source_data(source),
                self._plain_encoder(),
                self._tokenizer,
                self.config.train_config("source"),
                self.config.adapter,
                self.config.source_seed,
                self._step_progress,
            )
            self._count_source(stage.cached, source, stage.seconds)
            self._adapter_paths[source.name] = path
        return self._adapter_paths[source.name]

    def _count_source(self, loaded: bool, source: TaskData, seconds: float | None) -> None:
        self._source_seconds[source.name] = None if seconds is None else round(seconds, 2)
        if loaded:
            self.report.sources_loaded += 1
        else:
            self.report.sources_trained += 1
            self._finish("source", f"source {source.name}", counts=False)

    def _source_ready(self, source: TaskData) -> bool:
        """Whether the source's stage is stored already (no training needed)."""
        chosen = strategy(self.config.strategy)
        if not chosen.source_stage:
            return True
        if chosen.kind == "adapter":
            key = self._adapters.key(
                self._source_data(source),
                self.config.train_config("source"),
                self.config.adapter,
                self.config.source_seed,
            )
            return self._adapters.get(key) is not None
        return (self._checkpoint_path(source) / "checkpoint.json").is_file()

    @cached_property
    def _adapters(self) -> AdapterLibrary:
        return AdapterLibrary(self.paths.checkpoints / "adapters", self.ref.id)

    def _source_data(self, source: TaskData) -> TaskData:
        """The source's training rows as its stage trains on them."""
        if source.name not in self._sampled:
            data = self._plan.source_rows(source)  # its stage is not scored: no validation
            self._sampled[source.name] = TaskData(data.spec, {"train": data.train})
        return self._sampled[source.name]

    def _train_source(self, source: TaskData, path: Path) -> float:
        """Train the source's encoder and save it at ``path``; returns the stage's seconds."""
        model = TaskModel(copy.deepcopy(self._plain_encoder()))
        stage = train_stage(
            model,
            [self._source_data(source)],
            self._tokenizer,
            self.config.train_config("source"),
            seed=self.config.source_seed,
            evaluate_after=False,
            stage=f"source:{source.name}",
            progress=self._step_progress,
        )
        model.drop_heads()  # only the encoder carries over; no head, no task config
        meta = {"source": source.name, "rows": stage.train_examples, "steps": stage.steps}
        meta["seconds"] = stage.seconds
        meta["sweep"] = self.config.pinned(self.ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
        save_checkpoint(model, self._tokenizer, tmp, meta)
        if (path / "checkpoint.json").is_file():  # another sweep sharing the folder was first
            shutil.rmtree(tmp, ignore_errors=True)
            return stage.seconds
        shutil.rmtree(path, ignore_errors=True)  # a half-written one from an older crash
        os.replace(tmp, path)  # a checkpoint appears whole or not at all
        return stage.seconds

    def _checkpoint_path(self, source: TaskData) -> Path:
        return self.paths.checkpoints / f"{source.name}-{self._source_key(source)}"

    def _source_key(self, source: TaskData) -> str:
        return source_checkpoint_key(self.hashes[source.name], self.ref.id, self.config)

    # --- helpers ---------------------------------------------------------------------------

    def _plain_encoder(self):
        if self._plain is None:
            encoder, _ = load_encoder(self.ref)
            self._plain = encoder.to(pick_device(self.config.device))
        return self._plain

    @cached_property
    def _tokenizer(self):
        return load_tokenizer(self.ref)

    def _step_progress(self, stage: str, step: int, total: int) -> None:
        self.emit(SweepEvent("step", stage, step, total))

    def _finish(self, kind: str, label: str, row: TransferRow | None = None, counts=True) -> None:
        if counts:
            self._finished += 1
        self.emit(SweepEvent(kind, label, self._finished, self._total, row))


def source_checkpoint_key(data_hash: str, encoder_id: str, config: SweepConfig) -> str:
    """A source checkpoint's name after its task's: its data and every setting its stage
    depends on, so sweeps (and the service's calibrations) share checkpoints safely."""
    source_n, _, _ = config.sizes()
    c = config
    payload = {
        "data": data_hash,
        "encoder": encoder_id,
        "stage": [c.regime, source_n, c.source_seed, c.source_epochs, c.batch_size],
        "optim": [c.learning_rate, c.max_steps, asdict(c.features())],
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def has_source_checkpoint(
    checkpoints: Path, name: str, data_hash: str, encoder_id: str, config: SweepConfig
) -> bool:
    key = source_checkpoint_key(data_hash, encoder_id, config)
    return (checkpoints / f"{name}-{key}" / "checkpoint.json").is_file()


@dataclass(frozen=True)
class TaskSize:
    """What a cost estimate needs of a task: its type and training rows."""

    name: str
    type: str  # a TaskType value
    rows: int


@dataclass(frozen=True)
class SweepCost:
    sources_to_train: int
    baselines: int
    target_runs: int
    examples: int  # training examples over every stage, in single-sequence equivalents
    seconds: float


def estimate_cost(
    sources: Sequence[TaskSize],
    targets: Sequence[TaskSize],
    config: SweepConfig,
    *,
    seconds_per_example: float,
    seconds_per_run: float,
    trained: frozenset[str] = frozenset(),
    done: frozenset[tuple[str, str, int]] = frozenset(),
    baselines_done: frozenset[tuple[str, int]] = frozenset(),
) -> SweepCost:
    """What a sweep still has to run and roughly how long: a multiple-choice example costs one
    sequence per choice (4 assumed), an extractive-QA one a few long windows; scoring costs a
    third of training per example. ``trained`` sources (checkpointed, or their adapter stored),
    ``done`` runs and ``baselines_done`` are not counted. A fusion sweep runs one fused run per
    target × seed; every other strategy one per source."""
    examples = 0.0
    to_train = [s for s in sources if s.name not in trained]
    for source in to_train:
        examples += source_cost(source.rows, source.type, config)
    runs = baselines = 0
    for target in targets:
        per_run = target_run_cost(target.rows, target.type, config)
        if config.strategy == "fusion":
            labels = [source_label(fused_sources(sources, target.name))]
        else:
            labels = [s.name for s in sources if s.name != target.name]
        for seed in config.seeds:
            pending = [label for label in labels if (label, target.name, seed) not in done]
            runs += len(pending)
            baseline = (target.name, seed) not in baselines_done
            baselines += baseline
            examples += per_run * (len(pending) + baseline)
    seconds = examples * seconds_per_example + (runs + baselines) * seconds_per_run
    return SweepCost(len(to_train), baselines, runs, round(examples), round(seconds, 1))


def source_cost(rows: int, task_type: str, config: SweepConfig) -> float:
    """A source stage's training examples, in single-sequence equivalents."""
    source_n, _, _ = config.sizes()
    trained = rows if source_n is None else min(rows, source_n)
    return trained * config.source_epochs * _sequence_factor(task_type, config.features())


def target_run_cost(rows: int, task_type: str, config: SweepConfig) -> float:
    """One target run's (a baseline's or a transfer's) training and scoring examples."""
    _, target_n, eval_n = config.sizes()
    trained = rows if target_n is None else min(rows, target_n)
    per_run = trained * config.target_epochs + (eval_n or trained) / 3
    return per_run * _sequence_factor(task_type, config.features())


def _sequence_factor(task_type: str, features: FeatureConfig) -> float:
    if task_type == "multiple_choice":
        return 4.0
    if task_type == "extractive_qa":  # about two document-stride windows of the QA length
        return 2.0 * features.qa_max_length / features.max_length
    return 1.0


def _score(stage: StageResult, target: TaskData) -> float:
    return float(stage.metrics[target.name]["score"])


def _fresh_config(encoder):
    """Clear anything task-specific a checkpoint's config could carry into the target stage.

    Our heads live outside the encoder, so the target's loss comes from the target's spec alone
    and a saved encoder config has no ``problem_type``; clearing it guards foreign checkpoints.
    """
    encoder.config.problem_type = None
    return encoder


def _pin_settings(path: Path, pinned: dict) -> None:
    """Write the sweep's settings next to its results, or refuse to mix with other settings."""
    if path.is_file():
        found = json.loads(path.read_text())
        if found != json.loads(json.dumps(pinned)):
            pinned = json.loads(json.dumps(pinned))
            changed = sorted(k for k in pinned | found if found.get(k) != pinned.get(k))
            raise SweepSettingsError(
                f"{path} was made with other settings ({', '.join(changed)} differ): "
                "write to another --out, or delete it to start over"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pinned, indent=2, default=str))


def _pin_tasks(path: Path, hashes: dict[str, str]) -> None:
    """Record each task's data hash next to the results, or refuse a task whose data changed
    since: its old rows and its new ones would measure different data under one name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # two sweeps may share one results file
        handle.seek(0)
        text = handle.read()
        found = json.loads(text) if text.strip() else {}
        changed = sorted(name for name, new in hashes.items() if found.get(name, new) != new)
        if changed:
            raise SweepSettingsError(
                f"the data of {', '.join(changed)} changed since {path.name} recorded it: write "
                "to another --out, or drop those tasks' old rows and their entries there"
            )
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(found | hashes, indent=1, sort_keys=True))


BASELINE_FIELDS = ("target", "seed", "score", "metric")


def read_baselines(path: Path) -> dict[tuple[str, int], float]:
    if not path.is_file():
        return {}
    found = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for line in csv.DictReader(handle):
            # A line torn by a crash (cells missing: its score may be cut short, "8" of "87.3")
            # or unreadable is skipped: that baseline is simply run again.
            if any(line.get(field) is None for field in BASELINE_FIELDS):
                continue
            try:
                found[(line["target"], int(line["seed"]))] = float(line["score"])
            except ValueError:
                continue
    return found


def _append_baseline(path: Path, target: TaskData, seed: int, score: float) -> None:
    fresh = not path.exists() or path.stat().st_size == 0
    if not fresh:
        repair_tail(path)
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if fresh:
            writer.writerow(BASELINE_FIELDS)
        writer.writerow((target.name, seed, score, target.spec.metric.value))
        handle.flush()
        os.fsync(handle.fileno())
