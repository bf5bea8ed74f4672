"""The fine-tuning recipe: train a ``TaskModel`` on one or several tasks, evaluate, save.

Single-task training is multi-task training with one task. Several tasks share the encoder and
keep their own heads; each step draws one task by the mixing rule (Raffel et al. 2020):
fixed loss weights λ, examples-proportional with a size cap K, or temperature-scaled (T).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from workers.data.schema import TaskData, TaskSpec
from workers.features import FeatureConfig, collate, encode, length_grouped_batches
from workers.heads import TaskModel, loss_units
from workers.predict import predict, score

# (stage, step, total steps) — the service turns this into job progress.
ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training stage."""

    epochs: float = 3.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_steps: int | None = None  # caps the stage regardless of epochs
    eval_batch_size: int = 64
    features: FeatureConfig = field(default_factory=FeatureConfig)
    device: str | None = None  # None: CUDA when available, else CPU
    # Report scoring as a stage "<stage>:score" too (the CLI's bars; service jobs count only
    # training stages)
    report_scoring: bool = False
    precision: str | None = None  # None: bf16 autocast on CUDA, fp32 on CPU; or "bf16"/"fp32"
    # "gradual": ULMFiT's gradual unfreezing (Howard & Ruder 2018): the first epoch trains the
    # heads and the top transformer layer, each further epoch one layer more, the embeddings
    # last; "none": every parameter from the first step
    unfreezing: str = "none"
    # Discriminative learning rates (ULMFiT; "layer-wise learning-rate decay" in later BERT
    # work): the heads train at ``learning_rate``, the top transformer layer at that times this
    # factor, each lower layer at the one above times it again, the embeddings lowest. 1.0: the
    # same rate everywhere. Full-model stages only (adapter stages refuse another value)
    layer_lr_decay: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.layer_lr_decay <= 1:
            raise ValueError(
                f"layer_lr_decay must be in (0, 1] (1: no decay), got {self.layer_lr_decay}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MixingConfig:
    """How multi-task training picks the task of each step."""

    strategy: str = "proportional"  # "proportional" | "temperature" | "weights"
    cap: int = 2**16  # K: examples beyond this do not raise a task's rate
    temperature: float = 2.0  # T: 1 = proportional, large = uniform
    weights: dict[str, float] = field(default_factory=dict)  # λ per task ("weights")

    def rates(self, sizes: dict[str, int]) -> dict[str, float]:
        """Probability of drawing each task at a step."""
        if self.strategy == "weights":
            raw = {name: 1.0 for name in sizes}  # uniform draws; λ scales each task's loss
        elif self.strategy == "proportional":
            raw = {name: float(min(n, self.cap)) for name, n in sizes.items()}
        elif self.strategy == "temperature":
            raw = {
                name: float(min(n, self.cap)) ** (1.0 / self.temperature)
                for name, n in sizes.items()
            }
        else:
            raise ValueError(f"unknown mixing strategy {self.strategy!r}")
        total = sum(raw.values())
        return {name: value / total for name, value in raw.items()}

    def loss_weight(self, task: str) -> float:
        return self.weights.get(task, 1.0) if self.strategy == "weights" else 1.0


@dataclass
class StageResult:
    """What one training stage did and how well it scored on its validation split."""

    tasks: list[str]
    metrics: dict[str, dict[str, float]]  # task -> metric dict (headline under "score")
    train_examples: dict[str, int]
    steps: int
    seconds: float
    # What it cost beyond time: parameters it trained of all the model's, and the peak memory
    # while it ran (CUDA: allocated by torch; CPU: the process's resident set, this stage only)
    trainable_params: int = 0
    total_params: int = 0
    peak_memory_mb: float | None = None
    # Loaded from a cache (a library adapter) rather than trained by this run: its seconds
    # are those of its original training
    cached: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class PeakMemory:
    """The peak memory of one stage, not the process's lifetime maximum: CUDA's allocator
    counters, reset at the start; on a CPU the resident set, sampled every 50 ms by a thread
    while the stage runs (no process-wide counter is reset: others may read it). None where
    neither is available."""

    INTERVAL_S = 0.05

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._peak_kb = 0
        self._done = threading.Event()
        self._sampler: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif _resident_kb() is not None:
            self._sample()
            self._sampler = threading.Thread(target=self._watch, daemon=True)
            self._sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._sampler is not None:
            self._sampler.join()
            self._sample()

    def megabytes(self) -> float | None:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        return self._peak_kb / 1024 if self._peak_kb else None

    def _watch(self) -> None:
        while not self._done.wait(self.INTERVAL_S):
            self._sample()

    def _sample(self) -> None:
        self._peak_kb = max(self._peak_kb, _resident_kb() or 0)


def _resident_kb() -> int | None:
    """This process's resident set (Linux), KB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch so a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(
    device: torch.device, precision: str | None = None
) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; full precision on CPU.

    CPU fine-tuning stays fp32 even where the CPU has native bf16: the project's transfer matrix
    was measured in fp32 and a sweep resumed under other numerics would mix the two. (Embeddings
    choose their own precision: ``EmbeddingConfig.precision``.) ``precision`` "bf16" or "fp32"
    overrides that choice."""
    if precision == "bf16" or (precision is None and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_stage(
    model: TaskModel,
    tasks: Sequence[TaskData],
    tokenizer: PreTrainedTokenizerBase,
    config: TrainConfig,
    *,
    seed: int = 0,
    mixing: MixingConfig | None = None,
    evaluate_after: bool = True,
    scored: Sequence[str] | None = None,
    stage: str = "train",
    progress: ProgressCallback | None = None,
) -> StageResult:
    """Train fresh heads for ``tasks`` plus the shared encoder, then score each on validation
    (only the tasks named in ``scored``, when given: a joint stage's auxiliary tasks are not)."""
    started = time.perf_counter()
    set_seed(seed)
    for task in tasks:
        model.add_head(task.spec)
    features = {t.name: encode(t.train, t.spec, tokenizer, config.features) for t in tasks}
    mixing = mixing or MixingConfig()
    total_steps = _total_steps(features, config)
    with PeakMemory(next(model.parameters()).device) as peak:
        trainable = _run_steps(
            model, features, config, mixing, total_steps, seed, tokenizer, stage, progress
        )
    total = sum(p.numel() for p in model.parameters())
    scoring = progress if config.report_scoring else None
    metrics = {}
    to_score = [t for t in tasks if scored is None or t.name in scored] if evaluate_after else []
    for task in to_score:
        label = f"{stage}:score" if len(to_score) == 1 else f"{stage}:score:{task.name}"
        metrics[task.name] = evaluate(model, task, tokenizer, config, progress=scoring, stage=label)
    return StageResult(
        tasks=[t.name for t in tasks],
        metrics=metrics,
        train_examples={t.name: len(t.train) for t in tasks},
        steps=total_steps,
        seconds=time.perf_counter() - started,
        trainable_params=trainable,
        total_params=total,
        peak_memory_mb=peak.megabytes(),
    )


def evaluate(
    model: TaskModel,
    task: TaskData,
    tokenizer: PreTrainedTokenizerBase,
    config: TrainConfig,
    split: str = "validation",
    progress: ProgressCallback | None = None,
    stage: str = "score",
) -> dict[str, float]:
    """Score the model's head for ``task`` on one of its splits with the task's metric."""
    examples = task.splits.get(split) or []
    if not examples:
        raise ValueError(f"task {task.name!r} has no {split!r} rows to evaluate on")
    features = encode(examples, task.spec, tokenizer, config.features)
    with autocast(next(model.parameters()).device, config.precision):
        predictions = predict(
            model,
            task.spec,
            examples,
            features,
            batch_size=config.eval_batch_size,
            pad_token_id=tokenizer.pad_token_id or 0,
            progress=(lambda step, total: progress(stage, step, total)) if progress else None,
        )
    return score(task.spec, examples, predictions)


def _total_steps(features: dict[str, list[dict]], config: TrainConfig) -> int:
    steps = max(1, int(_steps_per_epoch(features, config) * config.epochs))
    return min(steps, config.max_steps) if config.max_steps else steps


def _steps_per_epoch(features: dict[str, list[dict]], config: TrainConfig) -> int:
    return max(1, sum(-(-len(f) // config.batch_size) for f in features.values()))


class GradualUnfreezing:
    """Which encoder parameters train at each step: the top transformer layer in the first
    epoch, one layer more each epoch, then everything else of the encoder (embeddings). The
    heads always train. Frozen parameters get no gradient, so the optimizer leaves them alone."""

    def __init__(self, model: TaskModel, steps_per_epoch: int) -> None:
        from workers.encoder import transformer_layers

        layers = list(reversed(transformer_layers(model.encoder)))
        in_layers = {id(p) for layer in layers for p in layer.parameters()}
        rest = [p for p in model.encoder.parameters() if id(p) not in in_layers]
        self.groups = [list(layer.parameters()) for layer in layers] + [rest]
        self.steps_per_epoch = steps_per_epoch
        self.model = model
        self._open = 0

    def at(self, step: int) -> None:
        """Unfreeze what epoch ``(step - 1) // steps_per_epoch`` trains (``step`` is 1-based)."""
        wanted = min(len(self.groups), (step - 1) // self.steps_per_epoch + 1)
        if wanted == self._open:
            return
        for index, group in enumerate(self.groups):
            for param in group:
                param.requires_grad_(index < wanted)
        self._open = wanted

    def release(self) -> None:
        """Every parameter trainable again (the next stage decides for itself)."""
        for param in self.model.encoder.parameters():
            param.requires_grad_(True)


def _run_steps(
    model: TaskModel,
    features: dict[str, list[dict]],
    config: TrainConfig,
    mixing: MixingConfig,
    total_steps: int,
    seed: int,
    tokenizer: PreTrainedTokenizerBase,
    stage: str,
    progress: ProgressCallback | None,
) -> int:
    """Train for ``total_steps``; returns how many parameters trained by the last step."""
    device = next(model.parameters()).device
    optimizer, scheduler = _optimizer(model, config, total_steps)
    batches = {name: _endless_batches(f, config.batch_size, seed) for name, f in features.items()}
    rates = mixing.rates({name: len(f) for name, f in features.items()})
    rng = random.Random(seed)
    pad_id = tokenizer.pad_token_id or 0
    unfreezing = None
    if config.unfreezing == "gradual":
        unfreezing = GradualUnfreezing(model, _steps_per_epoch(features, config))
    model.train()
    try:
        for step in range(1, total_steps + 1):
            if unfreezing is not None:
                unfreezing.at(step)
            name = rng.choices(list(rates), weights=list(rates.values()))[0]
            batch = collate([features[name][i] for i in next(batches[name])], pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast(device, config.precision):
                loss, _ = model(batch, name)
            loss = loss.float() * mixing.loss_weight(name) / loss_units(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if progress:
                progress(stage, step, total_steps)
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    finally:
        if unfreezing is not None:
            unfreezing.release()


def _endless_batches(features: list[dict], batch_size: int, seed: int) -> Iterator[list[int]]:
    epoch = 0
    while True:
        yield from length_grouped_batches(features, batch_size, shuffle=True, seed=seed + epoch)
        epoch += 1


def _optimizer(model: TaskModel, config: TrainConfig, total_steps: int):
    groups = parameter_groups(
        model, config.learning_rate, config.weight_decay, config.layer_lr_decay
    )
    # The fused kernel does the same update in one pass: on one CPU thread a step over MiniLM's
    # 22M parameters took 32 ms instead of 263 ms (a seventh of a small target stage).
    fused = all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, fused=fused)
    warmup = int(total_steps * config.warmup_ratio)
    # The schedule scales each group's own rate, so the layers keep their ratios throughout.
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


def parameter_groups(
    model: TaskModel, learning_rate: float, weight_decay: float, layer_lr_decay: float = 1.0
) -> list[dict]:
    """AdamW's parameter groups of the trainable parameters: no weight decay on biases and
    LayerNorm weights (as in BERT), and with ``layer_lr_decay`` < 1 one rate per depth
    (ULMFiT's discriminative learning rates): the heads at ``learning_rate``, the top
    transformer layer at ``learning_rate * layer_lr_decay``, the layer below at
    ``* layer_lr_decay**2``, …, the rest of the encoder (embeddings) lowest. Empty groups are
    left out; with 1.0 there are the two groups of a plain fine-tune."""
    depth = _layer_depths(model) if layer_lr_decay != 1.0 else {}
    groups: dict[tuple[int, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            decayed = not (param.ndim < 2 or "LayerNorm" in name)
            groups.setdefault((depth.get(id(param), 0), decayed), []).append(param)
    return [
        {
            "params": groups[key],
            "weight_decay": weight_decay if key[1] else 0.0,
            "lr": learning_rate * layer_lr_decay ** key[0],
        }
        for key in sorted(groups, key=lambda k: (k[0], not k[1]))
    ]


def _layer_depths(model: TaskModel) -> dict[int, int]:
    """How many steps of decay each encoder parameter is below the heads (by ``id``): 1 for the
    top transformer layer, one more per layer down, the rest of the encoder one below the
    bottom layer. Parameters not listed (the heads) are at depth 0."""
    from workers.encoder import transformer_layers

    if _is_adapted(model.encoder):
        raise ValueError(
            "layer_lr_decay (discriminative learning rates) applies to full-model stages, not "
            "adapter strategies: leave it at 1.0 there"
        )
    try:
        layers = list(transformer_layers(model.encoder))
    except ValueError as error:
        raise ValueError(
            f"layer_lr_decay needs transformer layers to decay over: {error}"
        ) from error
    depths = {
        id(param): len(layers) - index
        for index, layer in enumerate(layers)
        for param in layer.parameters()
    }
    for param in model.encoder.parameters():
        depths.setdefault(id(param), len(layers) + 1)
    return depths


def _is_adapted(encoder: torch.nn.Module) -> bool:
    """A peft-wrapped encoder (adapter and fusion stages); without peft imported there is none."""
    import sys

    peft = sys.modules.get("peft")
    return peft is not None and isinstance(encoder, peft.PeftModel)


def save_checkpoint(
    model: TaskModel, tokenizer: PreTrainedTokenizerBase, path: Path, meta: dict | None = None
) -> Path:
    """Encoder + tokenizer in Hugging Face form (safetensors), heads in ``heads.safetensors``."""
    path.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(path / "encoder", safe_serialization=True)
    tokenizer.save_pretrained(path / "encoder")
    if model.heads:
        state = {k: v.detach().cpu().contiguous() for k, v in model.heads.state_dict().items()}
        save_file(state, str(path / "heads.safetensors"))
    manifest = {
        "heads": {name: spec.to_dict() for name, spec in model.specs.items()},
        **(meta or {}),
    }
    (path / "checkpoint.json").write_text(json.dumps(manifest, indent=2, default=str))
    return path


def load_checkpoint_heads(model: TaskModel, path: Path) -> None:
    """Restore saved heads into ``model`` (whose encoder came from ``path / 'encoder'``)."""
    manifest = json.loads((path / "checkpoint.json").read_text())
    for spec_dict in manifest["heads"].values():
        model.add_head(_spec_from_dict(spec_dict))
    if (path / "heads.safetensors").exists():
        model.heads.load_state_dict(load_file(str(path / "heads.safetensors")))


def _spec_from_dict(data: dict) -> TaskSpec:
    from workers.data.schema import Metric, TaskType

    return TaskSpec(
        name=data["name"],
        type=TaskType(data["type"]),
        metric=Metric(data["metric"]),
        labels=tuple(data.get("labels") or ()),
        family=data.get("family"),
    )
