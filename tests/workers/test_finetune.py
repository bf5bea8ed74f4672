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


def _rates(model: TaskModel, groups: list[dict]) -> dict[str, set[float]]:
    """The learning rates each part of the tiny model gets, by part."""
    owner = {}
    for name, param in model.named_parameters():
        part = "heads" if name.startswith("heads.") else "embeddings"
        for index in range(2):
            if name.startswith(f"encoder.encoder.layer.{index}."):
                part = f"layer{index}"
        owner[id(param)] = part
    rates: dict[str, set[float]] = {}
    for group in groups:
        for param in group["params"]:
            rates.setdefault(owner[id(param)], set()).add(group["lr"])
    return rates


def test_discriminative_learning_rates_fall_by_the_factor_per_layer_down(tiny, sentiment_task):
    from workers.finetune import parameter_groups

    encoder, _ = tiny
    model = TaskModel(encoder, [sentiment_task.spec])
    groups = parameter_groups(model, 1e-3, 0.01, layer_lr_decay=0.5)
    assert _rates(model, groups) == {
        "heads": {1e-3},
        "layer1": {5e-4},  # the top layer
        "layer0": {2.5e-4},
        "embeddings": {1.25e-4},  # everything else of the encoder, lowest
    }
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each exactly once
    for group in groups:  # the weight-decay split holds within each depth
        no_decay = {p.ndim < 2 for p in group["params"]}
        assert no_decay == {group["weight_decay"] == 0.0}

    plain = parameter_groups(model, 1e-3, 0.01)  # 1.0: a plain fine-tune's two groups
    assert [(len(g["params"]), g["lr"], g["weight_decay"]) for g in plain] == [
        (sum(len(g["params"]) for g in groups if g["weight_decay"]), 1e-3, 0.01),
        (sum(len(g["params"]) for g in groups if not g["weight_decay"]), 1e-3, 0.0),
    ]

    for param in encoder.embeddings.parameters():
        param.requires_grad_(False)
    frozen = _rates(model, parameter_groups(model, 1e-3, 0.01, layer_lr_decay=0.5))
    assert "embeddings" not in frozen and frozen["layer0"] == {2.5e-4}  # only what trains


def test_the_schedule_keeps_each_layers_ratio(tiny, sentiment_task):
    from workers.finetune import _optimizer

    model = TaskModel(tiny[0], [sentiment_task.spec])
    config = TrainConfig(learning_rate=1e-3, warmup_ratio=0.5, layer_lr_decay=0.5)
    optimizer, scheduler = _optimizer(model, config, total_steps=10)
    for _ in range(3):
        optimizer.step()
        scheduler.step()
    rates = sorted({g["lr"] for g in optimizer.param_groups}, reverse=True)
    assert rates == pytest.approx([6e-4, 3e-4, 1.5e-4, 7.5e-5])  # 3/5 of the way up, each


def test_training_with_layer_lr_decay_runs_and_moves_lower_layers_less(tiny_ref, sentiment_task):
    from workers.encoder import load_encoder

    moved, scores = {}, {}
    for decay in (1.0, 0.1):
        encoder, tokenizer = load_encoder(tiny_ref)
        before = _snapshot(encoder.embeddings)
        config = TrainConfig(
            epochs=2, batch_size=8, learning_rate=1e-3, device="cpu", layer_lr_decay=decay
        )
        result = train_stage(TaskModel(encoder), [sentiment_task], tokenizer, config, seed=0)
        after = _snapshot(encoder.embeddings)
        moved[decay] = sum(float((a - b).abs().sum()) for a, b in zip(after, before, strict=True))
        scores[decay] = result.metrics["toy_sentiment"]["score"]
    assert 0 < moved[0.1] < moved[1.0] / 10  # the embeddings learn at 1e-3 × 0.1³
    assert all(0 <= score <= 100 for score in scores.values())


def test_layer_lr_decay_is_refused_where_it_cannot_apply(tiny, sentiment_task):
    from workers.adapters import AdapterConfig, add_adapter

    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="layer_lr_decay must be in"):
            TrainConfig(layer_lr_decay=bad)
    encoder, tokenizer = tiny
    adapted = add_adapter(encoder, AdapterConfig(rank=2))
    config = TrainConfig(epochs=1, batch_size=8, device="cpu", layer_lr_decay=0.9)
    with pytest.raises(ValueError, match="full-model stages"):
        train_stage(TaskModel(adapted), [sentiment_task], tokenizer, config)
    plain = TrainConfig(epochs=1, batch_size=8, device="cpu", max_steps=1)  # 1.0: unchanged
    train_stage(TaskModel(adapted), [sentiment_task], tokenizer, plain, evaluate_after=False)
