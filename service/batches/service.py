"""Creating batches (all children in one transaction), reading their state, cancelling them."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.batches import repository
from service.batches.exceptions import BatchInvalid, BatchNotFound
from service.batches.schemas import (
    BatchRead,
    SweepBatch,
    SweepJobConfig,
    SweepPair,
    TasksBatch,
)
from service.context import AppContext
from service.encoders import allowed_encoder
from service.errors import Problem, ServiceError
from service.jobs import service as jobs
from service.jobs.schemas import JobRead
from service.models import Batch, JobKind, JobState, Owner
from service.tasks import service as tasks
from service.tasks.uploads import stage_rows
from service.transfers import service as transfers
from workers.strategies import strategy


def create(
    session: Session, context: AppContext, owner: Owner, body: TasksBatch | SweepBatch
) -> Batch:
    batch = Batch(owner_id=owner.id, kind=body.kind, description=body.description, spec={})
    session.add(batch)
    session.flush()
    if isinstance(body, TasksBatch):
        _create_tasks(session, context, owner, batch, body)
    else:
        _create_sweep(session, context, owner, batch, body)
    return batch


def _create_tasks(session, context, owner, batch: Batch, body: TasksBatch) -> None:
    """Every task validated and stored, or the whole batch rejected (problems name the task)."""
    created = []
    for index, rows in enumerate(body.tasks):
        staged = stage_rows(rows, context.settings.staging_dir)
        try:
            created.append(tasks.create_task(session, context, owner, staged, batch.id).id)
        except ServiceError as error:
            problems = [
                p.model_copy(update={"file": f"tasks[{index}]" + (f"/{p.file}" if p.file else "")})
                for p in error.problems or [Problem(message=error.message)]
            ]
            error.message = f"task {index} of the batch: {error.message}"
            error.problems = problems
            raise
        finally:
            staged.discard()
    batch.spec = {"task_ids": created}


def _create_sweep(session, context, owner, batch: Batch, body: SweepBatch) -> None:
    """A run per pair (fusion: per target) and one sweep job measuring them all (sources
    trained once)."""
    pairs = [(s, t) for t in body.targets for s in body.sources if s != t]
    if not pairs:
        raise BatchInvalid("the sweep has no (source, target) pair with source ≠ target")
    found = {
        i: tasks.visible(session, owner, i) for i in dict.fromkeys(body.sources + body.targets)
    }
    for task in found.values():  # sources and targets alike train on their labels
        transfers.require_labels(task)
    transfer = transfers.with_size_defaults(body.transfer, context.settings)
    runs = _runs(session, owner, found, pairs, transfer)
    config = SweepJobConfig(
        batch_id=batch.id,
        pairs=[
            SweepPair(source_task_id=s, target_task_id=t, run_id=run.id)
            for (s, t), run in zip(pairs, runs, strict=True)
        ],
        transfer=transfer,
        model=allowed_encoder(context.settings, transfer.model, "transfer.model"),
        device=context.settings.device,
    )
    sweep = config.model_dump(mode="json")
    job = jobs.queue_job(session, context, owner.id, JobKind.SWEEP, sweep, batch_id=batch.id)
    for run in runs:
        run.job_id = job.id
    batch.spec = {"transfer_ids": list(dict.fromkeys(run.id for run in runs)), "pairs": pairs}


def _runs(session, owner, found: dict, pairs: list[tuple[int, int]], transfer) -> list:
    """Each pair's transfer run: its own, or (fusion) its target's one run over the sources
    of all the target's pairs, in the order the sweep job fuses them (``jobs.run`` takes its
    sources in their order of first appearance among the pairs)."""
    if transfer.strategy != "fusion":
        return [
            transfers.create_run(session, owner, found[t], [found[s]], transfer) for s, t in pairs
        ]
    order = list(dict.fromkeys(s for s, _ in pairs))
    for target in dict.fromkeys(t for _, t in pairs):
        others = [s for s in order if s != target]
        if len(others) < strategy("fusion").min_sources:  # as workers.sweep.fused_sources
            raise BatchInvalid(
                "transfer.strategy fusion fuses at least two sources' adapters: target task "
                f"{target} has {len(others)} source(s) besides itself"
            )
    fused = {
        t: transfers.create_run(
            session, owner, found[t], [found[s] for s in order if s != t], transfer
        )
        for t in dict.fromkeys(t for _, t in pairs)
    }
    return [fused[t] for _, t in pairs]


def visible(session: Session, owner: Owner, batch_id: int) -> Batch:
    batch = repository.visible(session, owner, batch_id)
    if batch is None:
        raise BatchNotFound(f"no batch {batch_id}")
    return batch


def page(session: Session, owner: Owner, limit: int, offset: int) -> tuple[list[Batch], int]:
    return repository.page(session, owner, limit, offset)


def cancel(session: Session, batch: Batch) -> None:
    """Cancel every child job still queued or running."""
    for job in repository.jobs_of(session, [batch.id])[batch.id]:
        if job.state in JobState.ACTIVE:
            jobs.cancel(session, job)


def read_models(session: Session, batches: list[Batch]) -> list[BatchRead]:
    children = repository.jobs_of(session, [b.id for b in batches])
    kinds = (JobKind.TRANSFER, JobKind.SWEEP)
    runs = repository.transfer_ids(
        session, [j.id for js in children.values() for j in js if j.kind in kinds]
    )
    return [_read(batch, children[batch.id], runs) for batch in batches]


def _read(batch: Batch, children, runs: dict[int, list[int]]) -> BatchRead:
    counts = {state: 0 for state in JobState.ALL}
    for job in children:
        counts[job.state] += 1
    progress = sum(j.progress for j in children) / len(children) if children else 0.0
    return BatchRead(
        id=batch.id,
        kind=batch.kind,
        description=batch.description,
        state=_state(counts),
        progress=round(100.0 * progress, 1),
        counts=counts,
        task_ids=[j.task_id for j in children if j.kind == JobKind.EMBED and j.task_id],
        transfer_ids=[run for j in children for run in runs.get(j.id, [])],
        jobs=[JobRead.of(j) for j in children],
        created_at=batch.created_at,
    )


def _state(counts: dict[str, int]) -> str:
    if counts[JobState.RUNNING] or (
        counts[JobState.QUEUED] and sum(counts.values()) > counts[JobState.QUEUED]
    ):
        return JobState.RUNNING
    if counts[JobState.QUEUED]:
        return JobState.QUEUED
    if counts[JobState.FAILED]:
        return JobState.FAILED
    if counts[JobState.CANCELLED]:
        return JobState.CANCELLED
    return JobState.SUCCEEDED
