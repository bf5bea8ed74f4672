"""Transfer sweeps end to end on two tiny tasks with the tiny BERT: resume, caching, no leaks."""

from __future__ import annotations

import dataclasses
import json

import pytest

import workers.heads
from workers.selection.results import read_results
from workers.sweep import (
    SweepConfig,
    SweepEvent,
    SweepPaths,
    SweepSettingsError,
    run_sweep,
)

# Two steps per stage keep a whole sweep of the tiny model to a few seconds.
CONFIG = SweepConfig(seeds=(0, 1), batch_size=8, max_length=32, max_steps=2)


def _with(**changes) -> SweepConfig:
    return SweepConfig(**{**CONFIG.__dict__, **changes})


class Interrupted(Exception):
    """Stands in for a crash or kill in the middle of a run."""


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model gains nothing from threads, and loses a lot on a busy 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def paths(tmp_path) -> SweepPaths:
    return SweepPaths(results=tmp_path / "matrix.csv", checkpoints=tmp_path / "checkpoints")


@pytest.fixture()
def two_tasks(toy_tasks):
    return [toy_tasks["toy_sts"], toy_tasks["toy_sentiment"]]  # regression, classification


def _crash_in(stage_prefix: str):
    def on_event(event: SweepEvent) -> None:
        if event.kind == "step" and event.label.startswith(stage_prefix):
            raise Interrupted(event.label)

    return on_event


def test_sweep_resumes_after_a_crash_without_recomputing_finished_runs(
    two_tasks, tiny_ref, paths, tmp_path
) -> None:
    # Order: 4 baselines; toy_sts trained, → toy_sentiment seeds 0, 1; toy_sentiment trained,
    # then the crash inside its first transfer (→ toy_sts, seed 0): that run is lost, no more.
    with pytest.raises(Interrupted):
        crash = _crash_in("transfer:toy_sentiment")
        run_sweep(two_tasks, two_tasks, tiny_ref, paths, CONFIG, crash)
    assert [r.key for r in read_results(paths.results)] == [
        ("toy_sts", "toy_sentiment", 0),
        ("toy_sts", "toy_sentiment", 1),
    ]
    assert len(list(paths.checkpoints.iterdir())) == 2  # both sources saved, nothing half-written

    resumed = run_sweep(two_tasks, two_tasks, tiny_ref, paths, CONFIG)
    assert (resumed.baselines_run, resumed.sources_trained, resumed.sources_loaded) == (0, 0, 1)
    assert (resumed.transfers_run, resumed.skipped) == (2, 6)
    rows = read_results(paths.results)
    assert sorted(r.key for r in rows) == sorted(
        (s, t, seed)
        for s in ("toy_sts", "toy_sentiment")
        for t in ("toy_sts", "toy_sentiment")
        for seed in (0, 1)
        if s != t
    )
    for row in rows:
        assert row.gain == pytest.approx(row.score - row.baseline)
        assert row.metric == {"toy_sts": "pearson", "toy_sentiment": "accuracy"}[row.target]

    again = run_sweep(two_tasks, two_tasks, tiny_ref, paths, CONFIG)
    assert (again.baselines_run, again.sources_trained, again.sources_loaded) == (0, 0, 0)
    assert (again.transfers_run, again.skipped) == (0, 8)

    # The crash changed no number: the run it cut short, made again afresh, scores the same.
    fresh = SweepPaths(tmp_path / "fresh.csv", paths.checkpoints)  # same cached source
    straight = run_sweep(two_tasks[1:], two_tasks[:1], tiny_ref, fresh, _with(seeds=(0,)))
    assert (straight.baselines_run, straight.sources_loaded, straight.transfers_run) == (1, 1, 1)
    redone = next(r for r in rows if r.key == ("toy_sentiment", "toy_sts", 0))
    assert straight.rows[0].score == pytest.approx(redone.score, abs=1e-6)
    assert straight.rows[0].baseline == pytest.approx(redone.baseline, abs=1e-6)


def test_new_targets_and_seeds_reuse_cached_work_but_changed_settings_are_refused(
    two_tasks, toy_tasks, tiny_ref, paths
) -> None:
    sts, sentiment = two_tasks
    run_sweep([sts], [sentiment], tiny_ref, paths, _with(seeds=(0,)))
    # More seeds and targets extend the same matrix: the source and first baseline are reused.
    report = run_sweep([sts], [sentiment, toy_tasks["toy_ner"]], tiny_ref, paths, CONFIG)
    assert (report.sources_trained, report.sources_loaded) == (0, 1)
    assert (report.baselines_run, report.transfers_run, report.skipped) == (3, 3, 2)
    # Other sizes would make other numbers: refused before any work, rather than mixed in.
    with pytest.raises(SweepSettingsError, match="target_n"):
        run_sweep([sts], [sentiment], tiny_ref, paths, _with(target_n=10))


def test_regression_source_does_not_leak_its_loss_into_a_classification_target(
    two_tasks, tiny_ref, paths, monkeypatch
) -> None:
    calls: list[tuple[str, str]] = []  # ("loss", name) and ("step", stage), in order
    functional = workers.heads.F
    for name in ("cross_entropy", "mse_loss"):
        real = getattr(functional, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls.append(("loss", _name))
            return _real(*args, **kwargs)

        monkeypatch.setattr(functional, name, spy)

    def on_event(event: SweepEvent) -> None:
        if event.kind == "step":
            calls.append(("step", event.label))

    sts, sentiment = two_tasks
    run_sweep([sts], [sentiment], tiny_ref, paths, _with(seeds=(0,)), on_event)

    # A step's losses come before its step event: attribute each loss to the next stage seen.
    losses: dict[str, set[str]] = {}
    pending: list[str] = []
    for kind, value in calls:
        if kind == "loss":
            pending.append(value)
        else:
            losses.setdefault(value.split(":seed")[0], set()).update(pending)
            pending = []
    assert losses["source:toy_sts"] == {"mse_loss"}
    assert losses["transfer:toy_sts:toy_sentiment"] == {"cross_entropy"}

    checkpoint = next(paths.checkpoints.iterdir())
    encoder_config = json.loads((checkpoint / "encoder" / "config.json").read_text())
    assert encoder_config.get("problem_type") is None
    assert not (checkpoint / "heads.safetensors").exists()  # the source head was dropped
    meta = json.loads((checkpoint / "checkpoint.json").read_text())
    assert meta["heads"] == {} and meta["source"] == "toy_sts"


def test_a_baseline_torn_by_a_crash_is_run_again_not_read_short(two_tasks, tiny_ref, paths) -> None:
    sts, sentiment = two_tasks
    first = run_sweep([sts], [sentiment], tiny_ref, paths, _with(seeds=(0,)))
    header, line = paths.baselines.read_text().splitlines()
    target, seed, score, _metric = line.split(",")
    paths.baselines.write_text(f"{header}\n{target},{seed},{score[:1]}")  # cut inside the score
    paths.results.unlink()  # so the transfer runs again, against whatever baseline it finds
    again = run_sweep([sts], [sentiment], tiny_ref, paths, _with(seeds=(0,)))
    assert again.baselines_run == 1
    assert again.rows[0].baseline == pytest.approx(first.rows[0].baseline, abs=1e-6)
    assert again.rows[0].baseline == pytest.approx(float(score), abs=1e-6)


def test_a_task_whose_data_changed_since_is_refused(two_tasks, toy_tasks, tiny_ref, paths) -> None:
    sts, sentiment = two_tasks
    run_sweep([sts], [sentiment], tiny_ref, paths, _with(seeds=(0,)))
    recorded = json.loads(paths.tasks.read_text())
    assert recorded == {"toy_sts": sts.content_hash(), "toy_sentiment": sentiment.content_hash()}
    train = sentiment.splits["train"]
    edited = dataclasses.replace(sentiment, splits={**sentiment.splits, "train": train[:-1]})
    with pytest.raises(SweepSettingsError, match="the data of toy_sentiment changed"):
        run_sweep([sts], [edited], tiny_ref, paths, _with(seeds=(0, 1)))
    assert len(read_results(paths.results)) == 1  # nothing was run against the edited data
    # unchanged tasks are still welcome, and a new one is recorded beside the others
    run_sweep([sts], [sentiment, toy_tasks["toy_ner"]], tiny_ref, paths, _with(seeds=(0,)))
    assert set(json.loads(paths.tasks.read_text())) == {"toy_sts", "toy_sentiment", "toy_ner"}


def test_the_cost_estimate_counts_what_is_left() -> None:
    from workers.sweep import SweepConfig, TaskSize, estimate_cost

    config = SweepConfig(source_n=1000, target_n=100, eval_n=30, seeds=(0, 1), max_length=64)
    config = dataclasses.replace(config, source_epochs=1.0, target_epochs=2.0)
    sources = [TaskSize("big", "classification", 5000), TaskSize("mc", "multiple_choice", 200)]
    targets = [TaskSize("t", "classification", 400), TaskSize("big", "classification", 5000)]
    cost = estimate_cost(sources, targets, config, seconds_per_example=0.01, seconds_per_run=2)
    # sources: 1000 (capped) + 200 × 4 choices; per target run: 100 × 2 epochs + 30 / 3 scored
    per_run = 100 * 2 + 30 / 3
    assert (cost.sources_to_train, cost.baselines, cost.target_runs) == (2, 4, 6)
    assert cost.examples == round(1000 + 800 + per_run * (6 + 4))
    assert cost.seconds == pytest.approx(cost.examples * 0.01 + (6 + 4) * 2, abs=0.1)
    done = frozenset({("big", "t", 0), ("mc", "t", 0)})
    resumed = estimate_cost(
        sources, targets, config, seconds_per_example=0.01, seconds_per_run=2,
        trained=frozenset({"big"}), done=done, baselines_done=frozenset({("t", 0)}),
    )  # fmt: skip
    assert (resumed.sources_to_train, resumed.baselines, resumed.target_runs) == (1, 3, 4)


def test_the_plan_weighs_every_stage_it_will_run_in_order(two_tasks, tiny_ref, paths) -> None:
    events: list[SweepEvent] = []
    config = _with(source_n=40, target_n=8, eval_n=8, seeds=(0,))
    run_sweep(two_tasks, two_tasks, tiny_ref, paths, config, events.append)
    plan = events[0]
    assert plan.kind == "plan"
    # 2 baselines; then per source: its training (40 rows) and one transfer (8 rows)
    stages = [e.label for e in events if e.kind == "step"]
    assert len(plan.stage_weights) == len(dict.fromkeys(stages)) == 6
    b_sts, b_sentiment, source_sts, to_sentiment, source_sentiment, to_sts = plan.stage_weights
    assert (to_sentiment, to_sts) == (b_sentiment, b_sts)  # a transfer costs as its baseline
    assert min(source_sts, source_sentiment) > max(to_sts, to_sentiment)  # 40 rows against 8
    events.clear()
    more = _with(source_n=40, target_n=8, eval_n=8, seeds=(0, 1))
    run_sweep(two_tasks, two_tasks, tiny_ref, paths, more, events.append)
    # Resumed: seed 1's baselines and transfers only; the sources are checkpointed
    assert len(events[0].stage_weights) == 4
    assert len({round(w, 6) for w in events[0].stage_weights}) <= 2


def test_an_adapter_sweep_keeps_its_adapters_and_records_what_each_run_cost(
    two_tasks, tiny_ref, paths
) -> None:
    from workers.adapters import AdapterConfig

    config = dataclasses.replace(CONFIG, strategy="adapter", adapter=AdapterConfig(rank=4))
    report = run_sweep(two_tasks, two_tasks, tiny_ref, paths, config)
    assert (report.sources_trained, report.transfers_run) == (2, 4)
    assert len(list((paths.checkpoints / "adapters").glob("*/adapter.json"))) == 2
    pinned = json.loads(paths.settings.read_text())
    assert pinned["strategy"] == "adapter" and pinned["adapter"]["rank"] == 4
    for row in read_results(paths.results):
        assert row.seconds > 0 and row.source_seconds > 0 and row.peak_memory_mb
        assert 0 < row.trainable_params < row.total_params / 5  # the encoder stayed frozen
    # A sequential sweep may not resume into it (its baselines are other ones)
    with pytest.raises(SweepSettingsError, match="strategy"):
        run_sweep(two_tasks, two_tasks, tiny_ref, paths, CONFIG)
    # Another results file over the same sources loads their adapters instead of training them
    again = SweepPaths(results=paths.results.with_name("again.csv"), checkpoints=paths.checkpoints)
    report = run_sweep(two_tasks, two_tasks, tiny_ref, again, config)
    assert (report.sources_trained, report.sources_loaded) == (0, 2)


def test_a_results_file_begun_without_cost_columns_keeps_its_columns(
    two_tasks, tiny_ref, paths
) -> None:
    from workers.selection.results import FIELDS

    paths.results.write_text(",".join(FIELDS) + "\n")
    paths.settings.write_text(json.dumps(CONFIG.pinned(tiny_ref)))  # as before strategies
    run_sweep(
        two_tasks[:1], two_tasks[1:], tiny_ref, paths, dataclasses.replace(CONFIG, seeds=(0,))
    )
    lines = paths.results.read_text().splitlines()
    assert lines[0] == ",".join(FIELDS) and len(lines) == 2
    assert len(lines[1].split(",")) == len(FIELDS)
    assert "strategy" not in json.loads(paths.settings.read_text())


def test_a_fusion_sweep_fuses_the_adapters_an_adapter_sweep_kept_and_resumes(
    two_tasks, toy_tasks, tiny_ref, paths, tmp_path
) -> None:
    from workers.adapters import AdapterConfig

    target = toy_tasks["toy_choice"]
    adapter = dataclasses.replace(
        CONFIG, seeds=(0,), strategy="adapter", adapter=AdapterConfig(rank=4)
    )
    adapter_paths = SweepPaths(tmp_path / "adapter.csv", paths.checkpoints)
    run_sweep(two_tasks, [target], tiny_ref, adapter_paths, adapter)
    library = paths.checkpoints / "adapters"
    stored = {p: p.stat().st_mtime_ns for p in library.glob("*/adapter.json")}
    assert len(stored) == 2
    adapter_rows = {r.source: r for r in read_results(adapter_paths.results)}

    fusion = dataclasses.replace(adapter, strategy="fusion")
    events: list[SweepEvent] = []
    report = run_sweep(two_tasks, [target], tiny_ref, paths, fusion, events.append)
    # The adapter sweep's two adapters are loaded, not trained again; one fused run is made
    assert (report.sources_trained, report.sources_loaded) == (0, 2)
    assert (report.baselines_run, report.transfers_run) == (1, 1)
    assert {p: p.stat().st_mtime_ns for p in library.glob("*/adapter.json")} == stored
    (row,) = read_results(paths.results)
    assert row.key == ("toy_sts+toy_sentiment", "toy_choice", 0)
    assert row.gain == pytest.approx(row.score - row.baseline)
    # Against the adapter strategy's baseline (a fresh target adapter), measured the same way
    assert row.baseline > 0
    assert row.baseline == pytest.approx(adapter_rows["toy_sts"].baseline, abs=1e-6)
    # The fused adapters' trainings added up, as the library recorded each
    fused = [adapter_rows[name].source_seconds for name in ("toy_sts", "toy_sentiment")]
    assert min(fused) > 0 and row.source_seconds == pytest.approx(sum(fused))
    assert row.seconds > 0 and 0 < row.trainable_params < row.total_params
    pinned = json.loads(paths.settings.read_text())
    assert pinned["strategy"] == "fusion" and pinned["adapter"]["rank"] == 4
    # Progress weighs a baseline and the fused run: both adapters were stored already
    assert events[0].kind == "plan" and len(events[0].stage_weights) == 2

    again = run_sweep(two_tasks, [target], tiny_ref, paths, fusion)
    assert (again.sources_trained, again.sources_loaded) == (0, 0)
    assert (again.baselines_run, again.transfers_run, again.skipped) == (0, 0, 2)
    assert len(read_results(paths.results)) == 1


def test_a_fusion_sweep_leaves_each_target_out_of_its_fusion_and_trains_each_adapter_once(
    two_tasks, toy_tasks, tiny_ref, paths
) -> None:
    from workers.adapters import AdapterConfig

    sentiment = two_tasks[1]
    sources = [*two_tasks, toy_tasks["toy_choice"]]
    targets = [sentiment, toy_tasks["toy_ner"]]
    config = dataclasses.replace(
        CONFIG, seeds=(0,), strategy="fusion", adapter=AdapterConfig(rank=4)
    )
    # Fusion needs two adapters to choose among: a target with one other source is refused
    with pytest.raises(ValueError, match="target toy_sentiment has 1 source"):
        run_sweep(two_tasks, targets, tiny_ref, paths, config)
    events: list[SweepEvent] = []
    report = run_sweep(sources, targets, tiny_ref, paths, config, events.append)
    assert (report.sources_trained, report.sources_loaded, report.transfers_run) == (3, 0, 2)
    assert [r.key for r in read_results(paths.results)] == [
        ("toy_sts+toy_choice", "toy_sentiment", 0),  # not fused into its own run
        ("toy_sts+toy_sentiment+toy_choice", "toy_ner", 0),
    ]
    # 2 baselines; the adapters of toy_sts and toy_choice and their run; toy_sentiment's
    # adapter (the others' are trained already) and the run of all three
    stages = [e.label for e in events if e.kind == "step"]
    assert len(events[0].stage_weights) == len(dict.fromkeys(stages)) == 7


def test_the_cost_estimate_counts_one_fused_run_per_target_and_seed() -> None:
    from workers.sweep import TaskSize, estimate_cost

    config = SweepConfig(source_n=1000, target_n=100, eval_n=30, seeds=(0, 1), strategy="fusion")
    sources = [
        TaskSize("big", "classification", 5000),
        TaskSize("mc", "multiple_choice", 200),
        TaskSize("small", "classification", 300),
    ]
    targets = [TaskSize("t", "classification", 400), TaskSize("big", "classification", 5000)]
    cost = estimate_cost(sources, targets, config, seconds_per_example=0.01, seconds_per_run=2)
    # t fuses all three, big the other two: one run per target × seed, each adapter once
    assert (cost.sources_to_train, cost.baselines, cost.target_runs) == (3, 4, 4)
    done = frozenset({("big+mc+small", "t", 0), ("big", "t", 1), ("mc+small", "big", 0)})
    resumed = estimate_cost(
        sources, targets, config, seconds_per_example=0.01, seconds_per_run=2,
        trained=frozenset({"big", "mc", "small"}), done=done,
    )  # fmt: skip
    assert (resumed.sources_to_train, resumed.target_runs) == (0, 2)
