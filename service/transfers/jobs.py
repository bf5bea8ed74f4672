"""The transfer job: load target and sources, run ``workers.transfer.run_transfer``, store it."""

from __future__ import annotations

from service.jobs.runner import RunningJob, limit_torch_threads
from service.tasks import repository as task_repository
from service.tasks.storage import StoredTask, load_task_data
from service.transfers import service
from service.transfers.schemas import TrainSettings, TransferJobConfig, TransferSettings


class TaskGone(Exception):
    """A task of the transfer was deleted before the job ran."""


def run(job: RunningJob) -> None:
    from workers.adapter_library import AdapterLibrary
    from workers.encoder import load_encoder, resolve_encoder
    from workers.transfer import run_transfer

    limit_torch_threads(job.settings)
    config = TransferJobConfig.model_validate(job.config)
    plan = transfer_plan(config, config.device)
    stored = stored_tasks(job, [config.target_task_id, *config.source_task_ids])
    target = load_task_data(stored[0], job.settings)
    sources = [load_task_data(s, job.settings) for s in stored[1:]]
    job.check()
    ref = resolve_encoder(config.model)
    encoder, tokenizer = load_encoder(ref)
    library = AdapterLibrary(job.settings.adapters_dir, ref.id)
    outcome = run_transfer(
        plan,
        sources,
        target,
        encoder,
        tokenizer,
        job.progress,
        library,
        on_plan=lambda weights: job.expect_stages(len(weights), weights),
    )
    job.complete(
        lambda session: service.store_result(session, config.run_id, outcome, config.seeds)
    )


def transfer_plan(config: TransferSettings | TransferJobConfig, device: str | None):
    """The ``workers.transfer.TransferPlan`` a transfer request (or a stored job config) runs:
    the one protocol the CLI and the sweeps run too. A job queued before per-seed target
    sampling keeps its protocol (1)."""
    from workers.adapters import AdapterConfig
    from workers.finetune import MixingConfig
    from workers.transfer import TransferPlan

    sampling = getattr(config, "target_sampling", "per_seed")
    return TransferPlan(
        strategy=config.strategy,
        seeds=tuple(config.seeds),
        regime=config.regime,
        source_n=config.source_max_examples,
        target_n=config.train_n,
        eval_n=config.eval_n,
        protocol=2 if sampling == "per_seed" else 1,
        source_train=_train_config(config.source_train, device, config.max_length),
        target_train=_train_config(config.target_train, device, config.max_length),
        mixing=MixingConfig(**config.mixing.model_dump()),
        adapter=AdapterConfig(**config.adapter.model_dump()),
    )


def _train_config(settings: TrainSettings, device: str | None, max_length: int | None):
    from workers.features import FeatureConfig
    from workers.finetune import TrainConfig

    features = FeatureConfig() if max_length is None else FeatureConfig(max_length=max_length)
    return TrainConfig(**settings.model_dump(), features=features, device=device)


def stored_tasks(job: RunningJob, task_ids: list[int]) -> list[StoredTask]:
    with job.session() as session:
        found = []
        for task_id in task_ids:
            task = task_repository.get(session, task_id)
            if task is None:
                raise TaskGone(f"task {task_id} was deleted")
            files = task_repository.files_of(session, [task_id])[task_id]
            found.append(StoredTask.of(task, files))
        return found
