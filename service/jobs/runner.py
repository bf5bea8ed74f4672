"""Running one job: claim it, heartbeat, report progress, honour cancellation, finish it.

Any number of workers may be handed the same job id (a redelivered message, a reaper that
re-queued a silent job): only the attempt holding the row's ``claim_token`` may write, so a job is
safe to run twice. Handlers live in ``service.<domain>.jobs`` modules with a ``run(job)``
function and an optional ``on_final(session, row)`` hook for failed or cancelled jobs.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from types import ModuleType
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from service.context import AppContext
from service.db import on_commit, unit_of_work
from service.jobs import repository
from service.jobs.exceptions import JobCancelled, JobInterrupted, JobLost
from service.models import Job, JobKind, JobState, utcnow

log = logging.getLogger(__name__)

HANDLERS = {
    JobKind.EMBED: "service.embeddings.jobs",
    JobKind.TRANSFER: "service.transfers.jobs",
    JobKind.IMPORT: "service.tasks.jobs",
    JobKind.SWEEP: "service.batches.jobs",
    JobKind.CALIBRATE: "service.evidence.calibration",
    JobKind.ADAPTERS: "service.adapters.jobs",
}
# Worth another attempt: the database or broker hiccuped. Anything else fails the job at once.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    ConnectionError,
    TimeoutError,
)
MAX_ERROR_CHARS = 2000


def handler(kind: str) -> ModuleType:
    return importlib.import_module(HANDLERS[kind])


def limit_torch_threads(settings) -> None:
    """Apply ``torch_threads`` (on a shared machine, fewer threads than cores run far faster)."""
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)


def stage_fraction(
    index: int, done: float, expected: int, weights: list[float] | None = None
) -> float:
    """The whole job's share done in its ``index``-th stage (1-based) of ``expected``, that
    stage ``done`` (0-1): stages weighed by ``weights`` when given, else alike."""
    if weights is None or index > len(weights):
        return (index - 1 + done) / max(expected, index)
    return (sum(weights[: index - 1]) + done * weights[index - 1]) / sum(weights)


class RunningJob:
    """What a handler sees: the job's config and the callbacks that report back to its row."""

    def __init__(self, context: AppContext, row: Job, token: str, stopping: threading.Event):
        self.context = context
        self.id, self.kind, self.queue = row.id, row.kind, row.queue
        self.owner_id, self.task_id = row.owner_id, row.task_id
        self.config: dict[str, Any] = dict(row.config or {})
        self.attempt, self.max_attempts = row.attempts, row.max_attempts
        self.token = token
        self.completed = False
        self._stopping = stopping
        self._lost = False
        self._expected = 1
        self._weights: list[float] | None = None
        self._stage: str | None = None
        self._stage_index = 0
        self._stage_started = time.monotonic()
        self._stage_seconds: dict[str, float] = {}
        self._progress = 0.0
        self._last_write = 0.0

    @property
    def settings(self):
        return self.context.settings

    def session(self):
        """A short unit of work (commit on success) for reading or writing the job's data."""
        return unit_of_work(self.context.session_factory)

    def expect_stages(self, count: int, weights: list[float] | None = None) -> None:
        """How many engine stages the job will report, and (if known) their relative sizes, in
        order: progress is spread over them by size (a source stage on 10,000 rows outweighs a
        200-row target stage), or evenly."""
        self._expected = max(1, count)
        usable = weights and len(weights) == count and all(w > 0 for w in weights)
        self._weights = list(weights) if usable else None

    def progress(self, stage: str, step: int, total: int) -> None:
        """The engine's progress callback: records progress and raises if the job must stop."""
        self._raise_if_stopped()
        now = time.monotonic()
        changed = stage != self._stage
        if changed:
            self._close_stage(now)
            self._stage, self._stage_index, self._stage_started = stage, self._stage_index + 1, now
        done = step / total if total else 1.0
        fraction = self._fraction(done)
        self._progress = max(self._progress, min(fraction, 0.99))  # 100% only once complete
        interval = self.settings.job_progress_interval_s
        if changed or step == total or now - self._last_write >= interval:
            values = {"stage": stage, "step": step, "total": total, "progress": self._progress}
            self._write(**values)

    def _fraction(self, done: float) -> float:
        return stage_fraction(self._stage_index, done, self._expected, self._weights)

    def check(self) -> None:
        """Between phases without engine progress: raise if cancelled, lost or stopping."""
        self._raise_if_stopped()
        self._write()

    def complete(self, write: Callable[[Session], dict | None] | None = None) -> None:
        """Store the job's output with ``write`` and mark it succeeded, in one transaction."""
        self._raise_if_stopped()
        with self.session() as session:
            if repository.cancel_requested(session, self.id):
                raise JobCancelled()
            result = write(session) if write else None
            self._close_stage(time.monotonic())
            done = repository.update_owned(
                session,
                self.id,
                self.token,
                state=JobState.SUCCEEDED,
                progress=1.0,
                result=result,
                error=None,
                timings=self._timings(),
                finished_at=utcnow(),
                updated_at=utcnow(),
            )
            if not done:
                raise JobLost(f"job {self.id} was taken over by another attempt")
        self.completed = True

    def _write(self, **values: Any) -> None:
        self._last_write = time.monotonic()
        with self.session() as session:
            now = utcnow()
            values = {**values, "timings": self._timings(), "updated_at": now, "heartbeat_at": now}
            if not repository.update_owned(session, self.id, self.token, **values):
                raise JobLost(f"job {self.id} was taken over by another attempt")
            cancelled = repository.cancel_requested(session, self.id)
        if cancelled:
            raise JobCancelled()

    def _raise_if_stopped(self) -> None:
        if self._lost:
            raise JobLost(f"job {self.id} was taken over by another attempt")
        if self._stopping.is_set():
            raise JobInterrupted()

    def _close_stage(self, now: float) -> None:
        if self._stage is not None:
            self._stage_seconds[self._stage] = round(now - self._stage_started, 3)

    def _timings(self) -> dict[str, Any]:
        return {"stages": dict(self._stage_seconds)}

    @contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Touch ``heartbeat_at`` in the background, so a silent job means a dead worker."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self._beat, args=(stop,), name=f"heartbeat-job-{self.id}", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _beat(self, stop: threading.Event) -> None:
        while not stop.wait(self.settings.job_heartbeat_s):
            try:
                with self.session() as session:
                    alive = repository.update_owned(
                        session, self.id, self.token, heartbeat_at=utcnow()
                    )
            except Exception:  # a database hiccup: the next beat tries again
                log.warning("heartbeat of job %s failed", self.id, exc_info=True)
                continue
            if not alive:
                self._lost = True
                return


class JobRunner:
    """Runs jobs by id in this process; ``stopping`` interrupts them at their next step."""

    def __init__(
        self, context: AppContext, worker: str, stopping: threading.Event | None = None
    ) -> None:
        self.context = context
        self.worker = worker
        self.stopping = stopping or threading.Event()

    def run(self, job_id: int) -> str:
        """Run job ``job_id`` if it is queued; returns what happened (for logs and tests)."""
        job = self._claim(job_id)
        if isinstance(job, str):
            return job
        log.info("job %s (%s) attempt %s started on %s", job.id, job.kind, job.attempt, self.worker)
        with job.heartbeat():
            try:
                handler(job.kind).run(job)
                if not job.completed:
                    job.complete()
                outcome = JobState.SUCCEEDED
            except JobCancelled:
                outcome = self._finish(job, JobState.CANCELLED, "cancelled on request")
            except JobLost:
                outcome = "lost"
            except JobInterrupted:
                outcome = self._requeue(job, 0.0, "worker stopped; job queued again")
            except Exception as exc:
                outcome = self._fail_or_retry(job, exc)
        log.info("job %s finished: %s", job.id, outcome)
        return outcome

    def _claim(self, job_id: int) -> RunningJob | str:
        token = uuid.uuid4().hex
        with unit_of_work(self.context.session_factory) as session:
            row = repository.get(session, job_id)
            if row is None:
                return "missing"
            if row.state != JobState.QUEUED:
                return f"skipped ({row.state})"
            now = utcnow()
            if row.run_after > now:  # delivered early (clock skew): send it again for later
                delay = (row.run_after - now).total_seconds()
                enqueue = partial(self.context.dispatcher.enqueue, job_id, row.queue, delay)
                on_commit(session, enqueue)
                return "deferred"
            if not repository.claim(session, job_id, token, self.worker, now):
                return "skipped (claimed elsewhere)"
            session.refresh(row)
            return RunningJob(self.context, row, token, self.stopping)

    def _finish(self, job: RunningJob, state: str, error: str | None) -> str:
        with unit_of_work(self.context.session_factory) as session:
            now = utcnow()
            values = {"state": state, "error": error, "finished_at": now, "updated_at": now}
            if repository.update_owned(session, job.id, job.token, **values):
                run_final_hook(session, job.id)
        return state

    def _requeue(self, job: RunningJob, delay: float, reason: str) -> str:
        with unit_of_work(self.context.session_factory) as session:
            now = utcnow()
            values = {
                "state": JobState.QUEUED,
                "claim_token": None,
                "worker": None,
                "error": reason,
                "run_after": now + timedelta(seconds=delay),
                "updated_at": now,
            }
            if repository.update_owned(session, job.id, job.token, **values):
                enqueue = partial(self.context.dispatcher.enqueue, job.id, job.queue, delay)
                on_commit(session, enqueue)
        return JobState.QUEUED

    def _fail_or_retry(self, job: RunningJob, exc: Exception) -> str:
        message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
        if isinstance(exc, TRANSIENT_ERRORS) and job.attempt < job.max_attempts:
            delay = self.context.settings.job_retry_backoff_s * 2 ** (job.attempt - 1)
            log.warning("job %s attempt %s failed, retrying in %.0f s", job.id, job.attempt, delay)
            return self._requeue(job, delay, f"attempt {job.attempt} failed ({message}); retrying")
        log.exception("job %s failed", job.id, exc_info=exc)
        return self._finish(job, JobState.FAILED, message)


def run_final_hook(session: Session, job_id: int) -> None:
    """Let the job's domain react to a failed or cancelled job (e.g. mark its task failed)."""
    row = repository.get(session, job_id)
    hook = getattr(handler(row.kind), "on_final", None) if row else None
    if hook:
        session.refresh(row)
        hook(session, row)


def reap_stale(context: AppContext) -> list[int]:
    """Queue again (or fail, past ``max_attempts``) running jobs whose worker went silent."""
    settings = context.settings
    now = utcnow()
    cutoff = now - timedelta(seconds=settings.job_stale_after_s)
    requeued: list[int] = []
    with unit_of_work(context.session_factory) as session:
        for job in repository.stale_running(session, cutoff):
            silent = f"worker {job.worker} stopped responding during attempt {job.attempts}"
            if job.attempts >= job.max_attempts:
                values = {"state": JobState.FAILED, "error": f"{silent}; giving up"}
                values |= {"finished_at": now, "updated_at": now}
                if repository.release_stale(session, job, cutoff, values):
                    run_final_hook(session, job.id)
                continue
            values = {"state": JobState.QUEUED, "claim_token": None, "worker": None}
            values |= {"error": f"{silent}; queued again", "run_after": now, "updated_at": now}
            if repository.release_stale(session, job, cutoff, values):
                log.warning("job %s: %s; queued again", job.id, silent)
                on_commit(session, partial(context.dispatcher.enqueue, job.id, job.queue, 0.0))
                requeued.append(job.id)
        redispatch(session, context, now)
    return requeued


def redispatch(session: Session, context: AppContext, now) -> None:
    """Send long-queued jobs again: a broker outage at commit time must not strand a job.

    A duplicate message is harmless (the claim fails); ``updated_at`` spaces the resends.
    """
    cutoff = now - timedelta(seconds=context.settings.job_redispatch_after_s)
    for job in repository.waiting_since(session, cutoff):
        job.updated_at = now
        on_commit(session, partial(context.dispatcher.enqueue, job.id, job.queue, 0.0))
