"""Starting transfer runs (named or recommended sources) and reading their results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from service.context import AppContext
from service.encoders import allowed_encoder
from service.jobs import service as jobs
from service.models import JobKind, Owner, Task, TransferResult, TransferRun
from service.recommendations import service as recommendations
from service.settings import Settings
from service.tasks import service as tasks
from service.transfers import repository
from service.transfers.exceptions import NoSources, TransferInvalid, TransferNotFound
from service.transfers.schemas import (
    StageRead,
    Summary,
    TaskRef,
    TransferCost,
    TransferCreate,
    TransferJobConfig,
    TransferRead,
    TransferResultRead,
    TransferSettings,
)
from workers.strategies import check_sources

SettingsT = TypeVar("SettingsT", bound=TransferSettings)


def start(
    session: Session,
    context: AppContext,
    owner: Owner,
    body: TransferCreate,
    batch_id: int | None = None,
) -> TransferRun:
    """Create the run and queue its fine-tuning job (on the ``finetune`` queue)."""
    allowed_encoder(context.settings, body.model)
    target = tasks.visible(session, owner, body.target_task_id)
    require_labels(target)
    sources, method = _sources(session, context, owner, target, body)
    try:
        check_sources(body.strategy, len(sources))
    except ValueError as error:
        raise TransferInvalid(str(error)) from None
    body = body.model_copy(update={"method": method})  # the run records what picked
    body = with_size_defaults(body, context.settings)
    run = create_run(session, owner, target, sources, body, auto=body.sources == "auto")
    config = TransferJobConfig(
        run_id=run.id,
        target_task_id=target.id,
        source_task_ids=[s.id for s in sources],
        model=body.model or context.settings.model,
        device=context.settings.device,
        target_sampling="per_seed",
        **body.model_dump(
            include={
                "strategy",
                "mixing",
                "adapter",
                "regime",
                "train_n",
                "eval_n",
                "source_max_examples",
                "seeds",
                "max_length",
                "source_train",
                "target_train",
            }
        ),
    )
    job = jobs.queue_job(
        session,
        context,
        owner.id,
        JobKind.TRANSFER,
        config.model_dump(mode="json"),
        task_id=target.id,
        batch_id=batch_id,
    )
    run.job_id = job.id
    session.flush()
    return run


def with_size_defaults(body: SettingsT, settings: Settings) -> SettingsT:
    """``body`` with the deployment's transfer sizes where the request left them unset (the run
    records the values it ran with)."""
    update: dict[str, Any] = {}
    if body.source_max_examples is None:
        update["source_max_examples"] = settings.transfer_source_max_examples
    if body.eval_n is None:
        update["eval_n"] = settings.transfer_eval_n
    for stage in ("source_train", "target_train"):
        train = getattr(body, stage)
        if train.max_steps is None and settings.transfer_max_steps is not None:
            update[stage] = train.model_copy(update={"max_steps": settings.transfer_max_steps})
    return body.model_copy(update=update)


def create_run(
    session: Session,
    owner: Owner,
    target: Task,
    sources: list[Task],
    settings: TransferSettings,
    *,
    auto: bool = False,
) -> TransferRun:
    """The run's row (its job is the caller's); 422 when a task has no rows to score on."""
    for task in (target, *sources):
        if not task.counts.get("validation"):
            raise TransferInvalid(f"task {task.name!r} has no validation rows to score stages on")
    run = TransferRun(
        owner_id=owner.id,
        target_task_id=target.id,
        target_name=target.name,
        sources=[{"id": s.id, "name": s.name} for s in sources],
        auto=auto,
        strategy=settings.strategy,
        regime=settings.regime,
        seeds=list(settings.seeds),
        config=settings.model_dump(mode="json"),
    )
    session.add(run)
    session.flush()
    return run


def _sources(
    session: Session, context: AppContext, owner: Owner, target: Task, body: TransferCreate
) -> tuple[list[Task], str | None]:
    """The run's sources, and for ``auto`` the method that ranked them: the one asked for, or
    the default recommendations use, ranking for the run's own model."""
    if body.sources == "auto":
        from service.recommendations.methods import resolve_method

        try:  # before any ranking work: k is the number of sources 'auto' picks
            check_sources(body.strategy, body.k)
        except ValueError as error:
            raise TransferInvalid(f"{error} ('auto' picks k = {body.k})") from None
        ranked = recommendations.recommend(
            session,
            context,
            target,
            k=body.k,
            method=body.method or resolve_method(context.settings),
            owner_id=owner.id,
            transfer_model=body.model or context.settings.model,
        )
        if not ranked.ranking:
            raise NoSources("no library task is ready to recommend as a source yet")
        return [session.get(Task, r.task_id) for r in ranked.ranking], ranked.method
    if not body.sources:
        raise TransferInvalid("name at least one source task, or use 'auto'")
    if target.id in body.sources:
        raise TransferInvalid("the target cannot also be a source")
    named = [tasks.visible(session, owner, task_id) for task_id in body.sources]
    for source in named:  # a source stage trains on its labels too
        require_labels(source)
    return named, body.method


def visible(session: Session, owner: Owner, run_id: int) -> TransferRun:
    run = repository.visible(session, owner, run_id)
    if run is None:
        raise TransferNotFound(f"no transfer {run_id}")
    return run


def require_labels(target: Task) -> None:
    """A transfer trains and scores on the target's labels: a task without them cannot be one."""
    if not target.labelled:
        raise TransferInvalid(
            f"task {target.name!r} has no labels: a transfer trains and scores on the target's "
            "labels (its recommendations read the text alone); upload it with labels first"
        )


def share(session: Session, admin: Owner, run_id: int, shared: bool) -> TransferRun:
    """Share a run's result as evidence for every owner, or stop sharing it (admins)."""
    run = visible(session, admin, run_id)
    run.shared = shared
    session.flush()
    return run


def page(session: Session, owner: Owner, limit: int, offset: int) -> tuple[list[TransferRun], int]:
    return repository.page(session, owner, limit, offset)


def read_models(session: Session, runs: list[TransferRun]) -> list[TransferRead]:
    results = repository.results(session, [r.id for r in runs])
    found = repository.jobs(session, [r.job_id for r in runs if r.job_id])
    return [_read(run, found.get(run.job_id), results.get(run.id)) for run in runs]


def _read(run: TransferRun, job, result: TransferResult | None) -> TransferRead:
    return TransferRead(
        id=run.id,
        job_id=run.job_id,
        state=job.state if job else None,
        progress=round(100.0 * job.progress, 1) if job else None,
        error=job.error if job else None,
        target=TaskRef(id=run.target_task_id, name=run.target_name),
        sources=[TaskRef(**s) for s in run.sources],
        auto=run.auto,
        strategy=run.strategy,
        regime=run.regime,
        seeds=list(run.seeds),
        config=run.config,
        result=_result(result) if result else None,
        shared=run.shared,
        created_at=run.created_at,
    )


def _result(result: TransferResult) -> TransferResultRead:
    per_seed = result.per_seed
    return TransferResultRead(
        metric=result.metric,
        baseline=Summary(
            mean=result.baseline_mean, std=result.baseline_std, values=per_seed["baseline"]
        ),
        transfer=Summary(
            mean=result.transfer_mean, std=result.transfer_std, values=per_seed["transfer"]
        ),
        gain=Summary(mean=result.gain_mean, std=result.gain_std, values=per_seed["gain"]),
        stages=[StageRead(**stage) for stage in result.stages],
        protocol=per_seed.get("protocol"),
        cost=transfer_cost([StageRead(**stage) for stage in result.stages], result.gain_mean),
    )


def transfer_cost(stages: list[StageRead], gain: float) -> TransferCost | None:
    """``workers.costs.transfer_cost`` of the source and transfer stages; None for a run
    without timed stages (a sweep's measured rows)."""
    from workers.costs import transfer_cost as cost_of

    cost = cost_of([s for s in stages if s.kind != "baseline"], gain)
    return TransferCost(**cost) if cost else None


def store_result(session: Session, run_id: int, outcome: Any, seeds: list[int]) -> dict[str, Any]:
    """Persist a ``workers.transfer.TransferResult``; returns the job's result summary."""
    if session.get(TransferRun, run_id) is None:
        return {"stored": False, "reason": f"transfer {run_id} was deleted"}
    stages = [_stage("source", None, s) for s in outcome.source_stages]
    stages += [
        _stage("baseline", seed, s) for seed, s in zip(seeds, outcome.baseline_stages, strict=True)
    ]
    stages += [
        _stage("target", seed, s) for seed, s in zip(seeds, outcome.transfer_stages, strict=True)
    ]
    _replace_result(session, run_id, outcome.metric, outcome, stages)
    return {
        "stored": True,
        "metric": outcome.metric,
        "gain": {"mean": outcome.gain.mean, "std": outcome.gain.std},
    }


def store_measured(session: Session, run_id: int, rows: list[Any]) -> bool:
    """Persist a sweep's per-seed ``TransferRow``s of one (source, target) pair as the run's
    result (the sweep keeps no per-stage metrics); False when the run was deleted."""
    from workers.transfer import Summary

    if session.get(TransferRun, run_id) is None:
        return False
    rows = sorted(rows, key=lambda r: r.seed)

    summaries = _Summaries(
        Summary.of([r.baseline for r in rows]),
        Summary.of([r.score for r in rows]),
        Summary.of([r.gain for r in rows]),
    )
    _replace_result(session, run_id, rows[0].metric, summaries, [])
    return True


@dataclass
class _Summaries:
    """The three summaries ``_replace_result`` reads (a ``workers.transfer.TransferResult``
    has them too)."""

    baseline: Any
    transfer: Any
    gain: Any


def _replace_result(session: Session, run_id: int, metric: str, outcome, stages: list) -> None:
    existing = repository.result_for(session, run_id)
    if existing is not None:  # a second run of the same job replaces the first's result
        session.delete(existing)
        session.flush()
    session.add(
        TransferResult(
            run_id=run_id,
            metric=metric,
            baseline_mean=outcome.baseline.mean,
            baseline_std=outcome.baseline.std,
            transfer_mean=outcome.transfer.mean,
            transfer_std=outcome.transfer.std,
            gain_mean=outcome.gain.mean,
            gain_std=outcome.gain.std,
            per_seed={
                "baseline": outcome.baseline.values,
                "transfer": outcome.transfer.values,
                "gain": outcome.gain.values,
                # workers.transfer.TransferPlan.protocol; a sweep's rows: the sweeps' own (2)
                "protocol": getattr(outcome, "protocol", 2),
            },
            stages=stages,
        )
    )
    session.flush()


def _stage(kind: str, seed: int | None, stage: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "seed": seed,
        "tasks": list(stage.tasks),
        "metrics": {t: {k: float(v) for k, v in m.items()} for t, m in stage.metrics.items()},
        "train_examples": dict(stage.train_examples),
        "steps": int(stage.steps),
        "seconds": float(stage.seconds),
        "trainable_params": int(stage.trainable_params),
        "total_params": int(stage.total_params),
        "peak_memory_mb": stage.peak_memory_mb,
        "cached": bool(stage.cached),
    }
