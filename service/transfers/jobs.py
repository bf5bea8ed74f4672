"""The transfer job: load target and sources, run ``workers.transfer.run_transfer``, store it."""

from __future__ import annotations

from service.jobs.runner import RunningJob, limit_torch_threads
from service.tasks import repository as task_repository
from service.tasks.storage import StoredTask, load_task_data
from service.transfers import service
from service.transfers.schemas import TrainSettings, TransferJobConfig, TransferSettings
from workers.data.schema import TaskData


class TaskGone(Exception):
    """A task of the transfer was deleted before the job ran."""


def run(job: RunningJob) -> None:
    from workers.adapter_library import AdapterLibrary
    from workers.data.sampling import apply_regime, sample_target
    from workers.encoder import load_encoder, resolve_encoder
    from workers.finetune import MixingConfig
    from workers.transfer import TransferConfig, run_transfer

    limit_torch_threads(job.settings)
    config = TransferJobConfig.model_validate(job.config)
    stored = stored_tasks(job, [config.target_task_id, *config.source_task_ids])
    seed = config.seeds[0]
    whole_target = load_task_data(stored[0], job.settings)
    if config.target_sampling == "per_seed":  # each seed its own sample, as the sweep's runs

        def target_for_seed(s: int):
            return sample_target(whole_target, config.regime, s, config.train_n, config.eval_n)
    else:  # runs queued before per-seed sampling keep the protocol they were queued with
        first = apply_regime(
            whole_target, config.regime, seed=seed, train_n=config.train_n, eval_n=config.eval_n
        )

        def target_for_seed(_s: int):
            return first

    target = target_for_seed(seed)
    sources = [source_sample(load_task_data(s, job.settings), config) for s in stored[1:]]
    job.check()
    ref = resolve_encoder(config.model)
    encoder, tokenizer = load_encoder(ref)
    library = AdapterLibrary(job.settings.adapters_dir, ref.id)
    source_train, adapter = source_stage(config, config.device)
    transfer_config = TransferConfig(
        strategy=config.strategy,
        seeds=tuple(config.seeds),
        source_train=source_train,
        target_train=_train_config(config.target_train, config.device, config.max_length),
        mixing=MixingConfig(**config.mixing.model_dump()),
        adapter=adapter,
    )
    stored_adapters = [
        library.get(library.key(s, transfer_config.source_train, transfer_config.adapter, seed))
        for s in sources
    ]
    job.expect_stages(*_stage_sizes(config, sources, target, stored_adapters))
    outcome = run_transfer(
        sources,
        target,
        encoder,
        tokenizer,
        transfer_config,
        job.progress,
        target_for_seed,
        library,
    )
    job.complete(
        lambda session: service.store_result(session, config.run_id, outcome, config.seeds)
    )


def _stage_sizes(
    config: TransferJobConfig, sources, target, stored_adapters: list
) -> tuple[int, list[float]]:
    """The stages in the order they run, each weighed by its training examples (rows ×
    epochs): the source stage(s), then per seed the baseline and the transfer (a joint
    strategy's transfer trains the target and its sources together). A source adapter the
    library already holds is loaded, not trained: it reports no stage."""
    from workers.strategies import strategy

    source_rows = [len(s.train) * config.source_train.epochs for s in sources]
    if strategy(config.strategy).kind == "adapter":
        source_rows = [
            0.0 if stored else rows
            for rows, stored in zip(source_rows, stored_adapters, strict=True)
        ]
    if config.strategy == "multitask":
        source_rows = [sum(source_rows)]
    target_rows = len(target.train) * config.target_train.epochs
    transfer_rows = target_rows
    if not strategy(config.strategy).source_stage:
        source_rows = []
        transfer_rows += sum(len(s.train) for s in sources) * config.target_train.epochs
    weights = [*source_rows, *([target_rows, transfer_rows] * len(config.seeds))]
    return len(weights), [max(w, 1.0) for w in weights]


def source_sample(data: TaskData, config: TransferSettings | TransferJobConfig) -> TaskData:
    """A source task as its stage trains on it: up to ``source_max_examples`` training rows and
    ``eval_n`` validation rows, sampled with the first seed. A library adapter's key hashes
    these rows, so the adapter backfill samples with this too."""
    from workers.data.sampling import apply_regime

    return apply_regime(
        data,
        "full",
        seed=config.seeds[0],
        train_n=config.source_max_examples,
        eval_n=config.eval_n,
    )


def source_stage(config: TransferSettings | TransferJobConfig, device: str | None):
    """The source stage's ``TrainConfig`` and ``AdapterConfig``: what decides a source adapter's
    weights besides its rows and seed (the transfer job and the adapter backfill share it)."""
    from workers.adapters import AdapterConfig

    train = _train_config(config.source_train, device, config.max_length)
    return train, AdapterConfig(**config.adapter.model_dump())


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
