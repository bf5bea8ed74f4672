"""The adapter backfill job: library tasks' adapters trained into the adapter library ahead of
use, each as the source stage of a default adapter transfer trains it (``service.transfers.jobs``:
the same sample, stage and adapter settings), so that transfer finds it stored.

An adapter already stored is skipped, so a retried or re-queued backfill resumes; a task that
left the library since is skipped; one whose training fails does not stop the others (the job
fails at the end, naming it).
"""

from __future__ import annotations

import logging

from service.adapters import repository
from service.adapters.schemas import AdapterBackfillConfig
from service.jobs.exceptions import JobCancelled, JobInterrupted, JobLost
from service.jobs.runner import RunningJob, limit_torch_threads
from service.tasks import repository as task_repository
from service.tasks.storage import StoredTask, load_task_data
from service.transfers.jobs import transfer_plan

log = logging.getLogger(__name__)

STOPPING = (JobCancelled, JobInterrupted, JobLost)  # the job must stop: never one task's failure


class AdaptersFailed(RuntimeError):
    """Some tasks' adapters could not be trained (the others are stored)."""


def run(job: RunningJob) -> None:
    from workers.adapter_library import AdapterLibrary
    from workers.encoder import load_encoder, pick_device, resolve_encoder

    limit_torch_threads(job.settings)
    config = AdapterBackfillConfig.model_validate(job.config)
    tasks, weights = _library_tasks(job, config)
    job.expect_stages(len(tasks), weights)  # a stage per task, weighed by its training rows
    ref = resolve_encoder(config.model)
    encoder, tokenizer = load_encoder(ref)
    encoder = encoder.to(pick_device(config.device))
    library = AdapterLibrary(job.settings.adapters_dir, ref.id)
    plan = transfer_plan(config.transfer, config.device)  # a default adapter transfer's
    train, adapter, seed = plan.source_train, plan.adapter, plan.first_seed
    done: dict[str, list[str]] = {"trained": [], "stored": []}
    failed: dict[str, str] = {}
    for task in tasks:
        job.check()
        label = f"adapter:{task.name}"

        def progress(_stage: str, step: int, total: int, label: str = label) -> None:
            job.progress(label, step, total)  # one stage per task, whatever the engine names

        try:
            data = plan.source_rows(load_task_data(task, job.settings))
            stored = library.get(library.key(data, train, adapter, seed)) is not None
            if not stored:
                library.get_or_train(data, encoder, tokenizer, train, adapter, seed, progress)
            done["stored" if stored else "trained"].append(task.name)
        except STOPPING:
            raise
        except Exception as error:
            log.warning("adapter of %s not trained", task.name, exc_info=True)
            failed[task.name] = f"{type(error).__name__}: {error}"
        job.progress(label, 1, 1)  # its stage ends, trained or not
    if failed:
        named = "; ".join(f"{name}: {why}" for name, why in failed.items())
        raise AdaptersFailed(
            f"{len(failed)} of {len(tasks)} adapters not trained, the others are stored: {named}"
        )
    job.complete(lambda _session: {**done, "encoder": ref.id})


def _library_tasks(
    job: RunningJob, config: AdapterBackfillConfig
) -> tuple[list[StoredTask], list[float]]:
    """The config's tasks still in the library, in order, and each one's training examples
    (rows × epochs, as the transfer job weighs a source stage)."""
    cap = config.transfer.source_max_examples
    epochs = config.transfer.source_train.epochs
    with job.session() as session:
        found = {t.id: t for t in repository.library_tasks(session, config.task_ids)}
        files = task_repository.files_of(session, list(found))
        tasks = [found[i] for i in config.task_ids if i in found]
        rows = [int((t.counts or {}).get("train", 0)) for t in tasks]
        weights = [max(min(n, cap or n) * epochs, 1.0) for n in rows]
        return [StoredTask.of(t, files[t.id]) for t in tasks], weights
