"""TaskEmb / TextEmb throughput against a reference-style implementation, and fine-tuning speed.

    python -m bench.embeddings [--tasks sst2,rte,squad] [--examples 1000] [--quick]

The reference is written the way the original research code works (Vu et al. 2020,
tuvuumass/task-transferability ``run_taskemb_*.py`` / ``run_textemb_*.py``): every batch padded to
a fixed 128 tokens (384 for QA), examples in file order, every parameter requiring grad so
back-propagation computes every weight gradient, and per batch the squared gradients of every
parameter and of every layer output (``retain_grad``) are kept and accumulated. It reads off the
same components as ours (each layer's attention output and output, CLS), squared per token and
averaged over real tokens, so the two vectors must agree. (The original squares the batch *sum*
of the gradients and uses a batch-mean loss; we do not copy that, so the vectors are comparable.)

Both implementations start from one trained model state (the head is trained once, the model
deep-copied for each) and see the same examples; every measurement runs once, after a warm-up
batch. Results: a Rich table, and JSON in ``bench/out/embeddings.json``.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from workers.data.loaders import load_task_dir
from workers.data.sampling import subsample
from workers.data.schema import TaskData, TaskType
from workers.embeddings import (
    EmbeddingConfig,
    compute_taskemb,
    compute_textemb,
    fisher_diagonal,
    resolve_precision,
)
from workers.encoder import EncoderRef, load_encoder, pick_device, resolve_encoder
from workers.features import IGNORE_INDEX, FeatureConfig, collate, encode
from workers.finetune import TrainConfig, train_stage
from workers.heads import TaskModel

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "bench" / "out" / "embeddings.json"
QUICK_EXAMPLES = 200
TARGET_SPEEDUP = 3.0
TARGET_COSINE = 0.99

console = Console()
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@dataclass(frozen=True)
class BenchConfig:
    """What one benchmark run measures."""

    tasks: tuple[str, ...]
    examples: int
    tasks_root: Path
    device: str | None = None
    precision: str = "fp32"  # ours; the reference always runs in fp32

    def embedding(self) -> EmbeddingConfig:
        return EmbeddingConfig(
            max_examples=self.examples, device=self.device, precision=self.precision
        )


# ---------------------------------------------------------------------------------------------
# The reference-style implementation


class RetainedOutputs:
    """Each layer's attention output and output of the latest forward pass, with ``retain_grad``."""

    def __init__(self, encoder: nn.Module) -> None:
        self.layers = encoder.encoder.layer  # BERT family: encoder.layer[i].attention.output
        self.tensors: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> RetainedOutputs:
        for i, layer in enumerate(self.layers):
            self._handles.append(
                layer.attention.output.register_forward_hook(self._keep(f"layer{i}.attention"))
            )
            self._handles.append(layer.output.register_forward_hook(self._keep(f"layer{i}.output")))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()

    def _keep(self, name: str) -> Callable:
        def keep(_module, _inputs, output):
            output.retain_grad()
            self.tensors[name] = output  # (batch, seq, hidden)

        return keep


def reference_fisher(
    model: TaskModel,
    task: TaskData,
    tokenizer: PreTrainedTokenizerBase,
    config: EmbeddingConfig,
) -> dict[str, np.ndarray]:
    """Reference-style Fisher pass: fixed padding, every weight gradient, ``retain_grad``."""
    features = encode(task.train, task.spec, tokenizer, config.features)
    width = fixed_width(task.spec.type, config.features)
    device = next(model.parameters()).device
    head = model.heads[task.name]
    model.eval()
    model.requires_grad_(True)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, float] = {}
    with RetainedOutputs(model.encoder) as outputs:
        for start in range(0, len(features), config.batch_size):
            chunk = features[start : start + config.batch_size]
            batch = fixed_batch(chunk, width, tokenizer.pad_token_id or 0, device)
            model.zero_grad(set_to_none=True)
            head.loss(head(model.encode(batch), batch), batch).float().backward()
            keep_squared_gradients(model, outputs.tensors, batch["attention_mask"], sums, counts)
    names = [*outputs.tensors, "cls"]
    return {name: (sums[name] / counts[name]).astype(np.float32) for name in names}


def keep_squared_gradients(
    model: TaskModel,
    outputs: dict[str, torch.Tensor],
    attention_mask: torch.Tensor,
    sums: dict[str, np.ndarray],
    counts: dict[str, float],
) -> None:
    """Add this batch's squared gradients of every parameter and every layer output."""
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            _accumulate(sums, counts, f"param:{name}", parameter.grad.pow(2), 1)
    mask = attention_mask.reshape(-1, attention_mask.shape[-1]).float().unsqueeze(-1)
    for name, hidden in outputs.items():
        squared = hidden.grad.float().pow(2)  # (batch, seq, hidden)
        _accumulate(sums, counts, name, (squared * mask).sum((0, 1)), float(mask.sum()))
    last = list(outputs.values())[-1]  # the last layer's output
    cls = last.grad[:, 0].float().pow(2)  # (batch, hidden)
    _accumulate(sums, counts, "cls", cls.sum(0), cls.shape[0])


def _accumulate(sums: dict, counts: dict, name: str, value: torch.Tensor, count: float) -> None:
    # As the original: each batch's values go to NumPy on the host and are summed there.
    value = value.detach().cpu().numpy()
    sums[name] = sums[name] + value if name in sums else value
    counts[name] = counts.get(name, 0) + count


def reference_textemb(
    encoder: PreTrainedModel,
    task: TaskData,
    tokenizer: PreTrainedTokenizerBase,
    config: EmbeddingConfig,
) -> np.ndarray:
    """Reference-style TextEmb: fixed padding, file order, plain ``no_grad``."""
    features = encode(task.train, task.spec, tokenizer, config.features)
    width = fixed_width(task.spec.type, config.features)
    device = next(encoder.parameters()).device
    model = TaskModel(encoder.eval())
    token_sum = torch.zeros(model.hidden_size, dtype=torch.float64)
    tokens = 0.0
    with torch.no_grad():
        for start in range(0, len(features), config.batch_size):
            chunk = features[start : start + config.batch_size]
            batch = fixed_batch(chunk, width, tokenizer.pad_token_id or 0, device)
            hidden = model.encode(batch)  # (batch, seq, hidden)
            mask = batch["attention_mask"].reshape(hidden.shape[:2]).unsqueeze(-1)
            token_sum += (hidden * mask).sum((0, 1)).double().cpu()
            tokens += float(mask.sum())
    return (token_sum / tokens).numpy().astype(np.float32)


def fixed_width(task_type: TaskType, features: FeatureConfig) -> int:
    """The fixed length the original pads every sequence to."""
    if task_type is TaskType.EXTRACTIVE_QA:
        return features.qa_max_length
    return features.max_length


_PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0, "labels": IGNORE_INDEX, "word_index": -1}


def fixed_batch(
    features: list[dict], width: int, pad_token_id: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """Our collate, then every sequence padded on to ``width`` tokens."""
    batch = collate(features, pad_token_id)
    sequence_dims = batch["input_ids"].dim()
    for key in ("input_ids", *_PAD_VALUES):
        if key in batch and batch[key].dim() == sequence_dims:  # per-token tensors only
            value = pad_token_id if key == "input_ids" else _PAD_VALUES[key]
            batch[key] = F.pad(batch[key], (0, width - batch[key].shape[-1]), value=value)
    return {k: v.to(device) for k, v in batch.items()}


# ---------------------------------------------------------------------------------------------
# Measurements


@dataclass(frozen=True)
class Timing:
    """One measurement: wall-clock and process CPU seconds, and the machine's load before it."""

    wall_s: float
    cpu_s: float  # all of this process's threads; less distorted by other work than wall time
    load_1min: float  # other work on a shared machine skews every timing


def timed(fn: Callable, *args, **kwargs) -> tuple[Any, Timing]:
    """``fn``'s result and how long it took."""
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, Timing(time.perf_counter() - wall, time.process_time() - cpu, load)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def compare(ours: dict, ours_t: Timing, reference: dict, reference_t: Timing, n: int) -> dict:
    """Throughput of both, the speed-up, and per-component cosines between their vectors."""
    if set(ours) != set(reference):
        raise RuntimeError(f"components differ: {sorted(ours)} vs {sorted(reference)}")
    cosines = {name: cosine(ours[name], reference[name]) for name in ours}
    worst = min(cosines, key=cosines.get)
    return {
        "ours": asdict(ours_t),
        "reference": asdict(reference_t),
        "ours_examples_per_s": n / ours_t.wall_s,
        "reference_examples_per_s": n / reference_t.wall_s,
        "speedup": reference_t.wall_s / ours_t.wall_s,
        "speedup_cpu_time": reference_t.cpu_s / ours_t.cpu_s,
        "cosine_min": cosines[worst],
        "cosine_min_component": worst,
        "cosines": cosines,
    }


def warmup_sample(sample: TaskData, config: EmbeddingConfig) -> TaskData:
    """One batch of the sample: run before each measurement so none pays first-call costs."""
    return TaskData(sample.spec, {"train": sample.train[: config.batch_size]})


def train_head(
    encoder: PreTrainedModel,
    sample: TaskData,
    tokenizer: PreTrainedTokenizerBase,
    config: EmbeddingConfig,
) -> tuple[TaskModel, Timing]:
    """One epoch of encoder + fresh head on the sample, as ``compute_taskemb`` trains it."""
    train = TrainConfig(
        epochs=config.train_epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        features=config.features,
        device=config.device,
    )
    device = pick_device(config.device)
    warm = TaskModel(copy.deepcopy(encoder).to(device))
    warm_up = replace(train, max_steps=1)
    train_stage(warm, [warmup_sample(sample, config)], tokenizer, warm_up, evaluate_after=False)
    model = TaskModel(copy.deepcopy(encoder).to(device))
    _, timing = timed(
        train_stage, model, [sample], tokenizer, train, seed=config.seed, evaluate_after=False
    )
    return model, timing


def bench_fisher(
    trained: TaskModel, sample: TaskData, tokenizer: PreTrainedTokenizerBase, config
) -> tuple[dict, dict]:
    """Our ``fisher_diagonal`` against ``reference_fisher``, each on a copy of ``trained``."""
    warm = warmup_sample(sample, config)
    ours_model, reference_model = copy.deepcopy(trained), copy.deepcopy(trained)
    fisher_diagonal(ours_model, warm, tokenizer, config)
    ours, ours_t = timed(fisher_diagonal, ours_model, sample, tokenizer, config)
    reference_fisher(reference_model, warm, tokenizer, config)
    reference, reference_t = timed(reference_fisher, reference_model, sample, tokenizer, config)
    return compare(ours, ours_t, reference, reference_t, len(sample.train)), ours


def bench_textemb(
    encoder: PreTrainedModel,
    sample: TaskData,
    tokenizer: PreTrainedTokenizerBase,
    ref: EncoderRef,
    config: EmbeddingConfig,
) -> dict:
    """Our ``compute_textemb`` against ``reference_textemb`` on the pre-trained encoder."""
    warm = warmup_sample(sample, config)
    compute_textemb(warm, encoder, tokenizer, ref, config)
    ours, ours_t = timed(compute_textemb, sample, encoder, tokenizer, ref, config)
    reference_textemb(encoder, warm, tokenizer, config)
    reference, reference_t = timed(reference_textemb, encoder, sample, tokenizer, config)
    vectors = ours["textemb"].components, {"mean": reference}
    return compare(vectors[0], ours_t, vectors[1], reference_t, len(sample.train))


def describe_sample(sample: TaskData, tokenizer, config: EmbeddingConfig) -> dict:
    """How many features (QA windows) the sample makes and how much fixed padding would waste."""
    features = encode(sample.train, sample.spec, tokenizer, config.features)
    lengths = [len(f["input_ids"]) for f in features]
    width = fixed_width(sample.spec.type, config.features)
    return {
        "examples": len(sample.train),
        "features": len(features),
        "mean_tokens": float(np.mean(lengths)),
        "fixed_width": width,
        "real_token_fraction": float(np.sum(lengths) / (width * len(lengths))),
    }


def bench_task(name: str, encoder, tokenizer, ref: EncoderRef, bench: BenchConfig) -> dict:
    """Every measurement for one task."""
    config = bench.embedding()
    task = load_task_dir(bench.tasks_root / name, splits=("train",))
    sample = TaskData(task.spec, {"train": subsample(task.train, bench.examples, config.seed)})
    result = {"task": name, **describe_sample(sample, tokenizer, config)}
    console.log(f"{name}: training the head (1 epoch, {len(sample.train)} examples)")
    trained, train_t = train_head(encoder, sample, tokenizer, config)
    result["head_training"] = asdict(train_t)
    console.log(f"{name}: Fisher pass, ours and reference")
    result["taskemb"], ours_vector = bench_fisher(trained, sample, tokenizer, config)
    console.log(f"{name}: compute_taskemb end to end")
    full, full_t = timed(compute_taskemb, sample, encoder, tokenizer, ref, config)
    result["compute_taskemb"] = {
        **asdict(full_t),
        "cosine_min_vs_split_run": min(
            cosine(full.components[k], ours_vector[k]) for k in ours_vector
        ),
    }
    console.log(f"{name}: TextEmb, ours and reference")
    result["textemb"] = bench_textemb(encoder, sample, tokenizer, ref, config)
    result["finetune"] = {  # the head training above is exactly a 1-epoch train_stage
        "seconds": train_t.wall_s,
        "s_per_1k_examples": 1000 * train_t.wall_s / result["examples"],
        "s_per_1k_features": 1000 * train_t.wall_s / result["features"],
    }
    return result


# ---------------------------------------------------------------------------------------------
# Report


def report_table(results: list[dict], examples: int, precision: str = "fp32") -> Table:
    """Ours, reference, speed-up and cosine per task and measurement."""
    table = Table(
        title=f"taskrec embeddings benchmark ({examples} examples per task; ours in "
        f"{precision}, the reference in fp32)",
        caption="speed-up = reference time / ours; cosine = min over components. "
        "compute_taskemb's cosine is against the split run (head training, then Fisher).",
    )
    for column in ("task", "measurement", "ours", "reference", "speed-up", "cosine"):
        table.add_column(column, justify="left" if column in ("task", "measurement") else "right")
    for r in results:
        n = r["examples"]
        for label, key in (("TaskEmb Fisher", "taskemb"), ("TextEmb", "textemb")):
            m = r[key]
            table.add_row(
                r["task"],
                label,
                f"{m['ours_examples_per_s']:.1f} ex/s",
                f"{m['reference_examples_per_s']:.1f} ex/s",
                _flag(f"{m['speedup']:.2f}×", m["speedup"] >= TARGET_SPEEDUP),
                _flag(f"{m['cosine_min']:.5f}", m["cosine_min"] >= TARGET_COSINE),
            )
        table.add_row("", "head training", f"{n / r['head_training']['wall_s']:.1f} ex/s")
        full = r["compute_taskemb"]
        cos = f"{full['cosine_min_vs_split_run']:.5f}"
        table.add_row("", "compute_taskemb", f"{n / full['wall_s']:.1f} ex/s", "", "", cos)
        finetune = r["finetune"]
        table.add_row("", "fine-tune 1 epoch", f"{finetune['s_per_1k_examples']:.1f} s/1k ex")
        if r["features"] != r["examples"]:  # QA: long contexts make several windows
            table.add_row("", "", f"{finetune['s_per_1k_features']:.1f} s/1k win")
        table.rows[-1].end_section = r is not results[-1]
    return table


def _flag(text: str, ok: bool) -> str:
    return f"[green]{text}[/]" if ok else f"[red]{text}[/]"


def machine_info(device: torch.device) -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "load_average_before": os.getloadavg(),
    }


def resolve_tasks_root() -> Path:
    """The settings' tasks root (``TASKREC_TASKS_ROOT``), relative paths from the repo root."""
    from service.settings import get_settings

    root = get_settings().tasks_root
    return root if root.is_absolute() or root.exists() else REPO / root


@app.command()
def main(
    tasks: str = typer.Option("sst2,rte,squad", help="Comma-separated shared task names."),
    examples: int | None = typer.Option(None, help="Examples per task (default 1000)."),
    quick: bool = typer.Option(False, help=f"{QUICK_EXAMPLES} examples: for development."),
    device: str | None = typer.Option(None, help="cpu or cuda (default: CUDA when available)."),
    threads: int | None = typer.Option(None, help="torch.set_num_threads (default: torch's)."),
    precision: str | None = typer.Option(
        None, help="Ours: auto, fp32 or bf16 (default: TASKREC_EMBED_PRECISION, auto)."
    ),
    out: Path = typer.Option(DEFAULT_OUT, help="Where the JSON results go."),
) -> None:
    """Benchmark TaskEmb, TextEmb and fine-tuning against the reference-style implementation."""
    n = examples or (QUICK_EXAMPLES if quick else 1000)
    if threads:
        torch.set_num_threads(threads)
    from service.settings import get_settings

    chosen = resolve_precision(precision or get_settings().embed_precision, device)
    names = tuple(t for t in tasks.split(",") if t)
    bench = BenchConfig(names, n, resolve_tasks_root(), device, chosen)
    ref = resolve_encoder(None)
    encoder, tokenizer = load_encoder(ref)
    machine = machine_info(pick_device(device))
    started = time.perf_counter()
    results = [bench_task(name, encoder, tokenizer, ref, bench) for name in bench.tasks]
    machine["load_average_after"] = os.getloadavg()
    console.print(report_table(results, n, bench.precision))
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "encoder": ref.id,
        "examples": n,
        "precision": bench.precision,
        "quick": quick,
        "targets": {"speedup": TARGET_SPEEDUP, "cosine": TARGET_COSINE},
        "machine": machine,
        "embedding_config": bench.embedding().to_dict(),
        "total_s": time.perf_counter() - started,
        "tasks": results,
    }
    out.write_text(json.dumps(payload, indent=2, default=str))
    console.log(f"wrote {out}")


if __name__ == "__main__":
    app()
