"""Intermediate-task transfer next to its baseline, sequential and multi-task."""

from __future__ import annotations

import dataclasses

import pytest

from workers.finetune import TrainConfig
from workers.transfer import TransferPlan, run_transfer

FAST = TrainConfig(epochs=2, batch_size=8, learning_rate=1e-3, device="cpu")


def test_sequential_transfer_reports_baseline_transfer_and_gain(tiny, toy_tasks):
    encoder, tokenizer = tiny
    sources = [toy_tasks["toy_sts"], toy_tasks["toy_ner"]]
    config = TransferPlan(seeds=(0, 1), source_train=FAST, target_train=FAST)
    plans: list[list[float]] = []
    target = toy_tasks["toy_sentiment"]
    result = run_transfer(config, sources, target, encoder, tokenizer, on_plan=plans.append)
    assert result.sources == ["toy_sts", "toy_ner"] and result.metric == "accuracy"
    # Announced before it ran: two source stages, then a baseline and a transfer per seed,
    # each weighed by the rows it trains on (× epochs)
    rows = [len(s.train) * 2 for s in sources] + [len(target.train) * 2] * 4
    assert plans == [rows]
    assert [s.tasks for s in result.source_stages] == [["toy_sts"], ["toy_ner"]]
    assert len(result.baseline_stages) == len(result.transfer_stages) == 2
    gains = [t - b for t, b in zip(result.transfer.values, result.baseline.values, strict=True)]
    assert result.gain.values == pytest.approx(gains)
    assert result.gain.mean == pytest.approx(result.transfer.mean - result.baseline.mean)


def test_transfer_leaves_the_plain_encoder_untouched(tiny, toy_tasks):
    encoder, tokenizer = tiny
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    config = TransferPlan(seeds=(0,), source_train=FAST, target_train=FAST)
    run_transfer(config, [toy_tasks["toy_sts"]], toy_tasks["toy_sentiment"], encoder, tokenizer)
    assert all((encoder.state_dict()[k] == v).all() for k, v in before.items())


def test_regression_source_does_not_leak_its_loss_into_a_classification_target(tiny, toy_tasks):
    """An STS-B-like source must not leave the target on a regression loss."""
    encoder, tokenizer = tiny
    config = TransferPlan(seeds=(0,), source_train=FAST, target_train=FAST)
    result = run_transfer(
        config, [toy_tasks["toy_sts"]], toy_tasks["toy_sentiment"], encoder, tokenizer
    )
    scores = result.transfer_stages[0].metrics["toy_sentiment"]
    assert set(scores) == {"score", "accuracy"}  # scored as classification, labels decoded


def test_multitask_sources_share_one_stage(tiny, toy_tasks):
    encoder, tokenizer = tiny
    config = TransferPlan(strategy="multitask", seeds=(0,), source_train=FAST, target_train=FAST)
    sources = [toy_tasks["toy_sts"], toy_tasks["toy_choice"]]
    result = run_transfer(config, sources, toy_tasks["toy_sentiment"], encoder, tokenizer)
    assert [sorted(s.tasks) for s in result.source_stages] == [["toy_choice", "toy_sts"]]


def test_joint_trains_the_target_with_its_sources_weighted_and_scores_the_target(tiny, toy_tasks):
    from workers.finetune import MixingConfig

    encoder, tokenizer = tiny
    target, sources = toy_tasks["toy_sentiment"], [toy_tasks["toy_sts"], toy_tasks["toy_ner"]]
    weights = MixingConfig(strategy="weights", weights={"toy_sts": 0.5, "toy_ner": 0.2})
    config = TransferPlan(strategy="joint", seeds=(0, 1), target_train=FAST, mixing=weights)
    result = run_transfer(config, sources, target, encoder, tokenizer)
    assert result.source_stages == []  # no stage of their own
    for stage in result.transfer_stages:  # one joint stage per seed, the target scored alone
        assert stage.tasks == ["toy_sentiment", "toy_sts", "toy_ner"]
        assert list(stage.metrics) == ["toy_sentiment"]
    assert len(result.baseline_stages) == 2
    assert result.gain.mean == pytest.approx(result.transfer.mean - result.baseline.mean)


def test_the_plan_samples_each_seed_its_own_target_rows_scored_on_the_same_rows(tiny, toy_tasks):
    encoder, tokenizer = tiny
    whole = toy_tasks["toy_sentiment"]
    plan = TransferPlan(
        seeds=(0, 1), source_n=12, target_n=10, eval_n=8, source_train=FAST, target_train=FAST
    )
    first, second = plan.target_rows(whole, 0), plan.target_rows(whole, 1)
    assert len(first.train) == len(second.train) == 10 and first.train != second.train
    assert first.validation == second.validation and len(first.validation) == 8
    assert len(plan.source_rows(toy_tasks["toy_sts"]).train) == 12
    result = run_transfer(plan, [toy_tasks["toy_sts"]], whole, encoder, tokenizer)
    assert result.protocol == 2 and result.source_stages[0].train_examples == {"toy_sts": 12}
    assert [s.train_examples["toy_sentiment"] for s in result.baseline_stages] == [10, 10]
    # Protocol 1 (jobs queued before per-seed sampling): every seed the first seed's rows
    old = dataclasses.replace(plan, protocol=1)
    assert old.target_rows(whole, 1).train == first.train


def test_bad_strategy_and_no_source_are_errors(tiny, toy_tasks):
    encoder, tokenizer = tiny
    target = toy_tasks["toy_sentiment"]
    with pytest.raises(ValueError, match="at least one source"):
        run_transfer(TransferPlan(), [], target, encoder, tokenizer)
    with pytest.raises(ValueError, match="unknown strategy"):
        TransferPlan(strategy="both")
