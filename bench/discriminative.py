"""Discriminative learning rates (layer-wise learning-rate decay): worth it on small targets?

    python -m bench.discriminative            # rte and mrpc, 200 rows, 3 seeds (30 min, 1 thread)
    python -m bench.discriminative --quick    # 64 rows, 1 epoch, one seed (2 min): an estimate
    python -m bench.discriminative --tasks sst2 --lrs 2e-4 --out bench/out/discriminative-sst2.json

Fine-tunes the packaged MiniLM (``workers.finetune.train_stage``, the recipe every full-model
stage uses) on each target's training rows as a transfer's target stage sees them
(``sample_target(task, "full", seed, n, n)``: each seed its own training sample, the same
validation rows for every seed), 3 epochs, batch 16, 64 tokens. Baseline named: decay 1.0 at
the default learning rate 5e-5 (a plain fine-tune). Every setting runs on the same samples and
seeds as the baseline, so the difference to it is also given paired (per seed). Writes
``bench/out/discriminative.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

BASELINE = (5e-5, 1.0)  # (learning rate, layer_lr_decay): a plain fine-tune


@dataclass(frozen=True)
class Plan:
    tasks: tuple[str, ...]
    train_n: int
    eval_n: int
    epochs: float
    seeds: tuple[int, ...]
    settings: tuple[tuple[float, float], ...]  # (learning rate, decay); the baseline first
    batch_size: int = 16
    max_length: int = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tasks", default="rte,mrpc")
    parser.add_argument("--decays", default="1.0,0.9,0.8")
    parser.add_argument("--lrs", default="5e-5,1e-4", help="learning rates (each with --decays)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench/out/discriminative.json"))
    args = parser.parse_args()
    decays = [float(d) for d in args.decays.split(",")]
    rates = [float(r) for r in args.lrs.split(",")]
    grid = [(lr, d) for lr in rates for d in decays]
    settings = (BASELINE, *[s for s in grid if s != BASELINE])
    seeds = tuple(int(s) for s in args.seeds.split(","))
    plan = Plan(tuple(args.tasks.split(",")), 200, 200, 3.0, seeds, settings)
    if args.quick:
        plan = Plan(plan.tasks, 64, 64, 1.0, seeds[:1], settings)
    started = time.perf_counter()
    runs = run(plan, args.threads)
    table = summarise(plan, runs)
    print_table(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "plan": plan.__dict__,
                "threads": args.threads,
                "load_average": os.getloadavg(),
                "wall_seconds": round(time.perf_counter() - started, 1),
                "summary": table,
                "runs": runs,
            },
            indent=2,
        )
    )
    print(f"\nwrote {args.out} ({time.perf_counter() - started:.0f} s)")


def run(plan: Plan, threads: int) -> list[dict]:
    import torch

    from service.settings import get_settings
    from workers.data.loaders import load_task_dir
    from workers.data.sampling import sample_target
    from workers.encoder import load_encoder, resolve_encoder
    from workers.features import FeatureConfig
    from workers.finetune import TrainConfig, train_stage
    from workers.heads import TaskModel

    torch.set_num_threads(threads)
    root = Path(get_settings().tasks_root)
    pristine, tokenizer = load_encoder(resolve_encoder(None))
    features = FeatureConfig(max_length=plan.max_length)
    runs = []
    for name in plan.tasks:
        whole = load_task_dir(root / name)
        for seed in plan.seeds:
            target = sample_target(whole, "full", seed, plan.train_n, plan.eval_n)
            for learning_rate, decay in plan.settings:
                config = TrainConfig(
                    epochs=plan.epochs,
                    batch_size=plan.batch_size,
                    learning_rate=learning_rate,
                    layer_lr_decay=decay,
                    features=features,
                    device="cpu",
                )
                model = TaskModel(copy.deepcopy(pristine))
                stage = train_stage(model, [target], tokenizer, config, seed=seed)
                metrics = stage.metrics[name]
                if "accuracy" not in metrics:  # mrpc's headline is F1: keep accuracy beside it
                    metrics = {**metrics, "accuracy": _accuracy(model, target, tokenizer, config)}
                runs.append(
                    {
                        "task": name,
                        "seed": seed,
                        "learning_rate": learning_rate,
                        "layer_lr_decay": decay,
                        "score": metrics["score"],
                        "metrics": metrics,
                        "steps": stage.steps,
                        "seconds": round(stage.seconds, 1),
                    }
                )
                print(json.dumps(runs[-1]), flush=True)
    return runs


def _accuracy(model, target, tokenizer, config) -> float:
    from dataclasses import replace

    from workers.data.schema import Metric, TaskData
    from workers.finetune import evaluate

    spec = replace(target.spec, metric=Metric.ACCURACY)
    return evaluate(model, TaskData(spec, target.splits), tokenizer, config)["score"]


def summarise(plan: Plan, runs: list[dict]) -> list[dict]:
    """Per task and setting: mean ± std over seeds, and the difference to the baseline (of the
    means, and paired: mean ± std of the per-seed differences)."""
    table = []
    for name in plan.tasks:
        by = {
            setting: {
                r["seed"]: r["score"]
                for r in runs
                if r["task"] == name and (r["learning_rate"], r["layer_lr_decay"]) == setting
            }
            for setting in plan.settings
        }
        base = by[BASELINE]
        for setting in plan.settings:
            scores = by[setting]
            paired = [scores[s] - base[s] for s in plan.seeds]
            table.append(
                {
                    "task": name,
                    "learning_rate": setting[0],
                    "layer_lr_decay": setting[1],
                    "baseline": setting == BASELINE,
                    "mean": statistics.fmean(scores.values()),
                    "std": _std(list(scores.values())),
                    "diff": statistics.fmean(paired),
                    "diff_std": _std(paired),
                    "scores": [scores[s] for s in plan.seeds],
                }
            )
    return table


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def print_table(table: list[dict]) -> None:
    print(
        "\n| task | lr | layer_lr_decay | score (mean ± std) | Δ vs baseline (paired ± std) "
        "| per seed |\n|---|---|---|---|---|---|"
    )
    for row in table:
        label = f"{row['layer_lr_decay']:g}" + (" (baseline)" if row["baseline"] else "")
        diff = "—" if row["baseline"] else f"{row['diff']:+.2f} ± {row['diff_std']:.2f}"
        seeds = ", ".join(f"{s:.1f}" for s in row["scores"])
        print(
            f"| {row['task']} | {row['learning_rate']:g} | {label} | "
            f"{row['mean']:.2f} ± {row['std']:.2f} | {diff} | {seeds} |"
        )


if __name__ == "__main__":
    main()
