"""Library calibration: library tasks measured as donors on probe targets, as backfill below
owners' jobs, its cost estimated first, its evidence set growing as sources finish."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.db import unit_of_work
from service.jobs import repository as jobs
from service.models import Job, JobPriority, JobState, utcnow
from workers.data.writer import save_task_dir

PROBES = ["toy_sentiment", "toy_sts", "toy_choice", "toy_ner"]  # four task types
TINY = {
    "source_rows": 8,
    "target_rows": 8,
    "eval_rows": 4,
    "source_epochs": 1,
    "target_epochs": 1,
    "batch_size": 4,
    "max_length": 24,
}


@pytest.fixture()
def toy_library(client, keys, settings, toy_tasks) -> dict[str, int]:
    """The five toy tasks (one of each type) registered as the library."""
    for task in toy_tasks.values():
        save_task_dir(task, settings.tasks_root / task.name)
    body = {"path": str(settings.tasks_root)}
    registered = client.post("/v1/library/folders", json=body, headers=keys.admin)
    assert registered.status_code == 201, registered.text
    return {t["name"]: t["id"] for t in registered.json()}


def _calibrate(client, keys, **body):
    return client.post("/v1/evidence/calibrations", json=body, headers=keys.admin)


def test_a_dry_run_estimates_without_queueing(client, keys, toy_library):
    planned = _calibrate(client, keys, sources="all", probes=PROBES, dry_run=True)
    assert planned.status_code == 202, planned.text
    body = planned.json()
    assert body["job_id"] is None and body["probes"] == PROBES and len(body["sources"]) == 5
    cost = body["cost"]
    assert cost["sources_to_train"] == 5 and cost["baselines"] == 4 * 2  # probes × seeds
    assert cost["target_runs"] == 4 * 2 * 4  # each probe from the four other tasks
    assert cost["seconds"] > 0 and cost["examples"] > 0
    assert client.get("/v1/jobs?kind=calibrate", headers=keys.admin).json()["total"] == 0


def test_probes_must_be_diverse_library_tasks(client, keys, toy_library):
    few = _calibrate(client, keys, probes=PROBES[:3], dry_run=True)
    assert few.status_code == 422 and "at least 4 probe targets of 3" in few.json()["message"]
    same = _calibrate(client, keys, probes=["toy_sentiment"] * 4, dry_run=True)
    assert same.status_code == 422
    unknown = _calibrate(client, keys, probes=[*PROBES[:3], "nope"], dry_run=True)
    assert unknown.status_code == 422 and unknown.json()["problems"][0]["field"] == "probes"
    one_seed = _calibrate(client, keys, probes=PROBES, seeds=[0], dry_run=True)
    assert one_seed.status_code == 422
    owner = client.post("/v1/evidence/calibrations", json={}, headers=keys.alice)
    assert owner.status_code == 403


def test_calibration_measures_donors_and_fills_the_coverage(client, keys, toy_library, wait_job):
    before = client.get("/v1/evidence/coverage", headers=keys.alice).json()
    assert before["with_record"] == 0 and before["library"] == 5
    body = {"sources": ["toy_qa", "toy_sts"], "probes": PROBES, "protocol": TINY}
    started = _calibrate(client, keys, **body).json()
    assert "job_id" in started, started
    assert started["job_id"] is not None and started["cost"]["target_runs"] == 2 * 4 * 2 - 2
    job = client.get(f"/v1/jobs/{started['job_id']}", headers=keys.admin).json()
    assert job["kind"] == "calibrate"
    done = wait_job(started["job_id"], keys.admin, timeout=240)
    assert done["state"] == "succeeded", done
    # one stage per run or source stage (8 baselines, 14 transfers, 2 sources), not per step
    assert len(done["timings"]["stages"]) <= 8 + 14 + 2
    found = client.get(f"/v1/evidence/{started['evidence_set']}", headers=keys.admin).json()
    assert found["origin"] == "calibration" and found["default"] is True
    assert found["summary"]["rows"] == 14 and found["summary"]["sources"] == 2
    assert found["protocol"]["source_n"] == 8 and "encoder" not in found["protocol"]
    after = client.get("/v1/evidence/coverage", headers=keys.alice).json()
    assert after["with_record"] == 2 and after["sets"] == [started["evidence_set"]]
    assert sorted(after["missing"]) == ["toy_choice", "toy_ner", "toy_sentiment"]
    # Named sets are counted as a recommendation takes them: the model's, one protocol
    named = {"evidence_set": started["evidence_set"]}
    assert client.get("/v1/evidence/coverage", params=named, headers=keys.alice).json() == after
    unknown = client.get("/v1/evidence/coverage?evidence_set=nope", headers=keys.alice)
    assert unknown.status_code == 404 and "nope" in unknown.json()["message"]
    foreign = named | {"transfer_model": "roberta-base"}
    other = client.get("/v1/evidence/coverage", params=foreign, headers=keys.alice)
    assert other.status_code == 422 and "measured another model" in other.json()["message"]
    rest = _calibrate(client, keys, probes=PROBES, protocol=TINY, dry_run=True).json()
    assert sorted(rest["sources"]) == sorted(after["missing"])  # "missing" is the default
    assert rest["cost"]["baselines"] == 0  # the probes' baselines are already measured
    again = _calibrate(client, keys, **body).json()  # nothing left: no job
    assert again["job_id"] is None and again["cost"]["target_runs"] == 0


def test_owners_jobs_go_ahead_of_backfill(session_factory, keys):
    from service.auth.repository import owner_by_name

    now = utcnow()
    with unit_of_work(session_factory) as session:
        owner = owner_by_name(session, "alice").id

        def add(priority: int, state: str = JobState.QUEUED) -> int:
            job = Job(owner_id=owner, kind="embed", queue="embed", priority=priority, state=state)
            job.run_after = now - timedelta(seconds=1)
            session.add(job)
            session.flush()
            return job.id

        backfill = add(JobPriority.BACKFILL)
        mine = add(JobPriority.OWNER)
        assert jobs.next_runnable(session, now) == mine  # newer, but an owner's
        session.get(Job, mine).state = JobState.SUCCEEDED
        assert jobs.next_runnable(session, now) == backfill
        add(JobPriority.BACKFILL, JobState.RUNNING)  # one backfill job at a time
        assert jobs.next_runnable(session, now) is None


def test_a_backfill_job_is_not_claimed_while_another_runs(session_factory, keys):
    from service.auth.repository import owner_by_name

    now = utcnow()
    with unit_of_work(session_factory) as session:
        owner = owner_by_name(session, "alice").id
        made = []
        for priority in (JobPriority.BACKFILL, JobPriority.BACKFILL, JobPriority.OWNER):
            job = Job(owner_id=owner, kind="embed", queue="embed", priority=priority)
            job.run_after = now - timedelta(seconds=1)
            session.add(job)
            session.flush()
            made.append(job.id)
        first, second, mine = made
        assert jobs.claim(session, first, "t1", "w1", now)
        assert not jobs.claim(session, second, "t2", "w2", now)  # the first still runs
        assert jobs.claim(session, mine, "t3", "w2", now)  # owners' jobs are never held back


def test_a_rewritten_calibration_changes_the_evidence_stamp(session_factory):
    # Rerunning a source replaces its rows under the same keys: a ranker fitted on the old
    # scores must not answer for the new ones (the stamp keys the fitted rankers).
    from service.evidence import repository
    from service.evidence.calibration import write_set
    from workers.selection.results import TransferRow

    def rows(gain: float) -> list[TransferRow]:
        return [TransferRow("toy_qa", "toy_sts", 0, 50 + gain, 50.0, gain, "pearson")]

    with unit_of_work(session_factory) as session:
        write_set(session, "calibration-tiny", "tiny@1", TINY, rows(2.0))
        before = repository.stamp(session)
        write_set(session, "calibration-tiny", "tiny@1", TINY, rows(2.0))
        assert repository.stamp(session) == before  # the same rows: fits stay valid
        write_set(session, "calibration-tiny", "tiny@1", TINY, rows(-3.0))
        assert repository.stamp(session) != before
