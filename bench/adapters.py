"""Time to a transfer result with library adapters, against the two-stage full fine-tune.

    python -m bench.adapters            # snli (+ qnli, sick for fusion) -> rte, 3 seeds
    python -m bench.adapters --quick    # small sizes, one seed: while developing

Baseline named: ``sequential`` (full fine-tune of the source, then of the target: what a user
does without adapters). Each scenario runs ``workers.transfer.run_transfer`` on the same target
samples and seeds, with one adapter library that starts empty, so the scenarios show a cold
library (source adapters trained first), then a warm one (loaded). "Time to a result" is the
source and transfer stages a user waits for (``TransferResult.cost()``): the baseline stages
that the comparison needs are not counted. Writes ``bench/out/adapters.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

SCENARIOS = (  # (label, strategy, sources, adapter transfer)
    ("sequential (full fine-tune)", "sequential", ("snli",), "stack"),
    ("adapter, cold library", "adapter", ("snli",), "stack"),
    ("adapter, warm library", "adapter", ("snli",), "stack"),
    ("adapter continue, warm", "adapter", ("snli",), "continue"),
    ("fusion, 2 of 3 adapters cold", "fusion", ("snli", "qnli", "sick"), "stack"),
    ("fusion, warm library", "fusion", ("snli", "qnli", "sick"), "stack"),
)


@dataclass(frozen=True)
class Sizes:
    source_n: int
    target_n: int
    eval_n: int
    seeds: tuple[int, ...]
    max_length: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="rte")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--source-n", type=int, default=None, help="source rows (default 1,000)")
    parser.add_argument("--max-length", type=int, default=None, help="tokens (default 128)")
    parser.add_argument("--out", type=Path, default=Path("bench/out/adapters.json"))
    args = parser.parse_args()
    sizes = Sizes(1000, 200, 200, (0, 1, 2), 128)
    if args.quick:
        sizes = Sizes(200, 64, 64, (0,), 64)
    sizes = replace(
        sizes,
        source_n=args.source_n or sizes.source_n,
        max_length=args.max_length or sizes.max_length,
    )
    rows = run(args.target, sizes, args.threads)
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"sizes": sizes.__dict__, "load_average": os.getloadavg(), "rows": rows}, indent=2
        )
    )


def run(target_name: str, sizes: Sizes, threads: int | None) -> list[dict]:
    import torch

    from service.settings import get_settings
    from workers.adapter_library import AdapterLibrary
    from workers.adapters import AdapterConfig
    from workers.data.loaders import load_task_dir
    from workers.encoder import load_encoder, resolve_encoder
    from workers.features import FeatureConfig
    from workers.finetune import TrainConfig
    from workers.transfer import TransferPlan, run_transfer

    if threads:
        torch.set_num_threads(threads)
    settings = get_settings()
    root = Path(settings.tasks_root)
    ref = resolve_encoder(None)
    encoder, tokenizer = load_encoder(ref)
    target = load_task_dir(root / target_name)
    loaded = {}
    train = TrainConfig(
        epochs=3, batch_size=16, features=FeatureConfig(max_length=sizes.max_length)
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-adapters-") as folder:
        library = AdapterLibrary(Path(folder), ref.id)
        for label, strategy, source_names, mode in SCENARIOS:
            for name in source_names:
                loaded.setdefault(name, load_task_dir(root / name))
            plan = TransferPlan(
                strategy=strategy,
                seeds=sizes.seeds,
                source_n=sizes.source_n,
                target_n=sizes.target_n,
                eval_n=sizes.eval_n,
                source_train=replace(train, epochs=1),
                target_train=train,
                adapter=AdapterConfig(transfer=mode),
            )
            started = time.perf_counter()
            sources = [loaded[n] for n in source_names]
            result = run_transfer(plan, sources, target, encoder, tokenizer, None, library)
            cost = result.cost()
            rows.append(
                {
                    "scenario": label,
                    "strategy": strategy,
                    "sources": list(source_names),
                    "wall_seconds": round(time.perf_counter() - started, 1),
                    "baseline": result.baseline.mean,
                    "transfer": result.transfer.mean,
                    "gain": result.gain.mean,
                    "gain_std": result.gain.std,
                    "cost": cost,
                    "trainable_params": result.transfer_stages[0].trainable_params,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def print_table(rows: list[dict]) -> None:
    reference = rows[0]["cost"]["seconds"]
    print(
        "\n| scenario | time to result (s) | vs sequential | trainable params | baseline | "
        "transfer | gain |\n|---|---|---|---|---|---|---|"
    )
    for row in rows:
        seconds = row["cost"]["seconds"]
        print(
            f"| {row['scenario']} | {seconds:.0f} | {seconds / reference:.2f}× | "
            f"{row['trainable_params']:,} | {row['baseline']:.1f} | {row['transfer']:.1f} | "
            f"{row['gain']:+.1f} ± {row['gain_std']:.1f} |"
        )


if __name__ == "__main__":
    main()
