"""Intermediate-task transfer next to its baseline, sequential and multi-task."""

from __future__ import annotations

import pytest

from workers.finetune import TrainConfig
from workers.transfer import TransferConfig, run_transfer

FAST = TrainConfig(epochs=2, batch_size=8, learning_rate=1e-3, device="cpu")


def test_sequential_transfer_reports_baseline_transfer_and_gain(tiny, toy_tasks):
    encoder, tokenizer = tiny
    sources = [toy_tasks["toy_sts"], toy_tasks["toy_ner"]]
    config = TransferConfig(seeds=(0, 1), source_train=FAST, target_train=FAST)
    result = run_transfer(sources, toy_tasks["toy_sentiment"], encoder, tokenizer, config)
    assert result.sources == ["toy_sts", "toy_ner"] and result.metric == "accuracy"
    assert [s.tasks for s in result.source_stages] == [["toy_sts"], ["toy_ner"]]
    assert len(result.baseline_stages) == len(result.transfer_stages) == 2
    gains = [t - b for t, b in zip(result.transfer.values, result.baseline.values, strict=True)]
    assert result.gain.values == pytest.approx(gains)
    assert result.gain.mean == pytest.approx(result.transfer.mean - result.baseline.mean)


def test_transfer_leaves_the_plain_encoder_untouched(tiny, toy_tasks):
    encoder, tokenizer = tiny
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    config = TransferConfig(seeds=(0,), source_train=FAST, target_train=FAST)
    run_transfer([toy_tasks["toy_sts"]], toy_tasks["toy_sentiment"], encoder, tokenizer, config)
    assert all((encoder.state_dict()[k] == v).all() for k, v in before.items())


def test_regression_source_does_not_leak_its_loss_into_a_classification_target(tiny, toy_tasks):
    """An STS-B-like source must not leave the target on a regression loss."""
    encoder, tokenizer = tiny
    config = TransferConfig(seeds=(0,), source_train=FAST, target_train=FAST)
    result = run_transfer(
        [toy_tasks["toy_sts"]], toy_tasks["toy_sentiment"], encoder, tokenizer, config
    )
    scores = result.transfer_stages[0].metrics["toy_sentiment"]
    assert set(scores) == {"score", "accuracy"}  # scored as classification, labels decoded


def test_multitask_sources_share_one_stage(tiny, toy_tasks):
    encoder, tokenizer = tiny
    config = TransferConfig(strategy="multitask", seeds=(0,), source_train=FAST, target_train=FAST)
    sources = [toy_tasks["toy_sts"], toy_tasks["toy_choice"]]
    result = run_transfer(sources, toy_tasks["toy_sentiment"], encoder, tokenizer, config)
    assert [sorted(s.tasks) for s in result.source_stages] == [["toy_choice", "toy_sts"]]


def test_joint_trains_the_target_with_its_sources_weighted_and_scores_the_target(tiny, toy_tasks):
    from workers.finetune import MixingConfig

    encoder, tokenizer = tiny
    target, sources = toy_tasks["toy_sentiment"], [toy_tasks["toy_sts"], toy_tasks["toy_ner"]]
    weights = MixingConfig(strategy="weights", weights={"toy_sts": 0.5, "toy_ner": 0.2})
    config = TransferConfig(strategy="joint", seeds=(0, 1), target_train=FAST, mixing=weights)
    result = run_transfer(sources, target, encoder, tokenizer, config)
    assert result.source_stages == []  # no stage of their own
    for stage in result.transfer_stages:  # one joint stage per seed, the target scored alone
        assert stage.tasks == ["toy_sentiment", "toy_sts", "toy_ner"]
        assert list(stage.metrics) == ["toy_sentiment"]
    assert len(result.baseline_stages) == 2
    assert result.gain.mean == pytest.approx(result.transfer.mean - result.baseline.mean)


def test_each_seed_trains_on_the_target_it_is_given(tiny, toy_tasks):
    from workers.data.sampling import sample_target

    encoder, tokenizer = tiny
    whole, asked = toy_tasks["toy_sentiment"], []

    def for_seed(seed):
        asked.append(seed)
        return sample_target(whole, "full", seed, 10 + seed, None)

    config = TransferConfig(seeds=(0, 1), source_train=FAST, target_train=FAST)
    result = run_transfer([toy_tasks["toy_sts"]], whole, encoder, tokenizer, config, None, for_seed)
    assert asked == [0, 1]
    assert [s.train_examples["toy_sentiment"] for s in result.baseline_stages] == [10, 11]
    assert [s.train_examples["toy_sentiment"] for s in result.transfer_stages] == [10, 11]


def test_bad_strategy_and_no_source_are_errors(tiny, toy_tasks):
    encoder, tokenizer = tiny
    target = toy_tasks["toy_sentiment"]
    with pytest.raises(ValueError, match="at least one source"):
        run_transfer([], target, encoder, tokenizer)
    with pytest.raises(ValueError, match="unknown strategy"):
        run_transfer([target], target, encoder, tokenizer, TransferConfig(strategy="both"))
