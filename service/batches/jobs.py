"""The sweep job of a ``kind: sweep`` batch: ``workers.sweep.run_sweep`` over its tasks.

Each source is trained once and each target × seed's baseline measured once, however many pairs
share them; a pair's result is stored on its transfer run as soon as all its seeds are in (a
fusion batch has one run per target, fusing every source but the target). The
sweep's CSV lives under ``<artifacts>/sweeps/batch-<id>/``, so a retried job (a worker killed
mid-sweep) resumes where the last attempt stopped instead of starting over; source checkpoints
live in the ``checkpoints_dir`` setting's folder, shared by every batch that trains the same
source data with the same settings.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

from service.batches.schemas import SweepJobConfig
from service.jobs.runner import RunningJob, limit_torch_threads
from service.tasks.storage import load_task_data
from service.transfers import service as transfers
from service.transfers.jobs import stored_tasks


def run(job: RunningJob) -> None:
    from workers.encoder import resolve_encoder
    from workers.selection.results import read_results
    from workers.sweep import SweepPaths, run_sweep

    limit_torch_threads(job.settings)
    config = SweepJobConfig.model_validate(job.config)
    task_ids = list(
        dict.fromkeys(i for p in config.pairs for i in (p.source_task_id, p.target_task_id))
    )
    data = {
        task_id: _keyed(load_task_data(stored, job.settings), task_id)
        for task_id, stored in zip(task_ids, stored_tasks(job, task_ids), strict=True)
    }
    sources = [data[i] for i in dict.fromkeys(p.source_task_id for p in config.pairs)]
    targets = [data[i] for i in dict.fromkeys(p.target_task_id for p in config.pairs)]
    runs = _run_keys(config, data, sources)
    # Checkpoints are named by their source's data and stage settings, so later batches (and
    # `taskrec sweep`) share the folder safely and reuse what an earlier one trained.
    paths = SweepPaths(
        results=job.settings.artifacts_dir / "sweeps" / f"batch-{config.batch_id}" / "results.csv",
        checkpoints=job.settings.checkpoints_dir,
    )
    job.check()
    recorder = _Recorder(job, runs, len(config.transfer.seeds))
    run_sweep(
        sources,
        targets,
        resolve_encoder(config.model),
        paths,
        _sweep_config(config),
        recorder,
    )
    # Pairs a former attempt finished were skipped this time: their rows are in the CSV.
    recorder.store_all(read_results(paths.results))
    stored = paths.results.relative_to(job.settings.artifacts_dir)  # no server paths in the API
    job.complete(lambda session: {"pairs": len(runs), "results": str(stored)})


class _Recorder:
    """Turns the sweep's events into job progress, and stores each pair once it is complete."""

    def __init__(self, job: RunningJob, runs: dict[tuple[str, str], int], seeds: int):
        self.job, self.runs, self.seeds = job, runs, seeds
        self.rows: dict[tuple[str, str], list] = defaultdict(list)
        self.finished = 0
        self.stored: set[int] = set()

    def __call__(self, event) -> None:
        if event.kind == "plan":  # progress weighed by each stage's training examples
            self.job.expect_stages(len(event.stage_weights), list(event.stage_weights))
        elif event.kind == "step":
            # Stages repeat names (every seed of "transfer:<source>"): number them apart.
            self.job.progress(f"{self.finished}:{event.label}", event.done, event.total)
        else:
            self.finished += 1
            if event.row is not None:
                self.store_all([event.row])

    def store_all(self, rows) -> None:
        for row in rows:
            pair = (row.source, row.target)
            if pair in self.runs and row.seed not in {r.seed for r in self.rows[pair]}:
                self.rows[pair].append(row)
        for pair, measured in self.rows.items():
            run_id = self.runs[pair]
            if len(measured) == self.seeds and run_id not in self.stored:
                with self.job.session() as session:
                    transfers.store_measured(session, run_id, measured)
                self.stored.add(run_id)


def _run_keys(config: SweepJobConfig, data: dict, sources: list) -> dict[tuple[str, str], int]:
    """Each run's id by the (source, target) of its sweep rows; a fusion run's rows name every
    source but the target, fused (``workers.sweep.source_label``)."""
    from workers.sweep import fused_sources, source_label

    keys = {}
    for pair in config.pairs:
        target = data[pair.target_task_id].name
        source = data[pair.source_task_id].name
        if config.transfer.strategy == "fusion":
            source = source_label(fused_sources(sources, target))
        keys[(source, target)] = pair.run_id
    return keys


def _keyed(task, task_id: int):
    """The task renamed ``<name>@<id>``: two owners' tasks may share a name, ids never do."""
    spec = dataclasses.replace(task.spec, name=f"{task.spec.name}@{task_id}")
    return dataclasses.replace(task, spec=spec)


def _sweep_config(config: SweepJobConfig):
    from workers.adapters import AdapterConfig
    from workers.sweep import SweepConfig

    settings = config.transfer
    return SweepConfig(
        regime=settings.regime,
        source_n=settings.source_max_examples,
        target_n=settings.train_n,
        eval_n=settings.eval_n,
        seeds=tuple(settings.seeds),
        source_epochs=settings.source_train.epochs,
        target_epochs=settings.target_train.epochs,
        batch_size=settings.target_train.batch_size,
        learning_rate=settings.target_train.learning_rate,
        max_length=settings.max_length,
        max_steps=settings.target_train.max_steps,  # equal to source_train's (SweepBatch)
        device=config.device,
        strategy=settings.strategy,
        adapter=AdapterConfig(**settings.adapter.model_dump()),
    )
