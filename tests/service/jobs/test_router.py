"""Jobs API with no worker running: jobs stay queued, so listing and cancelling are exact."""

from __future__ import annotations

import pytest

from service.db import unit_of_work


@pytest.fixture()
def settings_overrides():
    return {"embedded_workers": 0}


def test_list_get_and_cancel_a_queued_job(client, keys, upload):
    task = upload(keys.alice, "waiting").json()
    job_id = task["embedding"]["job_id"]
    job = client.get(f"/v1/jobs/{job_id}", headers=keys.alice).json()
    assert job["state"] == "queued" and job["kind"] == "embed" and job["progress"] == 0.0
    assert job["config"]["max_examples"] == 16
    listed = client.get("/v1/jobs?state=queued", headers=keys.alice).json()
    assert [j["id"] for j in listed["items"]] == [job_id]
    assert client.get("/v1/jobs?state=running", headers=keys.alice).json()["total"] == 0
    cancelled = client.post(f"/v1/jobs/{job_id}/cancel", headers=keys.alice)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = client.post(f"/v1/jobs/{job_id}/cancel", headers=keys.alice)
    assert again.status_code == 409 and again.json()["error"] == "job_finished"
    read = client.get(f"/v1/tasks/{task['id']}", headers=keys.alice).json()
    assert read["status"] == "failed" and read["embedding"]["state"] == "cancelled"


def test_recompute_embeddings_queues_a_job_with_overrides(client, keys, upload):
    task = upload(keys.alice, "again").json()
    response = client.post(
        f"/v1/tasks/{task['id']}/embeddings",
        json={"max_examples": 8, "methods": ["textemb"]},
        headers=keys.alice,
    )
    assert response.status_code == 202
    job = response.json()
    assert job["config"]["max_examples"] == 8 and job["config"]["methods"] == ["textemb"]
    bad = client.post(
        f"/v1/tasks/{task['id']}/embeddings", json={"methods": ["x"]}, headers=keys.alice
    )
    assert bad.status_code == 422


def test_admin_sees_every_job(client, keys, upload):
    upload(keys.alice, "a")
    upload(keys.bob, "b")
    assert client.get("/v1/jobs", headers=keys.admin).json()["total"] == 2
    assert client.get("/v1/jobs", headers=keys.alice).json()["total"] == 1


@pytest.mark.parametrize("settings_overrides", [{"embedded_workers": 0}])
def test_queued_jobs_know_their_place_and_running_ones_their_eta(client, keys, session_factory):
    from datetime import timedelta

    from service.auth.repository import owner_by_name
    from service.models import Job, JobPriority, utcnow

    now = utcnow()
    with unit_of_work(session_factory) as session:
        alice = owner_by_name(session, "alice").id

        def add(priority: int, **values) -> int:
            values = {"kind": "embed", "queue": "embed"} | values
            job = Job(owner_id=alice, priority=priority, **values)
            session.add(job)
            session.flush()
            return job.id

        backfill = add(JobPriority.BACKFILL, queue="backfill")
        first, second = add(JobPriority.OWNER), add(JobPriority.OWNER)
        running = add(
            JobPriority.OWNER,
            state="running",
            progress=0.25,
            started_at=now - timedelta(seconds=30),
        )
    jobs = {j["id"]: j for j in client.get("/v1/jobs", headers=keys.alice).json()["items"]}
    places = {i: jobs[i]["queue_position"] for i in (first, second, backfill, running)}
    assert places == {first: 1, second: 2, backfill: 3, running: None}  # owners' go first
    eta = jobs[running]["timings"]["eta_s"]
    assert 85 <= eta <= 100  # 30 s for a quarter: about 90 s left
    one = client.get(f"/v1/jobs/{second}", headers=keys.alice).json()
    assert one["queue_position"] == 2 and one["timings"]["eta_s"] is None


@pytest.mark.parametrize("settings_overrides", [{"embedded_workers": 0}])
def test_bulk_cancel_takes_the_callers_own_or_an_admins_any(client, keys, session_factory):
    from service.auth.repository import owner_by_name
    from service.models import Job

    with unit_of_work(session_factory) as session:
        ids = {}
        for name, kind in (("alice", "embed"), ("alice", "transfer"), ("bob", "embed")):
            job = Job(owner_id=owner_by_name(session, name).id, kind=kind, queue="embed")
            session.add(job)
            session.flush()
            ids[(name, kind)] = job.id
    mine = client.post("/v1/jobs/cancel?kind=embed", headers=keys.alice).json()
    assert [j["id"] for j in mine["items"]] == [ids[("alice", "embed")]]
    assert mine["items"][0]["state"] == "cancelled"
    everyone = client.post("/v1/jobs/cancel?state=queued", headers=keys.admin).json()
    assert sorted(j["id"] for j in everyone["items"]) == [
        ids[("alice", "transfer")],
        ids[("bob", "embed")],
    ]
    assert client.post("/v1/jobs/cancel?state=done", headers=keys.alice).status_code == 422
