"""Adapters over the frozen encoder, AdapterFusion, the adapter library, and their strategies."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from workers.adapter_library import AdapterLibrary
from workers.adapters import AdapterConfig, AdapterFusion, adapter_modules, fused_encoder
from workers.finetune import TrainConfig
from workers.strategies import STRATEGIES
from workers.transfer import TRAINING, TransferPlan, run_transfer

FAST = TrainConfig(epochs=2, batch_size=8, learning_rate=1e-3, device="cpu")
ADAPTER = AdapterConfig(rank=4, alpha=8)


def adapter_config(strategy: str, **adapter) -> TransferPlan:
    return TransferPlan(
        strategy=strategy,
        seeds=(0, 1),
        source_train=FAST,
        target_train=FAST,
        adapter=dataclasses.replace(ADAPTER, **adapter),
    )


def test_every_registered_strategy_has_its_training():
    assert set(TRAINING) == set(STRATEGIES)


def test_adapters_sit_on_each_layers_feed_forward_output(tiny):
    encoder, _ = tiny
    assert adapter_modules(encoder) == [
        "encoder.layer.0.output.dense",
        "encoder.layer.1.output.dense",
    ]


def test_adapter_transfer_trains_adapters_only_and_reports_the_cost(tiny, toy_tasks, tmp_path):
    encoder, tokenizer = tiny
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    library = AdapterLibrary(tmp_path, "tiny@1")
    config = adapter_config("adapter")
    result = run_transfer(
        config, [toy_tasks["toy_sts"]], toy_tasks["toy_sentiment"], encoder, tokenizer,
        adapters=library,
    )  # fmt: skip
    assert all((encoder.state_dict()[k] == v).all() for k, v in before.items())
    [source] = result.source_stages
    assert source.tasks == ["toy_sts"] and not source.cached and source.metrics == {}
    stages = [source, *result.baseline_stages, *result.transfer_stages]
    for stage in stages:  # a small fraction of the model trains: adapter(s) and head
        assert 0 < stage.trainable_params < stage.total_params / 5
    assert len(result.transfer_stages) == 2
    assert result.gain.mean == pytest.approx(result.transfer.mean - result.baseline.mean)
    assert [a.task for a in library.entries()] == ["toy_sts"]


def test_a_second_transfer_from_the_same_source_reuses_its_adapter(tiny, toy_tasks, tmp_path):
    encoder, tokenizer = tiny
    library = AdapterLibrary(tmp_path, "tiny@1")
    config = adapter_config("adapter")
    source, target = [toy_tasks["toy_sts"]], toy_tasks["toy_sentiment"]
    plans: list[list[float]] = []
    first = run_transfer(
        config, source, target, encoder, tokenizer, adapters=library, on_plan=plans.append
    )
    second = run_transfer(
        config, source, target, encoder, tokenizer, adapters=library, on_plan=plans.append
    )
    assert not first.source_stages[0].cached and second.source_stages[0].cached
    # The job's progress plan: the stored adapter is loaded, not trained, so no source stage
    seeds = len(config.seeds)
    assert [len(p) for p in plans] == [1 + 2 * seeds, 2 * seeds]
    assert second.source_stages[0].seconds == pytest.approx(first.source_stages[0].seconds)
    # Same adapter, same seeds: the same result
    assert second.transfer.values == pytest.approx(first.transfer.values)
    # Other rows are another adapter
    fewer = dataclasses.replace(toy_tasks["toy_sts"], splits={
        **toy_tasks["toy_sts"].splits, "train": toy_tasks["toy_sts"].train[:12]
    })  # fmt: skip
    third = run_transfer(config, [fewer], target, encoder, tokenizer, adapters=library)
    assert not third.source_stages[0].cached and len(library.entries()) == 2


def test_stacking_and_continuing_the_source_adapter_differ(tiny, toy_tasks, tmp_path):
    encoder, tokenizer = tiny
    library = AdapterLibrary(tmp_path, "tiny@1")
    source, target = [toy_tasks["toy_ner"]], toy_tasks["toy_sts"]
    stacked = run_transfer(
        adapter_config("adapter"), source, target, encoder, tokenizer, adapters=library
    )
    continued = run_transfer(
        adapter_config("adapter", transfer="continue"), source, target, encoder, tokenizer,
        adapters=library,
    )  # fmt: skip
    assert continued.source_stages[0].cached  # the transfer mode is not part of the key
    # Stacking adds a second adapter's parameters; continuing trains the source's
    assert (
        stacked.transfer_stages[0].trainable_params == continued.transfer_stages[0].trainable_params
    )
    assert stacked.baseline.values == pytest.approx(continued.baseline.values)


def test_adapter_strategy_takes_one_source_and_no_full_model_schedules(tiny, toy_tasks):
    encoder, tokenizer = tiny
    target = toy_tasks["toy_sentiment"]
    with pytest.raises(ValueError, match="at most 1 source"):
        run_transfer(
            adapter_config("adapter"), [toy_tasks["toy_sts"], toy_tasks["toy_ner"]], target,
            encoder, tokenizer,
        )  # fmt: skip
    with pytest.raises(ValueError, match="at least 2 sources"):
        run_transfer(adapter_config("fusion"), [toy_tasks["toy_sts"]], target, encoder, tokenizer)
    for full_model_only in ({"unfreezing": "gradual"}, {"layer_lr_decay": 0.9}):
        stage = dataclasses.replace(FAST, **full_model_only)
        with pytest.raises(ValueError, match="full-model stages"):  # refused when planned
            dataclasses.replace(adapter_config("fusion"), target_train=stage)


def test_fusion_attends_over_every_source_adapter_and_trains_only_fusion_and_head(
    tiny, toy_tasks, tmp_path
):
    encoder, tokenizer = tiny
    library = AdapterLibrary(tmp_path, "tiny@1")
    sources = [toy_tasks["toy_sts"], toy_tasks["toy_ner"], toy_tasks["toy_choice"]]
    result = run_transfer(
        adapter_config("fusion"), sources, toy_tasks["toy_sentiment"], encoder, tokenizer,
        adapters=library,
    )  # fmt: skip
    assert [s.tasks for s in result.source_stages] == [["toy_sts"], ["toy_ner"], ["toy_choice"]]
    assert len(library.entries()) == 3
    hidden, layers = 32, 2
    fusion_params = layers * (2 * (hidden * hidden + hidden) + hidden * hidden)
    head_params = hidden * 2 + 2
    assert result.transfer_stages[0].trainable_params == fusion_params + head_params


def test_fusion_starts_as_the_mean_of_the_adapter_outputs():
    fusion = AdapterFusion(8)
    torch.nn.init.zeros_(fusion.query.weight)  # equal scores: softmax is uniform
    layer_output, outputs = torch.randn(2, 3, 8), torch.randn(2, 3, 4, 8)
    fused = fusion(layer_output, outputs)
    assert torch.allclose(fused, outputs.mean(-2), atol=1e-6)


def test_fused_encoder_keeps_the_adapters_frozen(tiny, toy_tasks, tmp_path):
    encoder, tokenizer = tiny
    library = AdapterLibrary(tmp_path, "tiny@1")
    paths = [
        library.get_or_train(toy_tasks[name], encoder, tokenizer, FAST, ADAPTER, 0)[0]
        for name in ("toy_sts", "toy_ner")
    ]
    fused = fused_encoder(encoder, paths)
    trainable = {n for n, p in fused.named_parameters() if p.requires_grad}
    assert trainable and all(".fusion." in n for n in trainable)
    batch = tokenizer(["a film"], return_tensors="pt")
    assert fused(**batch).last_hidden_state.shape == (1, batch["input_ids"].shape[1], 32)


def test_library_lists_and_deletes_adapters(tiny, toy_tasks, tmp_path):
    encoder, tokenizer = tiny
    library = AdapterLibrary(tmp_path, "tiny@1")
    path, stage = library.get_or_train(toy_tasks["toy_sts"], encoder, tokenizer, FAST, ADAPTER, 0)
    [stored] = library.entries()
    assert stored.path == path and stored.task == "toy_sts" and stored.encoder == "tiny@1"
    assert stored.rows == 24 and stored.seed == 0 and stored.stage["seconds"] == stage.seconds
    assert not library.delete("../etc") and not library.delete("0" * 24)
    assert library.delete(stored.key) and library.entries() == [] and not path.exists()
    # Another encoder's adapter of the same task is another key
    other = AdapterLibrary(tmp_path, "tiny@2")
    assert other.key(toy_tasks["toy_sts"], FAST, ADAPTER, 0) != stored.key


def test_an_adapters_key_is_what_decides_its_weights(toy_tasks, tmp_path):
    library = AdapterLibrary(tmp_path, "tiny@1")
    task = toy_tasks["toy_sts"]
    key = library.key(task, FAST, ADAPTER, 0)
    # How a transfer uses the adapter, where it runs and the full-model rate do not change it
    same = [
        (FAST, dataclasses.replace(ADAPTER, transfer="continue", fusion_learning_rate=0.5)),
        (dataclasses.replace(FAST, device="cuda", learning_rate=0.5), ADAPTER),
    ]
    assert all(library.key(task, train, adapter, 0) == key for train, adapter in same)
    # Its rows, seed, stage and adapter settings do; a setting at its default adds nothing
    other = [
        library.key(task, dataclasses.replace(FAST, epochs=3), ADAPTER, 0),
        library.key(task, FAST, dataclasses.replace(ADAPTER, rank=8), 0),
        library.key(task, FAST, ADAPTER, 1),
        library.key(task, dataclasses.replace(FAST, layer_lr_decay=0.5), ADAPTER, 0),
    ]
    assert key not in other and len(set(other)) == len(other)
    assert library.key(task, dataclasses.replace(FAST, layer_lr_decay=1.0), ADAPTER, 0) == key


def test_leftovers_of_a_killed_training_are_neither_listed_nor_reused(tiny, toy_tasks, tmp_path):
    import shutil

    encoder, tokenizer = tiny
    library = AdapterLibrary(tmp_path, "tiny@1")
    task = toy_tasks["toy_sts"]
    path, _ = library.get_or_train(task, encoder, tokenizer, FAST, ADAPTER, 0)
    staging = tmp_path / f".{path.name}.abc123"  # a training killed before its rename
    shutil.copytree(path, staging)
    (staging / "adapter.json").write_text('{"key": "tor')
    assert [a.path for a in library.entries()] == [path]
    (path / "adapter.json").write_text('{"key": "tor')  # a folder that is not whole
    assert library.get(path.name) is None and library.entries() == []
    again, stage = library.get_or_train(task, encoder, tokenizer, FAST, ADAPTER, 0)
    assert again == path and not stage.cached and not staging.exists()
    assert oct(path.stat().st_mode & 0o777) == "0o755"  # readable by an API of another user
    assert library.delete(path.name) and not path.exists()
    assert list(tmp_path.glob(f".{path.name}.deleted-*")) == []


def test_a_wait_for_another_processs_training_can_be_stopped_or_outlasted(
    tiny, toy_tasks, tmp_path
):
    """While another process trains the same adapter, a second waits on its key's lock and
    reports the adapter's stage at step 0, so a job's progress callback can cancel the wait."""
    import threading

    encoder, tokenizer = tiny
    library = AdapterLibrary(tmp_path, "tiny@1")
    task = toy_tasks["toy_sts"]
    key = library.key(task, FAST, ADAPTER, 0)
    reported: list[tuple[str, int]] = []

    class Cancelled(Exception):
        pass

    def cancel_on_second_report(stage: str, step: int, total: int) -> None:
        reported.append((stage, step))
        if len(reported) == 2:
            raise Cancelled

    # Another process's training holds the key's lock
    with library._lock(key), pytest.raises(Cancelled):
        library.get_or_train(task, encoder, tokenizer, FAST, ADAPTER, 0, cancel_on_second_report)
    assert reported == [("adapter:toy_sts", 0)] * 2 and library.entries() == []

    held = library._lock(key)
    held.__enter__()
    threading.Timer(1.0, held.__exit__, (None, None, None)).start()  # the other one ends
    path, stage = library.get_or_train(task, encoder, tokenizer, FAST, ADAPTER, 0)
    assert path.is_dir() and not stage.cached and [a.key for a in library.entries()] == [key]
