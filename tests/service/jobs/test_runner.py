"""The job runner: claims are exclusive, a job is safe to run twice, silent jobs are reaped,
transient failures retry with back-off, cancellation stops a job between steps."""

from __future__ import annotations

import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy.exc import OperationalError

from service.context import build_context
from service.db import unit_of_work
from service.jobs import repository, runner
from service.jobs import service as jobs
from service.models import Job, JobState, utcnow


class RecordingDispatcher:
    """Remembers what would have been sent to a worker."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str, float]] = []

    def start(self, context) -> None: ...

    def stop(self) -> None: ...

    def enqueue(self, job_id: int, queue: str, delay: float = 0.0) -> None:
        self.sent.append((job_id, queue, delay))

    def ping(self) -> bool:
        return True

    def describe(self) -> str:
        return "recording"


@pytest.fixture()
def context(settings):
    ctx = build_context(settings, RecordingDispatcher())
    yield ctx
    ctx.close()


@pytest.fixture()
def owner_id(keys, session_factory) -> int:
    from service.auth.repository import owner_by_name

    with unit_of_work(session_factory) as session:
        return owner_by_name(session, "alice").id


@pytest.fixture()
def submit(context, owner_id):
    def make(kind: str = "embed", **config) -> int:
        with unit_of_work(context.session_factory) as session:
            job = jobs.submit(
                session,
                context.dispatcher,
                owner_id=owner_id,
                kind=kind,
                config=config,
                max_attempts=2,
            )
            return job.id

    return make


@pytest.fixture()
def handler(monkeypatch):
    """Replace the job kinds' handlers with ``handler.run`` (set by the test)."""
    fake = SimpleNamespace(run=lambda job: None)
    monkeypatch.setattr(runner, "handler", lambda kind: fake)
    return fake


def read(context, job_id: int) -> Job:
    with unit_of_work(context.session_factory) as session:
        return repository.get(session, job_id)


def test_enqueued_only_after_commit(context, owner_id):
    with pytest.raises(RuntimeError), unit_of_work(context.session_factory) as session:
        jobs.submit(
            session, context.dispatcher, owner_id=owner_id, kind="embed", config={}, max_attempts=1
        )
        assert context.dispatcher.sent == []  # not before the commit ...
        raise RuntimeError("request failed")
    assert context.dispatcher.sent == []  # ... and never after a rollback
    with unit_of_work(context.session_factory) as session:
        job = jobs.submit(
            session, context.dispatcher, owner_id=owner_id, kind="embed", config={}, max_attempts=1
        )
        assert context.dispatcher.sent == []
    assert context.dispatcher.sent == [(job.id, "embed", 0.0)]


def test_a_job_runs_once_even_if_delivered_twice(context, submit, handler):
    calls = []
    handler.run = lambda job: calls.append(job.id)
    job_id = submit()
    job_runner = runner.JobRunner(context, "w1")
    assert job_runner.run(job_id) == "succeeded"
    assert job_runner.run(job_id) == "skipped (succeeded)"
    assert runner.JobRunner(context, "w2").run(job_id + 100) == "missing"
    assert calls == [job_id]


def test_only_one_claim_wins(context, submit):
    job_id = submit()
    with unit_of_work(context.session_factory) as session:
        assert repository.claim(session, job_id, "a" * 32, "w1", utcnow())
        assert not repository.claim(session, job_id, "b" * 32, "w2", utcnow())


def test_progress_and_stage_timings_are_recorded(context, submit, handler):
    def run(job):
        job.expect_stages(2)
        for step in (1, 2):
            job.progress("first", step, 2)
        job.progress("second", 1, 4)
        seen.append(read(context, job.id).progress)

    seen = []
    handler.run = run
    job_id = submit()
    runner.JobRunner(context, "w").run(job_id)
    assert seen == [pytest.approx(0.625)]  # (1 stage done + 1/4) / 2 stages
    done = read(context, job_id)
    assert done.progress == 1.0 and done.stage == "second"
    assert set(done.timings["stages"]) == {"first", "second"}


def test_cancellation_reaches_a_running_job_between_steps(context, submit, handler):
    steps = []

    def run(job):
        for step in range(1, 1000):
            if step == 3:
                with unit_of_work(context.session_factory) as session:
                    jobs.cancel(session, repository.get(session, job.id))
            job.progress("loop", step, 999)
            steps.append(step)

    handler.run = run
    job_id = submit()
    assert runner.JobRunner(context, "w").run(job_id) == "cancelled"
    assert steps == [1, 2]  # stopped at the first step after the request
    assert read(context, job_id).state == JobState.CANCELLED


def test_transient_failure_is_retried_with_backoff_then_fails(context, submit, handler):
    def run(job):
        raise OperationalError("SELECT 1", {}, Exception("database restarting"))

    handler.run = run
    job_id = submit()
    assert runner.JobRunner(context, "w").run(job_id) == "queued"
    job = read(context, job_id)
    assert job.state == "queued" and job.attempts == 1 and "retrying" in job.error
    assert job.run_after > utcnow()
    assert context.dispatcher.sent[-1][0] == job_id and context.dispatcher.sent[-1][2] > 0
    assert runner.JobRunner(context, "w").run(job_id) == "deferred"  # too early
    with unit_of_work(context.session_factory) as session:
        repository.get(session, job_id).run_after = utcnow()
    assert runner.JobRunner(context, "w").run(job_id) == "failed"  # max_attempts = 2
    assert "database restarting" in read(context, job_id).error


def test_permanent_failure_fails_at_once(context, submit, handler):
    def run(job):
        raise ValueError("task has no training rows")

    handler.run = run
    job_id = submit()
    assert runner.JobRunner(context, "w").run(job_id) == "failed"
    job = read(context, job_id)
    assert job.attempts == 1 and job.error == "ValueError: task has no training rows"


def test_silent_job_is_reaped_and_its_old_attempt_cannot_write(context, submit, handler):
    job_id = submit()
    with unit_of_work(context.session_factory) as session:
        assert repository.claim(session, job_id, "dead" * 8, "killed-worker", utcnow())
        repository.get(session, job_id).heartbeat_at = utcnow() - timedelta(minutes=5)
    assert runner.reap_stale(context) == [job_id]
    job = read(context, job_id)
    assert job.state == "queued" and job.claim_token is None and "stopped responding" in job.error
    assert context.dispatcher.sent[-1] == (job_id, "embed", 0.0)
    with unit_of_work(context.session_factory) as session:  # the dead attempt is locked out
        assert not repository.update_owned(session, job_id, "dead" * 8, progress=0.5)
    assert runner.JobRunner(context, "w2").run(job_id) == "succeeded"
    assert read(context, job_id).attempts == 2


def test_reaper_gives_up_after_max_attempts(context, submit):
    job_id = submit()
    with unit_of_work(context.session_factory) as session:
        job = repository.get(session, job_id)
        job.attempts = 1
        assert repository.claim(session, job_id, "x" * 32, "w", utcnow())  # attempt 2 of 2
        repository.get(session, job_id).heartbeat_at = utcnow() - timedelta(minutes=5)
    assert runner.reap_stale(context) == []
    job = read(context, job_id)
    assert job.state == "failed" and "giving up" in job.error


def test_heartbeat_keeps_a_long_step_alive(context, submit, handler):
    context.settings.job_heartbeat_s = 0.05
    release = threading.Event()
    beats = []

    def run(job):
        first = read(context, job.id).heartbeat_at
        release.wait(0.5)  # one long step without progress callbacks
        beats.append(read(context, job.id).heartbeat_at > first)

    handler.run = run
    runner.JobRunner(context, "w").run(submit())
    assert beats == [True]


def test_long_queued_jobs_are_sent_again(context, submit):
    job_id = submit()
    context.dispatcher.sent.clear()
    runner.reap_stale(context)
    assert context.dispatcher.sent == []  # just queued: its message is on its way
    with unit_of_work(context.session_factory) as session:
        job = repository.get(session, job_id)
        job.updated_at = job.run_after = utcnow() - timedelta(hours=1)
    runner.reap_stale(context)
    assert context.dispatcher.sent == [(job_id, "embed", 0.0)]
    runner.reap_stale(context)
    assert len(context.dispatcher.sent) == 1  # not again until the interval passes
