"""Deterministic sub-sampling of task splits, and the data-size regimes of the experiments."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from workers.data.schema import TaskData

T = TypeVar("T")

# Training rows per regime: "limited" mimics a small target task, "full" keeps every row.
REGIMES: dict[str, int | None] = {"limited": 1000, "full": None}


def subsample(examples: Sequence[T], n: int | None, seed: int) -> list[T]:
    """``n`` rows picked with ``seed``, in their original order; all if ``n`` is None or too big."""
    if n is not None and n < 0:
        raise ValueError(f"sample size must be >= 0, got {n}")
    if n is None or n >= len(examples):
        return list(examples)
    # Sorting the chosen indices keeps file order, so a smaller sample is not a shuffled one.
    chosen = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in chosen]


def apply_regime(
    task: TaskData,
    regime: str,
    *,
    seed: int,
    train_n: int | None = None,
    eval_n: int | None = None,
) -> TaskData:
    """A copy of ``task`` with train cut to the regime's size and validation to ``eval_n``.

    ``train_n`` overrides the regime's size; other splits (test) are kept whole.
    """
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r} (expected one of {', '.join(REGIMES)})")
    sizes = {"train": train_n if train_n is not None else REGIMES[regime], "validation": eval_n}
    splits = {
        name: subsample(rows, sizes[name], seed) if name in sizes else list(rows)
        for name, rows in task.splits.items()
    }
    return TaskData(spec=task.spec, splits=splits)


EVAL_SEED = 0  # every seed and source of a target is scored on the same validation rows


def sample_target(
    task: TaskData, regime: str, seed: int, train_n: int | None, eval_n: int | None
) -> TaskData:
    """A transfer target as one seed sees it: training rows sampled with ``seed`` (each seed
    trains on its own sample, as the sweep's runs do), validation rows the same for every seed
    (``EVAL_SEED``), so seeds differ in what they learn from, not in what they are scored on."""
    train = apply_regime(task, regime, seed=seed, train_n=train_n, eval_n=0)
    scored = apply_regime(task, regime, seed=EVAL_SEED, train_n=0, eval_n=eval_n)
    return TaskData(task.spec, {"train": train.train, "validation": scored.validation})
