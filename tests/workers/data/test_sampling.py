"""Sub-sampling is deterministic, keeps file order, and regimes cut only what they should."""

from __future__ import annotations

import pytest

from workers.data.sampling import REGIMES, apply_regime, subsample
from workers.data.schema import ClassificationExample, Metric, TaskData, TaskSpec, TaskType


def make_task(train: int, validation: int, test: int = 0) -> TaskData:
    spec = TaskSpec("toy", TaskType.CLASSIFICATION, Metric.ACCURACY, ("a", "b"))
    splits = {
        name: [ClassificationExample(f"{name}-{i}", "t", label="ab"[i % 2]) for i in range(n)]
        for name, n in (("train", train), ("validation", validation), ("test", test))
        if n
    }
    return TaskData(spec, splits)


def test_subsample_is_deterministic_and_keeps_order() -> None:
    rows = list(range(100))
    first = subsample(rows, 10, seed=3)
    assert first == subsample(rows, 10, seed=3)
    assert first != subsample(rows, 10, seed=4)
    assert first == sorted(first) and len(set(first)) == 10


@pytest.mark.parametrize("n", [None, 5, 6])
def test_subsample_returns_everything_when_n_is_none_or_large(n: int | None) -> None:
    rows = ("a", "b", "c", "d", "e")
    assert subsample(rows, n, seed=0) == list(rows)


def test_subsample_edge_sizes() -> None:
    assert subsample([1, 2, 3], 0, seed=0) == []
    with pytest.raises(ValueError, match="sample size must be >= 0"):
        subsample([1, 2, 3], -1, seed=0)


def test_limited_regime_cuts_train_and_leaves_the_rest() -> None:
    task = make_task(train=1500, validation=300, test=50)
    limited = apply_regime(task, "limited", seed=0)
    assert REGIMES["limited"] == 1000
    assert [len(limited.splits[s]) for s in ("train", "validation", "test")] == [1000, 300, 50]
    assert limited.spec == task.spec and len(task.train) == 1500  # the input is not changed
    assert limited.train == subsample(task.train, 1000, seed=0)


def test_full_regime_and_explicit_sizes() -> None:
    task = make_task(train=30, validation=20)
    assert apply_regime(task, "full", seed=0).splits == task.splits
    sized = apply_regime(task, "full", seed=1, train_n=10, eval_n=5)
    assert (len(sized.train), len(sized.validation)) == (10, 5)
    assert len(apply_regime(task, "limited", seed=1, train_n=25).train) == 25


def test_unknown_regime_is_refused() -> None:
    with pytest.raises(
        ValueError, match="unknown regime 'tiny' \\(expected one of limited, full\\)"
    ):
        apply_regime(make_task(2, 2), "tiny", seed=0)


def test_each_seed_trains_on_its_own_target_sample_and_all_score_on_one(toy_tasks) -> None:
    from workers.data.sampling import sample_target

    task = toy_tasks["toy_sentiment"]
    first, second = (sample_target(task, "full", seed, 20, 5) for seed in (0, 1))
    assert len(first.train) == len(second.train) == 20
    assert [ex.id for ex in first.train] != [ex.id for ex in second.train]
    assert [ex.id for ex in first.validation] == [ex.id for ex in second.validation]
