"""The fine-tuning recipe: learning, determinism, mixing rules and checkpoints."""

from __future__ import annotations

import pytest
import torch

from workers.features import collate, encode
from workers.finetune import (
    MixingConfig,
    TrainConfig,
    evaluate,
    load_checkpoint_heads,
    save_checkpoint,
    train_stage,
)
from workers.heads import TaskModel, loss_units

FAST = TrainConfig(epochs=4, batch_size=8, learning_rate=1e-3, device="cpu")


def _mean_loss(model: TaskModel, task, tokenizer) -> float:
    model.eval()
    batch = collate(encode(task.train, task.spec, tokenizer), tokenizer.pad_token_id)
    with torch.no_grad():
        loss, _ = model(batch, task.name)
    return float(loss) / loss_units(batch)


def test_training_lowers_the_loss_and_scores_the_task(tiny, sentiment_task):
    encoder, tokenizer = tiny
    model = TaskModel(encoder)
    model.add_head(sentiment_task.spec)
    before = _mean_loss(model, sentiment_task, tokenizer)
    longer = TrainConfig(epochs=10, batch_size=8, learning_rate=1e-3, device="cpu")
    result = train_stage(model, [sentiment_task], tokenizer, longer, seed=0)
    assert _mean_loss(model, sentiment_task, tokenizer) < before * 0.5
    assert 0 <= result.metrics["toy_sentiment"]["score"] <= 100
    assert result.train_examples == {"toy_sentiment": 48} and result.steps == 60


def test_same_seed_same_result(tiny_ref, sentiment_task):
    from workers.encoder import load_encoder

    scores = []
    for _ in range(2):
        encoder, tokenizer = load_encoder(tiny_ref)
        result = train_stage(TaskModel(encoder), [sentiment_task], tokenizer, FAST, seed=7)
        scores.append(result.metrics["toy_sentiment"])
    assert scores[0] == scores[1]


def test_progress_reports_every_step(tiny, sentiment_task):
    encoder, tokenizer = tiny
    seen = []
    train_stage(
        TaskModel(encoder), [sentiment_task], tokenizer, FAST, progress=lambda *a: seen.append(a)
    )
    assert seen[0] == ("train", 1, 24) and seen[-1] == ("train", 24, 24)


def test_multitask_trains_one_head_per_task(tiny, toy_tasks):
    encoder, tokenizer = tiny
    tasks = [toy_tasks["toy_sts"], toy_tasks["toy_ner"], toy_tasks["toy_choice"]]
    model = TaskModel(encoder)
    result = train_stage(
        model, tasks, tokenizer, FAST, mixing=MixingConfig("temperature", temperature=3)
    )
    assert set(model.heads) == set(result.metrics) == {t.name for t in tasks}


def test_mixing_rates():
    sizes = {"big": 10_000, "small": 100}
    assert MixingConfig("proportional").rates(sizes)["big"] == pytest.approx(100 / 101)
    assert MixingConfig("proportional", cap=100).rates(sizes)["big"] == pytest.approx(0.5)
    assert MixingConfig("temperature", temperature=2).rates(sizes)["big"] == pytest.approx(
        100 / 110
    )
    weights = MixingConfig("weights", weights={"big": 0.2})
    assert weights.rates(sizes) == {"big": 0.5, "small": 0.5}
    assert weights.loss_weight("big") == 0.2 and weights.loss_weight("small") == 1.0
    with pytest.raises(ValueError, match="unknown mixing"):
        MixingConfig("nonsense").rates(sizes)


def test_checkpoint_round_trip_is_safetensors_and_predicts_the_same(
    tiny, tiny_ref, tmp_path, toy_tasks
):
    from transformers import AutoModel

    encoder, tokenizer = tiny
    task = toy_tasks["toy_ner"]
    model = TaskModel(encoder)
    train_stage(model, [task], tokenizer, FAST, evaluate_after=False)
    path = save_checkpoint(model, tokenizer, tmp_path / "ckpt", {"encoder": tiny_ref.id})
    assert (path / "encoder" / "model.safetensors").exists() and (
        path / "heads.safetensors"
    ).exists()
    restored = TaskModel(AutoModel.from_pretrained(path / "encoder"))
    load_checkpoint_heads(restored, path)
    assert evaluate(restored, task, tokenizer, FAST) == evaluate(model, task, tokenizer, FAST)


def test_evaluate_without_rows_is_a_clear_error(tiny, sentiment_task):
    encoder, tokenizer = tiny
    model = TaskModel(encoder, [sentiment_task.spec])
    with pytest.raises(ValueError, match="no 'test' rows"):
        evaluate(model, sentiment_task, tokenizer, FAST, split="test")


def test_bf16_training_on_cpu_learns_too(tiny, sentiment_task):
    encoder, tokenizer = tiny
    model = TaskModel(encoder)
    model.add_head(sentiment_task.spec)
    before = _mean_loss(model, sentiment_task, tokenizer)
    half = TrainConfig(epochs=10, batch_size=8, learning_rate=1e-3, device="cpu", precision="bf16")
    train_stage(model, [sentiment_task], tokenizer, half, seed=0)
    assert _mean_loss(model, sentiment_task, tokenizer) < before * 0.5
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights


def test_cpu_defaults_to_fp32_unless_asked():
    from workers.finetune import autocast

    cpu = torch.device("cpu")
    assert not isinstance(autocast(cpu), torch.autocast)
    assert isinstance(autocast(cpu, "bf16"), torch.autocast)


def _snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(b, p) for b, p in zip(before, module.parameters(), strict=True))


def test_gradual_unfreezing_trains_the_top_layer_first_then_one_more_each_epoch(
    tiny, sentiment_task
):
    encoder, tokenizer = tiny
    model = TaskModel(encoder)
    model.add_head(sentiment_task.spec)
    bottom, top = encoder.encoder.layer
    embeddings = encoder.embeddings
    before = {"bottom": _snapshot(bottom), "top": _snapshot(top), "emb": _snapshot(embeddings)}
    one_epoch = TrainConfig(
        epochs=1, batch_size=8, learning_rate=1e-3, device="cpu", unfreezing="gradual"
    )
    first = train_stage(model, [sentiment_task], tokenizer, one_epoch, seed=0, evaluate_after=False)
    assert first.trainable_params < first.total_params  # the cost counts what it trained
    assert _changed(before["top"], top)
    assert not _changed(before["bottom"], bottom) and not _changed(before["emb"], embeddings)
    assert all(p.requires_grad for p in encoder.parameters())  # released for the next stage

    two_epochs = TrainConfig(
        epochs=2, batch_size=8, learning_rate=1e-3, device="cpu", unfreezing="gradual"
    )
    before["bottom"], before["emb"] = _snapshot(bottom), _snapshot(embeddings)
    train_stage(model, [sentiment_task], tokenizer, two_epochs, seed=0, evaluate_after=False)
    assert _changed(before["bottom"], bottom)  # its second epoch opened the next layer down
    assert not _changed(before["emb"], embeddings)  # the embeddings come third
    three = TrainConfig(epochs=3, batch_size=8, learning_rate=1e-3, device="cpu")
    train_stage(model, [sentiment_task], tokenizer, three, seed=0, evaluate_after=False)
    assert _changed(before["emb"], embeddings)  # without it, everything trains
